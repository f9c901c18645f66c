// Whether apply may go ahead: the rules, as one pure decision. A person approves on a terminal
// (`y`, or the whole word `yes` when the plan destroys data); without a terminal only
// --auto-approve does, and a plan that destroys data (deletes or replaces a qube, removes a pool)
// needs --allow-destroy as well, so that CI never destroys a qube's data by accident.

import { RECORD_PREFIX } from "../model/ownership.js";
import type { JsonPlan } from "../plan/json.js";
import { isGuestOp } from "../plan/ops.js";

export type ApprovalRequest = {
  autoApprove: boolean;
  allowDestroy: boolean;
  /** A person is there to answer (stdin is a terminal). */
  canAsk: boolean;
  /** Addresses whose data the plan destroys. */
  destroys: readonly string[];
};

export type ApprovalDecision =
  | { kind: "approved" }
  /** Ask `prompt`; `word` is the answer that approves (`y` also takes `yes`; `yes` takes only `yes`). */
  | { kind: "ask"; prompt: string; word: "y" | "yes" }
  | { kind: "refused"; message: string };

export function decideApproval(r: ApprovalRequest): ApprovalDecision {
  const destroying = r.destroys.length > 0;
  // Policy files removed with their deny or ask rules hold no data, but removing them may loosen isolation.
  const rules = r.destroys.filter((a) => a.startsWith("policy."));
  const data = r.destroys.filter((a) => !a.startsWith("policy."));
  const ruleNote = rules.length > 0 ? `the deny and ask rules of ${rules.join(", ")} (removing them may loosen isolation)` : "";
  const list = data.length > 0 ? [data.join(", "), ...(ruleNote ? [ruleNote] : [])].join(", and ") : ruleNote;
  if (r.autoApprove) {
    if (destroying && !r.allowDestroy) {
      return { kind: "refused", message: `the plan destroys ${list}${data.length > 0 ? " and all of its data" : ""}; --auto-approve alone never destroys data: add --allow-destroy` };
    }
    return { kind: "approved" };
  }
  if (!r.canAsk) {
    return {
      kind: "refused",
      message: `no terminal to ask for approval: run with --auto-approve${destroying ? ` --allow-destroy (the plan destroys ${list})` : ""}`,
    };
  }
  if (destroying) return { kind: "ask", prompt: `This plan destroys ${list}${data.length > 0 ? ", with all of its data" : ""}.\nApply these changes? Type yes to confirm: `, word: "yes" };
  return { kind: "ask", prompt: "Apply these changes? [y/N] ", word: "y" };
}

export function approves(word: "y" | "yes", answer: string): boolean {
  const a = answer.trim();
  return word === "yes" ? a === "yes" : /^(y|yes)$/i.test(a);
}

const OWNER_TAG_PREFIX = "managed-by-";

/**
 * The owners other than the plan's whose records or tag the plan's ops touch: a take-over.
 * Derived from the ops themselves (a saved plan is untrusted input), not from its options.
 */
export function takeOverOwners(plan: JsonPlan): string[] {
  const out = new Set<string>(plan.options.take_ownership ?? []);
  const ownerOf = (name: string): string | undefined => (name.startsWith(RECORD_PREFIX) ? name.slice(RECORD_PREFIX.length).split(".")[0] : undefined);
  for (const step of plan.steps) {
    for (const o of step.ops) {
      if (isGuestOp(o)) continue;
      let other: string | undefined;
      if (o.op === "feature.set" || o.op === "feature.remove") other = ownerOf(o.name);
      else if ((o.op === "tag.set" || o.op === "tag.remove") && o.name.startsWith(OWNER_TAG_PREFIX)) other = o.name.slice(OWNER_TAG_PREFIX.length);
      else if (o.op === "record.set" || o.op === "record.remove") other = o.owner;
      if (other !== undefined && other !== "" && other !== plan.owner) out.add(other);
    }
  }
  return [...out].sort();
}

/** Why apply refuses the plan's take-over: owners it touches that `--take-ownership` does not name. */
export function refusedTakeOver(plan: JsonPlan, allowed: readonly string[]): string | undefined {
  const missing = takeOverOwners(plan).filter((o) => !allowed.includes(o));
  if (missing.length === 0) return undefined;
  return `the plan takes over what owner${missing.length === 1 ? "" : "s"} ${missing.join(", ")} manage${missing.length === 1 ? "s" : ""} (their inventory entries, records or tag); apply only with ${missing.map((m) => `--take-ownership ${m}`).join(" ")}`;
}
