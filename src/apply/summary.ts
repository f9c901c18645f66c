// What an apply did, from the engine's results: counts by resource as the plan summary counts
// them (a replace is one added and one destroyed), and the applied, failed and skipped steps.
// Pure; the views turn it into text or JSON.

import type { ApplyResult, SkipReason, StepFailure } from "./engine.js";

export type ApplySummary = {
  ok: boolean;
  added: number;
  changed: number;
  destroyed: number;
  forgotten: number;
  released: number;
  applied: string[];
  failed: Array<{ step: string; failure: StepFailure }>;
  skipped: Array<{ step: string; reason: SkipReason }>;
};

export function summarizeApply(r: ApplyResult): ApplySummary {
  const byKind = new Map<string, Set<string>>();
  const s: ApplySummary = { ok: r.ok, added: 0, changed: 0, destroyed: 0, forgotten: 0, released: 0, applied: [], failed: [], skipped: [] };
  for (const x of r.results) {
    switch (x.status) {
      case "applied": {
        s.applied.push(x.step.id);
        const set = byKind.get(x.step.kind) ?? new Set<string>();
        set.add(x.step.address);
        byKind.set(x.step.kind, set);
        break;
      }
      case "failed":
        s.failed.push({ step: x.step.id, failure: x.failure });
        break;
      case "skipped":
        s.skipped.push({ step: x.step.id, reason: x.reason });
        break;
      default: {
        const never: never = x;
        throw new Error(`unhandled result ${String(never)}`);
      }
    }
  }
  s.added = byKind.get("create")?.size ?? 0;
  s.changed = byKind.get("update")?.size ?? 0;
  s.destroyed = byKind.get("delete")?.size ?? 0;
  s.forgotten = byKind.get("forget")?.size ?? 0;
  s.released = byKind.get("release")?.size ?? 0;
  return s;
}

/** `2 added, 3 changed, 1 destroyed` (and `, 1 released`, `, 1 forgotten` when any). */
export function countsText(s: ApplySummary): string {
  return `${s.added} added, ${s.changed} changed, ${s.destroyed} destroyed${s.released > 0 ? `, ${s.released} released` : ""}${s.forgotten > 0 ? `, ${s.forgotten} forgotten` : ""}`;
}
