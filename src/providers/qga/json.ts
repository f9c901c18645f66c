// A strict, bounded JSON reader over raw bytes and the matching writer, for a protocol whose peer
// (the guest) is untrusted and whose integers are 64-bit. Integers beyond ±(2^53-1) come back as
// bigint, never rounded. Pure functions, no I/O; a malformed document comes back as a value with a
// reason (never its bytes, which may hold guest file contents), not as an exception.

export type JsonValue = null | boolean | number | bigint | string | JsonValue[] | JsonObject;
export type JsonObject = { [key: string]: JsonValue };

export type JsonLimits = {
  /** Deepest nesting of arrays and objects. */
  maxDepth: number;
  /** Longest string, in UTF-8 bytes as sent (before unescaping). */
  maxStringBytes: number;
  /** Longest number token; also keeps BigInt() away from huge digit strings. */
  maxNumberChars: number;
};

export const DEFAULT_JSON_LIMITS: JsonLimits = { maxDepth: 32, maxStringBytes: 64 * 1024 * 1024, maxNumberChars: 40 };

export type JsonParse = { ok: true; value: JsonValue } | { ok: false; reason: string };

/** Thrown inside the parser only, caught at its top: unwinds the recursion with a reason. */
class Malformed extends Error {}

const utf8 = new TextDecoder("utf-8", { fatal: true });

// Byte values the grammar names.
const Ch = {
  Tab: 0x09,
  Lf: 0x0a,
  Cr: 0x0d,
  Space: 0x20,
  Quote: 0x22,
  Plus: 0x2b,
  Comma: 0x2c,
  Minus: 0x2d,
  Dot: 0x2e,
  Zero: 0x30,
  Nine: 0x39,
  Colon: 0x3a,
  UpperE: 0x45,
  LBracket: 0x5b,
  Backslash: 0x5c,
  RBracket: 0x5d,
  LowerE: 0x65,
  LBrace: 0x7b,
  RBrace: 0x7d,
} as const;

const ESCAPES: Record<number, string> = { 0x22: '"', 0x5c: "\\", 0x2f: "/", 0x62: "\b", 0x66: "\f", 0x6e: "\n", 0x72: "\r", 0x74: "\t" };

/** Parses exactly one JSON document (RFC 8259) from `bytes`; surrounding whitespace is allowed. */
export function parseJson(bytes: Uint8Array, limits: JsonLimits = DEFAULT_JSON_LIMITS): JsonParse {
  let pos = 0;
  const fail = (what: string): never => {
    throw new Malformed(`${what} at byte ${pos}`);
  };
  const skipWs = (): void => {
    while (pos < bytes.length) {
      const c = bytes[pos];
      if (c === Ch.Space || c === Ch.Tab || c === Ch.Lf || c === Ch.Cr) pos++;
      else break;
    }
  };
  const literal = (word: string, value: JsonValue): JsonValue => {
    for (let i = 0; i < word.length; i++) {
      if (bytes[pos + i] !== word.charCodeAt(i)) fail("invalid literal");
    }
    pos += word.length;
    return value;
  };
  const hex4 = (at: number): number => {
    let v = 0;
    for (let i = 0; i < 4; i++) {
      const c = bytes[at + i];
      if (c === undefined) return -1;
      const d = c >= 0x30 && c <= 0x39 ? c - 0x30 : c >= 0x41 && c <= 0x46 ? c - 0x37 : c >= 0x61 && c <= 0x66 ? c - 0x57 : -1;
      if (d < 0) return -1;
      v = v * 16 + d;
    }
    return v;
  };
  const string = (): string => {
    const start = ++pos;
    let out = "";
    let segment = start;
    for (;;) {
      const c = bytes[pos];
      if (c === undefined) fail("unterminated string");
      if (pos - start > limits.maxStringBytes) fail(`string longer than ${limits.maxStringBytes} bytes`);
      if (c === Ch.Quote) break;
      if (c! < 0x20) fail("control character in string");
      if (c !== Ch.Backslash) {
        pos++;
        continue;
      }
      if (pos > segment) out += decodeSegment(segment, pos);
      const e = bytes[pos + 1];
      if (e === 0x75) {
        const unit = hex4(pos + 2);
        if (unit < 0) fail("invalid \\u escape");
        pos += 6;
        if (unit >= 0xd800 && unit <= 0xdbff) {
          const low = bytes[pos] === Ch.Backslash && bytes[pos + 1] === 0x75 ? hex4(pos + 2) : -1;
          if (low < 0xdc00 || low > 0xdfff) fail("unpaired surrogate escape");
          pos += 6;
          out += String.fromCharCode(unit, low);
        } else if (unit >= 0xdc00 && unit <= 0xdfff) {
          fail("unpaired surrogate escape");
        } else {
          out += String.fromCharCode(unit);
        }
      } else {
        const rep = e === undefined ? undefined : ESCAPES[e];
        if (rep === undefined) fail("invalid escape");
        out += rep;
        pos += 2;
      }
      segment = pos;
    }
    if (pos > segment) out += decodeSegment(segment, pos);
    pos++;
    return out;
  };
  const decodeSegment = (from: number, to: number): string => {
    try {
      return utf8.decode(bytes.subarray(from, to));
    } catch {
      pos = from;
      return fail("invalid UTF-8 in string");
    }
  };
  const isDigit = (c: number | undefined): boolean => c !== undefined && c >= Ch.Zero && c <= Ch.Nine;
  const number = (): number | bigint => {
    const start = pos;
    if (bytes[pos] === Ch.Minus) pos++;
    if (bytes[pos] === Ch.Zero) {
      pos++;
      if (isDigit(bytes[pos])) fail("leading zero in number");
    } else if (isDigit(bytes[pos])) {
      while (isDigit(bytes[pos])) pos++;
    } else {
      fail("invalid number");
    }
    let integer = true;
    if (bytes[pos] === Ch.Dot) {
      integer = false;
      pos++;
      if (!isDigit(bytes[pos])) fail("invalid fraction");
      while (isDigit(bytes[pos])) pos++;
    }
    if (bytes[pos] === Ch.LowerE || bytes[pos] === Ch.UpperE) {
      integer = false;
      pos++;
      if (bytes[pos] === Ch.Plus || bytes[pos] === Ch.Minus) pos++;
      if (!isDigit(bytes[pos])) fail("invalid exponent");
      while (isDigit(bytes[pos])) pos++;
    }
    if (pos - start > limits.maxNumberChars) fail(`number longer than ${limits.maxNumberChars} characters`);
    let text = "";
    for (let i = start; i < pos; i++) text += String.fromCharCode(bytes[i]!);
    if (!integer) {
      const n = Number(text);
      if (!Number.isFinite(n)) fail("number out of range");
      return n;
    }
    const n = Number(text);
    return Number.isSafeInteger(n) ? n : BigInt(text);
  };
  const value = (depth: number): JsonValue => {
    skipWs();
    const c = bytes[pos];
    switch (c) {
      case Ch.LBrace:
      case Ch.LBracket:
        if (depth >= limits.maxDepth) fail(`nesting deeper than ${limits.maxDepth}`);
        return c === Ch.LBrace ? object(depth + 1) : array(depth + 1);
      case Ch.Quote:
        return string();
      case 0x74:
        return literal("true", true);
      case 0x66:
        return literal("false", false);
      case 0x6e:
        return literal("null", null);
      case undefined:
        return fail("unexpected end of input");
      default:
        if (c === Ch.Minus || isDigit(c)) return number();
        return fail("unexpected character");
    }
  };
  const object = (depth: number): JsonObject => {
    pos++;
    const out: JsonObject = {};
    skipWs();
    if (bytes[pos] === Ch.RBrace) {
      pos++;
      return out;
    }
    for (;;) {
      skipWs();
      if (bytes[pos] !== Ch.Quote) fail("expected a member name");
      const key = string();
      if (Object.prototype.hasOwnProperty.call(out, key)) fail(`duplicate member ${JSON.stringify(key.slice(0, 64))}`);
      skipWs();
      if (bytes[pos] !== Ch.Colon) fail("expected ':'");
      pos++;
      // defineProperty, not assignment: a member named "__proto__" must stay a plain member.
      Object.defineProperty(out, key, { value: value(depth), enumerable: true, writable: true, configurable: true });
      skipWs();
      if (bytes[pos] === Ch.Comma) {
        pos++;
        continue;
      }
      if (bytes[pos] === Ch.RBrace) {
        pos++;
        return out;
      }
      fail("expected ',' or '}'");
    }
  };
  const array = (depth: number): JsonValue[] => {
    pos++;
    const out: JsonValue[] = [];
    skipWs();
    if (bytes[pos] === Ch.RBracket) {
      pos++;
      return out;
    }
    for (;;) {
      out.push(value(depth));
      skipWs();
      if (bytes[pos] === Ch.Comma) {
        pos++;
        continue;
      }
      if (bytes[pos] === Ch.RBracket) {
        pos++;
        return out;
      }
      fail("expected ',' or ']'");
    }
  };

  try {
    const v = value(0);
    skipWs();
    if (pos !== bytes.length) fail("trailing data after the document");
    return { ok: true, value: v };
  } catch (e) {
    if (e instanceof Malformed) return { ok: false, reason: e.message };
    throw e;
  }
}

/** Serialises a value as compact JSON; bigints are written as integer literals. */
export function stringifyJson(v: JsonValue): string {
  switch (typeof v) {
    case "bigint":
      return v.toString();
    case "number":
      if (!Number.isFinite(v)) throw new RangeError("JSON cannot represent a non-finite number");
      return JSON.stringify(v);
    case "string":
    case "boolean":
      return JSON.stringify(v);
    case "object":
      if (v === null) return "null";
      if (Array.isArray(v)) return `[${v.map(stringifyJson).join(",")}]`;
      return `{${Object.entries(v)
        .map(([k, x]) => `${JSON.stringify(k)}:${stringifyJson(x)}`)
        .join(",")}}`;
  }
  throw new TypeError(`not a JSON value: ${typeof v}`);
}

export const isJsonObject = (v: JsonValue | undefined): v is JsonObject =>
  typeof v === "object" && v !== null && !Array.isArray(v);
