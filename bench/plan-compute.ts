// The plan computation alone — diff, dependencies and ordering (buildPlan), then the JSON plan —
// timed in memory on generated systems of growing size, to show it grows linearly with the
// number of qubes. The states are prepared with the real reader and apply engine over the
// in-memory simulator (memory-qubes.ts); only buildPlan and toJsonPlan are timed.

import { stringify } from "yaml";
import { readerFromClient } from "../src/apply/admin-api.js";
import { loadConfig, type ConfigIO } from "../src/config/index.js";
import type { ActualState } from "../src/model/actual.js";
import type { DesiredState } from "../src/model/desired.js";
import { toJsonPlan } from "../src/plan/json.js";
import { buildPlan } from "../src/plan/plan.js";
import { readActualState } from "../src/plan/reader.js";
import { generateFixtureState, GENERATED_MIN_QUBES } from "../src/providers/qubes/simulator/index.js";
import { median } from "./cli.js";
import { adoptConfig, withProperty, type Config } from "./fleet.js";
import { applyInMemory, memorySystem, PLAN_OPTIONS } from "./memory-qubes.js";

export type PlanShape = "adopt-all" | "no-op" | "change-all";

export type ComputeFigure = {
  shape: PlanShape;
  /** Resource changes in the plan (one per managed qube here). */
  resources: number;
  steps: number;
  /** Median of the repeats: buildPlan (diff + ordering), and toJsonPlan after it. */
  buildMs: number;
  jsonMs: number;
};

export type ComputeRow = { qubes: number; figures: ComputeFigure[] };

const OWNER = "bench";
const PARALLELISM = 8;

/** Loads a config object through the real loader, from memory, as one file. */
export function desiredOf(config: Config): DesiredState {
  const text = stringify(config);
  const io: ConfigIO = {
    readFile: (path) => {
      if (path !== "qubes.yaml") throw new Error(`no such file ${path}`);
      return text;
    },
    readDir: () => [],
    isDirectory: () => false,
    exists: (path) => path === "qubes.yaml",
  };
  const loaded = loadConfig(["qubes.yaml"], io);
  if (!loaded.config) throw new Error(`the generated config does not load: ${loaded.diagnostics.map((d) => d.message).join("; ")}`);
  return loaded.config;
}

function timePlan(shape: PlanShape, desired: DesiredState, actual: ActualState, repeat: number): ComputeFigure {
  const build: number[] = [];
  const json: number[] = [];
  let resources = 0;
  let steps = 0;
  for (let i = 0; i < repeat; i++) {
    const t0 = performance.now();
    const plan = buildPlan(desired, actual, PLAN_OPTIONS);
    const t1 = performance.now();
    toJsonPlan(plan, { version: "bench" });
    const t2 = performance.now();
    build.push(t1 - t0);
    json.push(t2 - t1);
    resources = plan.changes.length;
    steps = plan.steps.length;
  }
  return { shape, resources, steps, buildMs: median(build), jsonMs: median(json) };
}

/**
 * For each size, a generated system whose first `qubes` qubes (all but dom0 when the system is
 * no larger) a config adopts: the first plan (adopt them all), then, after the real apply
 * engine has run it, the no-op plan and a plan changing one property on every qube.
 */
export async function measurePlanComputation(sizes: readonly number[], o: { repeat: number; onSize?: (qubes: number) => void }): Promise<ComputeRow[]> {
  const rows: ComputeRow[] = [];
  for (const qubes of sizes) {
    o.onSize?.(qubes);
    const doc = generateFixtureState(Math.max(qubes + 1, GENERATED_MIN_QUBES));
    const config = adoptConfig(doc, OWNER, qubes);
    const desired = desiredOf(config);
    const changed = desiredOf(withProperty(config, "qrexec_timeout", 90));
    const system = memorySystem(doc, PARALLELISM);
    const reader = readerFromClient(system.client);

    const first = await readActualState(reader, desired, { parallelism: PARALLELISM });
    const adoptFigure = timePlan("adopt-all", desired, first, o.repeat);
    await applyInMemory(system, desired, PARALLELISM, first);

    const owned = await readActualState(reader, desired, { parallelism: PARALLELISM });
    const noop = timePlan("no-op", desired, owned, o.repeat);
    if (noop.steps !== 0) throw new Error(`the plan after adopting ${qubes} qubes is not a no-op: ${noop.steps} steps`);
    const change = timePlan("change-all", changed, owned, o.repeat);
    rows.push({ qubes, figures: [adoptFigure, noop, change] });
  }
  return rows;
}
