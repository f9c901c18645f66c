// The benchmark's results as data (results.json) and as the tables of bench/README.md, with each
// target of issue 7 next to what was measured. Pure: results in, Markdown out. Only the part of
// the README between the two markers is rewritten; the prose around it is kept as written.

import type { ComputeRow } from "./plan-compute.js";
import type { ApplyFigure, BundleFigure, Latency, NaiveFigure, PlanFigure, StartupFigure, ValidateFigure } from "./scenarios.js";

export type Results = {
  format: "qubes-iac-bench";
  version: 1;
  command: string;
  startedAt: string;
  durationS: number;
  machine: {
    cpus: number;
    cpuModel: string;
    memoryGiB: number;
    node: string;
    os: string;
    commit: string;
    uncommittedChanges: boolean;
    loadAverageAtStart: number[];
    loadAverageAtEnd: number[];
  };
  parallelism: number;
  bundle: BundleFigure;
  startup: StartupFigure[];
  /** The first apply of each plan size, which adopts every qube (setup, in memory). */
  adoptions: Array<{ qubes: number; systemQubes: number; calls: number }>;
  plans: PlanFigure[];
  /** Measurements left out, and why. */
  skipped: Array<{ what: string; why: string }>;
  /** Calls the data needs for the no-op plan of each size (docs/ownership.md), by count. */
  expectedPlanCalls: Record<string, number>;
  naive: NaiveFigure[];
  applies: ApplyFigure[];
  applyLatency: Latency;
  computation: ComputeRow[];
  /** validate of large generated configs (issue 12); absent from results of before it. */
  validate?: ValidateFigure[];
};

/** The scenario name bench/main.ts gives the apply of issue 14's example (examples/laptop.yaml). */
export const LAPTOP_PREFIX = "examples/laptop.yaml";

export const BEGIN = "<!-- results:begin (written by npm run bench) -->";
export const END = "<!-- results:end -->";

export type TargetRow = { target: string; measured: string; met: boolean };

const ms = (x: number): string => (x >= 10_000 ? `${(x / 1000).toFixed(1)} s` : `${Math.round(x)} ms`);
const times = (x: number): string => `${x.toFixed(2)}×`;
const int = (x: number): string => Math.round(x).toLocaleString("en-US");

function plan(r: Results, qubes: number, latencyMs: number, getAll: PlanFigure["getAll"]): PlanFigure | undefined {
  return r.plans.find((p) => p.qubes === qubes && p.latencyMs === latencyMs && p.getAll === getAll);
}

/** Each target of issue 7 against the figures. */
export function targets(r: Results): TargetRow[] {
  const rows: TargetRow[] = [];
  const p200 = plan(r, 200, 15, "allowed");
  if (p200) {
    const expected = r.expectedPlanCalls["200"];
    const repeated = p200.calls.repeated.length;
    rows.push({
      target: "no-op plan, 200 qubes, 15 ms/call: no more calls than the data needs, nothing repeated",
      measured: `${int(p200.calls.calls)} calls, ${expected === undefined ? "no expected count" : `${int(expected)} needed`}, ${repeated} repeated`,
      met: expected !== undefined && p200.calls.calls <= expected && repeated === 0,
    });
    if (p200.lowerBoundMs !== undefined) {
      const ratio = p200.wallMs / p200.lowerBoundMs;
      rows.push({
        target: `no-op plan, 200 qubes, 15 ms/call: ≤ 1.3 × lower bound at parallelism ${r.parallelism}`,
        measured: `${ms(p200.wallMs)} / ${ms(p200.lowerBoundMs)} = ${times(ratio)}`,
        met: ratio <= 1.3,
      });
    }
    const naive15 = r.naive.find((n) => n.latencyMs === 15);
    if (naive15) {
      const planPerQube = p200.wallMs / p200.qubes;
      const speedup = naive15.msPerQube / planPerQube;
      rows.push({
        target: "no-op plan, 15 ms/call: ≥ 20 × faster per qube than the naive serial reads",
        measured: `${ms(naive15.msPerQube)} vs ${planPerQube.toFixed(1)} ms per qube = ${speedup.toFixed(0)}×`,
        met: speedup >= 20,
      });
    }
  }
  const p1000 = plan(r, 1000, 0, "allowed");
  if (p1000) {
    rows.push({ target: "no-op plan, 1000 qubes, 0 ms/call: under 2 s wall", measured: ms(p1000.wallMs), met: p1000.wallMs < 2000 });
    rows.push({ target: "no-op plan, 1000 qubes, 0 ms/call: under 200 MB RSS", measured: `${Math.round(p1000.maxRssMb)} MB`, met: p1000.maxRssMb < 200 });
  }
  const version = r.startup.find((s) => s.command === "qubes-iac --version");
  if (version) rows.push({ target: "`qubes-iac --version` within 2.5 × `node -e 0`", measured: times(version.ratioToNode), met: version.ratioToNode <= 2.5 });
  const lin = linearity(r.computation);
  if (lin) {
    rows.push({
      target: `plan computation linear in the number of qubes (µs per qube at ${int(lin.largest)} within 2 × that at ${int(lin.smallest)})`,
      measured: lin.shapes.map((s) => `${s.shape} ${times(s.growth)}`).join(", "),
      met: lin.shapes.every((s) => s.growth <= 2),
    });
  }
  rows.push(...validateTargets(r.validate ?? []));
  rows.push({
    target: "single-file build: one .mjs, no runtime node_modules",
    measured: `${(r.bundle.bytes / 2 ** 20).toFixed(2)} MiB; ${r.bundle.foreignImports.length === 0 ? "imports only node: built-ins" : `imports ${r.bundle.foreignImports.join(", ")}`}; ${r.bundle.runsAlone ? "runs alone" : "does not run alone"}`,
    met: r.bundle.foreignImports.length === 0 && r.bundle.runsAlone,
  });
  rows.push({ target: "`npm run bench` under 10 minutes", measured: `${Math.floor(r.durationS / 60)} min ${r.durationS % 60} s`, met: r.durationS < 600 });
  return rows;
}

/** The config sizes whose validate the targets of issue 12 compare. */
export const VALIDATE_SIZES = { small: 1000, large: 10_000 } as const;

/** Issue 12: validate is linear in the config's size, and fast enough at 1 000 and 10 000 qubes. */
export function validateTargets(figures: readonly ValidateFigure[]): TargetRow[] {
  const small = figures.find((f) => f.qubes === VALIDATE_SIZES.small);
  const large = figures.find((f) => f.qubes === VALIDATE_SIZES.large);
  const rows: TargetRow[] = [];
  if (small && large) {
    const growth = large.medianMs / large.qubes / (small.medianMs / small.qubes);
    rows.push({
      target: `validate (issue 12), qubes naming system-only qubes: ms per qube at ${int(large.qubes)} within 1.5 × that at ${int(small.qubes)}`,
      measured: `${(large.medianMs / large.qubes).toFixed(3)} vs ${(small.medianMs / small.qubes).toFixed(3)} ms = ${times(growth)}`,
      met: growth <= 1.5,
    });
  }
  if (small) {
    const ratio = small.medianMs / small.versionMedianMs;
    rows.push({
      target: `validate (issue 12), ${int(small.qubes)} qubes: under 8 × \`qubes-iac --version\``,
      measured: `${ms(small.medianMs)} / ${ms(small.versionMedianMs)} = ${times(ratio)}`,
      met: ratio < 8,
    });
  }
  if (large) rows.push({ target: `validate (issue 12), ${int(large.qubes)} qubes: under 10 s`, measured: ms(large.medianMs), met: large.medianMs < 10_000 });
  return rows;
}

/** Per-qube cost of each plan shape at the largest size relative to the smallest. */
export function linearity(rows: readonly ComputeRow[]): { smallest: number; largest: number; shapes: Array<{ shape: string; growth: number }> } | undefined {
  const first = rows[0];
  const last = rows.at(-1);
  if (!first || !last || first === last) return undefined;
  const shapes = first.figures.map((f) => {
    const g = last.figures.find((x) => x.shape === f.shape);
    const per = (x: { buildMs: number }, n: number): number => x.buildMs / n;
    return { shape: f.shape, growth: g ? per(g, last.qubes) / per(f, first.qubes) : NaN };
  });
  return { smallest: first.qubes, largest: last.qubes, shapes };
}

function table(head: string[], rows: string[][]): string {
  return [`| ${head.join(" | ")} |`, `| ${head.map(() => "---").join(" | ")} |`, ...rows.map((r) => `| ${r.join(" | ")} |`)].join("\n");
}

export function renderResults(r: Results): string {
  const m = r.machine;
  const out: string[] = [];
  out.push(
    `Measured ${r.startedAt.slice(0, 16).replace("T", " ")} UTC with \`${r.command}\` in ${Math.floor(r.durationS / 60)} min ${r.durationS % 60} s, ` +
      `on ${m.cpus} CPUs (${m.cpuModel}), ${m.memoryGiB} GiB, Node ${m.node}, ${m.os}; commit ${m.commit || "unknown"}` +
      `${m.uncommittedChanges ? " with uncommitted changes" : ""}. Load average ${m.loadAverageAtStart.join(" ")} at the start, ` +
      `${m.loadAverageAtEnd.join(" ")} at the end. Parallelism ${r.parallelism} (the default) everywhere.`,
  );

  out.push("", "### Targets", "");
  out.push(table(["target (issue 7 unless named)", "measured", "met"], targets(r).map((t) => [t.target, t.measured, t.met ? "yes" : "**no**"])));

  out.push("", "### No-op plan (the built CLI against the simulator on a socket)", "");
  out.push(
    table(
      ["qubes", "ms/call", "GetAll", "calls", "calls/qube", "wall", "before reads", "after reads", "runs", "peak RSS", "lower bound", "wall ÷ bound", "reads ÷ bound", "in flight", "served ms/read"],
      r.plans.map((p) => {
        const bound = p.lowerBoundMs;
        return [
          String(p.qubes),
          String(p.latencyMs),
          p.getAll,
          int(p.calls.calls),
          (p.calls.calls / p.qubes).toFixed(1),
          ms(p.wallMs),
          ms(p.beforeReadsMs),
          ms(p.afterReadsMs),
          String(p.runs),
          `${Math.round(p.maxRssMb)} MB`,
          bound !== undefined ? ms(bound) : "—",
          bound !== undefined ? times(p.wallMs / bound) : "—",
          bound !== undefined ? times(p.calls.spanMs / bound) : "—",
          p.calls.meanInFlight.toFixed(1),
          p.calls.meanReadMs.toFixed(2),
        ];
      }),
    ),
  );
  const callsOf = (p: PlanFigure | undefined): string =>
    p
      ? Object.entries(p.calls.byMethod)
          .map(([k, v]) => `${k.replace(/^admin\./, "")} ${int(v)}`)
          .join(", ")
      : "";
  const p200 = plan(r, 200, 15, "allowed");
  const refused200 = plan(r, 200, 15, "refused");
  for (const k of r.skipped) out.push("", `Not measured: ${k.what} — ${k.why}.`);
  if (p200) out.push("", `Calls of the 200-qube no-op plan: ${callsOf(p200)}.`);
  if (refused200) out.push(`With GetAll refused: ${callsOf(refused200)}.`);

  out.push("", "### Naive baseline: one call at a time, one property.Get per property", "");
  const p200ms = p200 ? p200.wallMs / p200.qubes : undefined;
  out.push(
    table(
      ["qubes", "ms/call", "calls/qube", "ms per qube", "no-op plan (200 qubes) ms per qube", "plan is faster by"],
      r.naive.map((n) => {
        const planned = plan(r, 200, n.latencyMs, "allowed");
        const per = planned ? planned.wallMs / planned.qubes : undefined;
        return [String(n.qubes), String(n.latencyMs), n.callsPerQube.toFixed(1), n.msPerQube.toFixed(1), per !== undefined ? per.toFixed(1) : "—", per !== undefined ? `${(n.msPerQube / per).toFixed(0)}×` : "—"];
      }),
    ),
  );
  if (p200ms === undefined) out.push("", "(no 200-qube plan to compare with)");

  out.push("", `### Apply (the built CLI, \`--auto-approve\`; writes are served one at a time, as qubesd does)`, "");
  out.push(
    table(
      ["scenario", "ms/read, ms/write", "calls", "reads", "writes", "wall", "peak RSS", "lower bound", "wall ÷ bound"],
      r.applies.map((a) => [
        a.scenario,
        `${a.latency.readMs}, ${a.latency.writeMs}`,
        int(a.calls.calls),
        int(a.calls.reads),
        int(a.calls.writes),
        ms(a.wallMs),
        `${Math.round(a.maxRssMb)} MB`,
        a.lowerBoundMs !== undefined ? ms(a.lowerBoundMs) : "—",
        a.lowerBoundMs !== undefined ? times(a.wallMs / a.lowerBoundMs) : "—",
      ]),
    ),
  );
  const laptop = r.applies.filter((a) => a.scenario.startsWith(LAPTOP_PREFIX));
  out.push(
    "",
    laptop.length > 0
      ? `\`${LAPTOP_PREFIX}\` (issue 14): a whole small system from the simulator's laptop fixture — a template cloned from fedora-41, a standalone cloned from it, sys-net and sys-usb taken over with their PCI controllers, a new HVM with the audio controller, an AppVM on the clone; ` +
          laptop.map((a) => `${a.latency.readMs}/${a.latency.writeMs} ms: ${int(a.calls.calls)} calls (${int(a.calls.writes)} writes), ${ms(a.wallMs)}${a.lowerBoundMs !== undefined ? ` against a lower bound of ${ms(a.lowerBoundMs)}` : ""}`).join("; ") +
          ". The simulator copies a volume at no cost: a real CloneTo adds the copy's time."
      : `(no apply of \`${LAPTOP_PREFIX}\` in these results: they were measured before it was added)`,
  );
  out.push(
    "",
    "Setup, not measured: the first apply of each plan size, which adopts every qube, runs the real planner and apply engine over the simulator in memory — " +
      r.adoptions.map((a) => `${a.qubes} qubes (generated:${a.systemQubes}): ${int(a.calls)} calls`).join("; ") +
      ".",
  );

  out.push("", "### CLI start-up (median of the runs, interleaved)", "");
  out.push(table(["command", "runs", "median", "× node -e 0"], r.startup.map((s) => [s.command, String(s.runs), ms(s.medianMs), times(s.ratioToNode)])));

  if (r.validate && r.validate.length > 0) {
    out.push("", "### validate of large configs (new qubes whose template and netvm exist only on the system)", "");
    out.push(
      table(
        ["qubes", "file", "runs", "median", "ms per qube", "× `--version`", "result"],
        r.validate.map((v) => [int(v.qubes), `${(v.bytes / 2 ** 20).toFixed(1)} MiB`, String(v.runs), ms(v.medianMs), (v.medianMs / v.qubes).toFixed(3), times(v.medianMs / v.versionMedianMs), v.verdict]),
      ),
    );
  }

  out.push("", "### Plan computation in memory (buildPlan: diff, dependencies, ordering; then the JSON plan)", "");
  const shapes = r.computation[0]?.figures.map((f) => f.shape) ?? [];
  out.push(
    table(
      ["qubes", ...shapes.flatMap((s) => [`${s} buildPlan`, `µs/qube`]), "JSON plan (change-all)"],
      r.computation.map((row) => [
        int(row.qubes),
        ...shapes.flatMap((s) => {
          const f = row.figures.find((x) => x.shape === s);
          return f ? [ms(f.buildMs), ((f.buildMs * 1000) / row.qubes).toFixed(0)] : ["—", "—"];
        }),
        (() => {
          const f = row.figures.find((x) => x.shape === "change-all");
          return f ? ms(f.jsonMs) : "—";
        })(),
      ]),
    ),
  );
  return out.join("\n");
}

/** The README with its results section replaced (appended when the markers are missing). */
export function renderReadme(current: string, r: Results): string {
  const section = `${BEGIN}\n${renderResults(r)}\n${END}`;
  const a = current.indexOf(BEGIN);
  const b = current.indexOf(END);
  if (a < 0 || b < a) return `${current.trimEnd()}\n\n${section}\n`;
  return `${current.slice(0, a)}${section}${current.slice(b + END.length)}`;
}
