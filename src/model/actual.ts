// The actual state: what the planner learned from Qubes, as plain data. Produced only by the
// plan's state reader (src/plan/reader.ts), read by the pure diff. It holds exactly what was
// read: a part that was not read is `undefined`, never an empty stand-in, so the diff can tell
// "absent" from "not looked at". No I/O and no interpretation of ownership here.

import type { ActualAssignment, DeviceClass, ExposedDevice } from "./devices.js";
import type { DetectedRelease } from "./release.js";

/** Property value types as qubesd names them after `type=`. */
export type ActualPropertyType = "bool" | "int" | "str" | "vm" | "label";

/** One property as property.Get/GetAll print it: `raw` is the text after `type=<t> ` ("" = none / unset). */
export type ActualProperty = { isDefault: boolean; type: ActualPropertyType; raw: string };

/** One line of admin.vm.List. `power` is qubesd's power state word (`Halted`, `Running`, `Paused`, …). */
export type ListedQube = { name: string; klass: string; power: string };

export type ActualVolume = {
  pool: string;
  size: bigint;
  rw: boolean;
  /** The volume's id in its pool, as `admin.pool.volume.List` lists it. */
  vid?: string;
  revisionsToKeep: number;
  ephemeral: boolean;
  snapOnStart: boolean;
  saveOnStop: boolean;
};

export type ActualQube = {
  name: string;
  klass: string;
  power: string;
  /** property.GetAll (or its per-property fallback). */
  properties: ReadonlyMap<string, ActualProperty>;
  /** tag.List; undefined when only the properties were read (reference scan). */
  tags?: ReadonlySet<string>;
  /** feature.List: the names of every feature set on the qube; undefined when not read. */
  featureNames?: ReadonlySet<string>;
  /** Values of the features that were read (a subset of featureNames). */
  features: ReadonlyMap<string, string>;
  /**
   * A DispVM's disposable template's feature names (feature.List), read only when the DispVM
   * carries format-1 records: those the template has too were copied by qubesd, not set on it.
   */
  templateFeatureNames?: ReadonlySet<string>;
  /** firewall.Get in canonical form; undefined when not read. */
  firewall?: readonly string[];
  /** volume.Info of the volumes that were read. */
  volumes: ReadonlyMap<string, ActualVolume>;
  /** admin.vm.notes.Get; undefined when not read (not managed, or a release without notes). */
  notes?: string;
  /** Device assignments of the classes that were read (the config's and those its records name). */
  devices?: ReadonlyMap<DeviceClass, readonly ActualAssignment[]>;
};

/**
 * What a backend offers at one port (Available with the port as argument): the device, nothing
 * (unplugged, or its backend halted), or no answer (dom0's PCI list needs the hypervisor).
 */
export type DeviceAtPort = { kind: "found"; device: ExposedDevice } | { kind: "absent" } | { kind: "unavailable"; why: string };

export const devicePortKey = (devclass: string, backend: string, port: string): string => `${devclass} ${backend} ${port}`;

/** A label; `colour` undefined when qubesd answered empty (created in this daemon lifetime). */
export type ActualLabel = { name: string; colour?: string };

export type ActualPool = {
  name: string;
  driver: string;
  params: ReadonlyMap<string, string>;
  /** The vids it holds (`admin.pool.volume.List`): read only for a pool the plan may remove. */
  volumes?: readonly string[];
};

export type ActualState = {
  /** Every qube admin.vm.List returned, by name. */
  listing: ReadonlyMap<string, ListedQube>;
  /** Qubes read in depth or scanned for references, by name. */
  qubes: ReadonlyMap<string, ActualQube>;
  /** True when every listed qube's properties were read (the reference scan ran). */
  scanned: boolean;
  /**
   * `policy` when admin.vm.List showed only the qubes a management qube's qrexec policy lets it
   * see, so the reference scan saw no others; absent when it showed every qube (dom0).
   */
  visibility?: "policy";
  /** dom0's features: every name (feature.List) and the values that were read. */
  dom0FeatureNames: ReadonlySet<string>;
  dom0Features: ReadonlyMap<string, string>;
  /** label.List with colours of the labels that were read; undefined when not read. */
  labels?: ReadonlyMap<string, ActualLabel>;
  /** pool.List with the info of the pools that were read; undefined when not read. */
  poolNames?: ReadonlySet<string>;
  pools: ReadonlyMap<string, ActualPool>;
  /** Export only: the info of other pools that hold exported volumes (their defaults decide what is written). */
  volumePools?: ReadonlyMap<string, ActualPool>;
  /** Global properties (admin.property.GetAll); undefined when not read. */
  globals?: ReadonlyMap<string, ActualProperty>;
  /** admin.deviceclass.List; undefined when no device was relevant. */
  deviceClasses?: ReadonlySet<string>;
  /** What the backends offer at the ports the plan needs (devicePortKey), when read. */
  devicesAt?: ReadonlyMap<string, DeviceAtPort>;
  /** Which Qubes release answered, from the property lists read; undefined when not read (any release). */
  release?: DetectedRelease;
  /**
   * Of qubes only the system has (not read in depth), the one property a reference of the config
   * needs of each (src/plan/reference-needs.ts), by qube and property; undefined when none was read.
   */
  referenced?: ReadonlyMap<string, ReadonlyMap<string, ActualProperty>>;
  /** dom0's qrexec policy files the config names or the inventory lists (src/plan/policy-reader.ts); undefined when none was read. */
  policies?: ActualPolicies;
  /** Existing qubes the config creates copies of, read as clone sources (src/plan/clone-reader.ts); undefined when none. */
  cloneSources?: ReadonlyMap<string, CloneSource>;
  /**
   * Every other policy file's text, for the loosening analysis only (src/plan/policy-context.ts);
   * undefined when not read.
   */
  policyContext?: { policies: ReadonlyMap<string, string>; includes: ReadonlyMap<string, string>; unread: readonly string[]; unlisted: boolean };
};

/** An existing qube read as a clone source: what qvm-clone copies of it, and the volumes to copy with their pool's driver. */
export type CloneSource = {
  name: string;
  klass: string;
  power: string;
  properties: ReadonlyMap<string, ActualProperty>;
  tags: ReadonlySet<string>;
  features: ReadonlyMap<string, string>;
  firewall: readonly string[];
  volumes: ReadonlyMap<string, ActualVolume & { driver: string }>;
  /** Its device assignments, read only when a copy of it says `clone_devices: true`. */
  devices?: ReadonlyMap<DeviceClass, readonly ActualAssignment[]>;
};

/**
 * Policy files as policy.List and policy.Get showed them, by address (`policy.<name>`,
 * `policy.include.<name>`): the token and content of each that exists, `absent` for one the list
 * does not show. `error`: the files could not be read (a refusal by qrexec policy, …).
 */
export type ActualPolicies =
  | { kind: "read"; files: ReadonlyMap<string, { token: string; content: string } | { absent: true }> }
  | { kind: "failed"; error: string; refused: boolean };

/**
 * Power states qubes-iac can act from; anything else (Transient, Halting, Dying, Crashed, NA) is
 * in flux. Suspended (S3) is not Paused: only admin.vm.Resume wakes it, and Unpause refuses it.
 */
export type SettledPower = "running" | "halted" | "paused" | "suspended";

export function settledPower(power: string): SettledPower | undefined {
  switch (power) {
    case "Running":
      return "running";
    case "Halted":
      return "halted";
    case "Paused":
      return "paused";
    case "Suspended":
      return "suspended";
    default:
      return undefined;
  }
}
