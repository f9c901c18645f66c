// The measurements of issues 7 and 12, one function each: a no-op plan (built CLI against the
// simulator on a socket, server-side latency), the naive per-property reads, apply runs, CLI
// start-up, validate of large configs and the bundle's independence from node_modules. Each returns plain figures for results.json;
// nothing here decides whether a target is met (report.ts does).

import { copyFileSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { stringify } from "yaml";
import { createAdminClient } from "../src/providers/qubes/client.js";
import type { DesiredState } from "../src/model/desired.js";
import type { SimCallLogEntry, StateDocument } from "../src/providers/qubes/simulator/index.js";
import { methodMutates } from "../src/providers/qubes/simulator/dispatch.js";
import { createSocketTransport } from "../src/providers/qubes/transport-socket.js";
import { median, runNode, runNodeOk } from "./cli.js";
import type { Config } from "./fleet.js";
import { applyInMemory, memorySystem } from "./memory-qubes.js";
import { countByMethod, repeatedCalls, startBenchSim } from "./sim.js";

/** The CLI's default --parallelism, which every measured run uses. */
export const PARALLELISM = 8;

export type Latency = { readMs: number; writeMs: number };

/** Writes `config` as YAML (what a user would keep) into `dir` under `name`. */
export function writeConfig(dir: string, name: string, config: Config): string {
  const path = join(dir, name);
  writeFileSync(path, stringify(config));
  return path;
}

/** What the call log says about one run. */
export type CallFigures = {
  calls: number;
  reads: number;
  writes: number;
  byMethod: Record<string, number>;
  /** Calls that failed with a Qubes exception (e.g. a refused GetAll). */
  exceptions: number;
  /** The same method, argument and destination called more than once. */
  repeated: string[];
  /** From the first request's arrival to the last reply, by the server's clock. */
  spanMs: number;
  /** Epoch milliseconds of the first request's arrival and of the last reply. */
  firstArrival: number;
  lastReply: number;
  /** Average number of calls in the server at once over that span. */
  meanInFlight: number;
  /** Mean server-side time of a read (its latency plus the simulator's own work). */
  meanReadMs: number;
};

export function callFigures(log: readonly SimCallLogEntry[]): CallFigures {
  let first = Infinity;
  let last = -Infinity;
  let busy = 0;
  let writes = 0;
  let readMs = 0;
  for (const c of log) {
    const end = Date.parse(c.time);
    first = Math.min(first, end - c.ms);
    last = Math.max(last, end);
    busy += c.ms;
    if (methodMutates(c.method)) writes++;
    else readMs += c.ms;
  }
  const spanMs = log.length > 0 ? Math.max(1, last - first) : 0;
  const reads = log.length - writes;
  return {
    calls: log.length,
    reads,
    writes,
    byMethod: countByMethod(log),
    exceptions: log.filter((c) => c.reply === "exception" || c.reply === "empty").length,
    repeated: repeatedCalls(log),
    spanMs,
    firstArrival: first,
    lastReply: last,
    meanInFlight: spanMs > 0 ? busy / spanMs : 0,
    meanReadMs: reads > 0 ? readMs / reads : 0,
  };
}

export type PlanFigure = {
  qubes: number;
  latencyMs: number;
  getAll: "allowed" | "refused";
  runs: number;
  /** Median wall time of the runs, spawn to exit. */
  wallMs: number;
  wallRunsMs: number[];
  /** Median of the runs' wall time outside the read span: start-up, config load, planning, output. */
  outsideReadsMs: number;
  /** Median time from spawn to the first call (start-up, config load, connecting). */
  beforeReadsMs: number;
  /** Median time from the last reply to exit (planning, rendering, exit). */
  afterReadsMs: number;
  /** Highest peak RSS over the runs. */
  maxRssMb: number;
  calls: CallFigures;
  /** ceil(calls / parallelism) × latency; absent at 0 ms. */
  lowerBoundMs?: number;
};

const GETALL_REFUSED = "admin.vm.property.GetAll@*=exception:PermissionDenied";

/**
 * Runs `qubes-iac plan --detailed-exitcode` `runs` times against `statePath` served at `latency`,
 * and checks that each run says "no changes" (exit 0) and makes the same number of calls.
 */
export async function measurePlan(o: {
  bundle: string;
  dir: string;
  statePath: string;
  configPath: string;
  qubes: number;
  latencyMs: number;
  getAll: "allowed" | "refused";
  runs: number;
}): Promise<PlanFigure> {
  const sim = await startBenchSim({
    dir: o.dir,
    statePath: o.statePath,
    latency: { readMs: o.latencyMs, writeMs: o.latencyMs },
    ...(o.getAll === "refused" ? { faults: [GETALL_REFUSED] } : {}),
  });
  try {
    const walls: number[] = [];
    const outside: number[] = [];
    const before: number[] = [];
    const after: number[] = [];
    let rss = 0;
    let figures: CallFigures | undefined;
    for (let i = 0; i < o.runs; i++) {
      const r = await runNodeOk([o.bundle, "plan", "--connect", `qubesd:${sim.socketPath}`, "--detailed-exitcode", o.configPath], { cwd: o.dir, probe: true });
      const f = callFigures(sim.takeCalls());
      if (figures && f.calls !== figures.calls) throw new Error(`plan of ${o.qubes} qubes made ${figures.calls} calls, then ${f.calls}`);
      figures ??= f;
      walls.push(r.wallMs);
      outside.push(r.wallMs - f.spanMs);
      before.push(f.firstArrival - r.spawnedAt);
      after.push(r.exitedAt - f.lastReply);
      rss = Math.max(rss, r.maxRssKb ?? 0);
    }
    if (!figures) throw new Error("no plan run");
    const lowerBoundMs = o.latencyMs > 0 ? Math.ceil(figures.calls / PARALLELISM) * o.latencyMs : undefined;
    return {
      qubes: o.qubes,
      latencyMs: o.latencyMs,
      getAll: o.getAll,
      runs: o.runs,
      wallMs: median(walls),
      wallRunsMs: walls,
      outsideReadsMs: median(outside),
      beforeReadsMs: median(before),
      afterReadsMs: median(after),
      maxRssMb: rss / 1024,
      calls: figures,
      ...(lowerBoundMs !== undefined ? { lowerBoundMs } : {}),
    };
  } finally {
    await sim.close();
  }
}

/**
 * Adopts the first `qubes` qubes of `doc` with the real planner and apply engine over the
 * in-memory simulator, and writes the result as the state file the socket simulator serves.
 * Every measured plan of it must then say "no changes" (measurePlan checks the exit code).
 */
export async function adoptInMemory(o: { doc: StateDocument; desired: DesiredState; statePath: string }): Promise<{ calls: number }> {
  const system = memorySystem(o.doc, PARALLELISM);
  await applyInMemory(system, o.desired, PARALLELISM);
  writeFileSync(o.statePath, system.stateText());
  return { calls: system.calls() };
}

export type NaiveFigure = {
  qubes: number;
  latencyMs: number;
  wallMs: number;
  calls: number;
  callsPerQube: number;
  msPerQube: number;
};

/**
 * What a per-property tool does for the same data: for each qube in turn, property.List and one
 * property.Get per property, tag.List, feature.List, one feature.Get per feature the config names
 * and firewall.Get when it declares a firewall — one call at a time.
 */
export async function measureNaive(o: { dir: string; statePath: string; config: Config; latencyMs: number }): Promise<NaiveFigure> {
  const sim = await startBenchSim({ dir: o.dir, statePath: o.statePath, latency: { readMs: o.latencyMs, writeMs: o.latencyMs } });
  const client = createAdminClient(createSocketTransport(sim.socketPath, { timeoutMs: 60_000 }));
  try {
    const qubes = Object.entries(o.config.qubes);
    const t0 = performance.now();
    for (const [vm, q] of qubes) {
      for (const name of await client.property.list({ vm })) await client.property.get({ vm }, name);
      await client.tag.list(vm);
      const present = new Set(await client.feature.list(vm));
      for (const f of Object.keys(q.features ?? {})) if (present.has(f)) await client.feature.get(vm, f);
      if (q.firewall !== undefined) await client.firewall.get(vm);
    }
    const wallMs = performance.now() - t0;
    const calls = sim.takeCalls().length;
    return { qubes: qubes.length, latencyMs: o.latencyMs, wallMs, calls, callsPerQube: calls / qubes.length, msPerQube: wallMs / qubes.length };
  } finally {
    await client.close();
    await sim.close();
  }
}

export type ApplyFigure = {
  scenario: string;
  latency: Latency;
  wallMs: number;
  maxRssMb: number;
  calls: CallFigures;
  /** Writes one at a time (qubesd serialises them) plus the reads at full parallelism; absent at 0 ms. */
  lowerBoundMs?: number;
};

/**
 * `qubes-iac apply --auto-approve` of `configPath` on a copy of `statePath` (or a fresh generated
 * system), then a plan of the same config that must find nothing left to do.
 */
export async function measureApply(o: {
  bundle: string;
  dir: string;
  scenario: string;
  configPath: string;
  latency: Latency;
  from: { statePath: string } | { generated: number } | { fixture: "laptop" };
}): Promise<ApplyFigure> {
  const work = mkdtempSync(join(o.dir, "apply-"));
  const statePath = join(work, "state.json");
  if ("statePath" in o.from) copyFileSync(o.from.statePath, statePath);
  const sim = await startBenchSim({ dir: work, statePath, latency: o.latency, ...("generated" in o.from ? { generated: o.from.generated } : {}), ...("fixture" in o.from ? { fixture: o.from.fixture } : {}) });
  try {
    const r = await runNodeOk([o.bundle, "apply", "--connect", `qubesd:${sim.socketPath}`, "--auto-approve", o.configPath], { cwd: o.dir, probe: true });
    const calls = callFigures(sim.takeCalls());
    const check = await runNode([o.bundle, "plan", "--connect", `qubesd:${sim.socketPath}`, "--detailed-exitcode", o.configPath], { cwd: o.dir });
    if (check.code !== 0) throw new Error(`after apply (${o.scenario}) the plan still has changes:\n${check.stdout.slice(-3000)}`);
    const { readMs, writeMs } = o.latency;
    const lowerBoundMs = readMs > 0 || writeMs > 0 ? calls.writes * writeMs + Math.ceil(calls.reads / PARALLELISM) * readMs : undefined;
    return { scenario: o.scenario, latency: o.latency, wallMs: r.wallMs, maxRssMb: (r.maxRssKb ?? 0) / 1024, calls, ...(lowerBoundMs !== undefined ? { lowerBoundMs } : {}) };
  } finally {
    await sim.close();
    rmSync(work, { recursive: true, force: true });
  }
}

export type StartupFigure = { command: string; runs: number; medianMs: number; ratioToNode: number };

/** Start-up of each command against `node -e 0`, runs interleaved so that load drifts hit all alike. */
export async function measureStartup(o: { bundle: string; cwd: string; runs: number; commands: Array<{ label: string; args: string[] }> }): Promise<StartupFigure[]> {
  const all = [{ label: "node -e 0", args: ["-e", "0"] }, ...o.commands];
  const walls = all.map(() => [] as number[]);
  for (let i = 0; i < o.runs; i++) {
    for (const [k, c] of all.entries()) walls[k]?.push((await runNodeOk(c.args, { cwd: o.cwd })).wallMs);
  }
  const base = median(walls[0] ?? []);
  return all.map((c, k) => {
    const m = median(walls[k] ?? []);
    return { command: c.label, runs: o.runs, medianMs: m, ratioToNode: m / base };
  });
}

export type BundleFigure = {
  bytes: number;
  /** Module specifiers the bundle imports that are not Node built-ins. */
  foreignImports: string[];
  /** A copy alone in a temporary directory ran `--version` and validated an example. */
  runsAlone: boolean;
};

/**
 * What a bundle loads at run time: its import statements and dynamic imports (read by esbuild's
 * parser, so text inside strings is not mistaken for an import), and the modules it requires
 * through esbuild's CommonJS shim `__require("…")`, which only generated code calls.
 */
export async function bundleImports(bundle: string): Promise<string[]> {
  const { build } = await import("esbuild");
  const r = await build({ entryPoints: [bundle], bundle: true, write: false, metafile: true, platform: "node", format: "esm", packages: "external", logLevel: "silent" });
  const found = new Set<string>();
  for (const input of Object.values(r.metafile.inputs)) for (const i of input.imports) if (i.external) found.add(i.path);
  for (const m of readFileSync(bundle, "utf8").matchAll(/\b__require\("([^"]+)"\)/g)) found.add(m[1] as string);
  return [...found].sort();
}

const isBuiltin = (specifier: string, builtins: ReadonlySet<string>): boolean => specifier.startsWith("node:") || builtins.has(specifier);

/** Copies the bundle and `example` alone into a temporary directory and runs them there. */
export async function checkBundle(bundle: string, example: string): Promise<BundleFigure> {
  const { builtinModules } = await import("node:module");
  const builtins = new Set(builtinModules);
  const foreignImports = (await bundleImports(bundle)).filter((s) => !isBuiltin(s, builtins));
  const alone = mkdtempSync(join(tmpdir(), "qiac-bundle-"));
  try {
    copyFileSync(bundle, join(alone, "qubes-iac.mjs"));
    copyFileSync(example, join(alone, "qubes.yaml"));
    const version = await runNode([join(alone, "qubes-iac.mjs"), "--version"], { cwd: alone });
    const validate = await runNode([join(alone, "qubes-iac.mjs"), "validate", "qubes.yaml"], { cwd: alone });
    return { bytes: statSync(bundle).size, foreignImports, runsAlone: version.code === 0 && version.stdout.trim() !== "" && validate.code === 0 };
  } finally {
    rmSync(alone, { recursive: true, force: true });
  }
}

export type ValidateFigure = {
  qubes: number;
  /** Size of the config file. */
  bytes: number;
  runs: number;
  /** Median wall time of `qubes-iac validate` of the config. */
  medianMs: number;
  /** Median of the `qubes-iac --version` runs interleaved with those. */
  versionMedianMs: number;
  /** What validate said of the file (`valid`), to show it checked it all. */
  verdict: string;
};

/**
 * `qubes-iac validate` of each config, one file each (new qubes whose templates and netvms exist
 * only on the system, so every reference is one the config does not define), interleaved with
 * `--version` runs so that the machine's load drifts hit both alike.
 */
export async function measureValidate(o: { bundle: string; dir: string; configs: Array<{ qubes: number; config: Config; runs: number }> }): Promise<ValidateFigure[]> {
  const out: ValidateFigure[] = [];
  for (const c of o.configs) {
    const path = writeConfig(o.dir, `validate-${c.qubes}.yaml`, c.config);
    const walls: number[] = [];
    const versions: number[] = [];
    let verdict = "";
    for (let i = 0; i < c.runs; i++) {
      versions.push((await runNodeOk([o.bundle, "--version"], { cwd: o.dir })).wallMs);
      const r = await runNodeOk([o.bundle, "validate", path], { cwd: o.dir, timeoutMs: 600_000 });
      walls.push(r.wallMs);
      verdict = r.stdout.trim().endsWith(": valid") ? "valid" : (r.stdout.trim().split("\n").at(-1) ?? "");
    }
    out.push({ qubes: c.qubes, bytes: statSync(path).size, runs: c.runs, medianMs: median(walls), versionMedianMs: median(versions), verdict });
  }
  return out;
}
