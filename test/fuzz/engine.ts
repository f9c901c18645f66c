// The fuzzing engine shared by test/fuzz/*.test.ts (small counts) and scripts/fuzz.ts (large
// counts): a seeded PRNG, byte mutations of real frames, random chunkings, and a loop that runs a
// target's oracles on each input, timing the decoder alone. No decoder knowledge lives here; the
// targets (targets.ts) bring their seeds, their interesting tokens and their oracles.

/** A small fast PRNG (sfc32). Every input derives its own from (run seed, target, index), so one input replays alone. */
export type Rng = {
  /** A uint32. */
  next(): number;
  /** An integer in [0, n). */
  below(n: number): number;
  /** True with probability p. */
  chance(p: number): boolean;
  pick<T>(items: readonly T[]): T;
};

export function createRng(...seeds: number[]): Rng {
  let a = 0x9e3779b9 ^ (seeds[0] ?? 0);
  let b = 0x243f6a88 ^ (seeds[1] ?? 0);
  let c = 0xb7e15162 ^ (seeds[2] ?? 0);
  let d = 1 ^ (seeds[3] ?? 0);
  const next = (): number => {
    a >>>= 0;
    b >>>= 0;
    c >>>= 0;
    d >>>= 0;
    const t = (a + b + d) >>> 0;
    d = (d + 1) >>> 0;
    a = b ^ (b >>> 9);
    b = (c + (c << 3)) >>> 0;
    c = (c << 21) | (c >>> 11);
    c = (c + t) >>> 0;
    return t;
  };
  for (let i = 0; i < 12; i++) next();
  const below = (n: number): number => (n <= 1 ? 0 : Math.floor((next() / 0x1_0000_0000) * n));
  return {
    next,
    below,
    chance: (p) => next() / 0x1_0000_0000 < p,
    pick: <T>(items: readonly T[]): T => {
      if (items.length === 0) throw new RangeError("pick from an empty list");
      return items[below(items.length)] as T;
    },
  };
}

/** FNV-1a of a name, to give each target its own stream of inputs under one run seed. */
export function hashName(name: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

export const toHex = (bytes: Uint8Array): string => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("hex");

const cat = (...parts: Uint8Array[]): Uint8Array => Buffer.concat(parts);
const ascii = (s: string): Uint8Array => Buffer.from(s, "latin1");

// Byte sequences that break decoders in the ways the issue lists: invalid UTF-8 (overlong,
// surrogate, truncated, out of range), NUL, sentinel, newline, and numbers beyond 2^64.
const INVALID_UTF8: readonly Uint8Array[] = [
  Uint8Array.of(0x80),
  Uint8Array.of(0xc0, 0x80),
  Uint8Array.of(0xc3),
  Uint8Array.of(0xe2, 0x82),
  Uint8Array.of(0xed, 0xa0, 0x80),
  Uint8Array.of(0xf4, 0x90, 0x80, 0x80),
  Uint8Array.of(0xf8, 0x88, 0x80, 0x80, 0x80),
  Uint8Array.of(0xfe),
];
const LONG_NUMBERS: readonly string[] = [
  "18446744073709551616",
  "-9223372036854775809",
  "9223372036854775807",
  "-9223372036854775808",
  "9007199254740993",
  "340282366920938463463374607431768211457",
  "1e400",
  "-1e-400",
  "0.0000000000000000000000000000000000001",
  "1".repeat(41),
  "9".repeat(400),
];
const INTERESTING_BYTES: readonly number[] = [0x00, 0x01, 0x0a, 0x0d, 0x20, 0x22, 0x25, 0x2c, 0x30, 0x31, 0x32, 0x3a, 0x3d, 0x5b, 0x5c, 0x5d, 0x7b, 0x7d, 0x7f, 0x80, 0xbf, 0xc0, 0xed, 0xef, 0xff];

export type MutationContext = {
  /** Other real frames of the same target, for splicing. */
  seeds: readonly Uint8Array[];
  /** Target-specific tokens worth inserting (delimiters, headers, JSON punctuation). */
  tokens: readonly Uint8Array[];
  /** The target's frame delimiter, inserted in runs (NUL for qubesd, 0xFF for the guest agent). */
  sentinel: number;
};

type Mutator = (input: Uint8Array, rng: Rng, ctx: MutationContext) => Uint8Array;

const at = (input: Uint8Array, rng: Rng): number => rng.below(input.length + 1);

const MUTATORS: ReadonlyArray<readonly [weight: number, name: string, fn: Mutator]> = [
  [6, "truncate", (x, rng) => x.subarray(0, rng.below(x.length + 1))],
  [4, "drop-head", (x, rng) => x.subarray(rng.below(x.length + 1))],
  [8, "flip-bit", (x, rng) => {
    if (x.length === 0) return x;
    const y = Uint8Array.from(x);
    const i = rng.below(y.length);
    y[i] = (y[i] ?? 0) ^ (1 << rng.below(8));
    return y;
  }],
  [8, "set-byte", (x, rng) => {
    if (x.length === 0) return x;
    const y = Uint8Array.from(x);
    y[rng.below(y.length)] = rng.chance(0.5) ? rng.pick(INTERESTING_BYTES) : rng.below(256);
    return y;
  }],
  [6, "insert-bytes", (x, rng) => {
    const i = at(x, rng);
    const n = 1 + rng.below(8);
    const ins = new Uint8Array(n);
    for (let k = 0; k < n; k++) ins[k] = rng.chance(0.5) ? rng.pick(INTERESTING_BYTES) : rng.below(256);
    return cat(x.subarray(0, i), ins, x.subarray(i));
  }],
  [6, "delete-range", (x, rng) => {
    const i = at(x, rng);
    const n = 1 + rng.below(Math.max(1, Math.min(64, x.length - i)));
    return cat(x.subarray(0, i), x.subarray(i + n));
  }],
  [4, "duplicate-range", (x, rng) => {
    const i = at(x, rng);
    const n = rng.below(Math.max(1, Math.min(256, x.length - i)) + 1);
    const times = 1 + rng.below(4);
    const piece = x.subarray(i, i + n);
    return cat(x.subarray(0, i + n), ...Array.from({ length: times }, () => piece), x.subarray(i + n));
  }],
  [6, "splice", (x, rng, ctx) => {
    const other = rng.pick(ctx.seeds);
    return cat(x.subarray(0, at(x, rng)), other.subarray(rng.below(other.length + 1)));
  }],
  [3, "concat", (x, rng, ctx) => (rng.chance(0.5) ? cat(x, rng.pick(ctx.seeds)) : cat(rng.pick(ctx.seeds), x))],
  [6, "insert-token", (x, rng, ctx) => {
    const i = at(x, rng);
    return cat(x.subarray(0, i), rng.pick(ctx.tokens), x.subarray(i));
  }],
  [4, "sentinel-run", (x, rng, ctx) => {
    const i = at(x, rng);
    return cat(x.subarray(0, i), new Uint8Array(1 + rng.below(rng.chance(0.1) ? 4096 : 8)).fill(ctx.sentinel), x.subarray(i));
  }],
  [4, "nul", (x, rng) => {
    const i = at(x, rng);
    return cat(x.subarray(0, i), Uint8Array.of(0), x.subarray(i));
  }],
  [4, "invalid-utf8", (x, rng) => {
    const i = at(x, rng);
    return cat(x.subarray(0, i), rng.pick(INVALID_UTF8), x.subarray(i));
  }],
  [5, "long-number", (x, rng) => {
    // Replace a run of digits (or insert at a random place) with a number far outside int64 or double.
    const digits: number[] = [];
    for (let k = 0; k < x.length; k++) if ((x[k] ?? 0) >= 0x30 && (x[k] ?? 0) <= 0x39 && (k === 0 || (x[k - 1] ?? 0) < 0x30 || (x[k - 1] ?? 0) > 0x39)) digits.push(k);
    const start = digits.length > 0 && rng.chance(0.8) ? rng.pick(digits) : at(x, rng);
    let end = start;
    while (end < x.length && (x[end] ?? 0) >= 0x30 && (x[end] ?? 0) <= 0x39) end++;
    return cat(x.subarray(0, start), ascii(rng.pick(LONG_NUMBERS)), x.subarray(end));
  }],
  [3, "deep-nesting", (x, rng) => {
    const i = at(x, rng);
    const depth = 1 + rng.below(rng.chance(0.2) ? 5000 : 64);
    const open = rng.pick(["[", '{"a":', "[{\"b\":"]);
    const close = open === "[" ? "]" : open === '{"a":' ? "}" : "}]";
    const tail = rng.chance(0.5) ? close.repeat(depth) : "";
    return cat(x.subarray(0, i), ascii(open.repeat(depth) + "0" + tail), x.subarray(i));
  }],
  [1, "huge", (x, rng) => {
    // One field blown up to 16..64 KiB: limits and long scans within the per-input time bound (the ~1 MiB cases are in adversarial.ts).
    const i = at(x, rng);
    const n = (16 + rng.below(49)) * 1024;
    const fill = rng.pick([0x41, 0x00, 0x31, 0x5b, 0x20, 0x5c, 0xff, 0x0a]);
    return cat(x.subarray(0, i), new Uint8Array(n).fill(fill), x.subarray(i));
  }],
];
const TOTAL_WEIGHT = MUTATORS.reduce((s, [w]) => s + w, 0);

function pickMutator(rng: Rng): Mutator {
  let r = rng.below(TOTAL_WEIGHT);
  for (const [w, , fn] of MUTATORS) {
    if (r < w) return fn;
    r -= w;
  }
  throw new Error("unreachable: weights cover the range");
}

/** 1–4 stacked mutations of a real frame; one input in 20 is pure random bytes, one in 20 the frame untouched. */
export function mutate(rng: Rng, ctx: MutationContext): Uint8Array {
  const roll = rng.below(20);
  if (roll === 0) {
    const n = rng.below(rng.chance(0.1) ? 4096 : 256);
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i++) out[i] = rng.below(256);
    return out;
  }
  let x = rng.pick(ctx.seeds);
  if (roll === 1) return x;
  const rounds = 1 + rng.below(4);
  for (let k = 0; k < rounds; k++) x = pickMutator(rng)(x, rng, ctx);
  return x;
}

/** Splits bytes into chunks the way a socket might deliver them: mostly small, sometimes all at once. */
export function chunk(bytes: Uint8Array, rng: Rng): Uint8Array[] {
  const style = rng.below(4);
  if (style === 0 || bytes.length === 0) return [bytes];
  // Byte-at-a-time only up to 16 KiB: past that the per-call cost, not the decoder, fills the time bound.
  const single = style === 1 && bytes.length <= 16 * 1024;
  const out: Uint8Array[] = [];
  for (let i = 0; i < bytes.length; ) {
    const n = single ? 1 : style <= 2 ? 1 + rng.below(16) : 1 + rng.below(2048);
    out.push(bytes.subarray(i, i + n));
    i += n;
  }
  return out;
}

/** An oracle's verdict on one input: the decoder broke its contract. */
export class OracleViolation extends Error {
  override readonly name = "OracleViolation";
}

export const check = (ok: boolean, what: string): void => {
  if (!ok) throw new OracleViolation(what);
};

/** Times the decoder calls of one input, so oracles and reference models do not count. */
export type Stopwatch = { timed<T>(fn: () => T): T };

export type FuzzTarget = {
  name: string;
  /** Real frames from ../shared/conformance, mutated to make inputs. */
  seeds: readonly Uint8Array[];
  mutation: Omit<MutationContext, "seeds">;
  /** Decodes one input under every oracle; returns the outcome's kind (e.g. "ok", "malformed", "error:bad-reply"). */
  run(input: Uint8Array, rng: Rng, watch: Stopwatch): string;
};

export type InputKind = "mutated" | "truncated";

export type Failure = { target: string; kind: InputKind; index: number; input: Uint8Array; error: unknown };

export type RunStats = {
  target: string;
  kind: InputKind;
  inputs: number;
  outcomes: Map<string, number>;
  maxMs: number;
  p99Ms: number;
  totalMs: number;
  /** The slowest input, to reproduce it. */
  slowestIndex: number;
  failures: Failure[];
};

export type RunOptions = {
  seed: number;
  /** Mutated inputs to run (truncation runs take every prefix of every seed instead). */
  count: number;
  /** Fail an input whose decoding takes longer than this. */
  maxInputMs: number;
  /** Stop after this many failures. */
  maxFailures?: number;
  /** Replays a single input index. */
  only?: number;
  /** Truncation runs: only seeds up to this many bytes (every prefix of a long seed is quadratic work). */
  maxSeedBytes?: number;
  /** Called before each input: a watchdog outside the loop learns which input never finished. */
  onInput?: (index: number) => void;
};

/** The mutated input `index` of a run and the PRNG its oracles use (for chunking), so a failure replays alone. */
export function inputAt(target: FuzzTarget, seed: number, index: number): { input: Uint8Array; rng: Rng } {
  const rng = createRng(seed, hashName(target.name), index, 0x5eed);
  return { input: mutate(rng, { seeds: target.seeds, ...target.mutation }), rng };
}

/** Every prefix of every seed (up to maxSeedBytes long), in order: truncation at every length. */
const truncated = (target: FuzzTarget, maxSeedBytes = Infinity): Uint8Array[] => target.seeds.filter((s) => s.length <= maxSeedBytes);

export function truncationCount(target: FuzzTarget, maxSeedBytes?: number): number {
  return truncated(target, maxSeedBytes).reduce((n, s) => n + s.length + 1, 0);
}

export function truncationAt(target: FuzzTarget, seed: number, index: number, maxSeedBytes?: number): { input: Uint8Array; rng: Rng } {
  let i = index;
  for (const s of truncated(target, maxSeedBytes)) {
    if (i <= s.length) return { input: s.subarray(0, i), rng: createRng(seed, hashName(target.name), index, 0x7a11) };
    i -= s.length + 1;
  }
  throw new RangeError(`truncation ${index} is past the last seed of ${target.name}`);
}

function timeRun(target: FuzzTarget, input: Uint8Array, rng: Rng): { outcome: string; ms: number } {
  let ms = 0;
  const watch: Stopwatch = {
    timed<T>(fn: () => T): T {
      const t0 = performance.now();
      try {
        return fn();
      } finally {
        ms += performance.now() - t0;
      }
    },
  };
  const outcome = target.run(input, rng, watch);
  return { outcome, ms };
}

/** Runs a target's oracles over its mutated inputs or over every truncation of its seeds. */
export function runTarget(target: FuzzTarget, opts: RunOptions, kind: InputKind = "mutated"): RunStats {
  const at = kind === "mutated" ? inputAt : (t: FuzzTarget, seed: number, index: number) => truncationAt(t, seed, index, opts.maxSeedBytes);
  const count = kind === "mutated" ? opts.count : truncationCount(target, opts.maxSeedBytes);
  const outcomes = new Map<string, number>();
  const times = new Float64Array(count);
  const failures: Failure[] = [];
  let total = 0;
  let maxMs = 0;
  let slowestIndex = -1;
  const first = opts.only ?? 0;
  const end = opts.only === undefined ? count : opts.only + 1;
  let n = 0;
  for (let index = first; index < end; index++) {
    opts.onInput?.(index);
    const { input, rng } = at(target, opts.seed, index);
    let outcome: string;
    let spent = 0;
    try {
      const run = timeRun(target, input, rng);
      outcome = run.outcome;
      spent = run.ms;
      // A garbage-collection pause can land on any input: only a time that repeats is the decoder's.
      for (let retry = 0; retry < 2 && spent > opts.maxInputMs; retry++) spent = Math.min(spent, timeRun(target, input, at(target, opts.seed, index).rng).ms);
      if (spent > opts.maxInputMs) throw new OracleViolation(`decoding took ${spent.toFixed(1)} ms (bound ${opts.maxInputMs} ms, 3 tries) for ${input.length} bytes`);
    } catch (error) {
      outcome = "ORACLE-FAILURE";
      failures.push({ target: target.name, kind, index, input, error });
    }
    outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1);
    times[n++] = spent;
    total += spent;
    if (spent > maxMs) {
      maxMs = spent;
      slowestIndex = index;
    }
    if (failures.length >= (opts.maxFailures ?? 1)) break;
  }
  const sorted = times.subarray(0, n).sort();
  const p99Ms = n === 0 ? 0 : (sorted[Math.min(n - 1, Math.floor(n * 0.99))] ?? 0);
  return { target: target.name, kind, inputs: n, outcomes, maxMs, p99Ms, totalMs: total, slowestIndex, failures };
}

/** The seed and index to replay a failure, the oracle's message, and the input in hex (capped). */
export function describeFailure(f: Failure, opts: Pick<RunOptions, "seed" | "maxSeedBytes">, maxHexBytes = 4096): string {
  const why = f.error instanceof Error ? `${f.error.name}: ${f.error.message}` : String(f.error);
  const hex = toHex(f.input.subarray(0, maxHexBytes)) + (f.input.length > maxHexBytes ? `… (${f.input.length} bytes)` : "");
  const truncation = opts.maxSeedBytes === undefined ? " --truncations" : ` --truncations --max-seed-bytes ${opts.maxSeedBytes}`;
  const replay = `--seed ${opts.seed} --target ${f.target}${f.kind === "truncated" ? truncation : ""} --only ${f.index}`;
  return `${f.target} ${f.kind} input #${f.index} (replay: npm run fuzz -- ${replay}): ${why}\n  input (${f.input.length} bytes, hex): ${hex}`;
}

/** The run seed: the given value (FUZZ_SEED, --seed) to replay a failure, else a fresh one that failures print. */
export function seedFrom(value: string | undefined): number {
  if (value === undefined || value === "") return Math.floor(Math.random() * 0x8000_0000);
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n >= 0x8000_0000) throw new RangeError(`seed ${JSON.stringify(value)} is not an integer in [0, 2^31)`);
  return n;
}
