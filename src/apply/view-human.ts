// The human view of an apply: one line per step as it starts and as it ends (with the elapsed
// time), a line when a call's outcome is unknown and what re-reading found, then the summary:
// `Apply complete: 2 added, 3 changed, 1 destroyed.`, or on failure the applied, failed (with the
// Qubes error class and message) and skipped steps. Returns text through `emit`; prints nothing.

import type { ApplyHooks, SkipReason, StepFailure, VolumeCopyOp } from "./engine.js";
import { showSize } from "../plan/clone.js";
import { describeLeftState } from "./left-state.js";
import { countsText, type ApplySummary } from "./summary.js";
import { printable } from "../util/printable.js";

/** `0.4s`, `12.0s`, `2m05s`. */
export function formatElapsed(ms: number): string {
  if (ms < 60_000) return `${(Math.max(0, ms) / 1000).toFixed(1)}s`;
  const s = Math.round(ms / 1000);
  return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
}

/** One failed step, as a person reads it: the Qubes error class and message, and the call. */
export function describeStepFailure(f: StepFailure): string {
  const why = describeCallFailure(f);
  return f.left === undefined ? why : `${why}; ${printable(describeLeftState(f.left))}`;
}

function describeCallFailure(f: StepFailure): string {
  // The message and the detail quote qubesd, and the call a saved plan: one line each, escaped.
  const failure = { ...f.failure, message: printable(f.failure.message), call: printable(f.failure.call) };
  const verification = f.verification && { ...f.verification, detail: printable(f.verification.detail) };
  if (verification?.kind === "unknown") {
    return `outcome unknown, run plan again: ${failure.message}; re-reading could not tell whether ${failure.call} happened (${verification.detail})`;
  }
  if (verification?.kind === "not-done") return `${failure.message}; re-reading shows it did not happen (${verification.detail})`;
  return failure.code === "exception" ? `${failure.message} (${failure.call})` : failure.message;
}

export function describeSkip(r: SkipReason): string {
  switch (r.kind) {
    case "dependency":
      return `needs ${r.blockedBy.map(printable).join(", ")}, which did not complete`;
    case "interrupted":
      return "apply was interrupted before it started";
    default: {
      const never: never = r;
      return never;
    }
  }
}

export type ApplyView = ApplyHooks & { summary(s: ApplySummary): void };

const copySize = (op: VolumeCopyOp): string => (op.size !== undefined && /^[0-9]+$/.test(op.size) ? ` (${showSize(BigInt(op.size))})` : "");

/** Step ids come from the plan (a saved plan's file), messages and details from qubesd: each is escaped. */
export function createHumanView(emit: (line: string) => void): ApplyView {
  return {
    onStepStart: (step) => emit(`${printable(step.id)}: started (${step.ops.length} call${step.ops.length === 1 ? "" : "s"})`),
    onOpUnknown: (step, _i, failure) => emit(`${printable(step.id)}: ${printable(failure.message)}; re-reading to see whether it happened`),
    onOpNote: (step, _i, note) => emit(`${printable(step.id)}: ${printable(note)}`),
    onVolumeCopyStart: (step, _i, op) => emit(`${printable(step.id)}: copying ${printable(op.volume)} of ${printable(op.from)}${copySize(op)}`),
    onVolumeCopyDone: (step, _i, op, ms) => emit(`${printable(step.id)}: copied ${printable(op.volume)} of ${printable(op.from)}${copySize(op)} in ${formatElapsed(ms)}`),
    onOpResolved: (step, _i, v) => {
      switch (v.kind) {
        case "done":
          return emit(`${printable(step.id)}: it happened; going on`);
        case "not-done":
          return emit(`${printable(step.id)}: it did not happen: ${printable(v.detail)}`);
        case "unknown":
          return emit(`${printable(step.id)}: cannot tell whether it happened: ${printable(v.detail)}`);
        default: {
          const never: never = v;
          return never;
        }
      }
    },
    onStepDone: (step, ms) => emit(`${printable(step.id)}: done after ${formatElapsed(ms)}`),
    onStepFailed: (step, f, ms) => emit(`${printable(step.id)}: failed after ${formatElapsed(ms)}: ${describeStepFailure(f)}`),
    onStepSkipped: (step, r) => emit(`${printable(step.id)}: skipped: ${describeSkip(r)}`),
    summary: (s) => {
      if (s.ok) {
        emit(`\nApply complete: ${countsText(s)}.`);
        return;
      }
      const interrupted = s.skipped.some((x) => x.reason.kind === "interrupted");
      const lines = [`\nApply ${interrupted ? "interrupted" : "failed"}: ${countsText(s)}.`];
      if (s.applied.length > 0) lines.push("Applied:", ...s.applied.map((id) => `  ${printable(id)}`));
      if (s.failed.length > 0) lines.push("Failed:", ...s.failed.map((x) => `  ${printable(x.step)}: ${describeStepFailure(x.failure)}`));
      if (s.skipped.length > 0) lines.push("Skipped:", ...s.skipped.map((x) => `  ${printable(x.step)}: ${describeSkip(x.reason)}`));
      lines.push("Run `qubes-iac plan` to see what is left; running apply again finishes it.");
      emit(lines.join("\n"));
    },
  };
}
