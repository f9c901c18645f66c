// buildPlan: the pure planner. Diff, resolve dependencies, apply --target/--exclude, order the
// steps in waves, and gather what a reviewer and apply need into one in-memory Plan. It takes
// only data (desired and actual state, options) and performs no I/O.

import type { Address } from "../model/address.js";
import type { ActualState } from "../model/actual.js";
import type { DesiredState } from "../model/desired.js";
import type { Diagnostic } from "../model/diagnostics.js";
import type { ResourceChange } from "./changes.js";
import { diffState } from "./diff.js";
import type { Check } from "./ops.js";
import { orderSteps, resolveDependencies, type OrderedStep } from "./order.js";
import { selectSteps } from "./scope.js";

export type PlanOptions = {
  allowRestart: boolean;
  targets: readonly Address[];
  excludes: readonly Address[];
};

export type Plan = {
  owner: string;
  options: PlanOptions;
  /** Every resource in scope, sorted by address (no-op ones included). */
  changes: ResourceChange[];
  /** In execution order: by wave, then by id. */
  steps: OrderedStep[];
  checks: Check[];
  diagnostics: Diagnostic[];
};

/** Every address the config declares or the actual state shows as managed. */
function knownAddresses(desired: DesiredState, changes: readonly ResourceChange[]): Set<string> {
  const out = new Set(changes.map((c) => c.address));
  for (const n of desired.qubes.keys()) out.add(`qube.${n}`);
  for (const n of desired.labels.keys()) out.add(`label.${n}`);
  for (const n of desired.pools.keys()) out.add(`pool.${n}`);
  if (desired.properties.size > 0) out.add("properties");
  return out;
}

export function buildPlan(desired: DesiredState, actual: ActualState, options: PlanOptions): Plan {
  const diff = diffState(desired, actual, { allowRestart: options.allowRestart });
  const deps = resolveDependencies(diff.steps);
  const selection = selectSteps(diff.steps, deps, options, knownAddresses(desired, diff.changes));
  const inScope = (address: string | undefined): boolean => address === undefined || selection.addresses === undefined || selection.addresses.has(address);
  const ordered = orderSteps(
    diff.steps.filter((s) => selection.steps.has(s.id)),
    deps,
  );
  const diagnostics = [...diff.diagnostics.filter((d) => inScope(d.address)), ...selection.diagnostics, ...ordered.diagnostics];
  const changes = diff.changes.filter((c) => inScope(c.address));
  return { owner: desired.owner, options, changes, steps: ordered.steps, checks: diff.checks, diagnostics };
}
