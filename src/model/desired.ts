// The desired state: what the user's config asks for, after validation and normalisation.
// Produced only by src/config (`loadConfig`), read by the planner. Plain data: every value is
// already in the form qubesd accepts or prints, and every field a later stage may report on keeps
// the config location it came from (`locate`). No I/O and no validation here.

import type { SourceLocation } from "./diagnostics.js";
import type { DesiredDevice } from "./devices.js";
import type { AgentSpec, ContentRef } from "./guest.js";
import type { DesiredPolicyFile } from "./qrexec-policy.js";

/** The only config format version this model describes. */
export const CONFIG_VERSION = 1;

/** Qube classes a config may create or adopt (AdminVM and RemoteVM are not managed). */
export type QubeClass = "AppVM" | "TemplateVM" | "StandaloneVM" | "DispVM";
export const QUBE_CLASSES: readonly QubeClass[] = ["AppVM", "TemplateVM", "StandaloneVM", "DispVM"];

/** Classes whose qubes are based on a template (`template` required to create them). */
export const TEMPLATE_BASED_CLASSES: ReadonlySet<QubeClass> = new Set<QubeClass>(["AppVM", "DispVM"]);

export type PowerState = "running" | "halted" | "paused";

/**
 * A qube or global property value, typed as qubesd types it (`type=` in property.Get).
 * `vm` with `null` is "none" (sent as an empty payload); `default` is the reset marker written
 * `"*default*"` in the config (sent as property.Reset, never as a value).
 */
export type PropertyValue =
  | { kind: "bool"; value: boolean }
  | { kind: "int"; value: number }
  | { kind: "str"; value: string }
  | { kind: "vm"; value: string | null }
  | { kind: "default" };

/**
 * The value as qubesd prints it after `type=<t> ` in property.Get and accepts as the payload of
 * property.Set: `True`/`False`, decimal, the raw string, the qube name or `""` for none.
 * `undefined` for the reset marker, which has no value.
 */
export function propertyValueText(v: PropertyValue): string | undefined {
  switch (v.kind) {
    case "bool":
      return v.value ? "True" : "False";
    case "int":
      return String(v.value);
    case "str":
      return v.value;
    case "vm":
      return v.value ?? "";
    case "default":
      return undefined;
    default: {
      const never: never = v;
      return never;
    }
  }
}

/** Volumes whose size a config may set. */
export type VolumeName = "root" | "private" | "volatile";

/** Sizes are bytes as a JS number: exact up to 2^53 (8 PiB); larger sizes are refused by the loader. */
export type DesiredVolume = { size: number };

/**
 * Field keys of a qube's `locations`, spelled as the config path below the qube:
 * `template`, `properties.netvm`, `features.service.cups`, `tags.vpn`, `firewall.0`, `volumes.private`.
 */
export type QubeField =
  | "class"
  | "template"
  | "label"
  | "pool"
  | "state"
  | "protect"
  | "adopt"
  | "absent"
  | "release"
  | "properties"
  | "features"
  | "tags"
  | "firewall"
  | "volumes"
  | "devices"
  | "guest"
  | `devices.${string}`
  | `properties.${string}`
  | `features.${string}`
  | `tags.${string}`
  | `firewall.${number}`
  | `volumes.${string}`;

export type DesiredQube = {
  name: string;
  /** Required to create; absent only with `adopt` (then, when given, checked against the real qube). */
  class?: QubeClass;
  /** Set for template-based classes (AppVM, DispVM) unless adopted without it. */
  template?: string;
  label?: string;
  /** Pool for all volumes at creation (admin.vm.CreateInPool); cannot change afterwards. */
  pool?: string;
  /** Manage an existing qube that qubes-iac did not create. */
  adopt: boolean;
  /** Never destroy or replace this qube. */
  protect: boolean;
  /** Destroy the qube (created or adopted; with the same confirmation as any destruction). */
  absent?: boolean;
  /** Let go of the qube without destroying it: qubes-iac's tag and records are removed, nothing else. */
  release?: boolean;
  /** Power state to reach; undefined when the config does not manage it. */
  state?: PowerState;
  /** Only the properties the config names, in config order. */
  properties: ReadonlyMap<string, PropertyValue>;
  /** Feature values as qubesd stores them (strings); `null` means "make sure it is absent". */
  features: ReadonlyMap<string, string | null>;
  /** Tags the config asks for (the `managed-by-<owner>` tag is not included: see `ownerTag`). */
  tags: ReadonlySet<string>;
  /**
   * Firewall rules in qubesd's canonical form (what admin.vm.firewall.Get prints), in order.
   * `undefined`: the firewall is not managed. A config `[]` ("allow nothing") arrives here as
   * `["action=drop"]`, because current qubesd refuses an empty rule list.
   */
  firewall?: readonly string[];
  /** Sizes only grow: a smaller size than the actual one is a plan-time error. */
  volumes: ReadonlyMap<VolumeName, DesiredVolume>;
  /**
   * Device assignments by attribute key (`devices.pci.dom0:00_14.3`, src/model/devices.ts), in
   * config order; each located at `devices.<class>.<address>`. Undefined: devices are not managed.
   */
  devices?: ReadonlyMap<string, DesiredDevice>;
  /** Location of the qube's name (its key under `qubes:`). */
  at: SourceLocation;
  locations: ReadonlyMap<QubeField, SourceLocation>;
};

export type LabelField = "colour";

export type DesiredLabel = {
  name: string;
  /** Lowercase `0xrrggbb`. */
  colour: string;
  at: SourceLocation;
  locations: ReadonlyMap<LabelField, SourceLocation>;
};

/** `driver`, or the name of a driver parameter as written (`dir_path`, `revisions_to_keep`, …). */
export type PoolField = string;

export type DesiredPool = {
  name: string;
  driver: string;
  /** Driver parameters as the `key=value` strings admin.pool.Add takes (without `name`). */
  params: ReadonlyMap<string, string>;
  at: SourceLocation;
  locations: ReadonlyMap<PoolField, SourceLocation>;
};

/** One managed guest file: its content by reference (an inline string of the config, or a source file). */
export type DesiredGuestFile = {
  /** Absolute, normalised guest path. */
  path: string;
  content: ContentRef;
  /** For inline content: the text itself (UTF-8 when written); never shown, only hashed. */
  inline?: string;
  /** For a `source:` file: the path as written, for messages. */
  source?: string;
  at: SourceLocation;
};

/** A guest's power as the config wants it (top-level guests only: a qube's power is its own `state`). */
export type GuestPowerState = "running" | "shutdown";

/** Field keys of a guest's `locations`: `agent`, `state`, `wait`, `files`, `files./etc/motd`. */
export type GuestField = "agent" | "state" | "wait" | "files" | `files.${string}`;

/**
 * The inside of a VM, reached through its guest agent: a qube's `guest:` or an entry of the
 * top-level `guests:`. Addressed `guest.qube.<qube>` or `guest.<name>`.
 */
export type DesiredGuest = {
  address: string;
  /** The qube this guest is the inside of; undefined for a top-level guest. */
  qube?: string;
  agent: AgentSpec;
  /** Top-level guests only; undefined when not managed. */
  state?: GuestPowerState;
  /** How long "agent not answering yet" counts as pending; undefined: one bounded attempt. */
  waitMs?: number;
  /** By guest path, in config order. */
  files: ReadonlyMap<string, DesiredGuestFile>;
  at: SourceLocation;
  locations: ReadonlyMap<GuestField, SourceLocation>;
};

export const guestAddress = (name: string): string => `guest.${name}`;
export const qubeGuestAddress = (qube: string): string => `guest.qube.${qube}`;

/** Field keys of the top level: `version`, `owner`, `properties.<name>` (global properties). */
export type TopField = "version" | "owner" | `properties.${string}`;

export type DesiredState = {
  version: typeof CONFIG_VERSION;
  /** Tag charset; what qubes-iac owns carries the tag `ownerTag(owner)`. */
  owner: string;
  /** Custom labels only (the 8 default labels always exist and cannot be declared). */
  labels: ReadonlyMap<string, DesiredLabel>;
  pools: ReadonlyMap<string, DesiredPool>;
  /** Global properties (admin.property.*, qubes-prefs). */
  properties: ReadonlyMap<string, PropertyValue>;
  qubes: ReadonlyMap<string, DesiredQube>;
  /** Guests by address: the qubes' `guest:` and the top-level `guests:`. */
  guests: ReadonlyMap<string, DesiredGuest>;
  /**
   * qrexec policy files (`policies:`) and include files (`policy_includes:`) by address
   * (`policyAddress`: `policy.<name>`, `policy.include.<name>`); empty when the config has none.
   */
  policies: ReadonlyMap<string, DesiredPolicyFile>;
  /** Start of the first config file: where config-wide problems are reported. */
  at: SourceLocation;
  locations: ReadonlyMap<TopField, SourceLocation>;
};

/** The tag qubes-iac puts on what it owns. */
export const ownerTag = (owner: string): string => `managed-by-${owner}`;

/** Where a field of an item was written; the item's own location when the field was not. */
export function locate<F extends string>(
  item: { at: SourceLocation; locations: ReadonlyMap<F, SourceLocation> },
  field: F,
): SourceLocation {
  return item.locations.get(field) ?? item.at;
}
