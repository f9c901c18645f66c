// Shared state of one diff run: the inputs, the owner's record names, the inventory (this
// owner's and the others'), and the collectors for diagnostics and checks. Also the one place
// that decides whose a qube is and which of its records are its own, so every part of the diff
// applies the same ownership rules (docs/ownership.md, "Whose is a qube"). Internal to src/plan.

import type { ActualQube, ActualState } from "../model/actual.js";
import type { DesiredState } from "../model/desired.js";
import type { Diagnostic } from "../model/diagnostics.js";
import {
  isUuid,
  lifecycleOf,
  ownershipNames,
  parseIntent,
  readInventory,
  readOtherOwners,
  readQubeRecords,
  type Inventory,
  type Lifecycle,
  type OtherOwners,
  type OwnershipNames,
  type QubeIntent,
  type QubeRecords,
} from "../model/ownership.js";
import type { Check } from "./ops.js";

export type DiffOptions = {
  /** Let apply shut a qube down for a change Qubes accepts only on a halted qube, and start it again. */
  allowRestart: boolean;
  /** The time the plan is made (ms since the epoch), for firewall rules with `expire`; absent = not judged. */
  now?: number;
  /** Owners whose qubes, labels and pools this plan may take over (`--take-ownership OWNER`). */
  takeOwnership?: readonly string[];
  /** Qubes to let go of without destroying them (`qubes-iac release qube.NAME`), as if the config said `release: true`. */
  release?: readonly string[];
};

/**
 * Whose a qube is, from the inventory and the qube's own marker record (`<uuid>.own`; for a
 * format-1 entry, the owner tag):
 * - absent: not in Qubes (`confirmed`/`intent`: the inventory still names it);
 * - owned: ours, `created` or `adopted`; `marked`/`tagged`/`confirmed` false when an
 *   interrupted create or adopt (or a format-1 state) left it to finish;
 * - releasing: a release was interrupted (intent `release`): the next apply finishes it;
 * - drift: the inventory lists it but it lacks its marker (removed, or a qube made again by
 *   hand under the same name, with another UUID): reported, never touched;
 * - pending-adopt: an adopt was interrupted before the marker was set: still not ours;
 * - foreign: not in the inventory (a hand-added tag or a copied record means nothing).
 */
export type QubeOwnership =
  | { kind: "absent"; confirmed: boolean; intent: boolean }
  | { kind: "owned"; lifecycle: Lifecycle; confirmed: boolean; intent: boolean; marked: boolean; tagged: boolean }
  | { kind: "releasing"; confirmed: boolean; intent: true; marked: boolean; tagged: boolean }
  | { kind: "drift"; confirmed: true; intent: boolean; marked: false; tagged: boolean }
  | { kind: "pending-adopt"; confirmed: false; intent: true; marked: false; tagged: boolean }
  | { kind: "foreign"; confirmed: false; intent: false; marked: false; tagged: boolean };

/** A qube read in depth: its properties, tags and feature names. */
export type DetailedQube = ActualQube & { tags: ReadonlySet<string>; featureNames: ReadonlySet<string> };

export type DiffContext = {
  desired: DesiredState;
  actual: ActualState;
  options: DiffOptions;
  names: OwnershipNames;
  inventory: Inventory;
  /** Other owners' entries in dom0's features (read with the inventory, at no extra cost). */
  others: OtherOwners;
  takeOwnership: ReadonlySet<string>;
  diagnostics: Diagnostic[];
  addCheck(c: Check): void;
  checks(): Check[];
  ownership(name: string): QubeOwnership;
  /** The in-depth read of a qube; a missing read is a bug of the reader. */
  detail(name: string): DetailedQube;
  /** The qube's UUID as property.GetAll printed it; undefined when it is not a valid UUID. */
  uuidOf(name: string): string | undefined;
  /** This owner's records that are the qube's own (docs/ownership.md, "On each owned qube"). */
  records(name: string): QubeRecords;
  /** Exists now or is declared by the config. */
  qubeKnown(name: string): boolean;
  /** The config lets go of the qube (`release: true`, or `qubes-iac release`). */
  releases(name: string): boolean;
};

export function createContext(desired: DesiredState, actual: ActualState, options: DiffOptions): DiffContext {
  const names = ownershipNames(desired.owner);
  const inventory = readInventory(desired.owner, actual.dom0FeatureNames);
  const others = readOtherOwners(desired.owner, actual.dom0FeatureNames);
  const diagnostics: Diagnostic[] = [];
  const checks = new Map<string, Check>();
  const released = new Set(options.release ?? []);

  const detail = (name: string): DetailedQube => {
    const q = actual.qubes.get(name);
    if (!q || !q.tags || !q.featureNames) throw new Error(`internal: qube '${name}' was not read in depth`);
    return q as DetailedQube;
  };
  const uuidOf = (name: string): string | undefined => {
    const raw = actual.qubes.get(name)?.properties.get("uuid")?.raw;
    return raw !== undefined && isUuid(raw) ? raw : undefined;
  };
  const recordCache = new Map<string, QubeRecords>();
  const records = (name: string): QubeRecords => {
    let r = recordCache.get(name);
    if (r === undefined) {
      const a = detail(name);
      r = readQubeRecords(desired.owner, uuidOf(name), a.featureNames, a.templateFeatureNames);
      recordCache.set(name, r);
    }
    return r;
  };

  const intentOf = (name: string): QubeIntent | undefined => parseIntent(actual.dom0Features.get(names.intent(name)));

  const ownership = (name: string): QubeOwnership => {
    const lifecycle = lifecycleOf(inventory, name);
    const confirmed = lifecycle !== undefined;
    const intent = inventory.intents.has(name);
    if (!actual.listing.has(name)) return { kind: "absent", confirmed, intent };
    if (!confirmed && !intent) {
      const tags = actual.qubes.get(name)?.tags;
      return { kind: "foreign", confirmed: false, intent: false, marked: false, tagged: tags?.has(names.ownerTag) ?? false };
    }
    const a = detail(name);
    const tagged = a.tags.has(names.ownerTag);
    // A format-1 entry is confirmed by the tag; a format-2 one only by the record bound to this qube's UUID.
    const marked = records(name).own || (inventory.legacy.has(name) && tagged);
    const intended = intent ? intentOf(name) : undefined;
    if (intended === "release") return { kind: "releasing", confirmed, intent: true, marked, tagged };
    if (marked) {
      const life: Lifecycle = lifecycle ?? (intended === "create" ? "created" : "adopted");
      return { kind: "owned", lifecycle: life, confirmed, intent, marked, tagged };
    }
    if (confirmed) return { kind: "drift", confirmed: true, intent, marked: false, tagged };
    // Only an intent, no marker: a create interrupted after Create is ours; an adopt is not yet.
    return intended === "create"
      ? { kind: "owned", lifecycle: "created", confirmed: false, intent: true, marked: false, tagged }
      : { kind: "pending-adopt", confirmed: false, intent: true, marked: false, tagged };
  };

  return {
    desired,
    actual,
    options,
    names,
    inventory,
    others,
    takeOwnership: new Set(options.takeOwnership ?? []),
    diagnostics,
    addCheck: (c) => checks.set(JSON.stringify(c), c),
    checks: () => [...checks.values()],
    ownership,
    detail,
    uuidOf,
    records,
    qubeKnown: (name) => (desired.qubes.has(name) && !desired.qubes.get(name)?.absent) || actual.listing.has(name),
    releases: (name) => released.has(name) || desired.qubes.get(name)?.release === true,
  };
}
