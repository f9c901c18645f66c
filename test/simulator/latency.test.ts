// The latency model over real sockets: read-only calls wait readMs, mutating calls writeMs, and
// mutating calls queue one behind the other while reads overlap. Assertions are on ordering and
// on lower bounds from the call log, never on how fast a loaded machine answers.

import { afterEach, describe, expect, it } from "vitest";
import { parseLatency } from "../../src/providers/qubes/simulator/index.js";
import { createPacer } from "../../src/providers/qubes/simulator/latency.js";
import type { SimCallLogEntry, SimulatorOptions } from "../../src/providers/qubes/simulator/index.js";
import { call, ok, openStream, tempSim, type Stream, type TempSim } from "./wire.js";

const cleanup: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

async function sim(opts: Partial<SimulatorOptions>): Promise<TempSim> {
  const s = await tempSim(opts);
  cleanup.push(() => s.stop());
  return s;
}

/** The call's interval in epoch milliseconds, from the log's end time and duration. */
const interval = (e: SimCallLogEntry): { start: number; end: number } => {
  const end = Date.parse(e.time);
  return { start: end - e.ms, end };
};

/** Waits until the stream has carried `text` (an event name), failing after 10 s. */
async function waitForText(stream: Stream, text: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!stream.bytes().includes(text)) {
    if (Date.now() > deadline) throw new Error(`no ${text} on the event stream: ${JSON.stringify(stream.bytes().toString("latin1"))}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

const finishOrder: string[] = [];
const tracked = async (label: string, p: Promise<unknown>): Promise<void> => {
  await p;
  finishOrder.push(label);
};

describe("--latency-ms text", () => {
  it("reads N as both latencies and READ,WRITE as each", () => {
    expect(parseLatency("5")).toEqual({ ok: true, latency: { readMs: 5, writeMs: 5 } });
    expect(parseLatency("2,40")).toEqual({ ok: true, latency: { readMs: 2, writeMs: 40 } });
    expect(parseLatency("0")).toEqual({ ok: true, latency: { readMs: 0, writeMs: 0 } });
  });

  it.each(["", "x", "-1", "1,2,3", "1.5", "1,", ",2"])("refuses %j, naming it", (text) => {
    const r = parseLatency(text);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.error).toContain(`'${text}'`);
  });

  it("refuses a negative latency given as an option", async () => {
    await expect(tempSim({ latency: { readMs: -1, writeMs: 0 } })).rejects.toThrow(/readMs must be a non-negative/);
  });
});

describe("latency per call", () => {
  it("adds readMs to a read-only call and writeMs to a mutating one (log durations)", async () => {
    const s = await sim({ latency: { readMs: 40, writeMs: 120 } });
    await ok(s.socketPath, "admin.vm.property.Get", "memory", "work");
    await ok(s.socketPath, "admin.vm.property.Set", "memory", "work", "800");
    const [get, set] = s.calls;
    expect(get?.method).toBe("admin.vm.property.Get");
    expect(get?.ms).toBeGreaterThanOrEqual(35);
    expect(set?.method).toBe("admin.vm.property.Set");
    expect(set?.ms).toBeGreaterThanOrEqual(115);
  });

  it("a read issued while a slow write holds the queue is not held by it, and answers first", async () => {
    const s = await sim({ latency: { readMs: 0, writeMs: 800 } });
    const events = openStream(s.socketPath, "admin.Events", "dom0");
    cleanup.push(async () => events.close());
    await events.waitFor(1);
    finishOrder.length = 0;
    const write = tracked("write", ok(s.socketPath, "admin.vm.property.Set", "memory", "work", "800"));
    await waitForText(events, "property-set:memory");
    const read = tracked("read", ok(s.socketPath, "admin.vm.property.Get", "label", "work"));
    await Promise.all([write, read]);
    expect(finishOrder).toEqual(["read", "write"]);
  });

  it("a write issued after a slow read answers first: reads use readMs, not writeMs", async () => {
    const s = await sim({ latency: { readMs: 600, writeMs: 0 } });
    finishOrder.length = 0;
    const read = tracked("read", ok(s.socketPath, "admin.vm.property.Get", "label", "work"));
    const write = tracked("write", ok(s.socketPath, "admin.vm.property.Set", "memory", "work", "800"));
    await Promise.all([write, read]);
    expect(finishOrder).toEqual(["write", "read"]);
  });

  it("makes the change when the write's turn comes and replies writeMs later (the event arrives first)", async () => {
    const s = await sim({ latency: { readMs: 0, writeMs: 1500 } });
    const events = openStream(s.socketPath, "admin.Events", "dom0");
    cleanup.push(async () => events.close());
    await events.waitFor(1);
    let replied = false;
    const write = ok(s.socketPath, "admin.vm.property.Set", "memory", "work", "900").then(() => (replied = true));
    await waitForText(events, "property-set:memory");
    expect(await ok(s.socketPath, "admin.vm.property.Get", "memory", "work")).toBe("default=False type=int 900");
    expect(replied).toBe(false);
    await write;
  });
});

describe("serialised writes", () => {
  it("queues concurrent mutating calls: each reply at least writeMs after the previous one", async () => {
    const s = await sim({ latency: { readMs: 50, writeMs: 50 } });
    await Promise.all(
      ["work", "personal", "untrusted", "vault"].map((q) => ok(s.socketPath, "admin.vm.property.Set", "memory", q, "700")),
    );
    const ends = s.calls.map((e) => interval(e).end).sort((a, b) => a - b);
    expect(ends).toHaveLength(4);
    for (let i = 1; i < ends.length; i++) expect((ends[i] ?? 0) - (ends[i - 1] ?? 0)).toBeGreaterThanOrEqual(45);
    // The last of them waited for the three before it.
    expect(Math.max(...s.calls.map((e) => e.ms))).toBeGreaterThanOrEqual(190);
  });

  it("lets concurrent reads overlap while writes queue", async () => {
    const s = await sim({ latency: { readMs: 400, writeMs: 400 } });
    await Promise.all(["work", "personal", "untrusted", "vault"].map((q) => ok(s.socketPath, "admin.vm.property.Get", "label", q)));
    const spans = s.calls.map(interval);
    expect(Math.max(...spans.map((x) => x.start))).toBeLessThan(Math.min(...spans.map((x) => x.end)));
  });

  it("with serialWrites false, concurrent writes overlap", async () => {
    const s = await sim({ latency: { readMs: 400, writeMs: 400 }, serialWrites: false });
    await Promise.all(
      ["work", "personal", "untrusted", "vault"].map((q) => ok(s.socketPath, "admin.vm.property.Set", "memory", q, "700")),
    );
    const spans = s.calls.map(interval);
    expect(Math.max(...spans.map((x) => x.start))).toBeLessThan(Math.min(...spans.map((x) => x.end)));
  });

  it("a failed write still takes its turn, and the queue goes on after it", async () => {
    const s = await sim({ latency: { readMs: 0, writeMs: 60 } });
    const replies = await Promise.all([
      call(s.socketPath, "admin.vm.property.Set", "memory", "no-such-qube", "700"),
      ok(s.socketPath, "admin.vm.property.Set", "memory", "work", "700"),
    ]);
    expect(replies[0]?.toString("latin1")).toMatch(/^2\0QubesVMNotFoundError\0/);
    const ends = s.calls.map((e) => interval(e).end).sort((a, b) => a - b);
    expect((ends[1] ?? 0) - (ends[0] ?? 0)).toBeGreaterThanOrEqual(55);
  });
});

describe("pacing of the latency's timers", () => {
  /** Timers as Node's behave: whole milliseconds, firing `lateMs` after the asked time. */
  const run = (wantMs: number, lateMs: number, waits: number): { mean: number; min: number } => {
    const pacer = createPacer();
    let total = 0;
    let min = Infinity;
    for (let i = 0; i < waits; i++) {
      const asked = pacer.timerMs(wantMs);
      // A late that varies from wait to wait, as a loaded machine's does.
      const took = asked + lateMs * (0.5 + ((i * 7) % 11) / 10);
      pacer.fired(asked, took);
      total += took;
      min = Math.min(min, took);
    }
    return { mean: total / waits, min };
  };

  it.each([
    [15, 0.5],
    [14.9, 0.5],
    [14.3, 0.2],
    [37, 0.8],
    [1.5, 0.3],
  ])("waits %d ms on average when timers fire %d ms late, never more than 1 ms early", (want, late) => {
    // The first waits are spent learning how late the timers are; the average is over 2 000.
    const { mean, min } = run(want, late, 2000);
    expect(Math.abs(mean - want)).toBeLessThan(0.05);
    expect(min).toBeGreaterThan(want - 1);
  });

  it("asks for nothing when nothing is left to wait", () => {
    const pacer = createPacer();
    expect(pacer.timerMs(0)).toBe(0);
    expect(pacer.timerMs(-3)).toBe(0);
  });
});
