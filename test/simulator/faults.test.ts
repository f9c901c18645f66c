// Fault injection: the rule syntax (round trip, located errors), counting, and each fault kind
// over a real socket: what the client receives byte for byte, whether the change was made (read
// back, and from the state file after a restart), the fired record and the call log.

import { readFileSync } from "node:fs";
import { afterEach, describe, expect, it } from "vitest";
import { decodeReply } from "../../src/providers/qubes/codec.js";
import { QubesApiError } from "../../src/providers/qubes/errors.js";
import {
  formatFaultRule,
  FaultRuleSyntaxError,
  GARBAGE_REPLY,
  parseFaultRule,
  type SimulatorOptions,
} from "../../src/providers/qubes/simulator/index.js";
import { createSocketTransport } from "../../src/providers/qubes/transport-socket.js";
import { call, ok, openStream, tempSim, type TempSim } from "./wire.js";

const cleanup: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

async function sim(opts: Partial<SimulatorOptions> = {}): Promise<TempSim> {
  const s = await tempSim(opts);
  cleanup.push(() => s.stop());
  return s;
}

const memory = (s: TempSim, qube = "work") => ok(s.socketPath, "admin.vm.property.Get", "memory", qube);
const setMemory = (s: TempSim, value: string, qube = "work") => call(s.socketPath, "admin.vm.property.Set", "memory", qube, value);
const OK_EMPTY = Buffer.from("0\0", "latin1");
const DEFAULT_MEMORY = "default=True type=int 400";

/** The memory of work as the state file holds it (null = default). */
function savedMemory(s: TempSim): string | null {
  const doc = JSON.parse(readFileSync(s.statePath, "utf8")) as { qubes: Array<{ name: string; props: Record<string, unknown> }> };
  const v = doc.qubes.find((q) => q.name === "work")?.props.memory;
  return typeof v === "string" ? v : null;
}

async function until(cond: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe("rule syntax", () => {
  it.each([
    ["admin.vm.property.Set+netvm/work@1=close-after", { method: "admin.vm.property.Set", arg: "netvm", dest: "work", calls: { from: 1, to: 1 }, action: { kind: "close-after" } }],
    ["write@3=exception:QubesException", { method: "write", calls: { from: 3, to: 3 }, action: { kind: "exception", qubesClass: "QubesException", message: "fault injected by the simulator" } }],
    ["*@*=exception:QubesValueError:no: not @ all=yes", { method: "*", calls: { from: 1, to: null }, action: { kind: "exception", qubesClass: "QubesValueError", message: "no: not @ all=yes" } }],
    ["read@2-4=garbage", { method: "read", calls: { from: 2, to: 4 }, action: { kind: "garbage" } }],
    ["admin.vm.feature.Set@5-=truncate", { method: "admin.vm.feature.Set", calls: { from: 5, to: null }, action: { kind: "truncate" } }],
    ["admin.vm.List+@1=truncate:3", { method: "admin.vm.List", arg: "", calls: { from: 1, to: 1 }, action: { kind: "truncate", bytes: 3 } }],
    ["admin.vm.Start/uuid:277aa8c6-3065-5bc7-bd24-1f4c5966b67d@1=delay:2500", { method: "admin.vm.Start", dest: "uuid:277aa8c6-3065-5bc7-bd24-1f4c5966b67d", calls: { from: 1, to: 1 }, action: { kind: "delay", ms: 2500 } }],
    ["admin.Events@1=delay-before:0", { method: "admin.Events", calls: { from: 1, to: 1 }, action: { kind: "delay-before", ms: 0 } }],
    ["*+memory@1=close-before", { method: "*", arg: "memory", calls: { from: 1, to: 1 }, action: { kind: "close-before" } }],
  ])("reads %s and writes it back the same", (text, rule) => {
    const parsed = parseFaultRule(text);
    expect(parsed).toEqual({ ok: true, rule });
    if (parsed.ok) expect(formatFaultRule(parsed.rule)).toBe(text.replace("@1-=", "@*="));
  });

  it("writes N- from 1 as *", () => {
    const parsed = parseFaultRule("write@1-=garbage");
    expect(parsed.ok && formatFaultRule(parsed.rule)).toBe("write@*=garbage");
  });

  it.each([
    ["admin.vm.Start=garbage", 23, "no '@' before the call number; expected METHOD[+ARG][/DEST]@WHICH=ACTION"],
    ["admin.vm.Start@1", 17, "no '=' before the action"],
    ["@1=garbage", 1, "no method before '@'"],
    ["+netvm@1=garbage", 1, "no method before '+'"],
    ["admin.vm.property.set@1=garbage", 1, "unknown method 'admin.vm.property.set' (did you mean admin.vm.property.Set?)"],
    ["admin.vm.Nope@1=garbage", 1, "unknown method 'admin.vm.Nope'; use a method the simulator serves, *, read or write"],
    ["admin vm@1=garbage", 1, "'admin vm' is not a method name"],
    ["admin.vm.feature.Set+a:b@1=garbage", 22, "argument 'a:b' has characters outside the qrexec set"],
    ["admin.vm.Start/@1=garbage", 16, "destination '': destination is empty"],
    ["admin.vm.Start/1work@1=garbage", 16, "destination '1work': VM name cannot start with"],
    ["admin.vm.Start@0=garbage", 16, "call numbers start at 1"],
    ["admin.vm.Start@first=garbage", 16, "'first' is not a call number: use N, N-M, N- or *"],
    ["admin.vm.Start@5-2=garbage", 16, "range 5-2 ends before it starts"],
    ["admin.vm.Start@1=explode", 18, "unknown action 'explode': use exception:CLASS[:MESSAGE], close-before"],
    ["admin.vm.Start@1=exception", 27, "exception needs a class: exception:CLASS[:MESSAGE]"],
    ["admin.vm.Start@1=exception:Bad-Class:x", 28, "'Bad-Class' is not an exception class name"],
    ["admin.vm.Start@1=garbage:7", 25, "garbage takes no parameter"],
    ["admin.vm.Start@1=delay", 23, "delay needs a time: delay:MS"],
    ["admin.vm.Start@1=delay:soon", 24, "'soon' is not a number of milliseconds"],
    ["admin.vm.Start@1=truncate:-1", 27, "'-1' is not a number of bytes"],
  ])("refuses %s at column %i", (text, column, message) => {
    const parsed = parseFaultRule(text);
    expect(parsed.ok).toBe(false);
    if (parsed.ok) return;
    expect(parsed.issue.rule).toBe(text);
    expect(parsed.issue.column).toBe(column);
    expect(parsed.issue.message).toContain(message);
  });

  it("names the rule and the column in the error a server throws", async () => {
    await expect(tempSim({ faults: ["admin.vm.Start@0=garbage"] })).rejects.toThrow(
      "fault rule 'admin.vm.Start@0=garbage', column 16: call numbers start at 1",
    );
    const s = await sim();
    expect(() => s.faults.add("write@1=oops")).toThrow(FaultRuleSyntaxError);
    expect(() => s.faults.add({ method: "write", calls: { from: 0, to: 1 }, action: { kind: "garbage" } })).toThrow("call numbers start at 1");
  });
});

describe("which calls a rule hits", () => {
  it("counts only the calls it matches, each rule on its own", async () => {
    const s = await sim({ faults: ["admin.vm.property.Set+memory/work@2=close-before", "write@4=close-before"] });
    await setMemory(s, "500", "personal"); // write 1 (other qube: not the first rule's)
    await setMemory(s, "501"); // rule 1 match 1, write 2
    await ok(s.socketPath, "admin.vm.property.Get", "memory", "work"); // a read: neither
    expect((await setMemory(s, "502")).length).toBe(0); // rule 1 match 2: fires; write 3
    expect((await call(s.socketPath, "admin.vm.tag.Set", "x", "work")).length).toBe(0); // write 4: fires
    await setMemory(s, "503"); // rule 1 match 3, write 5
    expect(s.faults.fired().map((f) => [f.rule, f.n, f.call.method])).toEqual([
      ["admin.vm.property.Set+memory/work@2=close-before", 2, "admin.vm.property.Set"],
      ["write@4=close-before", 4, "admin.vm.tag.Set"],
    ]);
    expect(await memory(s)).toBe("default=False type=int 503");
  });

  it("hits a range, every call from N, or every call", async () => {
    const s = await sim({ faults: ["admin.vm.property.Get+label@2-3=close-before", "admin.vm.property.Get+memory@3-=close-before", "admin.vm.List@*=close-before"] });
    const sizes = async (arg: string, times: number) => {
      const out: number[] = [];
      for (let i = 0; i < times; i++) out.push((await call(s.socketPath, "admin.vm.property.Get", arg, "work")).length);
      return out.map((n) => (n === 0 ? "closed" : "ok"));
    };
    expect(await sizes("label", 5)).toEqual(["ok", "closed", "closed", "ok", "ok"]);
    expect(await sizes("memory", 5)).toEqual(["ok", "ok", "closed", "closed", "closed"]);
    expect((await call(s.socketPath, "admin.vm.List", "", "dom0")).length).toBe(0);
    expect((await call(s.socketPath, "admin.vm.List", "", "work")).length).toBe(0);
  });

  it("matches an exact empty argument with METHOD+, and read / write by what the method does", async () => {
    const s = await sim({ faults: ["admin.vm.List+@*=close-before", "read@*=exception:QubesException:read refused"] });
    expect((await call(s.socketPath, "admin.vm.List", "", "dom0")).length).toBe(0);
    expect((await call(s.socketPath, "admin.vm.feature.List", "", "work")).toString("latin1")).toBe("2\0QubesException\0\0read refused\0");
    expect(await call(s.socketPath, "admin.vm.feature.Set", "f", "work", "1")).toEqual(OK_EMPTY);
  });

  it("lets the first added rule fire when several hit one call; the others still count it", async () => {
    const s = await sim({ faults: ["write@1=close-before", "write@1-2=garbage"] });
    expect((await setMemory(s, "600")).length).toBe(0);
    expect(await setMemory(s, "601")).toEqual(GARBAGE_REPLY);
    expect(await setMemory(s, "602")).toEqual(OK_EMPTY);
  });

  it("adds and clears rules on a running server; a new rule counts from its own start", async () => {
    const s = await sim();
    await setMemory(s, "700");
    await setMemory(s, "701");
    expect(s.faults.add("admin.vm.property.Set@1=close-before")).toEqual({
      method: "admin.vm.property.Set",
      calls: { from: 1, to: 1 },
      action: { kind: "close-before" },
    });
    expect((await setMemory(s, "702")).length).toBe(0);
    expect(s.faults.fired()).toHaveLength(1);
    s.faults.add({ method: "*", calls: { from: 1, to: null }, action: { kind: "garbage" } });
    expect(s.faults.rules().map(formatFaultRule)).toEqual(["admin.vm.property.Set@1=close-before", "*@*=garbage"]);
    s.faults.clear();
    expect(s.faults.rules()).toEqual([]);
    expect(s.faults.fired()).toEqual([]);
    expect(await setMemory(s, "703")).toEqual(OK_EMPTY);
  });
});

describe("fault kinds", () => {
  it("exception: the named Qubes exception, nothing changed", async () => {
    const s = await sim({ faults: ["admin.vm.property.Set+memory/work@2=exception:QubesValueError:nope"] });
    expect(await setMemory(s, "800")).toEqual(OK_EMPTY);
    expect((await setMemory(s, "900")).toString("latin1")).toBe("2\0QubesValueError\0\0nope\0");
    expect(await memory(s)).toBe("default=False type=int 800");
    expect(savedMemory(s)).toBe("800");
    expect(s.faults.fired()).toEqual([
      {
        rule: "admin.vm.property.Set+memory/work@2=exception:QubesValueError:nope",
        action: { kind: "exception", qubesClass: "QubesValueError", message: "nope" },
        call: { src: "dom0", method: "admin.vm.property.Set", arg: "memory", dest: "work" },
        n: 2,
        outcome: "not-run",
      },
    ]);
    expect(s.calls[1]).toMatchObject({ reply: "exception", exc_type: "QubesValueError", fault: "admin.vm.property.Set+memory/work@2=exception:QubesValueError:nope" });
  });

  it("exception: a protocol error is the empty reply on R4.3, named on main", async () => {
    const r43 = await sim({ release: "r4.3", faults: ["write@1=exception:PermissionDenied"] });
    expect((await setMemory(r43, "800")).length).toBe(0);
    const head = await sim({ faults: ["write@1=exception:PermissionDenied"] });
    expect((await setMemory(head, "800")).toString("latin1")).toBe("2\0PermissionDenied\0\0fault injected by the simulator\0");
  });

  it("close-before: no byte, nothing changed or saved", async () => {
    const s = await sim({ faults: ["write@1=close-before"] });
    expect(await setMemory(s, "800")).toEqual(Buffer.alloc(0));
    expect(await memory(s)).toBe(DEFAULT_MEMORY);
    expect(savedMemory(s)).toBeNull();
    expect(s.faults.fired()[0]?.outcome).toBe("not-run");
    expect(s.calls[0]).toMatchObject({ method: "admin.vm.property.Set", reply: "closed", fault: "write@1=close-before" });
  });

  it("close-after: no byte, but the change was made and saved (it survives a restart)", async () => {
    const s = await sim({ faults: ["write@1=close-after"] });
    expect(await setMemory(s, "800")).toEqual(Buffer.alloc(0));
    expect(s.faults.fired()[0]?.outcome).toBe("ok");
    expect(s.calls[0]).toMatchObject({ reply: "closed", fault: "write@1=close-after" });
    expect(await memory(s)).toBe("default=False type=int 800");
    expect(savedMemory(s)).toBe("800");
    await s.restart({ faults: [] });
    expect(await memory(s)).toBe("default=False type=int 800");
  });

  it("close-after: a call that fails on its own is recorded as such", async () => {
    const s = await sim({ faults: ["write@1=close-after"] });
    expect(await setMemory(s, "-5")).toEqual(Buffer.alloc(0));
    expect(s.faults.fired()[0]?.outcome).toBe("exception");
    expect(s.calls[0]).toMatchObject({ reply: "closed", exc_type: "QubesPropertyValueError" });
  });

  it("garbage: the garbage bytes reach the client, and the change was made", async () => {
    const s = await sim({ faults: ["write@1=garbage"] });
    const reply = await setMemory(s, "800");
    expect(reply).toEqual(GARBAGE_REPLY);
    expect(decodeReply(reply).kind).toBe("malformed");
    expect(await memory(s)).toBe("default=False type=int 800");
    expect(savedMemory(s)).toBe("800");
    expect(s.calls[0]).toMatchObject({ reply: "garbage" });
  });

  it("truncate: half of the real reply by default, or the bytes asked for; the change was made", async () => {
    const s = await sim({ faults: ["admin.vm.property.Get@1=truncate", "admin.vm.property.Get@2=truncate:5", "write@1=truncate"] });
    const full = Buffer.from("0\0default=True type=int 400", "latin1");
    expect(await call(s.socketPath, "admin.vm.property.Get", "memory", "work")).toEqual(full.subarray(0, Math.floor(full.length / 2)));
    expect(await call(s.socketPath, "admin.vm.property.Get", "memory", "work")).toEqual(full.subarray(0, 5));
    const setReply = await setMemory(s, "800");
    expect(setReply).toEqual(Buffer.from("0", "latin1"));
    expect(decodeReply(setReply).kind).toBe("malformed");
    expect(await memory(s)).toBe("default=False type=int 800");
    expect(s.calls.map((c) => c.reply)).toEqual(["truncated", "truncated", "truncated", "ok"]);
  });

  it("delay: the client times out, yet the change was made at once; the late reply goes nowhere", async () => {
    const s = await sim({ faults: ["write@1=delay:1500"] });
    const client = createSocketTransport(s.socketPath, { timeoutMs: 50 });
    const failure = await client
      .call({ method: "admin.vm.property.Set", dest: "work", arg: "memory", payload: Buffer.from("800") })
      .then(() => null, (e: unknown) => e);
    expect(failure).toBeInstanceOf(QubesApiError);
    expect(failure).toMatchObject({ code: "timeout", details: { maybeDelivered: true } });
    expect(await memory(s)).toBe("default=False type=int 800");
    expect(s.faults.fired()[0]?.outcome).toBe("ok");
    await until(() => s.calls.some((c) => c.method === "admin.vm.property.Set"), "the delayed call's log line");
    expect(s.calls.find((c) => c.method === "admin.vm.property.Set")).toMatchObject({ reply: "ok", fault: "write@1=delay:1500" });
    expect(s.calls.find((c) => c.method === "admin.vm.property.Set")?.ms).toBeGreaterThanOrEqual(1400);
  });

  it("delay: a client that waits long enough gets the real reply", async () => {
    const s = await sim({ faults: ["admin.vm.property.Get@1=delay:200"] });
    expect(await memory(s)).toBe(DEFAULT_MEMORY);
    expect(s.calls[0]?.ms).toBeGreaterThanOrEqual(190);
  });

  it("delay-before: the client times out before the call runs; it runs later and replies to no one", async () => {
    const s = await sim({ faults: ["write@1=delay-before:1500"] });
    const client = createSocketTransport(s.socketPath, { timeoutMs: 50 });
    await expect(client.call({ method: "admin.vm.property.Set", dest: "work", arg: "memory", payload: Buffer.from("800") })).rejects.toMatchObject({
      code: "timeout",
    });
    expect(await memory(s)).toBe(DEFAULT_MEMORY);
    expect(s.faults.fired()[0]?.outcome).toBe("not-run");
    await until(() => s.faults.fired()[0]?.outcome === "ok", "the held call to run");
    expect(await memory(s)).toBe("default=False type=int 800");
    expect(s.calls.map((c) => c.method)).toEqual(["admin.vm.property.Get", "admin.vm.property.Set", "admin.vm.property.Get"]);
  });

  it("on an event stream: garbage instead of the first event, then the stream closes", async () => {
    const s = await sim({ faults: ["admin.Events@1=garbage", "admin.Events@2=truncate:4", "admin.Events@3=close-after"] });
    const garbage = await call(s.socketPath, "admin.Events", "", "dom0");
    expect(garbage).toEqual(GARBAGE_REPLY);
    expect(await call(s.socketPath, "admin.Events", "", "dom0")).toEqual(Buffer.from("1\0\0c", "latin1"));
    expect(await call(s.socketPath, "admin.Events", "", "dom0")).toEqual(Buffer.alloc(0));
    const healthy = openStream(s.socketPath, "admin.Events", "dom0");
    cleanup.push(async () => healthy.close());
    expect((await healthy.waitFor(5)).toString("latin1")).toContain("connection-established");
    expect(s.calls.map((c) => c.reply)).toEqual(["garbage", "truncated", "closed", "event"]);
  });

  it("keeps serving after every kind of fault", async () => {
    const s = await sim({
      faults: ["write@1=close-before", "write@2=close-after", "write@3=garbage", "write@4=truncate", "write@5=exception:QubesException", "write@6=delay:1", "write@7=delay-before:1"],
    });
    for (let i = 0; i < 8; i++) await call(s.socketPath, "admin.vm.tag.Set", `t${i}`, "work");
    expect(s.faults.fired().map((f) => f.action.kind)).toEqual(["close-before", "close-after", "garbage", "truncate", "exception", "delay", "delay-before"]);
    expect(await ok(s.socketPath, "admin.vm.tag.List", "", "work")).toBe("audiovm-dom0\nfixture\nguivm-dom0\nt1\nt2\nt3\nt5\nt6\nt7\n");
  });
});
