// The human view of an apply: one line per step as it starts and as it ends (with the elapsed
// time), a line when a call's outcome is unknown and what re-reading found, then the summary:
// `Apply complete: 2 added, 3 changed, 1 destroyed.`, or on failure the applied, failed (with the
// Qubes error class and message) and skipped steps. Returns text through `emit`; prints nothing.

import type { ApplyHooks, SkipReason, StepFailure } from "./engine.js";
import { countsText, type ApplySummary } from "./summary.js";

/** `0.4s`, `12.0s`, `2m05s`. */
export function formatElapsed(ms: number): string {
  if (ms < 60_000) return `${(Math.max(0, ms) / 1000).toFixed(1)}s`;
  const s = Math.round(ms / 1000);
  return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
}

/** One failed step, as a person reads it: the Qubes error class and message, and the call. */
export function describeStepFailure(f: StepFailure): string {
  const { failure, verification } = f;
  if (verification?.kind === "unknown") {
    return `outcome unknown, run plan again: ${failure.message}; re-reading could not tell whether ${failure.call} happened (${verification.detail})`;
  }
  if (verification?.kind === "not-done") return `${failure.message}; re-reading shows it did not happen (${verification.detail})`;
  return failure.code === "exception" ? `${failure.message} (${failure.call})` : failure.message;
}

export function describeSkip(r: SkipReason): string {
  switch (r.kind) {
    case "dependency":
      return `needs ${r.blockedBy.join(", ")}, which did not complete`;
    case "interrupted":
      return "apply was interrupted before it started";
    default: {
      const never: never = r;
      return never;
    }
  }
}

export type ApplyView = ApplyHooks & { summary(s: ApplySummary): void };

export function createHumanView(emit: (line: string) => void): ApplyView {
  return {
    onStepStart: (step) => emit(`${step.id}: started (${step.ops.length} call${step.ops.length === 1 ? "" : "s"})`),
    onOpUnknown: (step, _i, failure) => emit(`${step.id}: ${failure.message}; re-reading to see whether it happened`),
    onOpNote: (step, _i, note) => emit(`${step.id}: ${note}`),
    onOpResolved: (step, _i, v) => {
      switch (v.kind) {
        case "done":
          return emit(`${step.id}: it happened; going on`);
        case "not-done":
          return emit(`${step.id}: it did not happen: ${v.detail}`);
        case "unknown":
          return emit(`${step.id}: cannot tell whether it happened: ${v.detail}`);
        default: {
          const never: never = v;
          return never;
        }
      }
    },
    onStepDone: (step, ms) => emit(`${step.id}: done after ${formatElapsed(ms)}`),
    onStepFailed: (step, f, ms) => emit(`${step.id}: failed after ${formatElapsed(ms)}: ${describeStepFailure(f)}`),
    onStepSkipped: (step, r) => emit(`${step.id}: skipped: ${describeSkip(r)}`),
    summary: (s) => {
      if (s.ok) {
        emit(`\nApply complete: ${countsText(s)}.`);
        return;
      }
      const interrupted = s.skipped.some((x) => x.reason.kind === "interrupted");
      const lines = [`\nApply ${interrupted ? "interrupted" : "failed"}: ${countsText(s)}.`];
      if (s.applied.length > 0) lines.push("Applied:", ...s.applied.map((id) => `  ${id}`));
      if (s.failed.length > 0) lines.push("Failed:", ...s.failed.map((x) => `  ${x.step}: ${describeStepFailure(x.failure)}`));
      if (s.skipped.length > 0) lines.push("Skipped:", ...s.skipped.map((x) => `  ${x.step}: ${describeSkip(x.reason)}`));
      lines.push("Run `qubes-iac plan` to see what is left; running apply again finishes it.");
      emit(lines.join("\n"));
    },
  };
}
