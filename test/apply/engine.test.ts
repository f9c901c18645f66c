// The apply engine on its own: order and dependencies, the parallelism bound, failure (skip what
// depends on it, finish what runs, go on with the rest), unknown outcomes settled by re-reading,
// interruption. Fake executor and clock; the hooks are recorded as one line per event.
import { describe, expect, it } from "vitest";
import { applySteps, type ApplyHooks, type OpExecutor, type OpOutcome, type Verification } from "../../src/apply/engine.js";
import type { JsonStep } from "../../src/plan/json.js";
import type { Op } from "../../src/plan/ops.js";

const tag = (vm: string, name: string): Op => ({ op: "tag.set", vm, name });

function step(id: string, wave: number, dependsOn: string[] = [], ops: Op[] = [tag(id, "t")]): JsonStep {
  return { id, address: id, kind: "update", wave, depends_on: dependsOn, ops };
}

type Script = (op: Op) => OpOutcome | Promise<OpOutcome>;

function recorder(): { hooks: ApplyHooks; events: string[] } {
  const events: string[] = [];
  return {
    events,
    hooks: {
      onStepStart: (s) => events.push(`start ${s.id}`),
      onOpUnknown: (s, i, f) => events.push(`unknown ${s.id}#${i} ${f.code}`),
      onOpResolved: (s, i, v) => events.push(`resolved ${s.id}#${i} ${v.kind}`),
      onOpNote: (s, i, n) => events.push(`note ${s.id}#${i} ${n}`),
      onStepDone: (s, ms) => events.push(`done ${s.id} ${ms}`),
      onStepFailed: (s, f, ms) => events.push(`failed ${s.id}#${f.opIndex} ${f.failure.qubesClass ?? f.failure.code}${f.verification ? ` ${f.verification.kind}` : ""} ${ms}`),
      onStepSkipped: (s, r) => events.push(`skipped ${s.id} ${r.kind === "dependency" ? r.blockedBy.join(",") : r.kind}`),
    },
  };
}

function executor(script: Script, verify: (op: Op) => Verification = () => ({ kind: "done" })): OpExecutor & { ran: string[]; verified: string[] } {
  const ran: string[] = [];
  const verified: string[] = [];
  return {
    ran,
    verified,
    run: async (op) => {
      ran.push(op.op === "tag.set" ? `${op.vm}:${op.name}` : op.op);
      return script(op);
    },
    verify: async (op) => {
      verified.push(op.op === "tag.set" ? `${op.vm}:${op.name}` : op.op);
      return verify(op);
    },
  };
}

const ok: OpOutcome = { kind: "ok" };
const qubesError = (cls: string): OpOutcome => ({ kind: "failed", failure: { code: "exception", qubesClass: cls, message: `${cls}: no`, call: "admin.vm.tag.Set+t → x" } });
const dropped: OpOutcome = { kind: "unknown", failure: { code: "empty-reply", message: "empty reply", call: "admin.vm.tag.Set+t → x" } };

/** A clock that advances 10 ms per reading. */
function clock(): () => number {
  let t = 0;
  return () => (t += 10);
}

describe("order", () => {
  it("runs every step, each after its dependencies, one at a time with parallelism 1: exact hook sequence", async () => {
    const r = recorder();
    const ex = executor(() => ok);
    const steps = [step("a", 1), step("b", 2, ["a"], [tag("b", "1"), tag("b", "2")]), step("c", 2, ["a"]), step("d", 3, ["b", "c"])];
    const result = await applySteps(steps, { parallelism: 1, executor: ex, now: clock(), hooks: r.hooks });
    expect(result.ok).toBe(true);
    expect(result.results.map((x) => `${x.step.id}:${x.status}`)).toEqual(["a:applied", "b:applied", "c:applied", "d:applied"]);
    expect(ex.ran).toEqual(["a:t", "b:1", "b:2", "c:t", "d:t"]);
    expect(r.events).toEqual(["start a", "done a 10", "start b", "done b 10", "start c", "done c 10", "start d", "done d 10"]);
  });

  it("an empty plan does nothing", async () => {
    const r = recorder();
    expect(await applySteps([], { parallelism: 8, executor: executor(() => ok), now: clock(), hooks: r.hooks })).toEqual({ results: [], ok: true });
    expect(r.events).toEqual([]);
  });

  it("refuses a parallelism below 1", async () => {
    await expect(applySteps([], { parallelism: 0, executor: executor(() => ok), now: clock(), hooks: recorder().hooks })).rejects.toThrow(/parallelism/);
  });

  it("a dependency the plan does not run first is a bug, never a hang", async () => {
    await expect(applySteps([step("a", 1, ["ghost"])], { parallelism: 2, executor: executor(() => ok), now: clock(), hooks: recorder().hooks })).rejects.toThrow(/internal: step a depends on ghost/);
  });
});

describe("parallelism", () => {
  it("runs at most N independent steps at once and starts the next as soon as one finishes", async () => {
    let running = 0;
    let peak = 0;
    const gates = new Map<string, () => void>();
    const ex = executor(
      (op) =>
        new Promise<OpOutcome>((resolve) => {
          running++;
          peak = Math.max(peak, running);
          gates.set((op as { vm: string }).vm, () => {
            running--;
            resolve(ok);
          });
        }),
    );
    const r = recorder();
    const steps = ["s1", "s2", "s3", "s4", "s5"].map((id) => step(id, 1));
    const done = applySteps(steps, { parallelism: 3, executor: ex, now: clock(), hooks: r.hooks });
    await new Promise((res) => setImmediate(res));
    expect(r.events).toEqual(["start s1", "start s2", "start s3"]);
    gates.get("s2")?.();
    await new Promise((res) => setImmediate(res));
    expect(r.events.slice(3)).toEqual(["done s2 20", "start s4"]);
    for (const id of ["s1", "s3", "s4"]) gates.get(id)?.();
    await new Promise((res) => setImmediate(res));
    gates.get("s5")?.();
    expect((await done).ok).toBe(true);
    expect(peak).toBe(3);
  });
});

describe("failure", () => {
  it("stops a step at its first failed op, skips what depends on it (transitively), lets running steps finish, goes on with independent ones", async () => {
    let release: () => void = () => {};
    const slow = new Promise<void>((res) => (release = res));
    const ex = executor(async (op) => {
      const o = op as { vm: string; name: string };
      if (o.vm === "bad" && o.name === "2") {
        // slow is still running when bad fails, and finishes afterwards.
        setTimeout(release, 1);
        return qubesError("QubesVMNotHaltedError");
      }
      if (o.vm === "slow") await slow;
      return ok;
    });
    const r = recorder();
    const steps = [
      step("bad", 1, [], [tag("bad", "1"), tag("bad", "2"), tag("bad", "3")]),
      step("slow", 1),
      step("child", 2, ["bad"]),
      step("grandchild", 3, ["child", "slow"]),
      step("other", 2, ["slow"]),
    ];
    const result = await applySteps(steps, { parallelism: 4, executor: ex, now: clock(), hooks: r.hooks });
    expect(result.ok).toBe(false);
    expect(result.results.map((x) => `${x.step.id}:${x.status}`)).toEqual(["bad:failed", "slow:applied", "child:skipped", "grandchild:skipped", "other:applied"]);
    expect(ex.ran).toEqual(["bad:1", "slow:t", "bad:2", "other:t"]);
    expect(r.events).toEqual([
      "start bad",
      "start slow",
      "failed bad#1 QubesVMNotHaltedError 20",
      "skipped child bad",
      "skipped grandchild child",
      "done slow 20",
      "start other",
      "done other 10",
    ]);
    const failed = result.results[0];
    expect(failed?.status === "failed" ? failed.failure : undefined).toEqual({
      opIndex: 1,
      op: tag("bad", "2"),
      failure: { code: "exception", qubesClass: "QubesVMNotHaltedError", message: "QubesVMNotHaltedError: no", call: "admin.vm.tag.Set+t → x" },
    });
  });
});

describe("unknown outcomes are settled by re-reading, never by repeating the call", () => {
  const steps = [step("a", 1, [], [tag("a", "1"), tag("a", "2")]), step("b", 2, ["a"])];

  it("done: the step goes on with its next op", async () => {
    const r = recorder();
    const ex = executor((op) => ((op as { name: string }).name === "1" ? dropped : ok));
    const result = await applySteps(steps, { parallelism: 1, executor: ex, now: clock(), hooks: r.hooks });
    expect(result.ok).toBe(true);
    expect(ex.ran).toEqual(["a:1", "a:2", "b:t"]);
    expect(ex.verified).toEqual(["a:1"]);
    expect(r.events).toEqual(["start a", "unknown a#0 empty-reply", "resolved a#0 done", "done a 10", "start b", "done b 10"]);
  });

  it("not done: the step fails cleanly and what depends on it is skipped", async () => {
    const r = recorder();
    const ex = executor((op) => ((op as { name: string }).name === "1" ? dropped : ok), () => ({ kind: "not-done", detail: "qube a has no tag 1" }));
    const result = await applySteps(steps, { parallelism: 1, executor: ex, now: clock(), hooks: r.hooks });
    expect(result.ok).toBe(false);
    expect(ex.ran).toEqual(["a:1"]);
    expect(r.events).toEqual(["start a", "unknown a#0 empty-reply", "resolved a#0 not-done", "failed a#0 empty-reply not-done 10", "skipped b a"]);
    const a = result.results[0];
    expect(a?.status === "failed" ? a.failure.verification : undefined).toEqual({ kind: "not-done", detail: "qube a has no tag 1" });
  });

  it("cannot tell: the step fails as unknown", async () => {
    const r = recorder();
    const ex = executor((op) => ((op as { name: string }).name === "2" ? dropped : ok), () => ({ kind: "unknown", detail: "re-reading failed" }));
    const result = await applySteps(steps, { parallelism: 1, executor: ex, now: clock(), hooks: r.hooks });
    expect(ex.ran).toEqual(["a:1", "a:2"]);
    expect(r.events).toEqual(["start a", "unknown a#1 empty-reply", "resolved a#1 unknown", "failed a#1 empty-reply unknown 10", "skipped b a"]);
    expect(result.ok).toBe(false);
  });
});

describe("interruption", () => {
  it("starts no step after the interruption; the running one finishes; the rest is skipped as interrupted", async () => {
    let interrupt: (s: string) => void = () => {};
    const interrupted = new Promise<string>((res) => (interrupt = res));
    const ex = executor(async (op) => {
      if ((op as { vm: string }).vm === "a") {
        interrupt("SIGINT");
        await new Promise((res) => setTimeout(res, 5));
      }
      return ok;
    });
    const r = recorder();
    const result = await applySteps([step("a", 1), step("b", 1), step("c", 2, ["a"])], { parallelism: 1, executor: ex, now: clock(), hooks: r.hooks, interrupted });
    expect(r.events).toEqual(["start a", "done a 10", "skipped b interrupted", "skipped c interrupted"]);
    expect(result.ok).toBe(false);
  });
});

describe("a failed step's qube", () => {
  it("is never started by the same apply: a start or unpause of it in another step fails without a call", async () => {
    const r = recorder();
    const ex = executor((op) => (op.op === "tag.set" && op.vm === "net" ? qubesError("QubesException") : ok));
    // As a saved plan could hold it: a step that does not wait for qube net's own step, and starts it.
    const steps = [
      { id: "create:qube.net", address: "qube.net", kind: "create" as const, wave: 1, depends_on: [], ops: [tag("net", "t"), { op: "vm.start" as const, vm: "net" }] },
      step("user", 1, [], [{ op: "vm.start", vm: "net" }, tag("user", "t")]),
      step("other", 1, [], [{ op: "vm.unpause", vm: "net" }]),
      step("fine", 1, [], [{ op: "vm.start", vm: "fine" }]),
    ];
    const result = await applySteps(steps, { parallelism: 1, executor: ex, now: clock(), hooks: r.hooks });
    expect(result.results.map((x) => `${x.step.id}:${x.status}`)).toEqual(["create:qube.net:failed", "user:failed", "other:failed", "fine:applied"]);
    expect(ex.ran).toEqual(["net:t", "vm.start"]);
    const failure = result.results[1]?.status === "failed" ? result.results[1].failure.failure : undefined;
    expect(failure).toEqual({ code: "withheld", message: "not started: the step of qube net did not complete in this apply", call: "admin.vm.Start+ → net" });
  });

  it("a step that fails is handed to settleFailure, and what it reports is part of the failure", async () => {
    const r = recorder();
    const seen: string[] = [];
    const result = await applySteps([step("a", 1)], {
      parallelism: 1,
      executor: executor(() => qubesError("QubesException")),
      now: clock(),
      hooks: r.hooks,
      settleFailure: async (s, f) => {
        seen.push(`${s.id}#${f.opIndex}`);
        return { kind: "left", vm: "a", netvm: null, netvmDefault: false, firewall: ["action=drop"] };
      },
    });
    expect(seen).toEqual(["a#0"]);
    const x = result.results[0];
    expect(x?.status === "failed" ? x.failure.left : undefined).toEqual({ kind: "left", vm: "a", netvm: null, netvmDefault: false, firewall: ["action=drop"] });
  });
});
