// The in-memory plan vocabulary: one ResourceChange per resource (what a reviewer reads) and the
// PlannedSteps that carry it out (what apply executes). The diff produces both; ordering turns
// the steps' dependency hints into a graph. Plain data, shared by diff, order, scope and format.

import type { ResourceType } from "../model/address.js";
import type { Action } from "./action.js";
import type { Loosening } from "./loosening.js";
import type { StepOp } from "./ops.js";

/**
 * An attribute as the plan shows it. `null`: not set (a feature or tag that is absent, a vm
 * property set to none, a value reset to a default the plan cannot know). Lists are ordered
 * (firewall rules) or sorted (tags).
 */
export type AttrValue = string | string[] | null;
export type Attributes = Record<string, AttrValue>;

/**
 * What happens to one resource. `before` and `after` hold only the attributes qubes-iac manages
 * on it (the ones the config names or qubes-iac owns), keyed like `label`, `properties.netvm`,
 * `features.service.cups`, `tags`, `firewall`, `volumes.private.size`:
 * - create: before null, after the desired attributes;
 * - delete: before what was read, after null;
 * - update, replace, no-op: both; a replace's `after` is the new qube;
 * - forget: before the ownership record, after null;
 * - release: before what was read, after null (the qube stays; only qubes-iac's marks go).
 * `reasons` are for display only; nothing may branch on them.
 */
export type ResourceChange = {
  address: string;
  type: ResourceType;
  /** The resource's name; null for the global properties. */
  name: string | null;
  action: Action;
  before: Attributes | null;
  after: Attributes | null;
  /** Attributes whose `before` value is Qubes' default rather than a value set on it. */
  beforeDefault: string[];
  /** Attributes reset to their default (their `after` is null: Qubes decides the value). */
  afterDefault: string[];
  /** Attributes Qubes changes only on a halted qube, while this qube is not halted. */
  needsHalt: string[];
  reasons: string[];
  /** The change deletes a qube's volumes (delete, replace). */
  destroysData: boolean;
  /** A qube created by cloning: its source, and the `after` keys whose values are copied from it. */
  fromSource?: { qube: string; attributes: string[] };
  /** What it loosens (loosening.ts), strongest first; empty when nothing. Display and --deny-loosening only. */
  loosens: Loosening[];
};

export type StepKind = "setup" | "create" | "update" | "delete" | "forget" | "release";

/**
 * One unit of apply work on one resource: its ops run in order, after every step it depends on.
 * Dependencies are given as hints resolved by `orderSteps`:
 * - `uses`: addresses that must reach their final form first (their create/update steps);
 * - `unreferences`: addresses this step stops referring to (their delete steps wait for it);
 * - `after`: explicit step ids.
 */
export type PlannedStep = {
  id: string;
  address: string;
  kind: StepKind;
  ops: StepOp[];
  uses: string[];
  unreferences: string[];
  after: string[];
};

export function stepId(kind: StepKind, address: string, part?: string): string {
  return part === undefined ? `${kind}:${address}` : `${kind}:${address}:${part}`;
}

/** A change with nothing recorded yet: the one constructor every resource diff starts from. */
export function newResourceChange(type: ResourceType, name: string | null, address: string, action: Action): ResourceChange {
  return {
    address,
    type,
    name,
    action,
    before: null,
    after: null,
    beforeDefault: [],
    afterDefault: [],
    needsHalt: [],
    reasons: [],
    destroysData: false,
    loosens: [],
  };
}
