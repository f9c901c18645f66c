// The apply engine: runs a plan's steps as recorded — never diffing again — in array order,
// each after the steps it depends on, at most `parallelism` at once, each step's ops one after
// the other. A step stops at its first failed op; what depends on it is skipped, running steps
// finish and independent steps go on, but no step starts a qube whose own step failed. A call
// whose outcome is unknown is settled by re-reading, never by repeating it. Pure: the op
// executor, the clock, the progress hooks and what re-reads a failed step's qube are injected.

import type { JsonStep } from "../plan/json.js";
import { opMethod, type Op, type StepOp } from "../plan/ops.js";
import type { LeftState } from "./left-state.js";

/** Why one Admin API call failed, as data. */
export type CallFailure = {
  /** The client's error code: `exception`, `refused`, `empty-reply`, `transport`, `timeout`, … */
  code: string;
  /** The Qubes exception class (`QubesVMNotHaltedError`, …) when qubesd answered with one. */
  qubesClass?: string;
  message: string;
  /** `method+arg → dest`. */
  call: string;
};

/**
 * - ok: the call succeeded;
 * - failed: it did not happen (qubesd refused it, or it was never sent);
 * - unknown: it may or may not have happened (the connection dropped after sending).
 */
export type OpOutcome = { kind: "ok"; note?: string } | { kind: "failed"; failure: CallFailure } | { kind: "unknown"; failure: CallFailure };

/** What re-reading the value an op changes tells about it. */
export type Verification = { kind: "done" } | { kind: "not-done"; detail: string } | { kind: "unknown"; detail: string };

/** Runs ops of kind `O`: Admin API calls (the default), or every op a step holds (Admin and guest). */
export type OpExecutor<O extends StepOp = Op> = {
  run(op: O): Promise<OpOutcome>;
  /** Re-reads what `op` changes and compares it with what the op wanted. */
  verify(op: O): Promise<Verification>;
};

export type StepFailure = {
  /** Index of the failed op in the step's ops. */
  opIndex: number;
  op: StepOp;
  failure: CallFailure;
  /** Present when the outcome was unknown: what re-reading found (not done, or still unknown). */
  verification?: Exclude<Verification, { kind: "done" }>;
  /** Of a step that failed after its `Create`: how the qube was left (left-state.ts). */
  left?: LeftState;
};

export type SkipReason =
  /** Steps it depends on that failed or were skipped. */
  | { kind: "dependency"; blockedBy: string[] }
  /** The user interrupted apply before the step started. */
  | { kind: "interrupted" };

export type StepResult =
  | { status: "applied"; step: JsonStep; elapsedMs: number }
  | { status: "failed"; step: JsonStep; elapsedMs: number; failure: StepFailure }
  | { status: "skipped"; step: JsonStep; reason: SkipReason };

/** Progress, as it happens. The human and JSON views implement these. */
export type ApplyHooks = {
  onStepStart(step: JsonStep): void;
  /** A call's outcome is unknown; re-reading follows. */
  onOpUnknown(step: JsonStep, opIndex: number, failure: CallFailure): void;
  onOpResolved(step: JsonStep, opIndex: number, verification: Verification): void;
  /** The op succeeded by a call beyond it that the user asked for (a kill after a shutdown timeout). */
  onOpNote(step: JsonStep, opIndex: number, note: string): void;
  onStepDone(step: JsonStep, elapsedMs: number): void;
  onStepFailed(step: JsonStep, failure: StepFailure, elapsedMs: number): void;
  onStepSkipped(step: JsonStep, reason: SkipReason): void;
  /** A clone's volume copy (admin.vm.volume.CloneTo) starts; its `size` is the source's, when the plan knew it. */
  onVolumeCopyStart?(step: JsonStep, opIndex: number, op: VolumeCopyOp): void;
  onVolumeCopyDone?(step: JsonStep, opIndex: number, op: VolumeCopyOp, elapsedMs: number): void;
};

export type VolumeCopyOp = Extract<Op, { op: "volume.clone-to" }>;

export type EngineOptions = {
  parallelism: number;
  executor: OpExecutor<StepOp>;
  /** Milliseconds from any fixed origin. */
  now: () => number;
  hooks: ApplyHooks;
  /** Once it settles, no further step starts; running steps finish. */
  interrupted?: Promise<unknown>;
  /** Re-reads what a failed step left (and may undo a half-made qube): left-state.ts. */
  settleFailure?: (step: JsonStep, failure: StepFailure) => Promise<LeftState | undefined>;
};

/** Every step's result, in the plan's step order. */
export type ApplyResult = { results: StepResult[]; ok: boolean };

/**
 * A call that got no answer in time, or whose connection failed, may still be waiting its turn
 * inside qubesd (or the guest agent), which does not stop a call when its caller goes away: "not
 * done" when re-read is then "not done yet", and the outcome stays unknown. An empty or garbled
 * reply came after the call was over, so re-reading settles it.
 */
function settle(failure: CallFailure, v: Verification): Verification {
  if (v.kind !== "not-done" || (failure.code !== "timeout" && failure.code !== "transport")) return v;
  return { kind: "unknown", detail: `not done when re-read (${v.detail}), but the call got no answer and may still be made` };
}

/** The qube a step is about, and the one it creates: when the step fails or is skipped, neither is started. */
function qubesOf(step: JsonStep): string[] {
  const out = step.address.startsWith("qube.") ? [step.address.slice("qube.".length)] : [];
  for (const o of step.ops) if (o.op === "vm.create") out.push(o.name);
  return out;
}

/** A start of a qube whose own step failed in this apply: refused without a call, whichever step holds it. */
function withheldStart(op: StepOp, failedQubes: ReadonlySet<string>): CallFailure | undefined {
  if ((op.op !== "vm.start" && op.op !== "vm.unpause") || !failedQubes.has(op.vm)) return undefined;
  return { code: "withheld", message: `not started: the step of qube ${op.vm} did not complete in this apply`, call: `${opMethod(op)}+ → ${op.vm}` };
}

async function runStep(step: JsonStep, o: EngineOptions, failedQubes: ReadonlySet<string>): Promise<StepResult> {
  const started = o.now();
  o.hooks.onStepStart(step);
  for (const [opIndex, op] of step.ops.entries()) {
    const withheld = withheldStart(op, failedQubes);
    const copy = op.op === "volume.clone-to" && withheld === undefined ? { op, started: o.now() } : undefined;
    if (copy !== undefined) o.hooks.onVolumeCopyStart?.(step, opIndex, copy.op);
    const outcome: OpOutcome = withheld !== undefined ? { kind: "failed", failure: withheld } : await o.executor.run(op);
    if (outcome.kind === "ok") {
      if (copy !== undefined) o.hooks.onVolumeCopyDone?.(step, opIndex, copy.op, o.now() - copy.started);
      if (outcome.note !== undefined) o.hooks.onOpNote(step, opIndex, outcome.note);
      continue;
    }
    let failure: StepFailure = { opIndex, op, failure: outcome.failure };
    if (outcome.kind === "unknown") {
      o.hooks.onOpUnknown(step, opIndex, outcome.failure);
      const verification = settle(outcome.failure, await o.executor.verify(op));
      o.hooks.onOpResolved(step, opIndex, verification);
      if (verification.kind === "done") continue;
      failure = { ...failure, verification };
    }
    const left = o.settleFailure === undefined ? undefined : await o.settleFailure(step, failure);
    if (left !== undefined) failure = { ...failure, left };
    const elapsedMs = o.now() - started;
    o.hooks.onStepFailed(step, failure, elapsedMs);
    return { status: "failed", step, elapsedMs, failure };
  }
  const elapsedMs = o.now() - started;
  o.hooks.onStepDone(step, elapsedMs);
  return { status: "applied", step, elapsedMs };
}

export async function applySteps(steps: readonly JsonStep[], o: EngineOptions): Promise<ApplyResult> {
  if (!Number.isInteger(o.parallelism) || o.parallelism < 1) throw new Error(`parallelism must be a positive integer, not ${o.parallelism}`);
  const results = new Map<string, StepResult>();
  const pending = [...steps];
  const running = new Map<string, Promise<void>>();
  let stopped = false;
  void o.interrupted?.then(() => {
    stopped = true;
  });

  const failedQubes = new Set<string>();
  const settle = (r: StepResult): void => {
    results.set(r.step.id, r);
    if (r.status !== "applied") for (const q of qubesOf(r.step)) failedQubes.add(q);
  };
  const skip = (step: JsonStep, reason: SkipReason): void => {
    o.hooks.onStepSkipped(step, reason);
    settle({ status: "skipped", step, reason });
  };

  for (;;) {
    // In plan order: skip what can no longer run, start what is ready while there is room.
    for (let i = 0; i < pending.length; ) {
      const step = pending[i] as JsonStep;
      const blockedBy = step.depends_on.filter((d) => {
        const r = results.get(d);
        return r !== undefined && r.status !== "applied";
      });
      if (blockedBy.length > 0) {
        pending.splice(i, 1);
        skip(step, { kind: "dependency", blockedBy });
        continue;
      }
      const ready = step.depends_on.every((d) => results.get(d)?.status === "applied");
      if (ready && !stopped && running.size < o.parallelism) {
        pending.splice(i, 1);
        running.set(
          step.id,
          runStep(step, o, failedQubes).then((r) => {
            settle(r);
            running.delete(step.id);
          }),
        );
        continue;
      }
      i++;
    }
    if (running.size === 0) break;
    // Wake on the first step to finish, or on an interruption.
    await Promise.race([...running.values(), ...(o.interrupted && !stopped ? [o.interrupted.then(() => undefined)] : [])]);
  }
  // Left over: the user stopped apply, or a dependency that is not in the plan (a bug of the plan).
  for (const step of pending) {
    if (stopped) skip(step, { kind: "interrupted" });
    else throw new Error(`internal: step ${step.id} depends on ${step.depends_on.filter((d) => !results.has(d)).join(", ")}, which the plan does not run before it`);
  }
  const ordered = steps.map((s) => results.get(s.id) as StepResult);
  return { results: ordered, ok: ordered.every((r) => r.status === "applied") };
}
