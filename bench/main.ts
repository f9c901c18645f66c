// `npm run bench`: builds the single-file CLI, runs every measurement of issue 7 with progress on
// stderr, and writes bench/results.json and the results section of bench/README.md. A benchmark,
// not a test: it asserts nothing about speed; targets are compared in the report.
// `--report` re-renders the README from the existing results.json without measuring;
// `--validate-only` measures only validate of the large configs (issue 12) and prints its rows of
// the targets table, writing nothing.

import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { availableParallelism, cpus, loadavg, release, tmpdir, totalmem } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { generateFixtureState, GENERATED_MAX_QUBES, GENERATED_MIN_QUBES } from "../src/providers/qubes/simulator/index.js";
import { adoptConfig, createConfig, planCallsNeeded, withProperty, type Config } from "./fleet.js";
import { desiredOf, measurePlanComputation } from "./plan-compute.js";
import { LAPTOP_PREFIX, renderReadme, VALIDATE_SIZES, validateTargets, type Results } from "./report.js";
import { adoptInMemory, checkBundle, measureApply, measureNaive, measurePlan, measureStartup, measureValidate, PARALLELISM, writeConfig, type PlanFigure } from "./scenarios.js";
import type { StateDocument } from "../src/providers/qubes/simulator/index.js";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const BUNDLE = join(ROOT, "dist", "qubes-iac.mjs");
const RESULTS = join(ROOT, "bench", "results.json");
const README = join(ROOT, "bench", "README.md");

const PLAN_SIZES = [10, 200, 1000];
const LATENCIES_MS = [0, 15];
/**
 * GetAll refused at 15 ms is measured up to this size: at 1000 qubes its lower bound alone is
 * about 100 s (some 55 000 calls), which the 10-minute budget of the whole run cannot take.
 */
const REFUSED_WITH_LATENCY_MAX_QUBES = 200;
const NAIVE_QUBES = 50;
/** qubesd's cost of one mutating call at 200 qubes, round trip included (issue 7). */
const APPLY_LATENCY = { readMs: 15, writeMs: 37 };
const CREATE_QUBES = 50;
/** Issue 14's example: a whole small system (clones, a standalone, PCI assignments) built from the simulator's laptop fixture. */
const LAPTOP_EXAMPLE = join(ROOT, "examples", "laptop.yaml");
const LAPTOP_SCENARIO = `${LAPTOP_PREFIX} from the laptop fixture`;
const CHANGE_QUBES = 200;
const COMPUTE_SIZES = [1000, 2000, 5000, GENERATED_MAX_QUBES - 1];
/** A plan shorter than this is measured three times (median); a longer one once. */
const REPEAT_BELOW_MS = 5000;
const OWNER = "bench";

const t0 = performance.now();
const progress = (msg: string): void => {
  const s = Math.round((performance.now() - t0) / 1000);
  process.stderr.write(`[${String(Math.floor(s / 60)).padStart(2, "0")}:${String(s % 60).padStart(2, "0")}] ${msg}\n`);
};

function machine(): Omit<Results["machine"], "loadAverageAtEnd"> {
  let model = cpus()[0]?.model ?? "unknown";
  try {
    model = /^model name\s*:\s*(.*)$/m.exec(readFileSync("/proc/cpuinfo", "utf8"))?.[1] ?? model;
  } catch {
    // not Linux: os.cpus() named it
  }
  const git = (args: string[]): string => {
    try {
      return execFileSync("git", args, { cwd: ROOT, encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).trim();
    } catch {
      return "";
    }
  };
  return {
    cpus: availableParallelism(),
    cpuModel: model,
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    node: process.version,
    os: `${process.platform} ${release()}`,
    commit: git(["rev-parse", "--short", "HEAD"]),
    uncommittedChanges: git(["status", "--porcelain", "--untracked-files=no"]) !== "",
    loadAverageAtStart: loadavg().map((l) => Math.round(l * 100) / 100),
  };
}

/** A no-op plan measured once, and twice more when it is short (the median of three is reported). */
async function planFigure(base: Parameters<typeof measurePlan>[0]): Promise<PlanFigure> {
  const first = await measurePlan({ ...base, runs: 1 });
  if (first.wallMs >= REPEAT_BELOW_MS) return first;
  return measurePlan({ ...base, runs: 3 });
}

/** validate of generated configs of new qubes (createConfig: templates and netvms only the system has). */
async function validateFigures(dir: string): Promise<NonNullable<Results["validate"]>> {
  const validateDir = join(dir, "validate");
  mkdirSync(validateDir);
  const sizes = [
    { qubes: VALIDATE_SIZES.small, runs: 5 },
    { qubes: VALIDATE_SIZES.large, runs: 3 },
  ];
  progress(`validate: ${sizes.map((s) => `${s.qubes} qubes (${s.runs} runs)`).join(", ")}, each run after a --version run`);
  const figures = await measureValidate({ bundle: BUNDLE, dir: validateDir, configs: sizes.map((s) => ({ ...s, config: createConfig(OWNER, s.qubes) })) });
  for (const f of figures) progress(`  ${f.qubes} qubes: ${Math.round(f.medianMs)} ms (median), --version ${Math.round(f.versionMedianMs)} ms; ${f.verdict}`);
  return figures;
}

async function measureAll(): Promise<Results> {
  const startedAt = new Date().toISOString();
  progress("building dist/qubes-iac.mjs (npm run build)");
  execFileSync(process.execPath, [join(ROOT, "scripts", "build.mjs")], { cwd: ROOT, stdio: "inherit" });
  const m = machine();
  progress(`${m.cpus} CPUs (${m.cpuModel}), node ${m.node}, load average ${m.loadAverageAtStart.join(" ")}`);
  const dir = mkdtempSync(join(tmpdir(), "qubes-iac-bench-"));
  try {
    progress("bundle: a copy alone in an empty directory");
    const bundle = await checkBundle(BUNDLE, join(ROOT, "examples", "reference.yaml"));

    progress("start-up: node -e 0, --version, validate examples/reference.yaml (10 runs each)");
    const startup = await measureStartup({
      bundle: BUNDLE,
      cwd: ROOT,
      runs: 10,
      commands: [
        { label: "qubes-iac --version", args: [BUNDLE, "--version"] },
        { label: "qubes-iac validate examples/reference.yaml", args: [BUNDLE, "validate", "examples/reference.yaml"] },
      ],
    });

    const plans: PlanFigure[] = [];
    const skipped: Results["skipped"] = [];
    const adoptions: Results["adoptions"] = [];
    const adoptedStates = new Map<number, { statePath: string; configPath: string }>();
    const expectedPlanCalls: Record<string, number> = {};
    for (const qubes of PLAN_SIZES) {
      const systemQubes = Math.max(qubes + 1, GENERATED_MIN_QUBES);
      const sizeDir = join(dir, `plan-${qubes}`);
      mkdirSync(sizeDir);
      const statePath = join(sizeDir, "state.json");
      const doc = generateFixtureState(systemQubes);
      const config: Config = adoptConfig(doc, OWNER, qubes);
      const configPath = writeConfig(sizeDir, "qubes.yaml", config);
      progress(`${qubes} qubes: adopting them (first apply, in memory) on generated:${systemQubes}`);
      const adopted = await adoptInMemory({ doc, desired: desiredOf(config), statePath });
      adoptions.push({ qubes, systemQubes, calls: adopted.calls });
      adoptedStates.set(qubes, { statePath, configPath });
      expectedPlanCalls[String(qubes)] = planCallsNeeded(JSON.parse(readFileSync(statePath, "utf8")) as StateDocument, config);
      for (const getAll of ["allowed", "refused"] as const) {
        for (const latencyMs of LATENCIES_MS) {
          if (getAll === "refused" && latencyMs > 0 && qubes > REFUSED_WITH_LATENCY_MAX_QUBES) {
            const atZero = plans.find((p) => p.qubes === qubes && p.getAll === "refused" && p.latencyMs === 0);
            const bound = atZero ? `its lower bound alone is ${Math.round((Math.ceil(atZero.calls.calls / PARALLELISM) * latencyMs) / 1000)} s (${atZero.calls.calls} calls)` : "it is too long";
            skipped.push({ what: `no-op plan, ${qubes} qubes, ${latencyMs} ms per call, GetAll refused`, why: `${bound}; measured up to ${REFUSED_WITH_LATENCY_MAX_QUBES} qubes to keep the run under 10 minutes` });
            continue;
          }
          progress(`${qubes} qubes: no-op plan, ${latencyMs} ms per call, GetAll ${getAll}`);
          const f = await planFigure({ bundle: BUNDLE, dir: sizeDir, statePath, configPath, qubes, latencyMs, getAll, runs: 1 });
          const bound = f.lowerBoundMs !== undefined ? `, bound ${Math.round(f.lowerBoundMs)} ms, ×${(f.wallMs / f.lowerBoundMs).toFixed(2)}` : "";
          progress(`  ${f.calls.calls} calls, ${Math.round(f.wallMs)} ms (median of ${f.runs})${bound}, ${Math.round(f.maxRssMb)} MB`);
          plans.push(f);
        }
      }
    }

    const naive: Results["naive"] = [];
    {
      const naiveDir = join(dir, "naive");
      mkdirSync(naiveDir);
      const systemQubes = Math.max(NAIVE_QUBES + 1, GENERATED_MIN_QUBES);
      const doc = generateFixtureState(systemQubes);
      const statePath = join(naiveDir, "state.json");
      writeFileSync(statePath, JSON.stringify(doc));
      for (const latencyMs of LATENCIES_MS) {
        progress(`naive baseline: ${NAIVE_QUBES} qubes, one call at a time, ${latencyMs} ms per call`);
        const f = await measureNaive({ dir: naiveDir, statePath, config: adoptConfig(doc, OWNER, NAIVE_QUBES), latencyMs });
        progress(`  ${f.calls} calls, ${Math.round(f.msPerQube)} ms per qube`);
        naive.push(f);
      }
    }

    const applies: Results["applies"] = [];
    {
      const applyDir = join(dir, "apply");
      mkdirSync(applyDir);
      const createPath = writeConfig(applyDir, "create.yaml", createConfig(`${OWNER}-new`, CREATE_QUBES));
      const adopted = adoptedStates.get(CHANGE_QUBES);
      if (!adopted) throw new Error(`no adopted system of ${CHANGE_QUBES} qubes to change`);
      const changed = withProperty(adoptConfig(generateFixtureState(CHANGE_QUBES + 1), OWNER, CHANGE_QUBES), "qrexec_timeout", 90);
      const changePath = writeConfig(applyDir, "change.yaml", changed);
      for (const latency of [{ readMs: 0, writeMs: 0 }, APPLY_LATENCY]) {
        const l = `${latency.readMs}/${latency.writeMs} ms`;
        progress(`apply: create ${CREATE_QUBES} qubes on generated:${CHANGE_QUBES + 1}, ${l} per read/write`);
        applies.push(await measureApply({ bundle: BUNDLE, dir: applyDir, scenario: `create ${CREATE_QUBES} qubes`, configPath: createPath, latency, from: { generated: CHANGE_QUBES + 1 } }));
        progress(`apply: change qrexec_timeout on ${CHANGE_QUBES} managed qubes, ${l} per read/write`);
        applies.push(await measureApply({ bundle: BUNDLE, dir: applyDir, scenario: `change 1 property on ${CHANGE_QUBES} qubes`, configPath: changePath, latency, from: { statePath: adopted.statePath } }));
        progress(`apply: ${LAPTOP_SCENARIO}, ${l} per read/write`);
        applies.push(await measureApply({ bundle: BUNDLE, dir: applyDir, scenario: LAPTOP_SCENARIO, configPath: LAPTOP_EXAMPLE, latency, from: { fixture: "laptop" } }));
      }
    }

    const validate = await validateFigures(dir);

    progress(`plan computation in memory: ${COMPUTE_SIZES.join(", ")} qubes`);
    const computation = await measurePlanComputation(COMPUTE_SIZES, { repeat: 3, onSize: (n) => progress(`  ${n} qubes`) });

    const durationS = Math.round((performance.now() - t0) / 1000);
    return {
      format: "qubes-iac-bench",
      version: 1,
      command: "npm run bench",
      startedAt,
      durationS,
      machine: { ...m, loadAverageAtEnd: loadavg().map((l) => Math.round(l * 100) / 100) },
      parallelism: PARALLELISM,
      bundle,
      startup,
      adoptions,
      plans,
      skipped,
      expectedPlanCalls,
      naive,
      applies,
      applyLatency: APPLY_LATENCY,
      computation,
      validate,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv.includes("--validate-only")) {
  progress("building dist/qubes-iac.mjs (npm run build)");
  execFileSync(process.execPath, [join(ROOT, "scripts", "build.mjs")], { cwd: ROOT, stdio: "inherit" });
  const dir = mkdtempSync(join(tmpdir(), "qubes-iac-bench-"));
  try {
    for (const t of validateTargets(await validateFigures(dir))) process.stdout.write(`| ${t.target} | ${t.measured} | ${t.met ? "yes" : "**no**"} |\n`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  process.exit(0);
}

const reportOnly = process.argv.includes("--report");
const results: Results = reportOnly ? (JSON.parse(readFileSync(RESULTS, "utf8")) as Results) : await measureAll();
if (!reportOnly) writeFileSync(RESULTS, `${JSON.stringify(results, null, 2)}\n`);
writeFileSync(README, renderReadme(readFileSync(README, "utf8"), results));
progress(`done in ${results.durationS} s: bench/results.json, bench/README.md`);
