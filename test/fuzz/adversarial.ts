// Large hostile inputs (about 1 MiB each) that a super-linear decoder would not finish: long
// unfinished frames trickled in tiny chunks, runs of one delimiter, deep nesting, huge numbers
// and strings, many fields. Each case checks its result and returns a one-line summary; the
// caller times it against a budget that a quadratic implementation would blow by orders of magnitude.

import { decodeReply, EventStreamDecoder } from "../../src/providers/qubes/codec.js";
import { parsePropertyGet, parsePropertyGetAll, parseVmList } from "../../src/providers/qubes/properties.js";
import { createFramer, decodeReply as decodeQgaReply } from "../../src/providers/qga/codec.js";
import { check } from "./engine.js";
import { MAX_EVENT_BYTES } from "./targets.js";

export type AdversarialCase = {
  target: string;
  name: string;
  /** Wall-clock budget; the linear decoders take a small fraction of it. */
  budgetMs: number;
  run(): string;
};

const MiB = 1024 * 1024;
const ascii = (s: string): Buffer => Buffer.from(s, "latin1");

/** Feeds `bytes` to a stream decoder in chunks of `size`; returns the events, the error and what is pending. */
function trickle(bytes: Buffer, size: number): { events: number; error: string | undefined; pending: number; maxPending: number } {
  const d = new EventStreamDecoder();
  let events = 0;
  let error: string | undefined;
  let maxPending = 0;
  for (let i = 0; i < bytes.length && error === undefined; i += size) {
    const r = d.push(bytes.subarray(i, i + size));
    events += r.events.length;
    error = r.error;
    maxPending = Math.max(maxPending, d.pendingBytes);
  }
  return { events, error, pending: d.pendingBytes, maxPending };
}

const kwargsEvent = (n: number): Buffer => {
  const parts = ["1\0vm\0big-event\0"];
  for (let i = 0; i < n; i++) parts.push(`k${i}\0v${i}\0`);
  parts.push("\0");
  return ascii(parts.join(""));
};

const qubesdReply: AdversarialCase[] = [
  {
    target: "qubesd-reply",
    name: "1 MiB of `1\\0`: one unfinished event of 512K fields",
    budgetMs: 2000,
    run() {
      const r = decodeReply(Buffer.alloc(MiB, "1\0"));
      check(r.kind === "malformed", `got ${r.kind}`);
      return r.kind;
    },
  },
  {
    target: "qubesd-reply",
    name: "150K minimal events in 1 MiB",
    budgetMs: 2000,
    run() {
      const one = ascii("1\0\0e\0\0");
      const r = decodeReply(Buffer.concat(Array.from({ length: Math.floor(MiB / one.length) }, () => one)));
      check(r.kind === "events" && r.events.length === Math.floor(MiB / one.length), `got ${r.kind}`);
      return `${r.kind === "events" ? r.events.length : 0} events`;
    },
  },
  {
    target: "qubesd-reply",
    name: "one event with 64K distinct kwargs",
    budgetMs: 2000,
    run() {
      const r = decodeReply(kwargsEvent(65536));
      check(r.kind === "events" && r.events.length === 1 && Object.keys(r.events[0]?.kwargs ?? {}).length === 65536, `got ${r.kind}`);
      return "1 event, 65536 kwargs";
    },
  },
  {
    target: "qubesd-reply",
    name: "exception with 256K `%s` and 256K arguments",
    budgetMs: 2000,
    run() {
      const n = 256 * 1024;
      const r = decodeReply(ascii(`2\0QubesException\0\0${"%s".repeat(n)}\0${"a\0".repeat(n)}`));
      check(r.kind === "exception" && r.message.length === n, `got ${r.kind}`);
      return `exception, message ${r.kind === "exception" ? r.message.length : 0} chars`;
    },
  },
  {
    target: "qubesd-reply",
    name: "exception followed by 1 MiB of NUL (1M empty fields)",
    budgetMs: 3000,
    run() {
      const r = decodeReply(Buffer.concat([ascii("2\0QubesException\0\0%s\0"), Buffer.alloc(MiB)]));
      check(r.kind === "exception", `got ${r.kind}`);
      return r.kind;
    },
  },
  {
    target: "qubesd-reply",
    name: "1 MiB of NUL; `0\\0` + 1 MiB body",
    budgetMs: 2000,
    run() {
      const a = decodeReply(Buffer.alloc(MiB));
      const b = decodeReply(Buffer.concat([ascii("0\0"), Buffer.alloc(MiB, 0x41)]));
      check(a.kind === "malformed" && b.kind === "ok" && b.body.length === MiB, `got ${a.kind}, ${b.kind}`);
      return `${a.kind}, ${b.kind}`;
    },
  },
];

const qubesdEvents: AdversarialCase[] = [
  {
    target: "qubesd-events",
    name: "256 KiB of `1\\0` (one unfinished event) in 1-byte chunks",
    budgetMs: 3000,
    run() {
      const r = trickle(Buffer.alloc(256 * 1024, "1\0"), 1);
      check(r.error === undefined && r.events === 0 && r.pending === 256 * 1024, `error ${r.error}, pending ${r.pending}`);
      return `pending ${r.pending} bytes`;
    },
  },
  {
    target: "qubesd-events",
    name: "1 MiB + 64 KiB of `1\\0` in 64-byte chunks: refused past the 1 MiB cap",
    budgetMs: 2000,
    run() {
      const r = trickle(Buffer.alloc(MiB + 64 * 1024, "1\0"), 64);
      check(r.error?.startsWith("event larger than") === true && r.maxPending <= MAX_EVENT_BYTES + 64, `error ${r.error}, max pending ${r.maxPending}`);
      return `${r.error} (max pending ${r.maxPending})`;
    },
  },
  {
    target: "qubesd-events",
    name: "exception frame with an invalid class + 128 KiB of fields in 2-byte chunks",
    budgetMs: 2000,
    run() {
      const r = trickle(Buffer.concat([ascii("2\0\0\0\0"), Buffer.alloc(128 * 1024, "x\0")]), 2);
      check(r.error === undefined && r.pending === 128 * 1024 + 5, `error ${r.error}, pending ${r.pending}`);
      return `pending ${r.pending} bytes`;
    },
  },
  {
    target: "qubesd-events",
    name: "100K minimal events in 3-byte chunks",
    budgetMs: 2000,
    run() {
      const r = trickle(Buffer.alloc(6 * 100_000, "1\0\0e\0\0"), 3);
      check(r.error === undefined && r.events === 100_000 && r.pending === 0, `events ${r.events}, error ${r.error}`);
      return `${r.events} events`;
    },
  },
  {
    target: "qubesd-events",
    name: "one event with 64K kwargs in 5-byte chunks",
    budgetMs: 2000,
    run() {
      const r = trickle(kwargsEvent(65536), 5);
      check(r.error === undefined && r.events === 1 && r.pending === 0, `events ${r.events}, error ${r.error}`);
      return `${r.events} event`;
    },
  },
];

/** Heap plus Buffer memory: a framer that keeps a Buffer object per chunk shows up here. */
const memoryInUse = (): number => {
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
};

const qgaFramer: AdversarialCase[] = [
  {
    target: "qga-framer",
    name: "2 MiB line in 1-byte chunks (limit 8 MiB): memory stays near the bytes held",
    budgetMs: 4000,
    run() {
      const f = createFramer(8 * MiB);
      const byte = Buffer.of(0x41);
      const before = memoryInUse();
      for (let i = 0; i < 2 * MiB; i++) f.push(byte);
      const grew = memoryInUse() - before;
      check(f.buffered === 2 * MiB, `buffered ${f.buffered}`);
      // 2 MiB held, up to 4 MiB of capacity, plus young garbage; one Buffer per byte would be ~200 MiB.
      check(grew < 48 * MiB, `memory grew by ${(grew / MiB).toFixed(1)} MiB holding 2 MiB`);
      return `held 2 MiB, memory ${grew >= 0 ? "+" : ""}${(grew / MiB).toFixed(1)} MiB`;
    },
  },
  {
    target: "qga-framer",
    name: "1 MiB of `\\n` in one chunk (1M empty lines)",
    budgetMs: 2000,
    run() {
      const frames = createFramer(8 * MiB).push(Buffer.alloc(MiB, 0x0a));
      check(frames.length === MiB && frames.every((x) => x.kind === "line" && x.bytes.length === 0), `${frames.length} frames`);
      return `${frames.length} lines`;
    },
  },
  {
    target: "qga-framer",
    name: "1 MiB of 0xFF in one chunk (1M sentinels)",
    budgetMs: 2000,
    run() {
      const frames = createFramer(8 * MiB).push(Buffer.alloc(MiB, 0xff));
      check(frames.length === MiB && frames.every((x) => x.kind === "sentinel"), `${frames.length} frames`);
      return `${frames.length} sentinels`;
    },
  },
  {
    target: "qga-framer",
    name: "9 MiB line in 64 KiB chunks (limit 8 MiB): one overflow, nothing held",
    budgetMs: 2000,
    run() {
      const f = createFramer(8 * MiB);
      const piece = Buffer.alloc(64 * 1024, 0x41);
      let overflows = 0;
      let maxHeld = 0;
      for (let i = 0; i < 9 * 16; i++) {
        overflows += f.push(piece).filter((x) => x.kind === "overflow").length;
        maxHeld = Math.max(maxHeld, f.buffered);
      }
      const end = f.push(ascii("\n{}\n"));
      check(overflows === 1 && maxHeld <= 8 * MiB && f.buffered === 0, `overflows ${overflows}, max held ${maxHeld}`);
      check(end.length === 1 && end[0]?.kind === "line", "the line after the dropped one is lost");
      return `1 overflow, max held ${maxHeld} bytes`;
    },
  },
];

const qgaReply: AdversarialCase[] = [
  ...[
    ["1 MiB of `[`", Buffer.alloc(MiB, "["), "malformed"],
    ["1 MiB of digits as the return value", ascii(`{"return": ${"9".repeat(MiB)}}`), "malformed"],
    ["1 MiB of spaces before the reply", ascii(`${" ".repeat(MiB)}{"return": {}}`), "return"],
    ['a 1 MiB string of `\\u0041` escapes', ascii(`{"return": "${"\\u0041".repeat(MiB / 6)}"}`), "return"],
    ["a string of 512K two-byte UTF-8 characters", Buffer.from(`{"return": "${"é".repeat(MiB / 2)}"}`, "utf8"), "return"],
    ["an object of 64K distinct members", ascii(`{"return": {${Array.from({ length: 65536 }, (_, i) => `"m${i}": ${i}`).join(", ")}}}`), "return"],
    ["an array of 512K zeros", ascii(`{"return": [${"0,".repeat(512 * 1024 - 1)}0]}`), "return"],
    ["1 MiB of `{\"a\":` (deep nesting)", Buffer.alloc(MiB, '{"a":'), "malformed"],
  ].map(([name, bytes, kind]): AdversarialCase => ({
    target: "qga-reply",
    name: name as string,
    budgetMs: 2000,
    run() {
      const r = decodeQgaReply(bytes as Buffer, { maxDepth: 32, maxStringBytes: 8 * MiB, maxNumberChars: 40 });
      check(r.kind === kind, `got ${r.kind}${r.kind === "malformed" ? ` (${r.reason})` : ""}`);
      return r.kind === "malformed" ? `malformed: ${r.reason}` : r.kind;
    },
  })),
];

const properties: AdversarialCase[] = [
  {
    target: "qubesd-properties",
    name: "GetAll of 64K properties",
    budgetMs: 2000,
    run() {
      const body = Array.from({ length: 65536 }, (_, i) => `p${i} default=True type=int ${i}`).join("\n");
      const r = parsePropertyGetAll(body);
      check(r.ok && r.value.size === 65536, "not parsed");
      return "65536 properties";
    },
  },
  {
    target: "qubesd-properties",
    name: "GetAll line with 1 MiB of `\\\\` and `\\n` escapes",
    budgetMs: 2000,
    run() {
      const r = parsePropertyGetAll(`p default=False type=str ${"\\\\\\n".repeat(MiB / 4)}`);
      check(r.ok && r.value.get("p")?.raw.length === MiB / 2, "not parsed");
      return "1 property, 512K characters";
    },
  },
  {
    target: "qubesd-properties",
    name: "vm.List line with 128K key=value fields",
    budgetMs: 2000,
    run() {
      const r = parseVmList(`vm class=AppVM state=Halted ${"k=v ".repeat(128 * 1024)}x=y`);
      check(r.ok && r.value.length === 1, "not parsed");
      return "1 qube";
    },
  },
  {
    target: "qubesd-properties",
    name: "Get of an int with 1 MiB of digits",
    budgetMs: 2000,
    run() {
      const r = parsePropertyGet(`default=False type=int ${"9".repeat(MiB)}`);
      check(r.ok ? r.value.raw.length === MiB : r.error.length > 0, "neither a value nor an error");
      return r.ok ? `value ${String(r.value.value)} (raw kept exact)` : `error`;
    },
  },
];

export const ADVERSARIAL: readonly AdversarialCase[] = [...qubesdReply, ...qubesdEvents, ...properties, ...qgaFramer, ...qgaReply];

/** Runs one case and times it. */
export function timeCase(c: AdversarialCase): { ms: number; summary: string } {
  const t0 = performance.now();
  const summary = c.run();
  return { ms: performance.now() - t0, summary };
}
