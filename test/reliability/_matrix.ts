// The fault matrix: an example's apply (the workstation example on the default fixture, the laptop
// example on the laptop fixture: a MatrixSpec), run in-process against the simulator, with
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
import { ANY_ARGUMENT, opCall } from "../../src/apply/admin-api.js";
import type { JsonPlan, JsonStep } from "../../src/plan/json.js";
import type { Op } from "../../src/plan/ops.js";
import type { FaultAction, FaultKind } from "../../src/providers/qubes/simulator/faults.js";
import type { SimFixture } from "../../src/providers/qubes/simulator/index.js";
import { loadDesired } from "../plan/_helpers.js";
import { isMutating } from "../helpers/sim.js";
import { lockNames, lockOps, lockStoreFromClient, newHolder, readLock } from "../../src/apply/lock.js";
import { createAdminClient, type AdminClient } from "../../src/providers/qubes/client.js";
import { createSocketTransport } from "../../src/providers/qubes/transport-socket.js";
import type { Transport } from "../../src/providers/qubes/transport.js";
import { applyIn, buildForeignState, cli, clientOf, events, snapshotForeign, startSim, type CliRun, type Ours, type Sim } from "./_harness.js";

/** An Admin API op (a plan step may also hold guest-agent ops, which are not Admin API calls). */
const isAdminOp = (o: { op: string }): o is Op => !o.op.startsWith("guest.");

/**
 * What a matrix runs: an example, its owner, the fixture its starting system is built on (with
 * buildForeignState's foreign things, on AppVMs of `foreignTemplate`), and the fewest mutating
 * calls its plan must have (so a plan that lost its steps cannot pass by having nothing to fault).
 */
export type MatrixSpec = {
  readonly example: string;
  readonly owner: string;
  readonly fixture: SimFixture;
  readonly foreignTemplate: string;
  readonly minCalls: number;
  /** The limit of one kind's runs (a guard against a hang, not a measure: they take a third of it alone). */
  readonly kindTimeoutMs: number;
};

export const WORKSTATION: MatrixSpec = { example: "examples/workstation.yaml", owner: "workstation", fixture: "default", foreignTemplate: "fedora-40", minCalls: 40, kindTimeoutMs: 120_000 };
export const LAPTOP: MatrixSpec = { example: "examples/laptop.yaml", owner: "laptop", fixture: "laptop", foreignTemplate: "fedora-41", minCalls: 60, kindTimeoutMs: 240_000 };

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

/**
 * How apply settles a clone call whose outcome it did not get, whatever the fault
 * (src/apply/verify.ts): a CloneFrom's answer is its token, lost with it (not done: the step
 * fails); a copied volume cannot be told from an empty one (unknown: the step fails). Either way
 * the intent record stays and the next plan copies again. Other calls are settled by re-reading.
 */
function unreadable(s: Setup, target: Setup["calls"][number]): "not-done" | "unknown" | undefined {
  const op = target.step.ops[target.opIndex]?.op;
  return op === "volume.clone-from" ? "not-done" : op === "volume.clone-to" ? "unknown" : undefined;
}

/**
 * A call whose effect qubesd makes by itself: the `guivm-X` / `audiovm-X` tags follow the qube's
 * guivm and audiovm (qubes-core-admin qubes/ext/gui.py, qubes/ext/audio.py: set on property-set
 * and on load), so the tag.Set that copies them from a clone's source is found done on re-reading
 * even when it was never made.
 */
const presetTag = /^(gui|audio)vm-/;
function madeByQubesd(target: Setup["calls"][number]): boolean {
  const op = target.step.ops[target.opIndex];
  return op?.op === "tag.set" && presetTag.test(op.name);
}

/** Waits until the faulted call has been made (a delay-before holds it for a while). */
async function landed(sim: Sim): Promise<void> {
  const end = Date.now() + 10_000;
  while (sim.faults.fired()[0]?.outcome === "not-run" && Date.now() < end) await new Promise((r) => setTimeout(r, 10));
}

export type Setup = {
  spec: MatrixSpec;
  template: string;
  plan: JsonPlan;
  /**
   * Every op of the plan as `method+arg → dest`, with its step; the order of a --parallelism 1 run.
   * `byCount`: the call cannot be told apart by method, argument and destination — its argument
   * is known only when it runs (ANY_ARGUMENT: a record of a qube this apply creates, named after
   * its UUID), or another step makes the same call (two `admin.vm.Create.AppVM+fedora-work` to
   * dom0: the name is in the payload) — so its fault is pinned by count: the `nth` of the plan's
   * calls of that method to that destination. `sequential`: those calls are in several steps, so
   * its apply runs with --parallelism 1 (plan order: the steps are in dependency order). `label`:
   * `key`, or `key #nth` when pinned by count.
   */
  calls: Array<{ key: string; label: string; method: string; arg: string; dest: string; byCount: boolean; nth: number; sequential: boolean; step: JsonStep; opIndex: number }>;
  before: Record<string, string>;
  ours: Ours;
  /** The qubes the config's `clone:` copies from: their CloneFrom only hands out a token. */
  cloneSources: ReadonlySet<string>;
  cleanup(): void;
};

export async function prepare(spec: MatrixSpec = WORKSTATION): Promise<Setup> {
  const { example, owner } = spec;
  const dir = mkdtempSync(join(tmpdir(), "qiac-matrix-"));
  const template = join(dir, "template.json");
  await buildForeignState(template, owner, { fixture: spec.fixture, template: spec.foreignTemplate });
  const desired = loadDesired(example);
  const ours = {
    qubes: new Set(desired.qubes.keys()),
    globals: new Set(desired.properties.keys()),
    labels: new Set(desired.labels.keys()),
    pools: new Set(desired.pools.keys()),
    ownerPrefix: `qubes-iac.${owner}.`,
  };
  const sim = await startSim({ template });
  try {
    const before = await snapshotForeign(sim, ours);
    const r = await cli(sim, ["plan", "--json", example]);
    expect(r.code).toBe(0);
    const plan = JSON.parse(r.stdout) as JsonPlan;
    const raw = plan.steps.flatMap((step) =>
      step.ops.flatMap((op, opIndex) => {
        if (!isAdminOp(op)) return [];
        const c = opCall(op);
        // A read of the plan (the UUID of a qube it creates) is retried, not faulted here.
        if (!isMutating(c.method)) return [];
        return [{ key: `${c.method}+${c.arg} → ${c.dest}`, method: c.method, arg: c.arg, dest: c.dest, step, opIndex }];
      }),
    );
    const calls = raw.map((c, i) => {
      const same = raw.filter((d) => d.method === c.method && d.dest === c.dest);
      const byCount = c.arg === ANY_ARGUMENT || raw.filter((d) => d.key === c.key).length > 1;
      const nth = raw.slice(0, i).filter((d) => d.method === c.method && d.dest === c.dest).length + 1;
      return { ...c, label: byCount ? `${c.key} #${nth}` : c.key, byCount, nth, sequential: byCount && same.some((d) => d.step.id !== c.step.id) };
    });
    // Pinning a fault by method, argument and destination (or by count) is exact only when no call repeats.
    expect(new Set(calls.map((c) => c.label)).size).toBe(calls.length);
    const cloneSources = new Set([...desired.qubes.values()].flatMap((q) => (q.clone === undefined ? [] : [q.clone])));
    return { spec, template, plan, calls, before, ours, cloneSources, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
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

/**
 * Mutating calls outside the config: another qube, or dom0 beyond the owner's records and the
 * config's globals. Two calls to others are the config's own: a CloneFrom on a `clone:` source,
 * which changes nothing there (qubes-core-admin qubes/api/admin.py vm_volume_clone_from only
 * hands out a token for the CloneTo), and an admin.vm.Create.* to dom0 (its name is in the
 * payload, which the call log does not keep: a qube created outside the config would show in
 * snapshotForeign, which lists every qube not in it).
 */
export function strays(sim: Sim, ours: Setup["ours"], owner: string, cloneSources: ReadonlySet<string> = new Set()): string[] {
  return sim.calls
    .filter((c) => isMutating(c.method))
    .filter((c) => {
      if (c.method === "admin.vm.volume.CloneFrom" && cloneSources.has(c.dest)) return false;
      if (c.dest === "dom0" && c.method.startsWith("admin.vm.Create.")) return false;
      if (c.dest !== "dom0") return !ours.qubes.has(c.dest);
      if (c.method.startsWith("admin.vm.feature.")) return !c.arg.startsWith(ours.ownerPrefix);
      if (c.method.startsWith("admin.property.")) return !ours.globals.has(c.arg);
      if (c.method.startsWith("admin.label.")) return !ours.labels.has(c.arg) && c.arg !== lockNames(owner).label && !c.arg.startsWith(`${lockNames(owner).label}.`);
      return true;
    })
    .map((c) => `${c.method}+${c.arg} → ${c.dest}`);
}

/** What an apply lock left behind: its label, its claim labels, its record. */
async function lockLeft(sim: Sim, owner: string): Promise<string[]> {
  const c = clientOf(sim);
  try {
    const n = lockNames(owner);
    return [...(await c.label.list()).filter((l) => l === n.label || l.startsWith(`${n.label}.`)), ...(await c.feature.list("dom0")).filter((f) => f === n.record)];
  } finally {
    await c.close();
  }
}

export type CaseOutcome = { code: number; applied: string[]; failed: string[]; skipped: string[] };

/**
 * The call a fault holds: only it gets the short timeout. `nth`: a call pinned by count is the
 * nth of its method to its destination (the others of that method wait behind it in qubesd's
 * write queue, and must not time out with it).
 */
export type HeldCall = { method: string; arg?: string; dest?: string; nth?: number };

/**
 * A client whose calls time out after the usual 10 s but for the held one (absent: every mutating
 * call), which times out after SHORT_TIMEOUT_MS: a loaded machine never times out another call by
 * accident (the simulator saves its state after each write, and the test files share two cores).
 */
export function shortWriteTimeoutClient(sim: Sim, held?: HeldCall): AdminClient {
  const socket = createSocketTransport(sim.socketPath, { timeoutMs: 10_000 });
  let seen = 0;
  const isHeld = (c: { method: string; arg?: string; dest: string }): boolean => {
    if (held === undefined) return isMutating(c.method);
    const matches = c.method === held.method && (held.arg === undefined || (c.arg ?? "") === held.arg) && (held.dest === undefined || c.dest === held.dest);
    return matches && (held.nth === undefined || ++seen === held.nth);
  };
  const transport: Transport = { ...socket, call: (c, o) => socket.call(c, isHeld(c) ? { timeoutMs: SHORT_TIMEOUT_MS } : o) };
  return createAdminClient(transport, { timeoutMs: 10_000, slowTimeoutMs: 10_000 });
}

/**
 * `apply --auto-approve --json` through the CLI's own entry; for the delay kinds, through apply's
 * command entry with a client whose write timeout the delay outlasts (the CLI's --timeout counts
 * whole seconds).
 */
const runFaultedApply = (sim: Sim, kind: MatrixKind, held: HeldCall, example: string, sequential = false): Promise<CliRun> =>
  shortTimeout(kind)
    ? applyIn(sim, [example], { autoApprove: true, json: true, ...(sequential ? { parallelism: "1" } : {}) }, { connect: async () => shortWriteTimeoutClient(sim, held), holder: () => HOLDER })
    : cli(sim, ["apply", "--auto-approve", "--json", ...(sequential ? ["--parallelism", "1"] : []), example]);

/** The lock's holder in the lock cases: its claim label's name is known in advance. */
const HOLDER = newHolder({ id: "abcabcabcabc", host: "mgmt", pid: 4242, now: new Date("2025-06-01T10:00:00.000Z"), version: "0.1.0" });

/** As runFaultedApply, always with HOLDER. */
const runLockFaultedApply = (sim: Sim, kind: MatrixKind, held: HeldCall, example: string): Promise<CliRun> =>
  applyIn(sim, [example], { autoApprove: true, json: true }, { holder: () => HOLDER, ...(shortTimeout(kind) ? { connect: async () => shortWriteTimeoutClient(sim, held) } : {}) });

const escapeRe = (t: string): string => t.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

/**
 * How apply names the call in its events: its key, or for a record of a qube it creates the
 * record's name with the UUID apply read (any UUID: the simulator makes them), never `*`.
 */
function callText(s: Setup, target: Setup["calls"][number]): unknown {
  if (target.arg !== ANY_ARGUMENT) return target.key;
  const op = target.step.ops[target.opIndex] as { record: string };
  return expect.stringMatching(new RegExp(`^${escapeRe(target.method)}\\+${escapeRe(s.ours.ownerPrefix)}[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}\\.${escapeRe(op.record)} → ${escapeRe(target.dest)}$`));
}

/** Runs one case; returns how re-reading resolved the faulted call ("none" when it was not re-read). */
export async function runCase(s: Setup, kind: MatrixKind, index: number): Promise<string> {
  const { example, owner } = s.spec;
  const target = s.calls[index] as Setup["calls"][number];
  const sim = await startSim({ template: s.template, faults: [] });
  const tag = { kind, call: target.label };
  // A call not told apart by its argument is pinned by count: the nth of its method to its destination.
  const { byCount } = target;
  const held: HeldCall = byCount ? { method: target.method, dest: target.dest, nth: target.nth } : { method: target.method, arg: target.arg, dest: target.dest };
  try {
    sim.faults.add({ method: target.method, ...(byCount ? {} : { arg: target.arg }), dest: target.dest, calls: byCount ? { from: target.nth, to: target.nth } : { from: 1, to: 1 }, action: ACTIONS[kind] });
    const first = await runFaultedApply(sim, kind, held, example, target.sequential);
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
    // After a timeout "not done" is only "not done yet": unknown (settle in src/apply/engine.ts).
    const unread = unreadable(s, target);
    const settled = unread === "not-done" && shortTimeout(kind) ? "unknown" : unread;
    const preset = kind !== "exception" && madeByQubesd(target);
    const completes = settled === undefined && (callRuns(kind) || preset || (callRunsLate(kind) && resolved[0] === "done"));
    const skipped = completes ? new Set<string>() : dependents(s.plan, failedStep);
    const expected: CaseOutcome = completes
      ? { code: 0, applied: all, failed: [], skipped: [] }
      : { code: 1, applied: all.filter((id) => id !== failedStep && !skipped.has(id)), failed: [failedStep], skipped: all.filter((id) => skipped.has(id)) };
    const got: CaseOutcome = { code: first.code, applied: summary.applied, failed: summary.failed.map((f) => f.step), skipped: summary.skipped.map((x) => x.step) };
    expect({ ...tag, ...got }).toEqual({ ...tag, ...expected });

    // How the faulted call was reported: an exception names its class; every other fault makes the
    // outcome unknown, settled by re-reading (done when the call ran, not done when it did not).
    // A create step that failed after its Create says how it left the new qube (src/apply/left-state.ts).
    const created = target.step.ops.findIndex((o) => o.op === "vm.create");
    const createdVm = created >= 0 && created < target.opIndex ? (target.step.ops[created] as { name: string }).name : undefined;
    const { left: leftQube, ...failure } = (summary.failed[0] ?? {}) as (typeof summary.failed)[number] & { left?: { qube: string; state: string } };
    if (!completes) expect({ ...tag, left: leftQube && { qube: leftQube.qube, known: ["left", "removed"].includes(leftQube.state) } }).toEqual({ ...tag, left: createdVm && { qube: createdVm, known: true } });
    const call = callText(s, target);
    switch (kind) {
      case "exception":
        expect({ ...tag, unknown, failure }).toEqual({
          ...tag,
          unknown: [],
          failure: { step: failedStep, op_index: target.opIndex, call, error: { code: "exception", class: "QubesException", message: "QubesException: injected by the fault matrix" } },
        });
        break;
      case "close-before":
        if (preset) expect({ ...tag, unknown, resolved }).toEqual({ ...tag, unknown: [call], resolved: ["done"] });
        else expect({ ...tag, unknown, resolved, outcome: failure.outcome, call: failure.call }).toEqual({ ...tag, unknown: [call], resolved: [settled ?? "not-done"], outcome: settled ?? "not-done", call });
        break;
      case "delay-before":
        // Never "it did not happen": the call was still waiting in qubesd when apply re-read.
        if (!completes) expect({ ...tag, unknown, resolved, outcome: failure.outcome }).toEqual({ ...tag, unknown: [call], resolved: [settled ?? "unknown"], outcome: settled ?? "unknown" });
        break;
      default:
        if (settled === undefined) expect({ ...tag, unknown, resolved }).toEqual({ ...tag, unknown: [call], resolved: ["done"] });
        else expect({ ...tag, unknown, resolved, outcome: failure.outcome, call: failure.call }).toEqual({ ...tag, unknown: [call], resolved: [settled], outcome: settled, call });
    }

    // The apply lock was given back (docs/locking.md), whatever happened to the step.
    expect({ ...tag, lock: await lockLeft(sim, owner) }).toEqual({ ...tag, lock: [] });

    // Each call was sent once: an unknown outcome is settled by reading, never by sending again.
    // (A call the plan makes n times, as two creates on one template, may be sent n times.)
    const sent = sim.calls.filter((c) => isMutating(c.method)).map((c) => `${c.method}+${c.arg} → ${c.dest}`);
    const planned = (k: string): number => Math.max(1, s.calls.filter((c) => c.key === k).length);
    expect({ ...tag, repeated: [...new Set(sent.filter((k) => sent.filter((x) => x === k).length > planned(k)))] }).toEqual({ ...tag, repeated: [] });

    // The summary was true: what is left is exactly what it did not apply; the rerun finishes it.
    const second = await cli(sim, ["apply", "--auto-approve", "--json", example]);
    const replan = events(second.stdout).find((e) => e.type === "plan") as { plan: JsonPlan } | undefined;
    // A late call that was its step's last op completed that step after apply reported it.
    const lastOp = target.opIndex === target.step.ops.length - 1;
    // A create step that failed after its Create and left the qube is finished by an update of it.
    const next = (id: string): string => (leftQube?.state === "left" && id === failedStep ? id.replace(/^create:/, "update:") : id);
    const left = [...expected.failed.filter(() => !(callRunsLate(kind) && lastOp)).map(next), ...expected.skipped].sort();
    expect({ ...tag, code: second.code, left: replan?.plan.steps.map((x) => x.id).sort() }).toEqual({ ...tag, code: 0, left });
    const after = await cli(sim, ["plan", example]);
    expect({ ...tag, plan: after.stdout }).toEqual({ ...tag, plan: "No changes.\n" });

    expect({ ...tag, strays: strays(sim, s.ours, owner, s.cloneSources) }).toEqual({ ...tag, strays: [] });
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
  const { example, owner } = s.spec;
  const ops = lockOps(owner, HOLDER);
  const op = [...ops.take, ...ops.release][LOCK_CALLS.indexOf(which)] as Op;
  const c = opCall(op);
  const sim = await startSim({ template: s.template, faults: [] });
  const tag = { kind, lock: which };
  try {
    sim.faults.add({ method: c.method, arg: c.arg, dest: c.dest, calls: { from: 1, to: 1 }, action: ACTIONS[kind] });
    const first = await runLockFaultedApply(sim, kind, c, example);
    // A late call lands after apply gave up on it: look at what is left once it has.
    if (callRunsLate(kind)) await landed(sim);
    const ev = events(first.stdout);
    const applied = (ev.find((e) => e.type === "apply_complete") as { applied?: string[] } | undefined)?.applied ?? [];
    const left = await lockLeft(sim, owner);
    const n = lockNames(owner);
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
      expect({ ...tag, lock: await readLock(lockStoreFromClient(reader), owner) }).toEqual({ ...tag, lock: { kind: "abandoned" } });
      await reader.close();
    }
    const again = await cli(sim, ["apply", "--auto-approve", ...(left.includes(claim) ? ["--break-lock", HOLDER.id] : []), example]);
    expect({ ...tag, code: again.code, stderr: again.stderr }).toEqual({ ...tag, code: 0, stderr: expect.not.stringContaining("another apply") });
    // An abandoned lock label holds nothing; it stays until an apply with changes takes it over.
    const abandoned = left.includes(n.label);
    const rest = (await lockLeft(sim, owner)).filter((l) => !(l === n.label && abandoned));
    expect({ ...tag, plan: (await cli(sim, ["plan", example])).stdout, lock: rest }).toEqual({ ...tag, plan: "No changes.\n", lock: [] });
    expect({ ...tag, strays: strays(sim, s.ours, owner, s.cloneSources) }).toEqual({ ...tag, strays: [] });
    const snapshot = await snapshotForeign(sim, abandoned ? { ...s.ours, labels: new Set([...s.ours.labels, n.label]) } : s.ours);
    expect({ ...tag, same: JSON.stringify(snapshot) === JSON.stringify(s.before) }).toEqual({ ...tag, same: true });
  } finally {
    await sim.stop();
  }
}

/** One test per fault kind, each running the kind at every mutating call of the plan, then at each of the lock's writes. */
export function describeMatrix(kinds: readonly MatrixKind[], spec: MatrixSpec = WORKSTATION): void {
  describe(`${spec.example} under faults at each of its mutating calls`, () => {
    let s: Setup;
    beforeAll(async () => {
      s = await prepare(spec);
    });
    afterAll(() => s.cleanup());
    for (const kind of kinds) {
      it(kind, async () => {
        expect(s.calls.length).toBeGreaterThan(spec.minCalls);
        const cases = [...s.calls.map((_, i) => () => runCase(s, kind, i)), ...LOCK_CALLS.map((which) => async () => (await runLockCase(s, kind, which), "lock"))];
        const atOnce = shortTimeout(kind) ? CONCURRENT_WAITS : 1;
        const resolutions: string[] = [];
        for (let i = 0; i < cases.length; i += atOnce) resolutions.push(...(await Promise.all(cases.slice(i, i + atOnce).map((run) => run()))));
        // The late calls really were still pending when re-read (else the case only shows a slow run).
        if (callRunsLate(kind)) expect(resolutions.filter((r) => r === "unknown").length).toBeGreaterThan(s.calls.length / 2);
      }, spec.kindTimeoutMs);
    }
  });
}
