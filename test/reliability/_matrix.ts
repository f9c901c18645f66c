// The fault matrix: the workstation example's apply, run in-process against the simulator, with
// one fault pinned to one of its mutating calls (`METHOD+ARG/DEST@1`, so parallel steps do not
// move it), for every mutating call of the plan and each of the apply lock's four writes, and
// every fault kind the simulator injects (RELIABILITY.md has the table). Each run checks that
//  - the exit code and the JSON summary say exactly what was applied, failed and skipped (the
//    faulted step fails or is settled by re-reading; exactly its dependents are skipped);
//  - what the summary calls applied really was: the next apply's plan holds exactly the failed
//    and skipped steps, and once it has run, `plan` says `No changes.`;
//  - no call was sent twice, no mutating call touched anything outside the config, and the
//    qubes, dom0 features, global properties, labels and pools outside the config are byte for
//    byte what they were (snapshotForeign); and the apply lock was given back.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { opCall } from "../../src/apply/admin-api.js";
import type { JsonPlan, JsonStep } from "../../src/plan/json.js";
import type { Op } from "../../src/plan/ops.js";
import type { FaultAction, FaultKind } from "../../src/providers/qubes/simulator/faults.js";
import { loadDesired } from "../plan/_helpers.js";
import { isMutating } from "../helpers/sim.js";
import { lockNames, lockOps, lockStoreFromClient, newHolder, readLock } from "../../src/apply/lock.js";
import { createAdminClient, type AdminClient } from "../../src/providers/qubes/client.js";
import { createSocketTransport } from "../../src/providers/qubes/transport-socket.js";
import type { Transport } from "../../src/providers/qubes/transport.js";
import { applyIn, buildForeignState, cli, clientOf, events, snapshotForeign, startSim, type CliRun, type Ours, type Sim } from "./_harness.js";

/** An Admin API op (a plan step may also hold guest-agent ops, which are not Admin API calls). */
const isAdminOp = (o: { op: string }): o is Op => !o.op.startsWith("guest.");

export const EXAMPLE = "examples/workstation.yaml";
export const OWNER = "workstation";

/** Client timeout of the runs with a delayed reply, and the delay (well past it). */
export const SHORT_TIMEOUT_MS = 300;
const DELAY_MS = 700;
/** Runs of the delay kinds at once: they mostly wait, on timers. */
const CONCURRENT_WAITS = 4;

export const ACTIONS: { readonly [K in FaultKind]: FaultAction } = {
  exception: { kind: "exception", qubesClass: "QubesException", message: "injected by the fault matrix" },
  "close-before": { kind: "close-before" },
  "close-after": { kind: "close-after" },
  garbage: { kind: "garbage" },
  truncate: { kind: "truncate" },
  delay: { kind: "delay", ms: DELAY_MS },
  "delay-before": { kind: "delay-before", ms: DELAY_MS },
};
export type MatrixKind = keyof typeof ACTIONS;

/** Whether the call runs under this fault (the change is made, only the reply is lost or bad). */
const callRuns = (k: MatrixKind): boolean => k !== "exception" && k !== "close-before" && k !== "delay-before";
/** The call is held inside qubesd past the client's timeout and made after apply re-read it. */
const callRunsLate = (k: MatrixKind): boolean => k === "delay-before";
const shortTimeout = (k: MatrixKind): boolean => k === "delay" || k === "delay-before";

/** Waits until the faulted call has been made (a delay-before holds it for a while). */
async function landed(sim: Sim): Promise<void> {
  const end = Date.now() + 10_000;
  while (sim.faults.fired()[0]?.outcome === "not-run" && Date.now() < end) await new Promise((r) => setTimeout(r, 10));
}

export type Setup = {
  template: string;
  plan: JsonPlan;
  /** Every op of the plan as `method+arg → dest`, with its step; the order of a --parallelism 1 run. */
  calls: Array<{ key: string; method: string; arg: string; dest: string; step: JsonStep; opIndex: number }>;
  before: Record<string, string>;
  ours: Ours;
  cleanup(): void;
};

export async function prepare(): Promise<Setup> {
  const dir = mkdtempSync(join(tmpdir(), "qiac-matrix-"));
  const template = join(dir, "template.json");
  await buildForeignState(template, OWNER);
  const desired = loadDesired(EXAMPLE);
  const ours = {
    qubes: new Set(desired.qubes.keys()),
    globals: new Set(desired.properties.keys()),
    labels: new Set(desired.labels.keys()),
    pools: new Set(desired.pools.keys()),
    ownerPrefix: `qubes-iac.${OWNER}.`,
  };
  const sim = await startSim({ template });
  try {
    const before = await snapshotForeign(sim, ours);
    const r = await cli(sim, ["plan", "--json", EXAMPLE]);
    expect(r.code).toBe(0);
    const plan = JSON.parse(r.stdout) as JsonPlan;
    const calls = plan.steps.flatMap((step) =>
      step.ops.flatMap((op, opIndex) => {
        if (!isAdminOp(op)) return [];
        const c = opCall(op);
        return [{ key: `${c.method}+${c.arg} → ${c.dest}`, method: c.method, arg: c.arg, dest: c.dest, step, opIndex }];
      }),
    );
    // Pinning a fault by method, argument and destination is exact only when no call repeats.
    expect(new Set(calls.map((c) => c.key)).size).toBe(calls.length);
    return { template, plan, calls, before, ours, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
  } finally {
    await sim.stop();
  }
}

/** The steps that depend on `id`, directly or through others: the engine skips exactly these. */
export function dependents(plan: JsonPlan, id: string): Set<string> {
  const out = new Set<string>();
  let grew = true;
  while (grew) {
    grew = false;
    for (const s of plan.steps) {
      if (out.has(s.id)) continue;
      if (s.depends_on.some((d) => d === id || out.has(d))) {
        out.add(s.id);
        grew = true;
      }
    }
  }
  return out;
}

/** Mutating calls outside the config: another qube, or dom0 beyond the owner's records and the config's globals. */
export function strays(sim: Sim, ours: Setup["ours"]): string[] {
  return sim.calls
    .filter((c) => isMutating(c.method))
    .filter((c) => {
      if (c.dest !== "dom0") return !ours.qubes.has(c.dest);
      if (c.method.startsWith("admin.vm.feature.")) return !c.arg.startsWith(ours.ownerPrefix);
      if (c.method.startsWith("admin.property.")) return !ours.globals.has(c.arg);
      if (c.method.startsWith("admin.label.")) return !ours.labels.has(c.arg) && c.arg !== lockNames(OWNER).label && !c.arg.startsWith(`${lockNames(OWNER).label}.`);
      return true;
    })
    .map((c) => `${c.method}+${c.arg} → ${c.dest}`);
}

/** What an apply lock left behind: its label, its claim labels, its record. */
async function lockLeft(sim: Sim): Promise<string[]> {
  const c = clientOf(sim);
  try {
    const n = lockNames(OWNER);
    return [...(await c.label.list()).filter((l) => l === n.label || l.startsWith(`${n.label}.`)), ...(await c.feature.list("dom0")).filter((f) => f === n.record)];
  } finally {
    await c.close();
  }
}

export type CaseOutcome = { code: number; applied: string[]; failed: string[]; skipped: string[] };

/** The call a fault holds: only it gets the short timeout. */
export type HeldCall = { method: string; arg?: string; dest?: string };

/**
 * A client whose calls time out after the usual 10 s but for the held one (absent: every mutating
 * call), which times out after SHORT_TIMEOUT_MS: a loaded machine never times out another call by
 * accident (the simulator saves its state after each write, and the test files share two cores).
 */
export function shortWriteTimeoutClient(sim: Sim, held?: HeldCall): AdminClient {
  const socket = createSocketTransport(sim.socketPath, { timeoutMs: 10_000 });
  const isHeld = (c: { method: string; arg?: string; dest: string }): boolean =>
    held === undefined ? isMutating(c.method) : c.method === held.method && (held.arg === undefined || (c.arg ?? "") === held.arg) && (held.dest === undefined || c.dest === held.dest);
  const transport: Transport = { ...socket, call: (c, o) => socket.call(c, isHeld(c) ? { timeoutMs: SHORT_TIMEOUT_MS } : o) };
  return createAdminClient(transport, { timeoutMs: 10_000, slowTimeoutMs: 10_000 });
}

/**
 * `apply --auto-approve --json` through the CLI's own entry; for the delay kinds, through apply's
 * command entry with a client whose write timeout the delay outlasts (the CLI's --timeout counts
 * whole seconds).
 */
const runFaultedApply = (sim: Sim, kind: MatrixKind, held: HeldCall): Promise<CliRun> =>
  shortTimeout(kind)
    ? applyIn(sim, [EXAMPLE], { autoApprove: true, json: true }, { connect: async () => shortWriteTimeoutClient(sim, held), holder: () => HOLDER })
    : cli(sim, ["apply", "--auto-approve", "--json", EXAMPLE]);

/** The lock's holder in the lock cases: its claim label's name is known in advance. */
const HOLDER = newHolder({ id: "abcabcabcabc", host: "mgmt", pid: 4242, now: new Date("2025-06-01T10:00:00.000Z"), version: "0.1.0" });

/** As runFaultedApply, always with HOLDER. */
const runLockFaultedApply = (sim: Sim, kind: MatrixKind, held: HeldCall): Promise<CliRun> =>
  applyIn(sim, [EXAMPLE], { autoApprove: true, json: true }, { holder: () => HOLDER, ...(shortTimeout(kind) ? { connect: async () => shortWriteTimeoutClient(sim, held) } : {}) });

/** Runs one case; returns how re-reading resolved the faulted call ("none" when it was not re-read). */
export async function runCase(s: Setup, kind: MatrixKind, index: number): Promise<string> {
  const target = s.calls[index] as Setup["calls"][number];
  const sim = await startSim({ template: s.template, faults: [] });
  const tag = { kind, call: target.key };
  try {
    sim.faults.add({ method: target.method, arg: target.arg, dest: target.dest, calls: { from: 1, to: 1 }, action: ACTIONS[kind] });
    const first = await runFaultedApply(sim, kind, target);
    if (callRunsLate(kind)) await landed(sim);
    const fired = sim.faults.fired();
    expect({ ...tag, fired: fired.map((f) => f.outcome) }).toEqual({ ...tag, fired: [callRuns(kind) || callRunsLate(kind) ? "ok" : "not-run"] });

    const ev = events(first.stdout);
    const summary = ev.find((e) => e.type === "apply_complete") as { applied: string[]; failed: Array<{ step: string; call: string; error: { code: string; class?: string }; outcome?: string }>; skipped: Array<{ step: string }> } | undefined;
    expect({ ...tag, summary: summary !== undefined }).toEqual({ ...tag, summary: true });
    if (summary === undefined) return "none";
    const unknown = ev.filter((e) => e.type === "op_unknown").map((e) => e.call);
    const resolved = ev.filter((e) => e.type === "op_resolved").map((e) => e.outcome);

    const all = s.plan.steps.map((x) => x.id);
    const failedStep = target.step.id;
    // A late call is reported unknown; only when apply re-read it after it landed (a very slow run) is it done.
    const completes = callRuns(kind) || (callRunsLate(kind) && resolved[0] === "done");
    const skipped = completes ? new Set<string>() : dependents(s.plan, failedStep);
    const expected: CaseOutcome = completes
      ? { code: 0, applied: all, failed: [], skipped: [] }
      : { code: 1, applied: all.filter((id) => id !== failedStep && !skipped.has(id)), failed: [failedStep], skipped: all.filter((id) => skipped.has(id)) };
    const got: CaseOutcome = { code: first.code, applied: summary.applied, failed: summary.failed.map((f) => f.step), skipped: summary.skipped.map((x) => x.step) };
    expect({ ...tag, ...got }).toEqual({ ...tag, ...expected });

    // How the faulted call was reported: an exception names its class; every other fault makes the
    // outcome unknown, settled by re-reading (done when the call ran, not done when it did not).
    switch (kind) {
      case "exception":
        expect({ ...tag, unknown, failure: summary.failed[0] }).toEqual({
          ...tag,
          unknown: [],
          failure: { step: failedStep, op_index: target.opIndex, call: target.key, error: { code: "exception", class: "QubesException", message: "QubesException: injected by the fault matrix" } },
        });
        break;
      case "close-before":
        expect({ ...tag, unknown, resolved, outcome: summary.failed[0]?.outcome, call: summary.failed[0]?.call }).toEqual({ ...tag, unknown: [target.key], resolved: ["not-done"], outcome: "not-done", call: target.key });
        break;
      case "delay-before":
        // Never "it did not happen": the call was still waiting in qubesd when apply re-read.
        if (!completes) expect({ ...tag, unknown, resolved, outcome: summary.failed[0]?.outcome }).toEqual({ ...tag, unknown: [target.key], resolved: ["unknown"], outcome: "unknown" });
        break;
      default:
        expect({ ...tag, unknown, resolved }).toEqual({ ...tag, unknown: [target.key], resolved: ["done"] });
    }

    // The apply lock was given back (docs/locking.md), whatever happened to the step.
    expect({ ...tag, lock: await lockLeft(sim) }).toEqual({ ...tag, lock: [] });

    // Each call was sent once: an unknown outcome is settled by reading, never by sending again.
    const sent = sim.calls.filter((c) => isMutating(c.method)).map((c) => `${c.method}+${c.arg} → ${c.dest}`);
    expect({ ...tag, repeated: sent.filter((k, i) => sent.indexOf(k) !== i) }).toEqual({ ...tag, repeated: [] });

    // The summary was true: what is left is exactly what it did not apply; the rerun finishes it.
    const second = await cli(sim, ["apply", "--auto-approve", "--json", EXAMPLE]);
    const replan = events(second.stdout).find((e) => e.type === "plan") as { plan: JsonPlan } | undefined;
    // A late call that was its step's last op completed that step after apply reported it.
    const lastOp = target.opIndex === target.step.ops.length - 1;
    const left = [...expected.failed.filter(() => !(callRunsLate(kind) && lastOp)), ...expected.skipped].sort();
    expect({ ...tag, code: second.code, left: replan?.plan.steps.map((x) => x.id).sort() }).toEqual({ ...tag, code: 0, left });
    const after = await cli(sim, ["plan", EXAMPLE]);
    expect({ ...tag, plan: after.stdout }).toEqual({ ...tag, plan: "No changes.\n" });

    expect({ ...tag, strays: strays(sim, s.ours) }).toEqual({ ...tag, strays: [] });
    const snapshot = await snapshotForeign(sim, s.ours);
    expect({ ...tag, same: JSON.stringify(snapshot) === JSON.stringify(s.before) }).toEqual({ ...tag, same: true });
    return String(resolved[0] ?? "none");
  } finally {
    await sim.stop();
  }
}

/** The four writes of the apply lock, in order: take (label, record), give back (record, label). */
export const LOCK_CALLS = ["claim", "label", "record", "record removal", "label removal", "claim removal"] as const;
type LockCall = (typeof LOCK_CALLS)[number];

/**
 * A fault at one of the lock's writes. Taking it: a claim or a label whose create got no answer is
 * settled by looking (the claim is this apply's alone; a label beside no other live claim is its
 * own), so the apply goes on unless qubesd refused the call; a record whose reply was lost is read
 * back, one not written is given back with the label and claim. Giving it back: a removal that
 * did not happen is made once more. A create made late, after the apply ended, leaves a label
 * that holds nothing: a lock label the next apply that changes something takes over, a claim
 * label that --break-lock with its id removes. Either way the next apply finishes the work.
 */
export async function runLockCase(s: Setup, kind: MatrixKind, which: LockCall): Promise<void> {
  const ops = lockOps(OWNER, HOLDER);
  const op = [...ops.take, ...ops.release][LOCK_CALLS.indexOf(which)] as Op;
  const c = opCall(op);
  const sim = await startSim({ template: s.template, faults: [] });
  const tag = { kind, lock: which };
  try {
    sim.faults.add({ method: c.method, arg: c.arg, dest: c.dest, calls: { from: 1, to: 1 }, action: ACTIONS[kind] });
    const first = await runLockFaultedApply(sim, kind, c);
    // A late call lands after apply gave up on it: look at what is left once it has.
    if (callRunsLate(kind)) await landed(sim);
    const ev = events(first.stdout);
    const applied = (ev.find((e) => e.type === "apply_complete") as { applied?: string[] } | undefined)?.applied ?? [];
    const left = await lockLeft(sim);
    const n = lockNames(OWNER);
    const claim = `${n.label}.${HOLDER.id}`;
    const steps = s.plan.steps.length;
    const late = callRunsLate(kind);
    const runs = callRuns(kind);
    const done = { code: 0, applied: steps };
    const refused = { code: 1, applied: 0 };
    // What a late create leaves depends on whether the apply had ended when it landed.
    const lateLeft = (what: string): string[] => (left.includes(what) ? [what] : []);
    const expected: { code: number; applied: number; left: string[] } = {
      claim: kind === "exception" ? { ...refused, left: [] } : { ...done, left: late ? lateLeft(claim) : [] },
      label: kind === "exception" ? { ...refused, left: [] } : { ...done, left: late ? lateLeft(n.label) : [] },
      // Given back when not written — or written late, leaving a record without its label (free).
      record: runs ? { ...done, left: [] } : { ...refused, left: late ? [n.record] : [] },
      "record removal": { ...done, left: [] },
      "label removal": { ...done, left: [] },
      "claim removal": { ...done, left: [] },
    }[which];
    expect({ ...tag, code: first.code, applied: applied.length, left }).toEqual({ ...tag, ...expected });
    if (expected.code === 1) expect({ ...tag, stderr: first.stderr }).toEqual({ ...tag, stderr: expect.stringContaining("; nothing was changed\n") });
    if (left.includes(n.label)) {
      const reader = clientOf(sim);
      expect({ ...tag, lock: await readLock(lockStoreFromClient(reader), OWNER) }).toEqual({ ...tag, lock: { kind: "abandoned" } });
      await reader.close();
    }
    const again = await cli(sim, ["apply", "--auto-approve", ...(left.includes(claim) ? ["--break-lock", HOLDER.id] : []), EXAMPLE]);
    expect({ ...tag, code: again.code, stderr: again.stderr }).toEqual({ ...tag, code: 0, stderr: expect.not.stringContaining("another apply") });
    // An abandoned lock label holds nothing; it stays until an apply with changes takes it over.
    const abandoned = left.includes(n.label);
    const rest = (await lockLeft(sim)).filter((l) => !(l === n.label && abandoned));
    expect({ ...tag, plan: (await cli(sim, ["plan", EXAMPLE])).stdout, lock: rest }).toEqual({ ...tag, plan: "No changes.\n", lock: [] });
    expect({ ...tag, strays: strays(sim, s.ours) }).toEqual({ ...tag, strays: [] });
    const snapshot = await snapshotForeign(sim, abandoned ? { ...s.ours, labels: new Set([...s.ours.labels, n.label]) } : s.ours);
    expect({ ...tag, same: JSON.stringify(snapshot) === JSON.stringify(s.before) }).toEqual({ ...tag, same: true });
  } finally {
    await sim.stop();
  }
}

/** One test per fault kind, each running the kind at every mutating call of the plan, then at each of the lock's writes. */
export function describeMatrix(kinds: readonly MatrixKind[]): void {
  describe(`${EXAMPLE} under faults at each of its mutating calls`, () => {
    let s: Setup;
    beforeAll(async () => {
      s = await prepare();
    });
    afterAll(() => s.cleanup());
    for (const kind of kinds) {
      it(kind, async () => {
        expect(s.calls.length).toBeGreaterThan(40);
        const cases = [...s.calls.map((_, i) => () => runCase(s, kind, i)), ...LOCK_CALLS.map((which) => async () => (await runLockCase(s, kind, which), "lock"))];
        const atOnce = shortTimeout(kind) ? CONCURRENT_WAITS : 1;
        const resolutions: string[] = [];
        for (let i = 0; i < cases.length; i += atOnce) resolutions.push(...(await Promise.all(cases.slice(i, i + atOnce).map((run) => run()))));
        // The late calls really were still pending when re-read (else the case only shows a slow run).
        if (callRunsLate(kind)) expect(resolutions.filter((r) => r === "unknown").length).toBeGreaterThan(s.calls.length / 2);
      }, 120_000);
    }
  });
}
