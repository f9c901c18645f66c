// Ordering: turns the steps' dependency hints into a graph and the graph into waves of
// independent steps (Kahn's algorithm, level by level). Creations and updates follow what they
// use (labels and pools, then templates, then network providers, then their users); a removal
// waits for every step that stops referring to what it removes, so deletions run in reverse.
// A cycle is reported as a diagnostic naming the steps on it; it never hangs.

import type { Diagnostic } from "../model/diagnostics.js";
import type { PlannedStep } from "./changes.js";
import { planDiagnostic } from "./codes.js";

export type OrderedStep = PlannedStep & {
  /** 1-based; the steps of one wave do not depend on each other. */
  wave: number;
  /** Ids of the steps that must finish first, sorted. */
  dependsOn: string[];
};

/** Step id → ids it depends on. */
export function resolveDependencies(steps: readonly PlannedStep[]): Map<string, Set<string>> {
  const byAddress = new Map<string, PlannedStep[]>();
  for (const s of steps) byAddress.set(s.address, [...(byAddress.get(s.address) ?? []), s]);
  const ids = new Set(steps.map((s) => s.id));
  const deps = new Map<string, Set<string>>(steps.map((s) => [s.id, new Set<string>()]));
  const add = (from: string, to: string): void => {
    if (from !== to && ids.has(to)) deps.get(from)?.add(to);
  };
  for (const s of steps) {
    for (const a of s.uses) for (const t of byAddress.get(a) ?? []) if (t.kind === "create" || t.kind === "update") add(s.id, t.id);
    for (const a of s.unreferences) for (const t of byAddress.get(a) ?? []) if (t.kind === "delete") add(t.id, s.id);
    for (const id of s.after) add(s.id, id);
  }
  return deps;
}

/** One cycle among `remaining` (every node there has a dependency inside it), as a closed path. */
function findCycle(remaining: ReadonlySet<string>, deps: ReadonlyMap<string, ReadonlySet<string>>): string[] {
  const start = [...remaining].sort()[0] as string;
  const path: string[] = [];
  const seenAt = new Map<string, number>();
  let node = start;
  while (!seenAt.has(node)) {
    seenAt.set(node, path.length);
    path.push(node);
    node = [...(deps.get(node) ?? [])].filter((d) => remaining.has(d)).sort()[0] as string;
  }
  return [...path.slice(seenAt.get(node)), node];
}

export function orderSteps(steps: readonly PlannedStep[], deps: ReadonlyMap<string, ReadonlySet<string>>): { steps: OrderedStep[]; diagnostics: Diagnostic[] } {
  const byId = new Map(steps.map((s) => [s.id, s]));
  const inScope = (id: string): boolean => byId.has(id);
  const pending = new Map(steps.map((s) => [s.id, new Set([...(deps.get(s.id) ?? [])].filter(inScope))]));
  const ordered: OrderedStep[] = [];
  let wave = 0;
  while (pending.size > 0) {
    const ready = [...pending].filter(([, d]) => d.size === 0).map(([id]) => id).sort();
    if (ready.length === 0) break;
    wave++;
    for (const id of ready) {
      pending.delete(id);
      const s = byId.get(id) as PlannedStep;
      ordered.push({ ...s, wave, dependsOn: [...(deps.get(id) ?? [])].filter(inScope).sort() });
    }
    for (const d of pending.values()) for (const id of ready) d.delete(id);
  }
  const diagnostics: Diagnostic[] = [];
  if (pending.size > 0) {
    const cycle = findCycle(new Set(pending.keys()), deps);
    diagnostics.push(
      planDiagnostic("QIAC-E106", `these steps depend on each other in a cycle: ${cycle.join(" → ")}`, {
        address: byId.get(cycle[0] as string)?.address ?? "",
        hint: "break the cycle in the config (for example set one of the references in a separate apply)",
      }),
    );
    // Still shown, after every orderable step, so the plan says what it could not order.
    wave++;
    for (const id of [...pending.keys()].sort()) {
      const s = byId.get(id) as PlannedStep;
      ordered.push({ ...s, wave, dependsOn: [...(deps.get(id) ?? [])].filter(inScope).sort() });
    }
  }
  return { steps: ordered, diagnostics };
}
