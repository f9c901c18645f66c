// The strict JSON reader: exact int64s, RFC 8259 only (none of QEMU's extensions), and bounds a
// hostile guest cannot get past.
import { describe, expect, test } from "vitest";
import { DEFAULT_JSON_LIMITS, parseJson, stringifyJson, type JsonValue } from "../../src/providers/qga/json.js";

const parse = (text: string | Buffer, limits = DEFAULT_JSON_LIMITS) => parseJson(typeof text === "string" ? Buffer.from(text, "utf8") : text, limits);
const value = (text: string): JsonValue => {
  const r = parse(text);
  if (!r.ok) throw new Error(`expected valid JSON, got: ${r.reason}`);
  return r.value;
};

describe("numbers", () => {
  test("integers within ±(2^53-1) are numbers, beyond are exact bigints", () => {
    expect(value("9007199254740991")).toBe(9007199254740991);
    expect(value("-9007199254740991")).toBe(-9007199254740991);
    expect(value("9007199254740993")).toBe(9007199254740993n);
    expect(value("1795311140859137000")).toBe(1795311140859137000n);
    expect(value("-9223372036854775808")).toBe(-9223372036854775808n);
    expect(value("-5")).toBe(-5);
    expect(value("0")).toBe(0);
  });
  test("fractions and exponents are numbers", () => {
    expect(value("1.5")).toBe(1.5);
    expect(value("-0.25e2")).toBe(-25);
    expect(value("1E3")).toBe(1000);
  });
  test.each(["01", "-", "1.", ".5", "1e", "+1", "0x10", "NaN", "Infinity", "-Infinity", "1e400"])("rejects %s", (t) => {
    expect(parse(t).ok).toBe(false);
  });
  test("a number token longer than the limit is refused before BigInt sees it", () => {
    const r = parse("1".repeat(41));
    expect(r).toEqual({ ok: false, reason: expect.stringContaining("number longer than 40") });
    expect(value("1".repeat(40))).toBe(BigInt("1".repeat(40)));
  });
});

describe("strings", () => {
  test("escapes, including surrogate pairs as qemu-ga writes them (upper-case hex)", () => {
    expect(value('"a\\tb\\u0001\\u00E9\\uD83D\\uDE00\\/\\"\\\\"')).toBe("a\tb\u0001é😀/\"\\");
  });
  test("raw UTF-8 is decoded", () => {
    expect(value('"é😀"')).toBe("é😀");
  });
  test.each([
    ["single quotes (a QEMU extension)", "'x'"],
    ["an unterminated string", '"abc'],
    ["a raw control character", '"a\u0001b"'],
    ["a raw newline", '"a\nb"'],
    ["an unknown escape", '"\\x41"'],
    ["a short \\u escape", '"\\u12"'],
    ["a lone high surrogate", '"\\uD83D"'],
    ["a lone low surrogate", '"\\uDE00x"'],
    ["a high surrogate followed by a non-surrogate", '"\\uD83D\\u0041"'],
  ])("rejects %s", (_, t) => {
    expect(parse(t).ok).toBe(false);
  });
  test("rejects invalid UTF-8 and a stray 0xFF inside a string", () => {
    expect(parse(Buffer.from([0x22, 0xc3, 0x28, 0x22])).ok).toBe(false);
    expect(parse(Buffer.from([0x22, 0x61, 0xff, 0x22])).ok).toBe(false);
  });
  test("a string longer than the limit is refused", () => {
    const limits = { ...DEFAULT_JSON_LIMITS, maxStringBytes: 8 };
    expect(parse('"12345678"', limits).ok).toBe(true);
    expect(parse('"123456789"', limits)).toEqual({ ok: false, reason: expect.stringContaining("string longer than 8") });
  });
});

describe("structure", () => {
  test("objects and arrays, with whitespace anywhere RFC 8259 allows it", () => {
    expect(value(' { "a" : [ 1 , { "b" : null } ] , "c" : true , "d" : false } ')).toEqual({ a: [1, { b: null }], c: true, d: false });
    expect(value("[]")).toEqual([]);
    expect(value("{}")).toEqual({});
  });
  test.each([
    ["a trailing comma", '{"a":1,}'],
    ["a missing colon", '{"a" 1}'],
    ["an unquoted key", "{a:1}"],
    ["trailing data", '{"a":1}}'],
    ["two documents", "{}{}"],
    ["a bare word", "hello"],
    ["an empty document", ""],
    ["a duplicate member", '{"a":1,"a":2}'],
    ["an unclosed array", "[1,2"],
  ])("rejects %s", (_, t) => {
    expect(parse(t).ok).toBe(false);
  });
  test("nesting deeper than the limit is refused without recursing further", () => {
    const limits = { ...DEFAULT_JSON_LIMITS, maxDepth: 4 };
    expect(parse("[[[[1]]]]", limits).ok).toBe(true);
    expect(parse("[[[[[1]]]]]", limits)).toEqual({ ok: false, reason: expect.stringContaining("nesting deeper than 4") });
    expect(parse("[".repeat(100_000)).ok).toBe(false);
  });
  test('a member named "__proto__" is an own member, not a prototype', () => {
    const v = value('{"__proto__":{"polluted":true},"x":1}') as Record<string, unknown>;
    expect(Object.getPrototypeOf(v)).toBe(Object.prototype);
    expect(Object.keys(v)).toEqual(["__proto__", "x"]);
    expect((v as { polluted?: unknown }).polluted).toBeUndefined();
  });
  test("reasons name the position, never the content", () => {
    const r = parse('{"secret-content-here": nope}');
    expect(r.ok).toBe(false);
    if (!r.ok) {
      expect(r.reason).toMatch(/at byte \d+/);
      expect(r.reason).not.toContain("secret");
    }
  });
});

describe("stringifyJson", () => {
  test("writes bigints as integer literals and round-trips through the reader", () => {
    const v: JsonValue = { execute: "guest-sync", arguments: { id: 9223372036854775807n, neg: -5, s: "é\n\"" } };
    const text = stringifyJson(v);
    expect(text).toBe('{"execute":"guest-sync","arguments":{"id":9223372036854775807,"neg":-5,"s":"é\\n\\""}}');
    expect(value(text)).toEqual(v);
  });
  test("refuses non-finite numbers", () => {
    expect(() => stringifyJson(Number.NaN)).toThrow(RangeError);
  });
});
