// `npm run fuzz`: the large fuzzing run of issue 8 over the decoders that read bytes from peers
// (qubesd replies, qubesd event streams, property values, guest-agent framer and replies). Per
// target: the recorded frames, every truncation of them, then --count mutated inputs (default
// 100 000); then the ~1 MiB hostile cases. Prints inputs, outcomes by kind, max / p99 time per
// input and totals; exits 1 on any oracle failure, over-budget case or hang, printing the seed
// and the failing input in hex. Each pass runs in a worker thread that a watchdog ends if one
// input stops making progress, so a hang is reported as such instead of stalling the run.
//
//   npm run fuzz -- [--count N] [--seed S] [--target NAME ...] [--max-input-ms MS]
//   npm run fuzz -- --seed S --target NAME [--truncations [--max-seed-bytes N]] --only I   (replay one input)

import { cpus } from "node:os";
import { parseArgs } from "node:util";
import { isMainThread, parentPort, Worker, workerData } from "node:worker_threads";
import { ADVERSARIAL, timeCase } from "../test/fuzz/adversarial.js";
import { describeFailure, inputAt, runTarget, seedFrom, toHex, truncationAt, type InputKind, type RunOptions } from "../test/fuzz/engine.js";
import { loadQgaSeeds, loadQubesdSeeds } from "../test/fuzz/seeds.js";
import { allTargets, checkRecordedProperties, checkRecordedQga, checkRecordedReplies, propertyTarget } from "../test/fuzz/targets.js";

type PassOptions = Omit<RunOptions, "onInput">;
type Job = { kind: InputKind; target: string; opts: PassOptions } | { kind: "adversarial"; targets: string[] };

type PassResult = {
  inputs: number;
  outcomes: Array<[string, number]>;
  maxMs: number;
  p99Ms: number;
  totalMs: number;
  slowestIndex: number;
  failures: string[];
};
type CaseResult = { target: string; name: string; budgetMs: number; ms: number; summary: string; error: string | null };
type JobResult = { pass: PassResult } | { cases: CaseResult[] };

// ---------------------------------------------------------------------------------------------
// Worker side: one pass of one target, or the hostile cases; progress goes to a shared counter.

function runJob(job: Job, beat: Int32Array): JobResult {
  const tick = (index: number): void => {
    Atomics.store(beat, 0, index);
    Atomics.add(beat, 1, 1);
  };
  if (job.kind === "adversarial") {
    const cases = ADVERSARIAL.filter((c) => job.targets.includes(c.target));
    return {
      cases: cases.map((c, i): CaseResult => {
        tick(i);
        try {
          const { ms, summary } = timeCase(c);
          return { target: c.target, name: c.name, budgetMs: c.budgetMs, ms, summary, error: null };
        } catch (e) {
          return { target: c.target, name: c.name, budgetMs: c.budgetMs, ms: NaN, summary: "", error: e instanceof Error ? `${e.name}: ${e.message}` : String(e) };
        }
      }),
    };
  }
  const target = allTargets().find((t) => t.name === job.target);
  if (!target) throw new Error(`no target ${job.target}`);
  const s = runTarget(target, { ...job.opts, onInput: tick }, job.kind);
  return {
    pass: {
      inputs: s.inputs,
      outcomes: [...s.outcomes].sort((a, b) => b[1] - a[1]),
      maxMs: s.maxMs,
      p99Ms: s.p99Ms,
      totalMs: s.totalMs,
      slowestIndex: s.slowestIndex,
      failures: s.failures.map((f) => describeFailure(f, job.opts)),
    },
  };
}

if (!isMainThread) {
  const { job, beat } = workerData as { job: Job; beat: SharedArrayBuffer };
  parentPort?.postMessage(runJob(job, new Int32Array(beat)));
}

// ---------------------------------------------------------------------------------------------
// Main side: arguments, the watchdog, the report.

type Outcome = { result: JobResult } | { hang: { index: number; afterMs: number } };

/** Loading the worker (tsx, the recordings) is not an input: it gets its own, longer allowance. */
const STARTUP_MS = 60_000;

/** Runs a job in a worker with the tsx loader; ends it if no input starts for `hangMs`. */
function inWorker(job: Job, hangMs: number): Promise<Outcome> {
  const beat = new Int32Array(new SharedArrayBuffer(8));
  Atomics.store(beat, 0, -1);
  // Node 20 does not pass --import hooks to workers: the worker registers tsx itself, then loads this file.
  const code = `import(${JSON.stringify(import.meta.resolve("tsx/esm/api"))}).then((m) => { m.register(); return import(${JSON.stringify(import.meta.url)}); })`;
  const worker = new Worker(code, { eval: true, workerData: { job, beat: beat.buffer } });
  return new Promise((resolve, reject) => {
    let seen = -1;
    let since = Date.now();
    const timer = setInterval(() => {
      const n = Atomics.load(beat, 1);
      if (n !== seen) {
        seen = n;
        since = Date.now();
      } else if (Date.now() - since > (Atomics.load(beat, 0) < 0 ? STARTUP_MS : hangMs)) {
        clearInterval(timer);
        void worker.terminate();
        resolve({ hang: { index: Atomics.load(beat, 0), afterMs: Date.now() - since } });
      }
    }, 200);
    worker.once("message", (m: JobResult) => {
      clearInterval(timer);
      void worker.terminate();
      resolve({ result: m });
    });
    worker.once("error", (e) => {
      clearInterval(timer);
      reject(e);
    });
  });
}

const USAGE = `usage: npm run fuzz -- [--count N] [--seed S] [--target NAME]... [--max-input-ms MS] [--hang-ms MS]
                     [--max-seed-bytes N] [--no-truncations] [--no-adversarial]
       npm run fuzz -- --seed S --target NAME [--truncations] [--max-seed-bytes N] --only INDEX
targets: ${allTargets()
  .map((t) => t.name)
  .join(", ")}`;

const fmt = (n: number): string => n.toLocaleString("en-US");
const ms = (n: number): string => (n >= 100 ? n.toFixed(0) : n >= 1 ? n.toFixed(1) : n.toFixed(3));

async function main(argv: string[]): Promise<number> {
  let args: ReturnType<typeof parse>;
  const parse = (a: string[]) =>
    parseArgs({
      args: a,
      options: {
        count: { type: "string" },
        seed: { type: "string" },
        target: { type: "string", multiple: true },
        only: { type: "string" },
        truncations: { type: "boolean" },
        "max-seed-bytes": { type: "string" },
        "max-input-ms": { type: "string" },
        "hang-ms": { type: "string" },
        "no-truncations": { type: "boolean" },
        "no-adversarial": { type: "boolean" },
        help: { type: "boolean" },
      },
      strict: true,
    });
  try {
    args = parse(argv);
  } catch (e) {
    process.stderr.write(`${e instanceof Error ? e.message : String(e)}\n${USAGE}\n`);
    return 2;
  }
  const v = args.values;
  if (v.help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  const int = (name: string, text: string | undefined, fallback: number | undefined): number | undefined => {
    if (text === undefined) return fallback;
    const n = Number(text);
    if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`--${name} ${JSON.stringify(text)} is not a non-negative integer`);
    return n;
  };
  let count: number;
  let seed: number;
  let maxInputMs: number;
  let hangMs: number;
  let only: number | undefined;
  let maxSeedBytes: number | undefined;
  try {
    count = int("count", v.count, 100_000) ?? 100_000;
    seed = seedFrom(v.seed);
    maxInputMs = int("max-input-ms", v["max-input-ms"], 100) ?? 100;
    hangMs = int("hang-ms", v["hang-ms"], 10_000) ?? 10_000;
    only = int("only", v.only, undefined);
    maxSeedBytes = int("max-seed-bytes", v["max-seed-bytes"], undefined);
  } catch (e) {
    process.stderr.write(`${e instanceof Error ? e.message : String(e)}\n${USAGE}\n`);
    return 2;
  }
  const targets = allTargets();
  const names = v.target ?? targets.map((t) => t.name);
  const unknown = names.filter((n) => !targets.some((t) => t.name === n));
  if (unknown.length > 0 || (only !== undefined && names.length !== 1)) {
    process.stderr.write(`${unknown.length > 0 ? `unknown target ${unknown.join(", ")}` : "--only replays one input of one --target"}\n${USAGE}\n`);
    return 2;
  }
  const opts: PassOptions = { seed, count, maxInputMs, ...(maxSeedBytes === undefined ? {} : { maxSeedBytes }), ...(only === undefined ? {} : { only }) };
  const out = (s: string): void => {
    process.stdout.write(`${s}\n`);
  };

  if (only !== undefined) {
    const target = targets.find((t) => t.name === names[0]);
    const kind: InputKind = v.truncations ? "truncated" : "mutated";
    if (!target) return 2;
    const { input } = kind === "mutated" ? inputAt(target, seed, only) : truncationAt(target, seed, only, maxSeedBytes);
    out(`${target.name} ${kind} input #${only} (seed ${seed}), ${input.length} bytes:\n${toHex(input)}`);
    const r = await inWorker({ kind, target: target.name, opts }, hangMs);
    if ("hang" in r) {
      out(`HANG: no progress for ${fmt(r.hang.afterMs)} ms`);
      return 1;
    }
    if (!("pass" in r.result)) return 1;
    const p = r.result.pass;
    out(p.failures.length > 0 ? p.failures.join("\n") : `passes: ${p.outcomes.map(([k]) => k).join("")} in ${ms(p.maxMs)} ms`);
    return p.failures.length > 0 ? 1 : 0;
  }

  const cpu = cpus();
  out(`qubes-iac fuzz: seed ${seed}; ${fmt(count)} mutated inputs per target; bound ${maxInputMs} ms per input; node ${process.version}; ${cpu.length} × ${cpu[0]?.model ?? "cpu"}`);
  out(`replay one input: npm run fuzz -- --seed ${seed} --target NAME --only INDEX`);
  const started = performance.now();
  let failed = 0;

  // The recorded frames, unmutated, decode to what the real peers meant.
  try {
    const qubesd = loadQubesdSeeds();
    out(`\nrecorded: ${checkRecordedReplies(qubesd)} qubesd replies, ${checkRecordedProperties(propertyTarget(qubesd).recorded)} property bodies, ${checkRecordedQga(loadQgaSeeds())} agent lines decode as recorded`);
  } catch (e) {
    failed++;
    out(`\nrecorded: FAILED ${e instanceof Error ? e.message : String(e)}`);
  }

  for (const name of names) {
    out(`\n== ${name}`);
    const kinds: InputKind[] = v["no-truncations"] ? ["mutated"] : ["truncated", "mutated"];
    for (const kind of kinds) {
      const t0 = performance.now();
      const r = await inWorker({ kind, target: name, opts }, hangMs);
      const wall = (performance.now() - t0) / 1000;
      if ("hang" in r) {
        failed++;
        const target = targets.find((t) => t.name === name);
        if (r.hang.index < 0 || !target) {
          out(`  ${kind.padEnd(9)} HANG: the worker did not start an input within ${fmt(r.hang.afterMs)} ms`);
          continue;
        }
        const { input } = kind === "mutated" ? inputAt(target, seed, r.hang.index) : truncationAt(target, seed, r.hang.index, maxSeedBytes);
        const truncation = kind === "truncated" ? ` --truncations${maxSeedBytes === undefined ? "" : ` --max-seed-bytes ${maxSeedBytes}`}` : "";
        out(`  ${kind.padEnd(9)} HANG: input #${r.hang.index} made no progress for ${fmt(r.hang.afterMs)} ms (replay: npm run fuzz -- --seed ${seed} --target ${name}${truncation} --only ${r.hang.index})`);
        out(`    input (${input.length} bytes, hex): ${toHex(input.subarray(0, 4096))}${input.length > 4096 ? "…" : ""}`);
        continue;
      }
      if (!("pass" in r.result)) continue;
      const p = r.result.pass;
      out(`  ${kind.padEnd(9)} ${fmt(p.inputs).padStart(7)} inputs   max ${ms(p.maxMs)} ms (#${p.slowestIndex})   p99 ${ms(p.p99Ms)} ms   decoding ${(p.totalMs / 1000).toFixed(1)} s   wall ${wall.toFixed(1)} s`);
      out(`    ${p.outcomes.map(([k, n]) => `${k} ${fmt(n)}`).join(" · ")}`);
      for (const f of p.failures) out(`  FAILED ${f}`);
      failed += p.failures.length;
    }
  }

  if (!v["no-adversarial"]) {
    out(`\n== hostile ~1 MiB inputs (time budget each)`);
    const r = await inWorker({ kind: "adversarial", targets: names }, 60_000);
    if ("hang" in r) {
      failed++;
      out(`  HANG in case #${r.hang.index}: no progress for ${fmt(r.hang.afterMs)} ms`);
    } else if ("cases" in r.result) {
      for (const c of r.result.cases) {
        const over = c.error === null && c.ms > c.budgetMs;
        if (c.error !== null || over) failed++;
        const verdict = c.error !== null ? `FAILED ${c.error}` : over ? `OVER BUDGET (${fmt(c.budgetMs)} ms)` : `ok (budget ${fmt(c.budgetMs)} ms)`;
        out(`  ${c.target.padEnd(17)} ${Number.isNaN(c.ms) ? "-" : ms(c.ms).padStart(6)} ms  ${verdict}  ${c.name}${c.summary ? ` → ${c.summary}` : ""}`);
      }
    }
  }

  out(`\n${failed === 0 ? "no oracle failures" : `${failed} FAILURE(S)`} in ${((performance.now() - started) / 1000).toFixed(1)} s (seed ${seed})`);
  return failed === 0 ? 0 : 1;
}

if (isMainThread) {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (e: unknown) => {
      process.stderr.write(`fuzz: internal error, this is a bug: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
      process.exitCode = 1;
    },
  );
}
