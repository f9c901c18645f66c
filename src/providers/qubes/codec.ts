// The qubesd wire format (reference §1.1, §1.4): request header `<method>+<arg> <src> name
// <dest>\0` + payload, and the OK / EVENT / EXCEPTION / empty replies. Used by the client and by
// the simulator alike; pure functions over bytes, no I/O. Decoding never throws on bad input:
// malformed bytes come back as values the caller turns into typed errors.

import { MAX_REQUEST_BYTES, QREXEC_ARG_RE, checkDestination } from "../../model/qubes-rules.js";

export type AdminRequest = {
  method: string;
  /** Service argument; "" when none. */
  arg: string;
  /** Calling qube; "dom0" from the dom0 socket. */
  src: string;
  /** Destination qube name or `uuid:<uuid>`. */
  dest: string;
  payload: Uint8Array;
};

const METHOD_RE = /^[A-Za-z0-9_.-]+$/;

/** Checks a request against what qrexec and qubesd accept; returns the reason or null. */
export function checkRequest(req: Omit<AdminRequest, "payload"> & { payload?: Uint8Array }): string | null {
  if (!METHOD_RE.test(req.method) || req.method.length > 255) {
    return `method name ${JSON.stringify(req.method)} is not a valid qrexec service name`;
  }
  if (!QREXEC_ARG_RE.test(req.arg)) {
    return `argument ${JSON.stringify(req.arg)} of ${req.method} has characters outside the qrexec set [A-Za-z0-9_.+-]`;
  }
  const destError = checkDestination(req.dest);
  if (destError) return `destination ${JSON.stringify(req.dest)} of ${req.method}: ${destError}`;
  const srcError = checkDestination(req.src);
  if (srcError) return `source ${JSON.stringify(req.src)}: ${srcError}`;
  const size = requestSize(req);
  if (size > MAX_REQUEST_BYTES) {
    return `request ${req.method}+${req.arg} to ${req.dest} is ${size} bytes; qubesd accepts at most ${MAX_REQUEST_BYTES}`;
  }
  return null;
}

function requestSize(req: { method: string; arg: string; src: string; dest: string; payload?: Uint8Array }): number {
  return Buffer.byteLength(`${req.method}+${req.arg} ${req.src} name ${req.dest}\0`, "latin1") + (req.payload?.length ?? 0);
}

/** The exact bytes qubesd reads from its socket. Call checkRequest first. */
export function encodeRequest(req: AdminRequest): Buffer {
  const header = Buffer.from(`${req.method}+${req.arg} ${req.src} name ${req.dest}\0`, "latin1");
  return Buffer.concat([header, req.payload]);
}

export type RequestFrame =
  | { ok: true; request: AdminRequest; destType: "name" | "keyword" }
  | { ok: false; reason: string };

/** Server side: parses a complete request as qubesd does (split at the first NUL, 4 fields). */
export function decodeRequest(buf: Uint8Array): RequestFrame {
  const nul = buf.indexOf(0);
  if (nul < 0) return { ok: false, reason: "no NUL after the request header" };
  const header = Buffer.from(buf.subarray(0, nul)).toString("latin1");
  const payload = buf.subarray(nul + 1);
  const fields = header.split(" ");
  if (fields.length !== 4) return { ok: false, reason: "header must have 4 space-separated fields" };
  const [methodArg = "", src = "", destType = "", destRaw = ""] = fields;
  let dest = destRaw;
  let kind: "name" | "keyword";
  if (destType === "keyword") {
    if (destRaw !== "adminvm") return { ok: false, reason: `unknown destination keyword ${destRaw}` };
    dest = "dom0";
    kind = "keyword";
  } else if (destType === "name") {
    kind = "name";
  } else {
    return { ok: false, reason: `invalid destination type ${destType}` };
  }
  const plus = methodArg.indexOf("+");
  if (plus < 0) return { ok: false, reason: "no '+' between method and argument" };
  return {
    ok: true,
    destType: kind,
    request: { method: methodArg.slice(0, plus), arg: methodArg.slice(plus + 1), src, dest, payload },
  };
}

// ---------------------------------------------------------------------------------------------
// Replies

export type QubesEvent = {
  /** Qube name, or null for events on the Qubes app object (empty subject on the wire). */
  subject: string | null;
  event: string;
  kwargs: Record<string, string>;
};

export type Reply =
  | { kind: "ok"; body: Buffer }
  | { kind: "exception"; qubesClass: string; traceback: string; message: string }
  | { kind: "empty" }
  | { kind: "events"; events: QubesEvent[] }
  | { kind: "malformed"; reason: string };

/** Decodes one complete non-stream reply (read to EOF). Never throws. */
export function decodeReply(buf: Uint8Array): Reply {
  const b = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  if (b.length === 0) return { kind: "empty" };
  if (b.length < 2 || b[1] !== 0) return { kind: "malformed", reason: `reply starts with ${preview(b)}` };
  switch (b[0]) {
    case 0x30: // '0'
      return { kind: "ok", body: b.subarray(2) };
    case 0x32: // '2'
      return decodeException(b);
    case 0x31: {
      const dec = new EventStreamDecoder();
      const r = dec.push(b);
      if (r.error) return { kind: "malformed", reason: r.error };
      if (dec.pendingBytes > 0) return { kind: "malformed", reason: "truncated event" };
      return { kind: "events", events: r.events };
    }
    default:
      return { kind: "malformed", reason: `unknown reply type byte ${b[0]}` };
  }
}

function decodeException(b: Buffer): Reply {
  // 2\0 type \0 traceback \0 format \0 (field \0)*
  const parts: Buffer[] = [];
  let start = 2;
  for (let i = 2; i < b.length; i++) {
    if (b[i] === 0) {
      parts.push(b.subarray(start, i));
      start = i + 1;
    }
  }
  if (start !== b.length) return { kind: "malformed", reason: "exception reply not terminated by NUL" };
  if (parts.length < 3) return { kind: "malformed", reason: "exception reply has fewer than 3 fields" };
  const [type, traceback, format, ...fields] = parts.map((p) => p.toString("utf8"));
  if (!type || !/^[A-Za-z_][A-Za-z0-9_]*$/.test(type)) {
    return { kind: "malformed", reason: "exception reply has an invalid class name" };
  }
  const message = fields.length > 0 ? applyFormat(format ?? "", fields) : (format ?? "");
  return { kind: "exception", qubesClass: type, traceback: traceback ?? "", message };
}

/** Python `format % args` for the %s/%d/%r conversions the protocol's format fields use. */
function applyFormat(format: string, args: string[]): string {
  let i = 0;
  const out = format.replace(/%([%sdri])/g, (m, c: string) => {
    if (c === "%") return "%";
    if (i >= args.length) return m;
    const a = args[i++] ?? "";
    return c === "r" ? `'${a}'` : a;
  });
  return i < args.length ? `${out} (${args.slice(i).join(", ")})` : out;
}

function preview(b: Buffer): string {
  return JSON.stringify(b.subarray(0, 16).toString("latin1"));
}

export const encodeOk = (body: string | Uint8Array = ""): Buffer =>
  Buffer.concat([Buffer.from([0x30, 0]), typeof body === "string" ? Buffer.from(body, "utf8") : body]);

export const encodeException = (qubesClass: string, message: string, traceback = ""): Buffer =>
  Buffer.from(`2\0${qubesClass}\0${traceback}\0${message}\0`, "utf8");

export function encodeEvent(ev: QubesEvent): Buffer {
  let s = `1\0${ev.subject ?? ""}\0${ev.event}\0`;
  for (const [k, v] of Object.entries(ev.kwargs)) s += `${k}\0${v}\0`;
  return Buffer.from(s + "\0", "utf8");
}

// ---------------------------------------------------------------------------------------------
// Event streams: `1\0subject\0event\0(key\0value\0)*\0`, repeated, in any chunking.

const MAX_EVENT_BYTES = 1 << 20;

export class EventStreamDecoder {
  // The pending bytes are buf[head, tail); the buffer grows by doubling, and the NUL scan of the
  // pending event resumes where the last push left it, so an event trickled in tiny chunks costs
  // linear time (re-scanning and re-copying it on every chunk was quadratic).
  private buf: Buffer = Buffer.alloc(0);
  private head = 0;
  private tail = 0;
  /** Scan state of the pending frame, relative to head: bytes scanned, start of the current field, fields ended so far. */
  private scanned = 0;
  private fieldStart = 2;
  private fieldCount = 0;
  /** Whether the pending exception frame's class name is valid (decided when its first field ends). */
  private classOk = false;
  private failed: string | null = null;

  /** Bytes received that do not yet form a whole event. */
  get pendingBytes(): number {
    return this.tail - this.head;
  }

  /** Feeds a chunk; returns the events it completed, or the framing error (sticky). */
  push(chunk: Uint8Array): { events: QubesEvent[]; error?: string } {
    if (this.failed) return { events: [], error: this.failed };
    this.append(chunk);
    const events: QubesEvent[] = [];
    for (;;) {
      const r = this.parseOne();
      if (r === null) break;
      if ("error" in r) {
        this.failed = r.error;
        return { events, error: r.error };
      }
      events.push(r.event);
    }
    if (this.pendingBytes > MAX_EVENT_BYTES) {
      this.failed = `event larger than ${MAX_EVENT_BYTES} bytes`;
      return { events, error: this.failed };
    }
    return { events };
  }

  private append(chunk: Uint8Array): void {
    const pending = this.tail - this.head;
    if (this.tail + chunk.length > this.buf.length) {
      const need = pending + chunk.length;
      const target = need * 2 <= this.buf.length ? this.buf : Buffer.allocUnsafe(pending === 0 ? need : need * 2);
      this.buf.copy(target, 0, this.head, this.tail);
      this.buf = target;
      this.head = 0;
      this.tail = pending;
    }
    this.buf.set(chunk, this.tail);
    this.tail += chunk.length;
  }

  private consume(n: number): void {
    this.head += n;
    if (this.head === this.tail) this.head = this.tail = 0;
    this.scanned = 0;
    this.fieldStart = 2;
    this.fieldCount = 0;
    this.classOk = false;
  }

  private parseOne(): { event: QubesEvent } | { error: string } | null {
    const b = this.buf.subarray(this.head, this.tail);
    if (b.length === 0) return null;
    const isEvent = b[0] === 0x31;
    if (isEvent) {
      if (b.length < 2) return null;
      if (b[1] !== 0) return { error: `non-event received on events connection: ${preview(b)}` };
    } else if (!(b[0] === 0x32 && b.length >= 2 && b[1] === 0)) {
      return { error: `non-event received on events connection: ${preview(b)}` };
    }
    for (let i = b.indexOf(0, Math.max(2, this.scanned)); i >= 0; i = b.indexOf(0, i + 1)) {
      const empty = i === this.fieldStart;
      this.fieldCount++;
      if (!isEvent && this.fieldCount === 1) this.classOk = /^[A-Za-z_][A-Za-z0-9_]*$/.test(b.toString("utf8", 2, i));
      this.fieldStart = i + 1;
      // subject, event, then key/value pairs ended by an empty key
      if (isEvent && this.fieldCount >= 3 && (this.fieldCount - 2) % 2 === 1 && empty) {
        const event = decodeEvent(b.subarray(2, i));
        this.consume(i + 1);
        return { event };
      }
    }
    this.scanned = b.length;
    // An exception frame has no terminator of its own: it is whole once it ends in NUL after 3 fields.
    if (!isEvent && this.classOk && this.fieldCount >= 3 && this.fieldStart === b.length) {
      const exc = decodeException(b);
      if (exc.kind === "exception") return { error: `server sent ${exc.qubesClass}: ${exc.message}` };
    }
    return null; // a frame still arriving
  }
}

/** `subject\0event\0(key\0value\0)*` of one whole event, without its `1\0` and final empty key. */
function decodeEvent(b: Buffer): QubesEvent {
  const fields: string[] = [];
  let start = 0;
  for (let i = b.indexOf(0); i >= 0; i = b.indexOf(0, i + 1)) {
    fields.push(b.toString("utf8", start, i));
    start = i + 1;
  }
  const [subject = "", event = ""] = fields;
  const kwargs: Record<string, string> = {};
  // defineProperty, not assignment: a key named "__proto__" must stay a plain member.
  for (let k = 2; k + 1 < fields.length; k += 2) {
    Object.defineProperty(kwargs, fields[k] ?? "", { value: fields[k + 1] ?? "", enumerable: true, writable: true, configurable: true });
  }
  return { subject: subject === "" ? null : subject, event, kwargs };
}
