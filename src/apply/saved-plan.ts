// Reading a saved plan (`qubes-iac plan --out FILE`) back for apply: recognised by its content,
// never by its file name; validated against schemas/plan.schema.json and for step order (every
// dependency is an earlier step); refused when written by a newer qubes-iac or when it holds
// errors. Pure: takes the file's text, returns the plan or diagnostics.

import type { Diagnostic } from "../model/diagnostics.js";
import { PLAN_FORMAT_VERSION, recognizeSavedPlan, type JsonPlan } from "../plan/json.js";
import { planValidator } from "../schemas/validators.js";
import { applyDiagnostic } from "./codes.js";

export type SavedPlanRead = { kind: "plan"; plan: JsonPlan } | { kind: "not-a-plan" } | { kind: "refused"; diagnostics: Diagnostic[] };

/** Dependencies must name earlier steps, and ids must be unique: the engine relies on both. */
function orderProblems(plan: JsonPlan): string[] {
  const seen = new Set<string>();
  const problems: string[] = [];
  for (const s of plan.steps) {
    if (seen.has(s.id)) problems.push(`step ${s.id} appears twice`);
    for (const d of s.depends_on) if (!seen.has(d)) problems.push(`step ${s.id} depends on ${d}, which is not an earlier step`);
    seen.add(s.id);
  }
  if (plan.applyable !== (!plan.errored && plan.steps.length > 0)) problems.push(`applyable is ${plan.applyable}, but the plan ${plan.errored ? "holds errors" : `has ${plan.steps.length} steps`}`);
  return problems;
}

export function readSavedPlan(text: string, file: string): SavedPlanRead {
  const r = recognizeSavedPlan(text);
  switch (r.kind) {
    case "not-a-plan":
      return r;
    case "newer":
      return {
        kind: "refused",
        diagnostics: [
          applyDiagnostic("QIAC-E203", `${file} is a plan of format_version ${JSON.stringify(r.version)}; this qubes-iac reads format_version ${PLAN_FORMAT_VERSION}`, {
            hint: "apply it with the qubes-iac that wrote it, or make a new plan",
          }),
        ],
      };
    case "plan":
      break;
    default: {
      const never: never = r;
      return never;
    }
  }
  const validate = planValidator();
  if (!validate(r.plan)) {
    const errors = (validate.errors ?? []).slice(0, 10).map((e) => `${e.instancePath || "/"} ${e.message ?? "is invalid"}`);
    return { kind: "refused", diagnostics: [applyDiagnostic("QIAC-E202", `${file} is not a valid plan: ${errors.join("; ")}`, { hint: "make a new plan with `qubes-iac plan --out FILE`" })] };
  }
  const plan = r.plan as JsonPlan;
  const problems = orderProblems(plan);
  if (problems.length > 0) return { kind: "refused", diagnostics: [applyDiagnostic("QIAC-E202", `${file} is not a valid plan: ${problems.join("; ")}`)] };
  if (plan.errored) {
    return { kind: "refused", diagnostics: [applyDiagnostic("QIAC-E204", `${file} holds errors and cannot be applied`, { hint: "fix what `qubes-iac plan` reports and make a new plan" })] };
  }
  return { kind: "plan", plan };
}
