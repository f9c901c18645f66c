// Scope: --target and --exclude. A target selects its resource's steps and, transitively, every
// step they depend on; an exclude removes a resource's steps, and a selected step that depends on
// an excluded one is an error (it could not run correctly without it). Pure.

import { formatAddress, type Address } from "../model/address.js";
import type { Diagnostic } from "../model/diagnostics.js";
import type { PlannedStep } from "./changes.js";
import { planDiagnostic } from "./codes.js";
import { SETUP_STEP } from "./diff.js";

export type Scope = { targets: readonly Address[]; excludes: readonly Address[] };

export type Selection = {
  /** Ids of the selected steps. */
  steps: Set<string>;
  /** Addresses whose changes and diagnostics the plan shows; undefined = everything. */
  addresses?: Set<string>;
  diagnostics: Diagnostic[];
};

export function selectSteps(
  steps: readonly PlannedStep[],
  deps: ReadonlyMap<string, ReadonlySet<string>>,
  scope: Scope,
  known: ReadonlySet<string>,
): Selection {
  const diagnostics: Diagnostic[] = [];
  const targets = scope.targets.map(formatAddress);
  const excludes = new Set(scope.excludes.map(formatAddress));
  for (const a of [...targets, ...excludes]) {
    if (!known.has(a)) {
      diagnostics.push(planDiagnostic("QIAC-W101", `${a} matches nothing in the config or in what qubes-iac manages`, { address: a }));
    }
  }
  if (targets.length === 0 && excludes.size === 0) return { steps: new Set(steps.map((s) => s.id)), diagnostics };

  const byId = new Map(steps.map((s) => [s.id, s]));
  const selected = new Set<string>();
  const visit = (id: string): void => {
    if (selected.has(id) || !byId.has(id)) return;
    selected.add(id);
    for (const d of deps.get(id) ?? []) visit(d);
  };
  const roots = targets.length === 0 ? steps : steps.filter((s) => targets.includes(s.address));
  for (const s of roots) if (!excludes.has(s.address)) visit(s.id);

  for (const id of [...selected]) {
    const s = byId.get(id) as PlannedStep;
    if (!excludes.has(s.address)) continue;
    selected.delete(id);
    const needers = [...selected].filter((other) => deps.get(other)?.has(id) && !excludes.has(byId.get(other)?.address ?? ""));
    for (const other of needers) {
      const o = byId.get(other) as PlannedStep;
      diagnostics.push(
        planDiagnostic("QIAC-E118", `${o.address} needs ${s.address} (step ${id}), which --exclude leaves out`, {
          address: o.address,
          hint: `drop --exclude ${s.address}, or exclude ${o.address} too`,
        }),
      );
    }
  }
  const addresses = new Set([...targets.filter((a) => !excludes.has(a)), ...[...selected].map((id) => byId.get(id)?.address ?? "")]);
  addresses.delete(byId.get(SETUP_STEP)?.address ?? "");
  if (targets.length === 0) {
    for (const a of known) if (!excludes.has(a)) addresses.add(a);
  }
  return { steps: selected, addresses, diagnostics };
}
