// The wire codec against the bytes the real qemu-ga 7.2 sent (../shared/conformance/qga), fed in
// the chunk sizes it was received in and at every split point: lines, sentinels, exact int64s.
import { describe, expect, test } from "vitest";
import { checkRequest, createFramer, decodeReply, encodeRequest, encodeSyncDelimited, printable, syncIdFrom, type Frame } from "../../src/providers/qga/codec.js";
import { readJsonl } from "../helpers/shared.js";

type Step = { dir: string; b64?: string; read_chunks?: Array<number | string> };
type Transcript = { id: string; steps: Step[] };

const transcripts = readJsonl<Transcript>("conformance/qga/transcripts.jsonl");
const byId = (id: string): Transcript => {
  const t = transcripts.find((x) => x.id === id);
  if (!t) throw new Error(`no transcript ${id}`);
  return t;
};
const recvBytes = (t: Transcript): Buffer => Buffer.concat(t.steps.filter((s) => s.dir === "recv" && s.b64).map((s) => Buffer.from(s.b64!, "base64")));
const sendBytes = (t: Transcript): Buffer[] => t.steps.filter((s) => s.dir === "send" && s.b64).map((s) => Buffer.from(s.b64!, "base64"));

const frameAll = (chunks: Buffer[], limit = 1 << 20): Frame[] => {
  const f = createFramer(limit);
  return chunks.flatMap((c) => f.push(c));
};
const summary = (frames: Frame[]): string[] =>
  frames.map((f) => (f.kind === "sentinel" ? "FF" : f.kind === "overflow" ? "OVERFLOW" : f.bytes.toString("latin1")));

describe("framer on recorded replies", () => {
  test("every recorded reply splits into sentinels and lines that decode (never malformed)", () => {
    let lines = 0;
    for (const t of transcripts) {
      for (const s of t.steps.filter((x) => x.dir === "recv" && x.b64)) {
        const bytes = Buffer.from(s.b64!, "base64");
        const sizes = (s.read_chunks ?? []).filter((n): n is number => typeof n === "number");
        const chunks: Buffer[] = [];
        let at = 0;
        for (const n of sizes) {
          chunks.push(bytes.subarray(at, at + n));
          at += n;
        }
        if (at < bytes.length) chunks.push(bytes.subarray(at));
        for (const f of frameAll(chunks)) {
          if (f.kind !== "line") continue;
          lines++;
          const r = decodeReply(f.bytes);
          expect(r.kind, `${t.id}: ${f.bytes.toString("latin1").slice(0, 80)}`).not.toBe("malformed");
        }
      }
    }
    expect(lines).toBeGreaterThan(100);
  });

  test("0xFF + sync on a fresh parser: error line, sentinel, then the id — at every split point", () => {
    const bytes = recvBytes(byId("sync-delimited-fresh"));
    const expected = ['{"error": {"class": "GenericError", "desc": "JSON parse error, stray \'\\uFFFD\'"}}', "FF", '{"return": 123456}'];
    expect(summary(frameAll([bytes]))).toEqual(expected);
    for (let i = 0; i <= bytes.length; i++) {
      expect(summary(frameAll([bytes.subarray(0, i), bytes.subarray(i)]))).toEqual(expected);
    }
    expect(summary(frameAll([...bytes].map((b) => Buffer.of(b))))).toEqual(expected);
  });

  test("the VM's queued boot syncs arrive as five sentinel/return pairs", () => {
    const frames = frameAll([recvBytes(byId("vm-boot-sync"))]);
    const returns = frames.filter((f) => f.kind === "line").map((f) => decodeReply((f as { bytes: Buffer }).bytes)).filter((r) => r.kind === "return");
    expect(returns).toEqual([1, 2, 3, 4, 5].map((value) => ({ kind: "return", value })));
    expect(frames.filter((f) => f.kind === "sentinel")).toHaveLength(5);
  });

  test("a 6740-byte file-read reply received in 2047-byte pieces is one line", () => {
    const t = byId("read-chunking");
    const frames = frameAll([recvBytes(t)]);
    expect(frames).toHaveLength(1);
    const r = decodeReply((frames[0] as { bytes: Buffer }).bytes);
    expect(r.kind === "return" && (r.value as { count: number }).count).toBe(5012);
  });

  test("int64 values come out exact: guest-get-time and a sync id above 2^53", () => {
    const time = decodeReply((frameAll([recvBytes(byId("get-time"))])[0] as { bytes: Buffer }).bytes);
    expect(time).toEqual({ kind: "return", value: 1795311140859137000n });
    const id = decodeReply((frameAll([recvBytes(byId("sync-bigint-id"))])[0] as { bytes: Buffer }).bytes);
    expect(id).toEqual({ kind: "return", value: 9007199254740993n });
  });

  test("non-ASCII in agent text arrives as \\u escapes with surrogate pairs and decodes exactly", () => {
    const r = decodeReply((frameAll([recvBytes(byId("non-ascii-in-out"))])[0] as { bytes: Buffer }).bytes);
    expect(r).toEqual({ kind: "error", errorClass: "GenericError", desc: "failed to open file '/var/qga/nonexistent/é😀' (mode: 'r'): No such file or directory" });
  });
});

describe("framer bounds", () => {
  test("a line over the limit is dropped up to its newline and reported once; memory stays bounded", () => {
    const f = createFramer(16);
    const frames: Frame[] = [];
    frames.push(...f.push(Buffer.from('{"return": "0123')));
    frames.push(...f.push(Buffer.from("456789abcdef")));
    expect(f.buffered).toBeLessThanOrEqual(16);
    frames.push(...f.push(Buffer.from('xyz"}\n{"return": 1}\n')));
    expect(summary(frames)).toEqual(["OVERFLOW", '{"return": 1}']);
  });
  test("a sentinel ends an overflowing line too, and drops a partial line", () => {
    expect(summary(frameAll([Buffer.from("x".repeat(40)), Buffer.from('\xff{"return": 2}\n', "latin1")], 16))).toEqual(["OVERFLOW", "FF", '{"return": 2}']);
    expect(summary(frameAll([Buffer.from('{"ret\xff{"return": 3}\n', "latin1")]))).toEqual(["FF", '{"return": 3}']);
  });
});

describe("decodeReply", () => {
  const d = (s: string) => decodeReply(Buffer.from(s));
  test("return, error, and the echoed QMP id", () => {
    expect(d('{"return": {}}')).toEqual({ kind: "return", value: {} });
    expect(d('{"return": {}, "id": "req-1"}')).toEqual({ kind: "return", value: {} });
    expect(d('{"error": {"class": "CommandNotFound", "desc": "Command guest-shutdown has been disabled"}}')).toEqual({
      kind: "error",
      errorClass: "CommandNotFound",
      desc: "Command guest-shutdown has been disabled",
    });
  });
  test.each([
    ['{"return": 1, "error": {"class": "x", "desc": "y"}}'],
    ['{"result": 1}'],
    ["{}"],
    ["[1]"],
    ['{"error": {"class": "GenericError"}}'],
    ['{"error": "boom"}'],
    ["{'return': 1}"],
    ['{"return": 1}x'],
  ])("malformed: %s", (s) => {
    expect(d(s).kind).toBe("malformed");
  });
});

describe("requests", () => {
  test("0xFF + guest-sync-delimited is byte for byte what the recording sent", () => {
    expect(encodeSyncDelimited(123456n)).toEqual(sendBytes(byId("sync-delimited-fresh"))[0]);
  });
  test("int64 arguments are written exactly", () => {
    expect(encodeRequest({ execute: "guest-sync", arguments: { id: 9007199254740993n } })).toEqual(sendBytes(byId("sync-bigint-id"))[0]);
  });
  test("sync ids are positive int64s from 8 random bytes", () => {
    expect(syncIdFrom(Buffer.alloc(8, 0xff))).toBe((1n << 63n) - 1n);
    expect(syncIdFrom(Buffer.alloc(8, 0))).toBe(1n);
    expect(syncIdFrom(Buffer.from("0102030405060708", "hex"))).toBe(0x0102030405060708n);
    expect(() => syncIdFrom(Buffer.alloc(4))).toThrow(RangeError);
  });
  test("checkRequest refuses what the agent would misread", () => {
    expect(checkRequest({ execute: "guest-ping" })).toBeNull();
    expect(checkRequest({ execute: "Guest Ping" })).toMatch(/not a guest agent command name/);
    expect(checkRequest({ execute: "guest-file-open", arguments: { path: "/tmp/a\0b" } })).toMatch(/path contains a NUL/);
    expect(checkRequest({ execute: "guest-file-open", arguments: { path: "/tmp/\ud800" } })).toMatch(/path is not well-formed Unicode/);
    expect(checkRequest({ execute: "guest-file-open", arguments: { path: "/tmp/😀" } })).toBeNull();
  });
  test("printable shows control characters and caps length", () => {
    expect(printable("a\u001b[31mb\nc")).toBe("a\\u001b[31mb\\u000ac");
    expect(printable("x".repeat(10), 4)).toBe("xxxx…");
  });
});
