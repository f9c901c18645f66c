// The machine view of an apply (`--json`): JSON lines, one event per line, each with `type` and
// `format_version` (APPLY_EVENTS_VERSION). Consumers must ignore event types and fields they do
// not know; a change that could mislead an existing consumer bumps the version. docs/apply.md
// lists the events. Returns lines through `emit`; prints nothing.

import type { JsonPlan } from "../plan/json.js";
import type { CallFailure, StepFailure, VolumeCopyOp } from "./engine.js";
import { leftStateJson } from "./left-state.js";
import type { PriorStateChange } from "./prior-state.js";
import type { ApplySummary } from "./summary.js";
import type { ApplyView } from "./view-human.js";

export const APPLY_EVENTS_VERSION = 1;

const error = (f: CallFailure): Record<string, string> => ({ code: f.code, ...(f.qubesClass !== undefined ? { class: f.qubesClass } : {}), message: f.message });

function failureFields(f: StepFailure): Record<string, unknown> {
  return {
    op_index: f.opIndex,
    call: f.failure.call,
    error: error(f.failure),
    ...(f.verification !== undefined ? { outcome: f.verification.kind, detail: f.verification.detail } : {}),
    ...(f.left !== undefined ? { left: leftStateJson(f.left) } : {}),
  };
}

export type JsonEventSink = (type: string, fields: Record<string, unknown>) => void;

export function jsonEventSink(emit: (line: string) => void): JsonEventSink {
  return (type, fields) => emit(JSON.stringify({ type, format_version: APPLY_EVENTS_VERSION, ...fields }));
}

export const planEvent = (sink: JsonEventSink, plan: JsonPlan, saved: boolean): void => sink("plan", { saved, plan });

export const priorStateEvent = (sink: JsonEventSink, changes: readonly PriorStateChange[]): void => sink("prior_state_changed", { changes });

/** A volume copy's fields: the qube, volume, source and size (bytes, decimal; null when the plan did not know it). */
const copyFields = (op: VolumeCopyOp) => ({ qube: op.vm, volume: op.volume, from: op.from, size: op.size ?? null });

export function createJsonView(sink: JsonEventSink): ApplyView {
  return {
    onStepStart: (step) => sink("step_start", { step: step.id, address: step.address, kind: step.kind, wave: step.wave, ops: step.ops.length }),
    onOpUnknown: (step, opIndex, f) => sink("op_unknown", { step: step.id, op_index: opIndex, call: f.call, error: error(f) }),
    onOpResolved: (step, opIndex, v) => sink("op_resolved", { step: step.id, op_index: opIndex, outcome: v.kind, ...(v.kind !== "done" ? { detail: v.detail } : {}) }),
    onOpNote: (step, opIndex, note) => sink("op_note", { step: step.id, op_index: opIndex, note }),
    onStepDone: (step, ms) => sink("step_done", { step: step.id, elapsed_ms: Math.round(ms) }),
    onStepFailed: (step, f, ms) => sink("step_failed", { step: step.id, elapsed_ms: Math.round(ms), ...failureFields(f) }),
    onVolumeCopyStart: (step, opIndex, op) => sink("volume_copy_start", { step: step.id, op_index: opIndex, ...copyFields(op) }),
    onVolumeCopyDone: (step, opIndex, op, ms) => sink("volume_copy_done", { step: step.id, op_index: opIndex, ...copyFields(op), elapsed_ms: Math.round(ms) }),
    onStepSkipped: (step, r) => sink("step_skipped", { step: step.id, reason: r.kind, blocked_by: r.kind === "dependency" ? r.blockedBy : [] }),
    summary: (s: ApplySummary) =>
      sink("apply_complete", {
        ok: s.ok,
        added: s.added,
        changed: s.changed,
        destroyed: s.destroyed,
        forgotten: s.forgotten,
        released: s.released,
        applied: s.applied,
        failed: s.failed.map((x) => ({ step: x.step, ...failureFields(x.failure) })),
        skipped: s.skipped.map((x) => ({ step: x.step, reason: x.reason.kind, blocked_by: x.reason.kind === "dependency" ? x.reason.blockedBy : [] })),
      }),
  };
}
