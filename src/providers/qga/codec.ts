// The guest-agent wire format: requests are JSON objects (the agent's parser counts braces, so no
// framing is added); replies are lines of raw bytes ending in `\n`, and a 0xFF byte is the
// sentinel guest-sync-delimited puts before its reply. The framer splits BYTES, never decoded
// text, because 0xFF is not UTF-8. Pure functions and a small stateful splitter; no I/O.

import { DEFAULT_JSON_LIMITS, isJsonObject, parseJson, stringifyJson, type JsonLimits, type JsonObject, type JsonValue } from "./json.js";

export const SENTINEL = 0xff;
const NEWLINE = 0x0a;
/** The framer's line before its first byte; never written to (appending always grows first). */
const NO_BYTES = Buffer.alloc(0);

export type Frame =
  /** One reply line, without its `\n`. */
  | { kind: "line"; bytes: Buffer }
  /** A 0xFF byte: whatever partial line preceded it was dropped. */
  | { kind: "sentinel" }
  /** A line longer than the limit was dropped (up to its `\n` or the next sentinel). */
  | { kind: "overflow"; limit: number };

export type Framer = {
  push(chunk: Uint8Array): Frame[];
  /** Bytes of the unfinished line held in memory. */
  readonly buffered: number;
};

/** Splits the agent's byte stream into lines and sentinels, holding at most `maxLineBytes`. */
export function createFramer(maxLineBytes: number): Framer {
  // The unfinished line is line[0, size): one buffer grown by doubling (capped at the limit), so a
  // line trickled in one-byte chunks costs its bytes, not a Buffer object per chunk.
  let line: Buffer = NO_BYTES;
  let size = 0;
  let discarding = false;
  const push = (chunk: Uint8Array): Frame[] => {
    const buf = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    const frames: Frame[] = [];
    let i = 0;
    // Each delimiter is searched for again only once passed: a chunk full of one of them is scanned once.
    let nl = buf.indexOf(NEWLINE);
    let ff = buf.indexOf(SENTINEL);
    while (i < buf.length) {
      if (nl >= 0 && nl < i) nl = buf.indexOf(NEWLINE, i);
      if (ff >= 0 && ff < i) ff = buf.indexOf(SENTINEL, i);
      const end = nl < 0 ? ff : ff < 0 ? nl : Math.min(nl, ff);
      if (end < 0) {
        append(buf.subarray(i), frames);
        break;
      }
      if (end > i) append(buf.subarray(i, end), frames);
      if (end === ff) {
        line = NO_BYTES;
        size = 0;
        discarding = false;
        frames.push({ kind: "sentinel" });
      } else if (discarding) {
        discarding = false;
      } else {
        // The frame keeps this buffer; the next line starts a new one.
        frames.push({ kind: "line", bytes: line.subarray(0, size) });
        line = NO_BYTES;
        size = 0;
      }
      i = end + 1;
    }
    return frames;
  };
  const append = (piece: Buffer, frames: Frame[]): void => {
    if (discarding) return;
    if (size + piece.length > maxLineBytes) {
      line = NO_BYTES;
      size = 0;
      discarding = true;
      frames.push({ kind: "overflow", limit: maxLineBytes });
      return;
    }
    if (size + piece.length > line.length) {
      const grown = Buffer.allocUnsafe(Math.min(maxLineBytes, Math.max(size + piece.length, line.length * 2)));
      line.copy(grown, 0, 0, size);
      line = grown;
    }
    // Copy: the transport may reuse its buffers, and a slice would pin the whole chunk.
    piece.copy(line, size);
    size += piece.length;
  };
  return {
    push,
    get buffered() {
      return size;
    },
  };
}

export type QgaRequest = { execute: string; arguments?: JsonObject };

const COMMAND_RE = /^[a-z][a-z0-9-]{0,63}$/;
const LONE_SURROGATE_RE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/** Why a request must not be sent, or null. Strings must be well-formed Unicode without NUL. */
export function checkRequest(req: QgaRequest): string | null {
  if (!COMMAND_RE.test(req.execute)) return `${JSON.stringify(req.execute)} is not a guest agent command name`;
  const bad = req.arguments ? findBadString(req.arguments) : null;
  return bad ? `argument ${bad} of ${req.execute}` : null;
}

function findBadString(v: JsonValue, where = ""): string | null {
  if (typeof v === "string") {
    if (LONE_SURROGATE_RE.test(v)) return `${where || "value"} is not well-formed Unicode`;
    if (v.includes("\0")) return `${where || "value"} contains a NUL character`;
    return null;
  }
  if (Array.isArray(v)) {
    for (const [i, x] of v.entries()) {
      const bad = findBadString(x, `${where}[${i}]`);
      if (bad) return bad;
    }
    return null;
  }
  if (isJsonObject(v)) {
    for (const [k, x] of Object.entries(v)) {
      const bad = findBadString(k, `${where}.${k} (name)`) ?? findBadString(x, where ? `${where}.${k}` : k);
      if (bad) return bad;
    }
  }
  return null;
}

/** The request bytes: compact JSON in UTF-8 (which never contains 0xFF). Call checkRequest first. */
export function encodeRequest(req: QgaRequest): Buffer {
  const obj: JsonObject = { execute: req.execute };
  if (req.arguments !== undefined) obj.arguments = req.arguments;
  return Buffer.from(stringifyJson(obj), "utf8");
}

/** 0xFF (flushes the agent's parser of any stale partial input) + guest-sync-delimited. */
export function encodeSyncDelimited(id: bigint): Buffer {
  return Buffer.concat([Buffer.of(SENTINEL), encodeRequest({ execute: "guest-sync-delimited", arguments: { id } })]);
}

const INT64_MAX = (1n << 63n) - 1n;

/** A sync id from 8 random bytes: a positive int64, as the schema asks ("randomly generated 64-bit integer"). */
export function syncIdFrom(random: Uint8Array): bigint {
  if (random.length < 8) throw new RangeError("syncIdFrom needs 8 random bytes");
  const id = Buffer.from(random.buffer, random.byteOffset, 8).readBigUInt64BE(0) & INT64_MAX;
  return id === 0n ? 1n : id;
}

export type Reply =
  | { kind: "return"; value: JsonValue }
  | { kind: "error"; errorClass: string; desc: string }
  | { kind: "malformed"; reason: string };

/** Decodes one reply line: `{"return": V}` or `{"error": {"class": C, "desc": D}}`, optionally with `"id"`. */
export function decodeReply(line: Uint8Array, limits: JsonLimits = DEFAULT_JSON_LIMITS): Reply {
  const parsed = parseJson(line, limits);
  if (!parsed.ok) return { kind: "malformed", reason: `not JSON: ${parsed.reason}` };
  const v = parsed.value;
  if (!isJsonObject(v)) return { kind: "malformed", reason: "reply is not a JSON object" };
  const keys = Object.keys(v).filter((k) => k !== "id");
  if (keys.length !== 1) return { kind: "malformed", reason: `reply members are ${JSON.stringify(keys.slice(0, 8))}, expected "return" or "error"` };
  if (keys[0] === "return") return { kind: "return", value: v.return! };
  if (keys[0] === "error") {
    const e = v.error;
    if (!isJsonObject(e) || typeof e.class !== "string" || typeof e.desc !== "string") {
      return { kind: "malformed", reason: 'error reply lacks string "class" and "desc"' };
    }
    return { kind: "error", errorClass: e.class, desc: e.desc };
  }
  return { kind: "malformed", reason: `unexpected reply member ${JSON.stringify(keys[0]!.slice(0, 64))}` };
}

/** Agent text for a message: control characters made visible, length capped. The guest wrote it. */
export function printable(text: string, max = 300): string {
  const clean = text.replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);
  return clean.length > max ? `${clean.slice(0, max)}…` : clean;
}
