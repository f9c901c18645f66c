// The five fuzz targets and their oracles: the qubesd reply decoder, the qubesd event-stream
// decoder, the property-value parsers, the guest-agent byte framer and the guest-agent reply
// decoder (strict JSON reader + typed reply decoders). Each oracle is a contract of the decoder
// (never throws, only typed errors) or an independent reference written here (a byte-at-a-time
// framer, a token-splitting event parser, JSON.parse as a differential), never the code under test.

import { isDeepStrictEqual } from "node:util";
import { decodeReply, EventStreamDecoder, type QubesEvent } from "../../src/providers/qubes/codec.js";
import { parsePropertyDefault, parsePropertyGet, parsePropertyGetAll, parseVmList, type Parsed, type PropertyValue } from "../../src/providers/qubes/properties.js";
import { createFramer, decodeReply as decodeQgaReply, type Frame } from "../../src/providers/qga/codec.js";
import { QgaError } from "../../src/providers/qga/errors.js";
import { DEFAULT_JSON_LIMITS, isJsonObject, parseJson, type JsonLimits, type JsonValue } from "../../src/providers/qga/json.js";
import {
  decodeCount,
  decodeEmpty,
  decodeFileRead,
  decodeFileSeek,
  decodeFileWrite,
  decodeFsfreezeStatus,
  decodeHostName,
  decodeInfo,
  decodeInterfaces,
  decodeOsInfo,
  int64,
  safeInt,
} from "../../src/providers/qga/replies.js";
import { chunk, check, OracleViolation, type FuzzTarget, type Stopwatch } from "./engine.js";
import { loadQgaSeeds, loadQubesdSeeds, propertySeeds, qgaLines, type QgaSeed, type QubesdSeed } from "./seeds.js";

const ascii = (s: string): Buffer => Buffer.from(s, "latin1");
const asBuffer = (b: Uint8Array): Buffer => Buffer.from(b.buffer, b.byteOffset, b.byteLength);

/** Outcome labels stay few: numbers, quoted text and positions are cut from reasons. */
export const reasonClass = (reason: string): string =>
  reason
    .replace(/^server sent .*$/s, "server sent an exception")
    .replace(/ at byte \d+$/, "")
    .replace(/ ["'[(].*$/, "")
    .replace(/\d+/g, "N");

/** The event-stream decoder's cap on one pending event (MAX_EVENT_BYTES in codec.ts). */
export const MAX_EVENT_BYTES = 1 << 20;

const CLASS_NAME_RE = /^[A-Za-z_][A-Za-z0-9_]*$/;

// ---------------------------------------------------------------------------------------------
// Reference models of the qubesd wire format, written from the protocol description
// (../shared/conformance/qubesd/README.md), not from codec.ts.

/** A kwargs object that keeps every name as an own member, `__proto__` included. */
function kwargsOf(pairs: Array<[string, string]>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of pairs) Object.defineProperty(out, k, { value: v, enumerable: true, writable: true, configurable: true });
  return out;
}

/** Parses whole events `1\0subject\0event\0(key\0value\0)*\0` from the front; stops at the first byte that is not one. */
export function referenceEventPrefix(b: Buffer): { events: QubesEvent[]; rest: number } {
  const events: QubesEvent[] = [];
  let pos = 0;
  outer: while (pos + 1 < b.length && b[pos] === 0x31 && b[pos + 1] === 0) {
    let p = pos + 2;
    const field = (): string | null => {
      const nul = b.indexOf(0, p);
      if (nul < 0) return null;
      const s = b.toString("utf8", p, nul);
      p = nul + 1;
      return s;
    };
    const subject = field();
    const event = field();
    if (subject === null || event === null) break;
    const pairs: Array<[string, string]> = [];
    for (;;) {
      const key = field();
      if (key === null) break outer;
      if (key === "") break;
      const value = field();
      if (value === null) break outer;
      pairs.push([key, value]);
    }
    events.push({ subject: subject === "" ? null : subject, event, kwargs: kwargsOf(pairs) });
    pos = p;
  }
  return { events, rest: pos };
}

/** `2\0class\0traceback\0format\0(arg\0)*` ending in NUL with a valid class name, split; else null. */
export function referenceException(b: Buffer): { qubesClass: string; traceback: string; format: string; args: number } | null {
  if (b.length < 2 || b[0] !== 0x32 || b[1] !== 0) return null;
  if (b.length > 2 && b[b.length - 1] !== 0) return null;
  const parts = b.length === 2 ? [] : b.subarray(2, b.length - 1).toString("latin1").split("\0");
  if (parts.length < 3) return null;
  const field = (i: number): string => Buffer.from(parts[i] ?? "", "latin1").toString("utf8");
  const qubesClass = field(0);
  if (!CLASS_NAME_RE.test(qubesClass)) return null;
  return { qubesClass, traceback: field(1), format: field(2), args: parts.length - 3 };
}

// ---------------------------------------------------------------------------------------------
// Target: decodeReply (one complete reply, read to EOF)

const QUBESD_TOKENS: readonly Buffer[] = ["0\0", "1\0", "2\0", "\0", "\0\0", "1\0\0connection-established\0\0", "2\0QubesException\0\0%s\0", "%s", "%r", "%d", "%%", "default=True type=int ", "\n", " "].map(ascii);

export function qubesdReplyTarget(seeds: readonly QubesdSeed[] = loadQubesdSeeds()): FuzzTarget & { recorded: readonly QubesdSeed[] } {
  return {
    name: "qubesd-reply",
    seeds: seeds.map((s) => s.bytes),
    recorded: seeds,
    mutation: { tokens: QUBESD_TOKENS, sentinel: 0 },
    run(input, _rng, watch) {
      const b = asBuffer(input);
      let r: ReturnType<typeof decodeReply>;
      try {
        r = watch.timed(() => decodeReply(b));
      } catch (e) {
        throw new OracleViolation(`decodeReply threw ${String(e)}`);
      }
      const startsWith = (c: number): boolean => b.length >= 2 && b[0] === c && b[1] === 0;
      switch (r.kind) {
        case "empty":
          check(b.length === 0, "empty reply for non-empty input");
          return "empty";
        case "ok":
          check(startsWith(0x30), "ok reply without 0\\0");
          check(r.body.equals(b.subarray(2)), "ok body is not the bytes after 0\\0");
          return "ok";
        case "exception": {
          const ref = referenceException(b);
          check(ref !== null, "exception decoded from a frame the grammar rejects");
          check(r.qubesClass === ref?.qubesClass && r.traceback === ref.traceback, "exception class or traceback differs from the frame");
          check(typeof r.message === "string", "exception message is not a string");
          if (ref?.args === 0) check(r.message === ref.format, "exception message without arguments is not the format field");
          return "exception";
        }
        case "events": {
          const ref = referenceEventPrefix(b);
          check(startsWith(0x31) && ref.rest === b.length, "events decoded from bytes that are not whole events");
          check(isDeepStrictEqual(r.events, ref.events), "events differ from the reference parse");
          return "events";
        }
        case "malformed": {
          check(typeof r.reason === "string" && r.reason.length > 0, "malformed without a reason");
          check(b.length > 0 && !startsWith(0x30), "malformed for an empty or 0\\0 reply");
          if (startsWith(0x32)) check(referenceException(b) === null, "a valid exception frame came back malformed");
          if (startsWith(0x31)) check(referenceEventPrefix(b).rest !== b.length, "whole events came back malformed");
          return `malformed:${reasonClass(r.reason)}`;
        }
        default: {
          const never: never = r;
          throw new OracleViolation(`unknown reply kind ${JSON.stringify(never)}`);
        }
      }
    },
  };
}

/** Each recorded reply decodes to the kind (and exception class) qubesd gave it. */
export function checkRecordedReplies(seeds: readonly QubesdSeed[]): number {
  for (const s of seeds) {
    const r = decodeReply(s.bytes);
    check(r.kind === s.kind, `${s.file} ${s.method}: recorded ${s.kind}, decoded ${r.kind}`);
    if (r.kind === "exception") check(r.qubesClass === s.excType, `${s.method}: class ${r.qubesClass}, recorded ${s.excType}`);
    if (r.kind === "ok") check(r.body.equals(s.bytes.subarray(2)), `${s.method}: body differs`);
    if (r.kind === "events") check(r.events.length > 0 && r.events[0]?.event === "connection-established", `${s.method}: first event`);
  }
  return seeds.length;
}

// ---------------------------------------------------------------------------------------------
// Target: EventStreamDecoder (a stream fed in arbitrary chunks)

type StreamRun = { events: QubesEvent[]; error: string | undefined; pending: number };

/** Feeds chunks; checks the error is sticky and the pending bytes stay within the cap. */
function feedStream(chunks: readonly Uint8Array[], watch: Stopwatch): StreamRun {
  const d = new EventStreamDecoder();
  const events: QubesEvent[] = [];
  let error: string | undefined;
  for (const c of chunks) {
    let r: { events: QubesEvent[]; error?: string };
    try {
      r = watch.timed(() => d.push(c));
    } catch (e) {
      throw new OracleViolation(`EventStreamDecoder.push threw ${String(e)}`);
    }
    if (error !== undefined) {
      check(r.error === error && r.events.length === 0, "error is not sticky");
      continue;
    }
    for (const e of r.events) events.push(e);
    error = r.error;
    if (error === undefined) check(d.pendingBytes <= MAX_EVENT_BYTES, `pending ${d.pendingBytes} bytes exceeds the cap without an error`);
  }
  return { events, error, pending: d.pendingBytes };
}

/** Whether the decoder must stop at `rest` with an error, given the bytes from there on. */
function streamMustFail(r: Buffer): boolean {
  if (r.length === 0) return false;
  if (r[0] === 0x31) return (r.length >= 2 && r[1] !== 0) || r.length > MAX_EVENT_BYTES;
  if (r[0] === 0x32 && r.length >= 2 && r[1] === 0) return referenceException(r) !== null || r.length > MAX_EVENT_BYTES;
  return true;
}

function streamSeeds(seeds: readonly QubesdSeed[]): Buffer[] {
  const streams = seeds.filter((s) => s.kind === "events").map((s) => s.bytes);
  const exceptions = seeds.filter((s) => s.kind === "exception").map((s) => s.bytes);
  const out = [...streams, Buffer.concat(streams)];
  for (const [i, s] of streams.entries()) {
    const exc = exceptions[i % Math.max(1, exceptions.length)];
    if (exc) out.push(Buffer.concat([s, exc]));
  }
  return out;
}

export function qubesdEventsTarget(seeds: readonly QubesdSeed[] = loadQubesdSeeds()): FuzzTarget {
  return {
    name: "qubesd-events",
    seeds: streamSeeds(seeds),
    mutation: { tokens: QUBESD_TOKENS, sentinel: 0 },
    run(input, rng, watch) {
      const b = asBuffer(input);
      const whole = feedStream([b], watch);
      const chunked = feedStream(chunk(b, rng), watch);
      const ref = referenceEventPrefix(b);
      const rest = b.subarray(ref.rest);
      check(isDeepStrictEqual(whole.events, ref.events), "events differ from the reference parse");
      check(isDeepStrictEqual(chunked.events, whole.events), "a chunking changed the events");
      check((whole.error !== undefined) === streamMustFail(rest), `error ${JSON.stringify(whole.error)} where the reference says ${streamMustFail(rest) ? "one" : "none"} is due`);
      if (whole.error !== undefined) check(chunked.error !== undefined, "a chunking lost the error");
      else if (chunked.error !== undefined) check(rest[0] === 0x32 && rest[1] === 0, "a chunking raised an error on an incomplete event");
      else {
        check(whole.pending === rest.length, `pending ${whole.pending} bytes, reference ${rest.length}`);
        check(chunked.pending === whole.pending, "a chunking changed the pending bytes");
      }
      if (whole.error?.startsWith("server sent ")) {
        const exc = referenceException(rest);
        check(exc !== null && whole.error.startsWith(`server sent ${exc.qubesClass}: `), "exception error names another class");
      }
      if (whole.error === undefined) return whole.pending === 0 ? "events" : "incomplete";
      return `error:${reasonClass(whole.error)}`;
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Target: property-value parsers (server text)

const PROPERTY_TYPES = new Set(["bool", "int", "str", "vm", "label"]);

/** The canonical decimal text of an integer literal: no leading zeros, no "-0". */
const canonicalInt = (raw: string): string => {
  const neg = raw.startsWith("-");
  const digits = raw.replace(/^-?0*/, "") || "0";
  return neg && digits !== "0" ? `-${digits}` : digits;
};

function checkTypedValue(v: Omit<PropertyValue, "isDefault">, where: string): void {
  check(PROPERTY_TYPES.has(v.type), `${where}: type ${v.type}`);
  switch (v.type) {
    case "bool":
      check(v.raw === "" ? v.value === null : v.value === (v.raw === "True") && (v.raw === "True" || v.raw === "False"), `${where}: bool ${JSON.stringify(v.raw)} → ${String(v.value)}`);
      return;
    case "int":
      if (v.raw === "") return check(v.value === null, `${where}: empty int is not null`);
      // Exact within ±(2^53-1). Past that the value is the nearest double and `raw` keeps the exact
      // text: real qubesd sends such ints (the global maxmem is 2^54-1 in the recording).
      check(typeof v.value === "number" && /^-?[0-9]+$/.test(v.raw) && v.value === Number(v.raw), `${where}: int ${JSON.stringify(v.raw.slice(0, 60))} decoded as ${String(v.value)}`);
      if (Number.isSafeInteger(v.value)) check(String(v.value) === canonicalInt(v.raw), `${where}: int ${JSON.stringify(v.raw)} decoded as ${String(v.value)}`);
      return;
    case "str":
      check(v.value === v.raw, `${where}: str value differs from raw`);
      return;
    case "vm":
    case "label":
      check(v.value === (v.raw === "" ? null : v.raw), `${where}: ${v.type} value`);
      return;
  }
}

function checkParsed<T>(r: Parsed<T>, where: string): r is { ok: true; value: T } {
  check(typeof r === "object" && r !== null && typeof r.ok === "boolean", `${where}: result is not a Parsed`);
  if (!r.ok) check(typeof r.error === "string" && r.error.length > 0, `${where}: error without text`);
  return r.ok;
}

const PROPERTY_TOKENS: readonly Buffer[] = ["default=True type=int ", "default=False type=vm ", "type=bool ", " class=AppVM state=Halted", " uuid=", "=", " ", "\n", "\\n", "\\\\", "\\", "True", "-", "0"].map(ascii);

export function propertyTarget(seeds: readonly QubesdSeed[] = loadQubesdSeeds()): FuzzTarget & { recorded: ReturnType<typeof propertySeeds> } {
  const recorded = propertySeeds(seeds);
  return {
    name: "qubesd-properties",
    seeds: [...recorded.get, ...recorded.getAll, ...recorded.getDefault, ...recorded.vmList],
    recorded,
    mutation: { tokens: PROPERTY_TOKENS, sentinel: 0x0a },
    run(input, _rng, watch) {
      // The client reads bodies as UTF-8 text (client.ts `text`), so the parsers see what toString gives.
      const body = asBuffer(input).toString("utf8");
      const call = <T>(name: string, fn: () => Parsed<T>): Parsed<T> => {
        try {
          return watch.timed(fn);
        } catch (e) {
          throw new OracleViolation(`${name} threw ${String(e)}`);
        }
      };
      const accepted: string[] = [];
      const get = call("parsePropertyGet", () => parsePropertyGet(body));
      if (checkParsed(get, "Get")) {
        accepted.push("get");
        checkTypedValue(get.value, "Get");
        check(body.startsWith(`default=`) && body.endsWith(` ${get.value.raw}`) && body.includes(` type=${get.value.type} `), "Get value is not the body's");
      }
      const all = call("parsePropertyGetAll", () => parsePropertyGetAll(body));
      if (checkParsed(all, "GetAll")) {
        accepted.push("getAll");
        const names = new Set(body.split("\n").filter((l) => l !== "").map((l) => l.slice(0, l.indexOf(" "))));
        check(all.value.size === names.size, "GetAll lost or invented a property");
        for (const [name, v] of all.value) {
          check(names.has(name) && name !== "" && !name.includes(" "), `GetAll name ${JSON.stringify(name)}`);
          checkTypedValue(v, `GetAll ${name}`);
        }
      }
      const def = call("parsePropertyDefault", () => parsePropertyDefault(body));
      if (checkParsed(def, "GetDefault")) {
        accepted.push("getDefault");
        if (def.value === null) check(body === "", "GetDefault null for a non-empty body");
        else checkTypedValue(def.value, "GetDefault");
      }
      const list = call("parseVmList", () => parseVmList(body));
      if (checkParsed(list, "vm.List")) {
        accepted.push("vmList");
        check(list.value.length === body.split("\n").filter((l) => l !== "").length, "vm.List entries are not one per line");
        for (const e of list.value) {
          check(e.name !== "" && !/[ \n]/.test(e.name + e.klass + e.state + (e.uuid ?? "")), `vm.List entry ${JSON.stringify(e).slice(0, 120)}`);
        }
      }
      return accepted.length === 0 ? "rejected" : `accepted:${accepted.join("+")}`;
    },
  };
}

/** Every recorded body parses with the parser the client uses for it. */
export function checkRecordedProperties(recorded: ReturnType<typeof propertySeeds>): number {
  let n = 0;
  const expectOk = <T>(r: Parsed<T>, what: string): T => {
    if (!r.ok) throw new OracleViolation(`${what}: ${r.error}`);
    n++;
    return r.value;
  };
  for (const b of recorded.get) checkTypedValue(expectOk(parsePropertyGet(b.toString("utf8")), "recorded Get"), "recorded Get");
  for (const b of recorded.getAll) {
    const m = expectOk(parsePropertyGetAll(b.toString("utf8")), "recorded GetAll");
    check(m.size === b.toString("utf8").split("\n").filter((l) => l !== "").length && m.size > 0, "recorded GetAll size");
  }
  for (const b of recorded.getDefault) expectOk(parsePropertyDefault(b.toString("utf8")), "recorded GetDefault");
  for (const b of recorded.vmList) check(expectOk(parseVmList(b.toString("utf8")), "recorded vm.List").length > 0, "recorded vm.List empty");
  return n;
}

// ---------------------------------------------------------------------------------------------
// Target: the guest-agent byte framer

type RefFrame = { kind: "line"; bytes: Buffer } | { kind: "sentinel" } | { kind: "overflow"; limit: number };

/** The framer's contract, one byte at a time: `\n` ends a line, 0xFF drops the partial line, a line over the limit is dropped once. */
export function referenceFrames(b: Buffer, limit: number): { frames: RefFrame[]; buffered: number } {
  const frames: RefFrame[] = [];
  let start = 0;
  let size = 0;
  let discarding = false;
  for (let i = 0; i < b.length; i++) {
    const c = b[i];
    if (c === 0xff) {
      frames.push({ kind: "sentinel" });
      discarding = false;
      size = 0;
      start = i + 1;
    } else if (c === 0x0a) {
      if (!discarding) frames.push({ kind: "line", bytes: b.subarray(start, i) });
      discarding = false;
      size = 0;
      start = i + 1;
    } else if (!discarding && ++size > limit) {
      frames.push({ kind: "overflow", limit });
      discarding = true;
      size = 0;
    }
  }
  return { frames, buffered: size };
}

const sameFrames = (a: readonly Frame[], b: readonly RefFrame[]): boolean =>
  a.length === b.length &&
  a.every((f, i) => {
    const g = b[i];
    if (!g || f.kind !== g.kind) return false;
    if (f.kind === "line" && g.kind === "line") return f.bytes.equals(g.bytes);
    if (f.kind === "overflow" && g.kind === "overflow") return f.limit === g.limit;
    return true;
  });

const QGA_TOKENS: readonly Buffer[] = ['{"return": ', '{"error": {"class": "GenericError", "desc": "x"}}', "\n", "\xff", "\xff\n", '"', "\\", "\\u", "\\ud800", "[", "]", "{", "}", ":", ",", "null", "true", "-", "0", "1e", '"id": 1, '].map(ascii);

export function qgaFramerTarget(seeds: readonly QgaSeed[] = loadQgaSeeds()): FuzzTarget {
  return {
    name: "qga-framer",
    seeds: seeds.map((s) => s.stream),
    mutation: { tokens: QGA_TOKENS, sentinel: 0xff },
    run(input, rng, watch) {
      const b = asBuffer(input);
      const limit = rng.pick([0, 1, 8, 64, 1024, 8 * 1024 * 1024]);
      const f = createFramer(limit);
      const frames: Frame[] = [];
      for (const c of chunk(b, rng)) {
        try {
          // A loop, not push(...): one chunk can hold more frames than a call may take arguments.
          for (const x of watch.timed(() => f.push(c))) frames.push(x);
        } catch (e) {
          throw new OracleViolation(`framer threw ${String(e)}`);
        }
        check(f.buffered <= limit, `framer holds ${f.buffered} bytes over its limit ${limit}`);
      }
      const ref = referenceFrames(b, limit);
      check(sameFrames(frames, ref.frames), `frames differ from the byte-at-a-time reference (limit ${limit})`);
      check(f.buffered === ref.buffered, `framer holds ${f.buffered} bytes, reference ${ref.buffered}`);
      const kinds = new Set(frames.map((x) => x.kind));
      return kinds.has("overflow") ? "overflow" : kinds.has("sentinel") ? "lines+sentinel" : kinds.has("line") ? "lines" : "nothing";
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Target: the guest-agent reply decoder (strict JSON reader, reply shape, typed decoders)

/** Ways the strict reader may refuse what JSON.parse accepts: its limits and its int64/Unicode rules. */
const STRICTER_THAN_JSON_PARSE = /^(duplicate member|nesting deeper than|number longer than|string longer than|unpaired surrogate escape|number out of range)/;

/** parseJson's value against JSON.parse's: bigints are integers JSON.parse rounded. */
export function sameAsJsonParse(a: JsonValue, b: unknown): boolean {
  if (typeof a === "bigint") return typeof b === "number" && Number(a) === b && !Number.isSafeInteger(b);
  if (typeof a === "number") return Object.is(a, b);
  if (a === null || typeof a !== "object") return a === b;
  if (Array.isArray(a)) return Array.isArray(b) && a.length === b.length && a.every((x, i) => sameAsJsonParse(x, b[i]));
  if (typeof b !== "object" || b === null || Array.isArray(b)) return false;
  const ka = Object.keys(a);
  const kb = Object.keys(b);
  return isDeepStrictEqual(ka, kb) && ka.every((k) => sameAsJsonParse(a[k] as JsonValue, (b as Record<string, unknown>)[k]));
}

const fatalUtf8 = new TextDecoder("utf-8", { fatal: true });

/** Differential oracle: the strict reader agrees with JSON.parse, or refuses for one of its stated reasons. */
export function checkAgainstJsonParse(input: Uint8Array, r: ReturnType<typeof parseJson>): void {
  let text: string | null;
  try {
    text = fatalUtf8.decode(input);
  } catch {
    text = null;
  }
  let native: { ok: true; value: unknown } | { ok: false };
  try {
    native = text === null ? { ok: false } : { ok: true, value: JSON.parse(text) };
  } catch {
    native = { ok: false };
  }
  if (r.ok) {
    check(native.ok, "parseJson accepted what JSON.parse (or UTF-8) rejects");
    check(native.ok && sameAsJsonParse(r.value, native.value), "parseJson's value differs from JSON.parse's");
  } else {
    check(typeof r.reason === "string" && / at byte \d+$/.test(r.reason), `reason without a position: ${r.reason}`);
    if (native.ok) check(STRICTER_THAN_JSON_PARSE.test(r.reason), `parseJson refused valid JSON: ${r.reason}`);
  }
}

type TypedDecoder = readonly [name: string, fn: (v: JsonValue) => unknown];

/** Every typed decoder of replies.ts; each must return a value or throw QgaError "bad-reply". */
export const TYPED_DECODERS: readonly TypedDecoder[] = [
  ["guest-info", decodeInfo],
  ["empty", (v) => decodeEmpty("guest-ping", v)],
  ["guest-file-read", (v) => {
    const r = decodeFileRead(v, 1 << 20);
    check(r.bytes.length === r.count && r.count >= 0, "file-read bytes differ from count");
    return r;
  }],
  ["guest-file-write", decodeFileWrite],
  ["guest-file-seek", decodeFileSeek],
  ["guest-fsfreeze-status", decodeFsfreezeStatus],
  ["count", (v) => decodeCount("guest-fsfreeze-freeze", v)],
  ["guest-network-get-interfaces", decodeInterfaces],
  ["guest-get-osinfo", decodeOsInfo],
  ["guest-get-host-name", decodeHostName],
  ["int64", (v) => {
    const n = int64("guest-sync", v, "return");
    check(n >= -(1n << 63n) && n < 1n << 63n, "int64 outside int64");
    return n;
  }],
  ["safeInt", (v) => safeInt("guest-file-open", v, "return")],
];

/** The typed decoder the client applies to each recorded transcript's return value. */
export function decoderFor(id: string): TypedDecoder | null {
  const by = (name: string): TypedDecoder | null => TYPED_DECODERS.find(([n]) => n === name) ?? null;
  if (/^(vm-)?info$/.test(id)) return by("guest-info");
  if (/^(ping|file-flush|file-close)$/.test(id)) return by("empty");
  if (/^file-read/.test(id) || id === "read-chunking") return by("guest-file-read");
  if (/^file-write/.test(id)) return by("guest-file-write");
  if (/^file-seek/.test(id)) return by("guest-file-seek");
  if (id === "fsfreeze-status") return by("guest-fsfreeze-status");
  if (id === "network-get-interfaces") return by("guest-network-get-interfaces");
  if (id === "get-osinfo") return by("guest-get-osinfo");
  if (id === "get-host-name") return by("guest-get-host-name");
  if (/^(sync|sync-negative-id|sync-bigint-id)$/.test(id)) return by("int64");
  if (id === "file-open") return by("safeInt");
  return null;
}

function runTyped(name: string, fn: (v: JsonValue) => unknown, v: JsonValue, watch: Stopwatch): boolean {
  try {
    watch.timed(() => fn(v));
    return true;
  } catch (e) {
    if (e instanceof OracleViolation) throw e;
    check(e instanceof QgaError && e.code === "bad-reply", `${name} threw ${e instanceof Error ? `${e.name} ${e.message}` : String(e)} instead of QgaError bad-reply`);
    return false;
  }
}

/** The limits the client uses (maxStringBytes = its reply cap), the defaults, and tight ones that trip every limit. */
const LIMIT_SETS: readonly JsonLimits[] = [
  { ...DEFAULT_JSON_LIMITS, maxStringBytes: 8 * 1024 * 1024 },
  DEFAULT_JSON_LIMITS,
  { maxDepth: 3, maxStringBytes: 32, maxNumberChars: 12 },
];

export function qgaReplyTarget(seeds: readonly QgaSeed[] = loadQgaSeeds()): FuzzTarget {
  return {
    name: "qga-reply",
    seeds: seeds.flatMap((s) => qgaLines(s.stream)),
    mutation: { tokens: QGA_TOKENS, sentinel: 0xff },
    run(input, rng, watch) {
      const limits = rng.pick(LIMIT_SETS);
      let r: ReturnType<typeof decodeQgaReply>;
      let parsed: ReturnType<typeof parseJson>;
      try {
        r = watch.timed(() => decodeQgaReply(input, limits));
        parsed = watch.timed(() => parseJson(input, limits));
      } catch (e) {
        throw new OracleViolation(`decodeReply/parseJson threw ${String(e)}`);
      }
      checkAgainstJsonParse(input, parsed);
      // The reply's shape, from the parsed document.
      const v = parsed.ok ? parsed.value : undefined;
      const keys = v !== undefined && isJsonObject(v) ? Object.keys(v).filter((k) => k !== "id") : [];
      const err = v !== undefined && isJsonObject(v) ? v.error : undefined;
      const expected =
        v === undefined || !isJsonObject(v) || keys.length !== 1
          ? "malformed"
          : keys[0] === "return"
            ? "return"
            : keys[0] === "error" && isJsonObject(err) && typeof err.class === "string" && typeof err.desc === "string"
              ? "error"
              : "malformed";
      check(r.kind === expected, `reply kind ${r.kind}, expected ${expected}`);
      if (r.kind === "malformed") {
        check(typeof r.reason === "string" && r.reason.length > 0, "malformed without a reason");
        return `malformed:${reasonClass(r.reason)}`;
      }
      if (r.kind === "error") {
        check(isJsonObject(err) && r.errorClass === err.class && r.desc === err.desc, "error class/desc differ from the document");
        return "agent-error";
      }
      check(v !== undefined && isJsonObject(v) && isDeepStrictEqual(r.value, v.return), "return value differs from the document");
      let typed = 0;
      for (const [name, fn] of TYPED_DECODERS) if (runTyped(name, fn, r.value, watch)) typed++;
      return typed > 0 ? "return:typed-ok" : "return:typed-bad-reply";
    },
  };
}

/** Every recorded line is a reply (never malformed); return values decode with the client's decoder; the int64 id is exact. */
export function checkRecordedQga(seeds: readonly QgaSeed[]): number {
  let n = 0;
  for (const s of seeds) {
    for (const line of qgaLines(s.stream)) {
      const r = decodeQgaReply(line);
      check(r.kind !== "malformed", `${s.id}: recorded line decoded as malformed`);
      checkAgainstJsonParse(line, parseJson(line));
      const dec = decoderFor(s.id);
      if (r.kind === "return" && dec) check(runTyped(dec[0], dec[1], r.value, { timed: (fn) => fn() }), `${s.id}: ${dec[0]} refused the recorded reply`);
      n++;
    }
  }
  const bigint = seeds.find((s) => s.id === "sync-bigint-id");
  const r = bigint ? decodeQgaReply(qgaLines(bigint.stream)[0] ?? Buffer.alloc(0)) : null;
  check(r?.kind === "return" && r.value === 9007199254740993n, "sync-bigint-id did not come back as the exact int64 9007199254740993");
  return n;
}

export function allTargets(): FuzzTarget[] {
  const qubesd = loadQubesdSeeds();
  const qga = loadQgaSeeds();
  return [qubesdReplyTarget(qubesd), qubesdEventsTarget(qubesd), propertyTarget(qubesd), qgaFramerTarget(qga), qgaReplyTarget(qga)];
}
