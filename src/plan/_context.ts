// Shared state of one diff run: the inputs, the owner's record names, the inventory, and the
// collectors for diagnostics and checks. Also the one place that decides whose a qube is, so
// every part of the diff applies the same ownership rules. Internal to src/plan.

import type { ActualQube, ActualState } from "../model/actual.js";
import type { DesiredState } from "../model/desired.js";
import type { Diagnostic } from "../model/diagnostics.js";
import { ownershipNames, parseIntent, readInventory, type Inventory, type OwnershipNames, type QubeIntent } from "../model/ownership.js";
import type { Check } from "./ops.js";

export type DiffOptions = {
  /** Let apply shut a qube down for a change Qubes accepts only on a halted qube, and start it again. */
  allowRestart: boolean;
  /** The time the plan is made (ms since the epoch), for firewall rules with `expire`; absent = not judged. */
  now?: number;
};

/**
 * Whose a qube is, from the inventory and its owner tag:
 * - absent: not in Qubes (`listed`: the inventory still names it);
 * - owned: ours; `finish` when an interrupted create left it without the tag or confirmation;
 * - drift: the inventory confirms it but its tag was removed: reported, never touched;
 * - pending-adopt: an adopt was interrupted before the tag was set: still not ours;
 * - foreign: not in the inventory (a hand-added owner tag means nothing).
 */
export type QubeOwnership =
  | { kind: "absent"; confirmed: boolean; intent: boolean }
  | { kind: "owned"; confirmed: boolean; intent: boolean; tagged: boolean }
  | { kind: "drift"; confirmed: true; intent: boolean; tagged: false }
  | { kind: "pending-adopt"; confirmed: false; intent: true; tagged: false }
  | { kind: "foreign"; confirmed: false; intent: false; tagged: boolean };

/** A qube read in depth: its properties, tags and feature names. */
export type DetailedQube = ActualQube & { tags: ReadonlySet<string>; featureNames: ReadonlySet<string> };

export type DiffContext = {
  desired: DesiredState;
  actual: ActualState;
  options: DiffOptions;
  names: OwnershipNames;
  inventory: Inventory;
  diagnostics: Diagnostic[];
  addCheck(c: Check): void;
  checks(): Check[];
  ownership(name: string): QubeOwnership;
  /** The in-depth read of a qube; a missing read is a bug of the reader. */
  detail(name: string): DetailedQube;
  /** Exists now or is declared by the config. */
  qubeKnown(name: string): boolean;
};

export function createContext(desired: DesiredState, actual: ActualState, options: DiffOptions): DiffContext {
  const names = ownershipNames(desired.owner);
  const inventory = readInventory(desired.owner, actual.dom0FeatureNames);
  const diagnostics: Diagnostic[] = [];
  const checks = new Map<string, Check>();

  const detail = (name: string): DetailedQube => {
    const q = actual.qubes.get(name);
    if (!q || !q.tags || !q.featureNames) throw new Error(`internal: qube '${name}' was not read in depth`);
    return q as DetailedQube;
  };

  const intentOf = (name: string): QubeIntent | undefined => parseIntent(actual.dom0Features.get(names.intent(name)));

  const ownership = (name: string): QubeOwnership => {
    const confirmed = inventory.qubes.has(name);
    const intent = inventory.intents.has(name);
    if (!actual.listing.has(name)) return { kind: "absent", confirmed, intent };
    if (!confirmed && !intent) {
      const tags = actual.qubes.get(name)?.tags;
      return { kind: "foreign", confirmed: false, intent: false, tagged: tags?.has(names.ownerTag) ?? false };
    }
    const tagged = detail(name).tags.has(names.ownerTag);
    if (tagged) return { kind: "owned", confirmed, intent, tagged };
    if (confirmed) return { kind: "drift", confirmed: true, intent, tagged: false };
    // Only an intent, no tag: a create interrupted after Create is ours; an adopt is not yet.
    return intentOf(name) === "create"
      ? { kind: "owned", confirmed: false, intent: true, tagged: false }
      : { kind: "pending-adopt", confirmed: false, intent: true, tagged: false };
  };

  return {
    desired,
    actual,
    options,
    names,
    inventory,
    diagnostics,
    addCheck: (c) => checks.set(JSON.stringify(c), c),
    checks: () => [...checks.values()],
    ownership,
    detail,
    qubeKnown: (name) => desired.qubes.has(name) || actual.listing.has(name),
  };
}
