// `qubes-iac apply [CONFIG… | PLANFILE]`: computes the plan of a config (as `plan` does) or
// loads a saved plan (recognised by its content), prints it, gets approval, takes the owner's
// apply lock (docs/locking.md; refused at once when another apply holds it), re-checks the values
// the plan relies on, then runs its steps through the engine with the human or --json view and
// gives the lock back. Exit 0 when every step was applied (or there was nothing to do), 1 otherwise.
// Interrupted before the first step: ends (130/143), nothing changed, at once while it reads; once
// the steps run, a first interrupt starts no new step, a second stops after the calls in flight.

import { readFileSync, statSync } from "node:fs";
import { hostname } from "node:os";
import { resolve } from "node:path";
import type { Readable } from "node:stream";
import { executorFromClient, readerFromClient } from "../../apply/admin-api.js";
import { approves, decideApproval, refusedTakeOver } from "../../apply/approval.js";
import { applyDiagnostic } from "../../apply/codes.js";
import { applySteps, type ApplyHooks, type OpExecutor } from "../../apply/engine.js";
import { destroyedByOps, enforcementDiagnostics, ownershipProblems, planProblems, type ObservedOwnership } from "../../apply/enforce.js";
import { settleFailedCreate } from "../../apply/left-state.js";
import { checkGuestPriorState, guestOpExecutor, withGuestOps } from "../../apply/guest-agent.js";
import { checkPolicyPriorState, policyClientOf, policyExecutor } from "../../apply/policy-files.js";
import { acquireLock, breakLock, describeHolder, heldMessage, lockStoreFromClient, newHolder, readLock, releaseLock, type Acquired, type LockHolder, type LockStore } from "../../apply/lock.js";
import { checkPriorState, createStateCache, type PriorStateChange, type StateCache } from "../../apply/prior-state.js";
import { releaseMismatch } from "../../model/release.js";
import { readSavedPlan } from "../../apply/saved-plan.js";
import { summarizeApply } from "../../apply/summary.js";
import { createHumanView } from "../../apply/view-human.js";
import { createJsonView, jsonEventSink, planEvent, priorStateEvent } from "../../apply/view-json.js";
import type { DesiredState } from "../../model/desired.js";
import type { Diagnostic } from "../../model/diagnostics.js";
import type { JsonPlan, JsonStep } from "../../plan/json.js";
import { stepOpMethod, type StepOp } from "../../plan/ops.js";
import type { AdminClient } from "../../providers/qubes/client.js";
import { connectClient, parsePositiveInt, type ConnectionOptions } from "../connection.js";
import { CliError, interruptFlag, signalExitCode, tell, write, type CliIO } from "../io.js";
import { computePlan, loadConfigOrReport, parseOwners, printHumanPlan, type PlanScope } from "./plan.js";
import { parseAddress } from "../../model/address.js";
import { renderDiagnostics } from "./validate.js";
import { packageVersion } from "../version.js";
import { printable } from "../../util/printable.js";

export type ApplyCommandOptions = ConnectionOptions &
  PlanScope & {
    json?: boolean;
    autoApprove?: boolean;
    allowDestroy?: boolean;
    /** commander's --no-color sets this to false. */
    color?: boolean;
    /** The id of a lock left by a killed apply, to remove first (docs/locking.md). */
    breakLock?: string;
    /** Kill a qube whose Shutdown+wait ran out of its shutdown_timeout (never before it). */
    killAfterTimeout?: boolean;
  };

/** What the command takes from the outside world beyond CliIO (tests pass a fixed clock). */
export type ApplyDeps = {
  now: () => number;
  /** Opens the Admin API client (tests: one with millisecond timeouts). */
  connect?: (io: CliIO, o: ConnectionOptions) => Promise<AdminClient>;
  /** Who this apply is, in the lock's record (tests: a fixed host, pid, time and id). */
  holder?: () => LockHolder;
  /** Wall-clock milliseconds, for the age of a lock held by someone else. */
  wallClock?: () => number;
};

const realDeps: ApplyDeps = { now: () => performance.now() };
const thisProcess = (): LockHolder => newHolder({ host: hostname(), pid: process.pid, now: new Date(), version: packageVersion() });

/** The saved plan among the arguments, recognised by content; a saved plan is applied alone. */
export function findSavedPlan(io: CliIO, args: readonly string[]): { file: string; text: string } | undefined {
  const plans: Array<{ file: string; text: string }> = [];
  for (const file of args) {
    const path = resolve(io.cwd, file);
    let isFile = false;
    try {
      isFile = statSync(path).isFile();
    } catch {
      continue;
    }
    if (!isFile) continue;
    const text = readFileSync(path, "utf8");
    if (readSavedPlan(text, file).kind !== "not-a-plan") plans.push({ file, text });
  }
  if (plans.length === 0) return undefined;
  if (args.length > 1) throw new CliError(`${plans.map((p) => p.file).join(", ")} ${plans.length === 1 ? "is a saved plan" : "are saved plans"}: a saved plan is applied alone, without config files`);
  return plans[0];
}

/** Refuses a plan whose ops do not belong to their steps' resource changes; true when refused. */
function refuseMisplacedOps(io: CliIO, plan: JsonPlan): boolean {
  const problems = planProblems(plan);
  if (problems.length === 0) return false;
  write(io.stderr, `${renderDiagnostics(enforcementDiagnostics(problems), new Map())}\n`);
  write(io.stderr, `qubes-iac: the plan's ops do not match its changes (${problems.length} above); nothing was changed`);
  return true;
}

/** The ownership guard's view of the current state, through apply's read cache. */
function observedFrom(cache: StateCache): ObservedOwnership {
  return {
    listed: async (name) => (await cache.listing("")).has(name),
    dom0FeatureNames: () => cache.featureNames("dom0"),
    tags: (vm) => cache.tags(vm),
    featureNames: (vm) => cache.featureNames(vm),
    uuid: async (vm) => (await cache.properties(vm)).get("uuid")?.raw || undefined,
    labels: () => cache.labels(""),
    pools: () => cache.pools(""),
  };
}

/** One line from a person, or undefined when stdin ends or the user interrupts. */
function readAnswer(stdin: Readable, interrupted: Promise<string>): Promise<string | undefined> {
  return new Promise((resolveAnswer) => {
    let buffered = "";
    let settled = false;
    const finish = (answer: string | undefined): void => {
      if (settled) return;
      settled = true;
      stdin.off("data", onData);
      stdin.off("end", onEnd);
      stdin.pause();
      resolveAnswer(answer);
    };
    const onData = (chunk: Buffer | string): void => {
      buffered += chunk.toString();
      const nl = buffered.indexOf("\n");
      if (nl >= 0) finish(buffered.slice(0, nl));
    };
    const onEnd = (): void => finish(buffered === "" ? undefined : buffered);
    stdin.on("data", onData);
    stdin.on("end", onEnd);
    void interrupted.then(() => finish(undefined));
  });
}

type Source = { kind: "saved"; file: string; plan: JsonPlan } | { kind: "config"; config: DesiredState; diagnostics: Diagnostic[]; sources: ReadonlyMap<string, string> };

/** The saved plan or the loaded config, before any connection; an exit code when neither is usable. */
function loadSource(io: CliIO, args: string[], saved: { file: string; text: string } | undefined, json: boolean): Source | number {
  if (saved !== undefined) {
    const r = readSavedPlan(saved.text, saved.file);
    if (r.kind === "plan") return { kind: "saved", file: saved.file, plan: r.plan };
    if (r.kind === "refused") write(io.stderr, `${renderDiagnostics(r.diagnostics, new Map())}\n`);
    return 1;
  }
  const loaded = loadConfigOrReport(io, args, json);
  if (!loaded) return 1;
  return { kind: "config", config: loaded.config, diagnostics: loaded.diagnostics, sources: loaded.sources };
}

function reportPriorStateChanges(io: CliIO, changes: readonly PriorStateChange[], json: boolean): void {
  if (json) priorStateEvent(jsonEventSink((l) => write(io.stdout, l)), changes);
  const diagnostics = changes.map((c) =>
    applyDiagnostic("QIAC-E201", `changed since the plan was made: ${c.expected} → ${c.actual}`, { address: c.address }),
  );
  write(io.stderr, `${renderDiagnostics(diagnostics, new Map())}\n`);
}

/**
 * Before anything is planned: refuses when another apply holds the lock, or breaks the lock that
 * `--break-lock ID` names, saying whose it was and how old.
 */
async function checkLock(io: CliIO, store: LockStore, owner: string, breakId: string | undefined, nowMs: number): Promise<void> {
  if (breakId === undefined) {
    const state = await readLock(store, owner);
    if (state.kind === "held") throw new CliError(heldMessage(owner, state, nowMs, "qubes-iac apply"));
    if (state.kind === "abandoned") write(io.stderr, `qubes-iac: the lock label of owner ${owner} is there, but no apply holds or claims it (a create that was made after its apply ended): this apply takes it over`);
    return;
  }
  const r = await breakLock(store, owner, breakId);
  switch (r.kind) {
    case "broken":
      return tell(io.stderr, `qubes-iac: broke the lock of owner ${owner}, held by ${describeHolder(r.was, nowMs)}`);
    case "free":
      if (r.removedClaim !== undefined) return tell(io.stderr, `qubes-iac: --break-lock ${breakId}: the lock of owner ${owner} is not held; removed the claim label ${r.removedClaim} its apply left`);
      return tell(io.stderr, `qubes-iac: --break-lock ${breakId}: the lock of owner ${owner} is not held; nothing to break`);
    case "mismatch":
      throw new CliError(`--break-lock ${breakId} does not name the lock of owner ${owner}, which nothing was done to: ${heldMessage(owner, r.state, nowMs, "qubes-iac apply")}`);
    case "failed":
      throw new CliError(r.message);
    default: {
      const never: never = r;
      throw new Error(`unhandled break result ${String(never)}`);
    }
  }
}

/** Takes the lock, or says why this apply cannot. */
async function takeLock(store: LockStore, owner: string, holder: LockHolder, nowMs: number): Promise<Acquired> {
  const r = await acquireLock(store, owner, holder);
  switch (r.kind) {
    case "acquired":
      return r.lock;
    case "held":
      throw new CliError(`${heldMessage(owner, r, nowMs, "qubes-iac apply")}; nothing was changed`);
    case "failed":
    case "unknown":
      throw new CliError(`${r.message}; nothing was changed`);
    default: {
      const never: never = r;
      throw new Error(`unhandled lock result ${String(never)}`);
    }
  }
}

/** Runs `work` holding the lock and always gives it back; a lock not given back makes the exit code 1. */
async function underLock(io: CliIO, store: LockStore, lock: Acquired, nowMs: () => number, work: () => Promise<number>): Promise<number> {
  let code = 1;
  try {
    code = await work();
  } finally {
    const r = await releaseLock(store, lock);
    if (r.kind === "failed") {
      tell(io.stderr, `qubes-iac: ${r.message}`);
      code = 1;
    } else if (r.kind === "lost") {
      const now = r.now.kind === "held" ? `held now by ${describeHolder(r.now, nowMs())}` : "not held now";
      tell(io.stderr, `qubes-iac: the lock of owner ${lock.owner} was broken while this apply ran (it is ${now}); it was left as it is`);
      code = 1;
    }
  }
  return code;
}

/** Before the lock is taken an interrupt ends apply at once: nothing was changed. */
async function unlessInterrupted<T>(io: CliIO, work: Promise<T>): Promise<T> {
  const stop = io.interrupted.then((signal): never => {
    throw new CliError(`interrupted (${signal}); nothing was changed`, signalExitCode(signal));
  });
  return Promise.race([work, stop]);
}

const plural = (n: number, one: string, many = `${one}s`): string => `${n} ${n === 1 ? one : many}`;

/**
 * The steps under way, for what apply says when interrupted: the first interrupt stops new steps
 * (the engine) and names what is still running and what will not start; the second makes every
 * running step stop before its next call (the executor answers "not made"), naming what is left
 * unfinished once the calls in flight end.
 */
function interruptible(io: CliIO, steps: readonly JsonStep[], hooks: ApplyHooks, inner: OpExecutor<StepOp>): { hooks: ApplyHooks; executor: OpExecutor<StepOp> } {
  const running = new Map<string, { step: JsonStep; done: number }>();
  let started = 0;
  let inFlight = 0;
  let halted = false;
  void io.interrupted.then(() => {
    write(io.stderr, `interrupt: finishing ${plural(running.size, "running step")}, ${steps.length - started} not started; interrupt again to stop after the calls in flight`);
  });
  void io.interruptedAgain?.then(() => {
    halted = true;
    const left = [...running.values()].map((r) => `${r.step.id} (${r.done} of ${plural(r.step.ops.length, "call")} made)`);
    write(io.stderr, `interrupt: stopping after ${plural(inFlight, "call")} in flight${left.length > 0 ? `; left unfinished: ${left.join(", ")}` : ""}`);
  });
  const stepOf = new Map<StepOp, JsonStep>(steps.flatMap((st) => st.ops.map((op) => [op, st] as const)));
  const end = (step: JsonStep): void => {
    running.delete(step.id);
  };
  return {
    hooks: {
      onStepStart: (step) => {
        started++;
        running.set(step.id, { step, done: 0 });
        hooks.onStepStart(step);
      },
      onOpUnknown: (step, i, f) => hooks.onOpUnknown(step, i, f),
      onOpNote: (step, i, note) => hooks.onOpNote(step, i, note),
      onOpResolved: (step, i, v) => hooks.onOpResolved(step, i, v),
      onStepDone: (step, ms) => {
        end(step);
        hooks.onStepDone(step, ms);
      },
      onStepFailed: (step, f, ms) => {
        end(step);
        hooks.onStepFailed(step, f, ms);
      },
      onStepSkipped: (step, r) => hooks.onStepSkipped(step, r),
    },
    executor: {
      run: async (op) => {
        const step = stepOf.get(op);
        if (halted) {
          return { kind: "failed", failure: { code: "interrupted", message: "not made: apply was interrupted a second time", call: `${stepOpMethod(op)} (${step?.id ?? "?"})` } };
        }
        inFlight++;
        try {
          return await inner.run(op);
        } finally {
          inFlight--;
          const r = step === undefined ? undefined : running.get(step.id);
          if (r !== undefined) r.done++;
        }
      },
      verify: (op) => inner.verify(op),
    },
  };
}

export async function applyCommand(io: CliIO, args: string[], o: ApplyCommandOptions, deps: ApplyDeps = realDeps): Promise<number> {
  const parallelism = parsePositiveInt(o.parallelism, "--parallelism", 8);
  if (o.json && !o.autoApprove) throw new CliError("--json needs --auto-approve: nobody can answer a question between JSON lines");
  const takeOwnership = parseOwners(o.takeOwnership);
  const saved = findSavedPlan(io, args);
  if (saved !== undefined && (o.release?.length ?? 0) > 0) throw new CliError(`${saved.file} is a saved plan: \`qubes-iac release\` plans from a config`);
  if (saved !== undefined && (o.allowRestart || (o.target?.length ?? 0) > 0 || (o.exclude?.length ?? 0) > 0)) {
    throw new CliError(`--allow-restart, --target and --exclude are fixed when a plan is saved; ${saved.file} is applied as it is`);
  }
  const emit = (line: string): void => write(io.stdout, line);
  const sink = jsonEventSink(emit);

  const source = loadSource(io, args, saved, o.json === true);
  if (typeof source === "number") return source;
  // A saved plan is untrusted input: its structure is checked before anything is connected to.
  if (source.kind === "saved" && refuseMisplacedOps(io, source.plan)) return 1;

  const stopped = interruptFlag(io);
  const client = await (deps.connect ?? connectClient)(io, o);
  const wallClock = deps.wallClock ?? Date.now;
  try {
    const owner = source.kind === "saved" ? source.plan.owner : source.config.owner;
    const store = lockStoreFromClient(client);
    await checkLock(io, store, owner, o.breakLock, wallClock());
    const plan = source.kind === "saved" ? source.plan : await unlessInterrupted(io, computePlan(client, source.config, source.diagnostics, { ...o, parallelism }));
    const savedFile = source.kind === "saved" ? source.file : undefined;
    if (o.json) planEvent(sink, plan, savedFile !== undefined);
    else {
      if (savedFile !== undefined) write(io.stdout, `${printable(`Saved plan ${savedFile}, made by qubes-iac ${plan.qubes_iac_version} for ${plan.owner}:`)}\n`);
      printHumanPlan(io, plan, source.kind === "config" ? source.sources : new Map(), o);
    }
    if (plan.errored) {
      write(io.stderr, "qubes-iac: the plan holds errors; nothing was changed");
      return 1;
    }
    if (source.kind === "config" && refuseMisplacedOps(io, plan)) return 1;
    // A take-over is enforced again here, from the ops: a saved plan may claim anything.
    const takeOver = refusedTakeOver(plan, takeOwnership);
    if (takeOver !== undefined) {
      write(io.stderr, `${renderDiagnostics([applyDiagnostic("QIAC-E206", takeOver)], new Map())}\n`);
      throw new CliError("nothing was changed");
    }
    for (const name of o.release ?? []) {
      if (!plan.resource_changes.some((c) => c.address === `qube.${name}` && c.action === "release")) {
        throw new CliError(`qube ${name} is not managed by owner ${plan.owner}: there is nothing to release; nothing was changed`);
      }
    }
    const view = o.json ? createJsonView(sink) : createHumanView(emit);
    if (plan.steps.length === 0) {
      if (o.json) view.summary(summarizeApply({ results: [], ok: true }));
      return 0;
    }

    const decision = decideApproval({
      autoApprove: o.autoApprove === true,
      allowDestroy: o.allowDestroy === true,
      canAsk: io.stdin.isTTY === true,
      // From the ops themselves, never from a field of the plan that says so.
      destroys: destroyedByOps(plan),
    });
    let asked = false;
    switch (decision.kind) {
      case "refused":
        throw new CliError(decision.message);
      case "ask": {
        io.stdout.write(`\n${decision.prompt}`);
        const answer = await readAnswer(io.stdin, io.interrupted);
        if (answer === undefined || !approves(decision.word, answer)) {
          // A terminal echoes the answer's newline; end the prompt's line when there was none.
          if (answer === undefined) io.stdout.write("\n");
          throw new CliError(`apply cancelled${decision.word === "yes" ? " (only 'yes' approves a plan that destroys data)" : ""}; nothing was changed`);
        }
        asked = true;
        break;
      }
      case "approved":
        break;
      default: {
        const never: never = decision;
        throw new Error(`unhandled approval ${String(never)}`);
      }
    }

    // What the plan relies on must still hold: checked once the lock is taken (the plan was read
    // without it: another apply may have run meanwhile), and first without writing anything when
    // time has passed since the plan was made (a saved plan, or a person was asked).
    const recheck = async (cache: StateCache = createStateCache(readerFromClient(client), { parallelism })): Promise<void> => {
      // What the plan decided by release (maxmem, properties) holds only on that release.
      const mismatch = plan.qubes_release === undefined ? undefined : releaseMismatch(plan.qubes_release.candidates, await client.release());
      if (mismatch !== undefined) throw new CliError(`${mismatch}; nothing was changed. Run \`qubes-iac plan\` again`);
      // Each policy file the plan writes is still as planning read it: a hand edit since keeps, and nothing runs.
      const policyProblems = await checkPolicyPriorState(plan, policyClientOf(client.transport));
      if (policyProblems.length > 0) {
        write(io.stderr, `${renderDiagnostics(policyProblems, new Map())}\n`);
        throw new CliError(`${policyProblems.length === 1 ? "a policy file" : `${policyProblems.length} policy files`} changed or cannot be written as planned (above); nothing was changed. Run \`qubes-iac plan\` again`);
      }
      const changes = [...(await checkPriorState(readerFromClient(client), plan.prior_state, { parallelism, cache })), ...(await checkGuestPriorState(plan))];
      if (changes.length > 0) {
        reportPriorStateChanges(io, changes, o.json === true);
        throw new CliError(`the system changed since the plan was made (${changes.length} value${changes.length === 1 ? "" : "s"} above); nothing was changed. Run \`qubes-iac plan\` again`);
      }
    };
    if (savedFile !== undefined || asked) await unlessInterrupted(io, recheck());
    const signal = stopped();
    if (signal !== undefined) throw new CliError(`interrupted (${signal}); nothing was changed`, signalExitCode(signal));

    const lock = await takeLock(store, owner, (deps.holder ?? thisProcess)(), wallClock());
    return await underLock(io, store, lock, wallClock, async () => {
      // Under the lock, from what is read now (with the re-check's reads): every op acts on what
      // the plan's owner owns, creates or adopts, and on nothing of another owner's.
      const cache = createStateCache(readerFromClient(client), { parallelism });
      const problems = await ownershipProblems(plan, observedFrom(cache), { takeOwnership: new Set(takeOwnership), savedPlan: savedFile !== undefined });
      if (problems.length > 0) {
        write(io.stderr, `${renderDiagnostics(enforcementDiagnostics(problems), new Map())}\n`);
        throw new CliError(`the plan acts on what ${plan.owner} does not own (${problems.length} op${problems.length === 1 ? "" : "s"} above); nothing was changed`);
      }
      await recheck(cache);
      // Interrupted while the lock was being taken: no step has started; the lock is given back.
      const before = stopped();
      if (before !== undefined) {
        write(io.stderr, `qubes-iac: interrupted (${before}) before any step; nothing was changed`);
        return signalExitCode(before);
      }

      if (o.json) sink("apply_start", { owner: plan.owner, steps: plan.steps.length, parallelism, saved: savedFile !== undefined });
      else io.stdout.write("\n");
      const admin = executorFromClient(client, { killAfterTimeout: o.killAfterTimeout === true });
      const reader = readerFromClient(client);
      const policyClient = policyClientOf(client.transport);
      const run = interruptible(io, plan.steps, view, withGuestOps(admin, guestOpExecutor(), policyClient === undefined ? undefined : policyExecutor(policyClient)));
      const result = await applySteps(plan.steps, {
        parallelism,
        executor: run.executor,
        now: deps.now,
        hooks: run.hooks,
        interrupted: io.interrupted,
        settleFailure: (step, failure) => settleFailedCreate(step, failure, { reader, run: admin.run }),
      });
      const summary = summarizeApply(result);
      view.summary(summary);
      if (!summary.ok) tell(io.stderr, `qubes-iac: apply did not complete: ${summary.failed.length} step${summary.failed.length === 1 ? "" : "s"} failed, ${summary.skipped.length} skipped`);
      return summary.ok ? 0 : 1;
    });
  } finally {
    await client.close();
  }
}

/**
 * `qubes-iac release qube.NAME [CONFIG…]`: the plan of the config limited to that qube, which it
 * lets go of (as `release: true` would) instead of destroying or updating it, applied after
 * approval like any plan. The qube and its data stay; only qubes-iac's tag and records go.
 */
export async function releaseCommand(io: CliIO, address: string, args: string[], o: ApplyCommandOptions, deps: ApplyDeps = realDeps): Promise<number> {
  const r = parseAddress(address);
  if (!r.ok) throw new CliError(`release: ${r.error}`);
  if (r.address.type !== "qube") throw new CliError(`release: ${address} is not a qube address (qube.NAME): labels and pools are only created and removed`);
  return applyCommand(io, args, { ...o, release: [r.address.name], target: [address] }, deps);
}
