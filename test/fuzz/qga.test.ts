// Fuzzing the guest-agent codec (issue 8): the byte framer (`\n` lines, 0xFF sentinel, line
// limit) and the reply decoder (strict int64-exact JSON reader, reply shape, typed decoders), on
// the bytes the real qemu-ga sent (../shared/conformance/qga) truncated and mutated, on
// fast-check inputs that shrink, and on ~1 MiB hostile inputs against a time budget.
// FUZZ_SEED=<n> replays a run; every failure message names its seed.

import fc from "fast-check";
import { describe, expect, test } from "vitest";
import { createFramer, decodeReply, type Frame } from "../../src/providers/qga/codec.js";
import { QgaError } from "../../src/providers/qga/errors.js";
import { parseJson } from "../../src/providers/qga/json.js";
import { decodeFileRead, int64 } from "../../src/providers/qga/replies.js";
import { ADVERSARIAL } from "./adversarial.js";
import { createRng, describeFailure, runTarget, seedFrom, truncationCount, type FuzzTarget, type RunOptions } from "./engine.js";
import { loadQgaSeeds } from "./seeds.js";
import { checkAgainstJsonParse, checkRecordedQga, qgaFramerTarget, qgaReplyTarget, referenceFrames, sameAsJsonParse, TYPED_DECODERS } from "./targets.js";

const SEED = seedFrom(process.env.FUZZ_SEED);
const COUNT = 3000;
// The suite shares two cores: a looser per-input bound than the fuzz script's 100 ms. Super-linear
// growth is the hostile cases' job (below), where it shows as seconds, not milliseconds.
// Truncating every prefix of the 6 KiB recordings is quadratic work: here the seeds up to 1 KiB, all of them in `npm run fuzz`.
const OPTS: RunOptions = { seed: SEED, count: COUNT, maxInputMs: 250, maxSeedBytes: 1024 };
const noWatch = { timed: <T>(fn: () => T): T => fn() };

const seeds = loadQgaSeeds();
const framer = qgaFramerTarget(seeds);
const replies = qgaReplyTarget(seeds);

function expectClean(target: FuzzTarget, kind: "mutated" | "truncated"): void {
  const stats = runTarget(target, OPTS, kind);
  expect(stats.failures.length, `FUZZ_SEED=${SEED} ${stats.failures.map((f) => describeFailure(f, OPTS, 512)).join("\n")}`).toBe(0);
  expect(stats.inputs).toBe(kind === "mutated" ? OPTS.count : truncationCount(target, OPTS.maxSeedBytes));
  // The mutations must reach more than one outcome, or the oracles saw nothing interesting.
  expect(stats.outcomes.size, [...stats.outcomes.keys()].join(", ")).toBeGreaterThan(2);
}

describe("guest-agent framer (createFramer)", () => {
  test("every truncation of the recorded agent streams frames as the byte-at-a-time reference does", () => {
    expectClean(framer, "truncated");
  });

  test(`${COUNT} mutated agent streams in random chunkings and line limits: same frames as the reference, never over the limit`, () => {
    expectClean(framer, "mutated");
  });

  test("fast-check: streams of lines, sentinels and NULs, any limit, cut anywhere", () => {
    const stream = fc.array(fc.constantFrom(0x41, 0x0a, 0xff, 0x00, 0x7b), { maxLength: 200 }).map((b) => Buffer.from(b));
    fc.assert(
      fc.property(stream, fc.integer({ min: 0, max: 8 }), fc.array(fc.nat(), { maxLength: 10 }), (bytes, limit, cuts) => {
        const f = createFramer(limit);
        const frames: Frame[] = [];
        let from = 0;
        for (const to of [...[...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b), bytes.length]) {
          frames.push(...f.push(bytes.subarray(from, to)));
          expect(f.buffered).toBeLessThanOrEqual(limit);
          from = to;
        }
        const ref = referenceFrames(bytes, limit);
        expect(frames.map((x) => (x.kind === "line" ? { kind: "line", bytes: Buffer.from(x.bytes) } : x))).toEqual(ref.frames);
        expect(f.buffered).toBe(ref.buffered);
      }),
      { seed: SEED, numRuns: 1500 },
    );
  });
});

describe("guest-agent reply decoder (decodeReply, parseJson, typed decoders)", () => {
  test("every recorded line is a reply, decodes with its command's decoder, and keeps int64 ids exact", () => {
    expect(checkRecordedQga(seeds)).toBe(123);
  });

  test("every truncation of the recorded reply lines: JSON.parse agrees or a stated limit refused it", () => {
    expectClean(replies, "truncated");
  });

  test(`${COUNT} mutated reply lines: reply kinds as the document says, typed decoders give values or QgaError bad-reply`, () => {
    expectClean(replies, "mutated");
  });

  test("fast-check: any JSON document reads back as JSON.parse reads it", () => {
    fc.assert(
      fc.property(fc.jsonValue({ maxDepth: 6 }), (v) => {
        const bytes = Buffer.from(JSON.stringify(v), "utf8");
        const r = parseJson(bytes);
        checkAgainstJsonParse(bytes, r);
        expect(r.ok && sameAsJsonParse(r.value, JSON.parse(JSON.stringify(v)))).toBe(true);
      }),
      { seed: SEED, numRuns: 1000 },
    );
  });

  test("fast-check: every int64 comes back exact (bigint past 2^53); past int64 the int64 decoder refuses it", () => {
    fc.assert(
      fc.property(fc.bigInt({ min: -(1n << 70n), max: 1n << 70n }), fc.boolean(), (n, withId) => {
        const r = decodeReply(Buffer.from(`{${withId ? '"id": 7, ' : ""}"return": ${n}}`, "latin1"));
        expect(r.kind).toBe("return");
        if (r.kind !== "return") return;
        expect(BigInt(r.value as number | bigint)).toBe(n);
        expect(typeof r.value).toBe(n >= -(2n ** 53n - 1n) && n <= 2n ** 53n - 1n ? "number" : "bigint");
        const inInt64 = n >= -(1n << 63n) && n < 1n << 63n;
        if (inInt64) expect(int64("guest-sync", r.value, "return")).toBe(n);
        else expect(() => int64("guest-sync", r.value, "return")).toThrow(QgaError);
      }),
      { seed: SEED, numRuns: 1000 },
    );
  });

  test("fast-check: guest-file-read replies give exactly `count` bytes or a bad-reply error", () => {
    const b64 = fc.oneof(fc.base64String({ maxLength: 40 }), fc.string({ maxLength: 40 }));
    const count = fc.oneof(fc.integer({ min: -2, max: 40 }), fc.constantFrom(2 ** 53, -0, 1.5));
    fc.assert(
      fc.property(count, b64, fc.boolean(), fc.integer({ min: 0, max: 40 }), (n, text, eof, requested) => {
        try {
          const r = decodeFileRead({ count: n, "buf-b64": text, eof }, requested);
          // ===, not toBe: a count of -0 (JSON `-0`) is zero bytes.
          expect(r.bytes.length === r.count, `count ${r.count}, ${r.bytes.length} bytes`).toBe(true);
          expect(r.count).toBeLessThanOrEqual(requested);
          expect(Buffer.from(text, "base64").equals(r.bytes)).toBe(true);
        } catch (e) {
          expect(e instanceof QgaError && e.code === "bad-reply", String(e)).toBe(true);
        }
      }),
      { seed: SEED, numRuns: 1500 },
    );
  });

  test("fast-check: every typed decoder, on any JSON value, returns or throws QgaError bad-reply", () => {
    const value = fc.oneof(fc.jsonValue({ maxDepth: 4 }), fc.bigInt().map((n) => ({ count: n, position: n, eof: true })));
    fc.assert(
      fc.property(value, fc.nat(), (v, r) => {
        for (const [name, fn] of TYPED_DECODERS) {
          try {
            fn(v as Parameters<typeof fn>[0]);
          } catch (e) {
            expect(e instanceof QgaError && e.code === "bad-reply", `${name}: ${String(e)}`).toBe(true);
          }
        }
        replies.run(Buffer.from(JSON.stringify({ return: v }, (_, x: unknown) => (typeof x === "bigint" ? Number(x) : x)), "utf8"), createRng(r), noWatch);
      }),
      { seed: SEED, numRuns: 1000 },
    );
  });
});

// Their speed against each case's budget is measured by `npm run fuzz` (scripts/fuzz.ts), not
// asserted here: a timed assertion fails on a loaded machine. A quadratic decoder still cannot
// pass, since it would not finish within the test timeout.
describe("hostile ~1 MiB inputs: each decodes to its checked result", () => {
  for (const c of ADVERSARIAL.filter((x) => x.target.startsWith("qga-"))) {
    test(`${c.target}: ${c.name}`, () => {
      expect(c.run()).not.toBe("");
    });
  }
});
