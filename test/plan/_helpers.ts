// Plan test support: load a config, plan it against the simulator over its real socket, and
// carry out a plan's ops literally, one after the other, with apply's op runner (each op exactly
// one client call), so a test fails if a plan ever holds an op qubesd would refuse.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { Ajv } from "ajv";
import { expect } from "vitest";
import { readerFromClient, runOp } from "../../src/apply/admin-api.js";
import { loadConfig, nodeConfigIO } from "../../src/config/index.js";
import type { Address } from "../../src/model/address.js";
import type { DesiredState } from "../../src/model/desired.js";
import { renderDiagnostic } from "../../src/model/diagnostics.js";
import { toJsonPlan, type JsonPlan } from "../../src/plan/json.js";
import { isAdminOp, type Op, type StepOp } from "../../src/plan/ops.js";
import { buildPlan, type Plan } from "../../src/plan/plan.js";
import { readActualState } from "../../src/plan/reader.js";
import { createAdminClient, type AdminClient } from "../../src/providers/qubes/client.js";
import { createSocketTransport } from "../../src/providers/qubes/transport-socket.js";
import type { Transport } from "../../src/providers/qubes/transport.js";
import { repoRoot } from "../helpers/shared.js";
import type { SimulatorOptions } from "../../src/providers/qubes/simulator/index.js";
import { startTestSim, type TestSim } from "../helpers/sim.js";

export const TEST_VERSION = "0.0.0-test";
export const fixtureDir = join(repoRoot, "test", "plan", "fixtures");

/** Loads a config (paths relative to the repository root); fails the test on config errors. */
export function loadDesired(...paths: string[]): DesiredState {
  const io = { ...nodeConfigIO, readFile: (p: string) => nodeConfigIO.readFile(join(repoRoot, p)), readDir: (p: string) => nodeConfigIO.readDir(join(repoRoot, p)), isDirectory: (p: string) => nodeConfigIO.isDirectory(join(repoRoot, p)), exists: (p: string) => nodeConfigIO.exists(join(repoRoot, p)), inspect: (p: string) => nodeConfigIO.inspect(join(repoRoot, p)) };
  const r = loadConfig(paths, io);
  if (!r.config) throw new Error(`config ${paths.join(", ")} is invalid:\n${r.diagnostics.map((d) => renderDiagnostic(d, () => undefined)).join("\n")}`);
  return r.config;
}

/** Loads a config given as YAML text (as file `qubes.yaml`); fails the test on config errors. */
export function desiredFromYaml(text: string): DesiredState {
  const io = {
    readFile: (p: string) => {
      if (p !== "qubes.yaml") throw new Error(`no file ${p}`);
      return text;
    },
    readDir: () => [],
    isDirectory: () => false,
    exists: (p: string) => p === "qubes.yaml",
  };
  const r = loadConfig(["qubes.yaml"], io);
  if (!r.config) throw new Error(`config is invalid:\n${r.diagnostics.map((d) => renderDiagnostic(d, () => text)).join("\n")}`);
  return r.config;
}

export type SimSession = { sim: TestSim; client: AdminClient; stop(): Promise<void> };

/** `opts`: the simulator's options; `wrap` stands between the client and its socket (e.g. test/helpers/release-overlay.ts). */
export async function startSession(opts: Parameters<typeof startTestSim>[0] = {}, wrap: (t: Transport) => Transport = (t) => t): Promise<SimSession> {
  const sim = await startTestSim(opts);
  const client = createAdminClient(wrap(createSocketTransport(sim.socketPath, { timeoutMs: 10_000 })));
  return {
    sim,
    client,
    stop: async () => {
      await client.close();
      await sim.stop();
    },
  };
}

export type PlanRun = { plan: Plan; json: JsonPlan };

export async function planWith(
  s: SimSession,
  desired: DesiredState,
  o: { allowRestart?: boolean; targets?: Address[]; excludes?: Address[]; parallelism?: number; now?: number } = {},
): Promise<PlanRun> {
  const actual = await readActualState(readerFromClient(s.client), desired, { parallelism: o.parallelism ?? 8 });
  const plan = buildPlan(desired, actual, { allowRestart: o.allowRestart ?? false, targets: o.targets ?? [], excludes: o.excludes ?? [], ...(o.now !== undefined ? { now: o.now } : {}) });
  return { plan, json: toJsonPlan(plan, { version: TEST_VERSION }) };
}

/** Every op of the plan, in step order (these plans have no guests: their ops are Admin API calls). */
export const planOps = (json: JsonPlan): Op[] =>
  json.steps.flatMap((s) => s.ops).map((o) => {
    if (!isAdminOp(o)) throw new Error(`a guest op in a plan without guests: ${o.op}`);
    return o;
  });

/** Runs the ops as one apply does: the UUIDs its `vm.uuid` ops read are bound for its record ops. */
export async function runOps(client: AdminClient, ops: readonly StepOp[]): Promise<void> {
  const uuids = new Map<string, string>();
  for (const o of ops) {
    if (!isAdminOp(o)) throw new Error(`a guest op in a plan without guests: ${o.op}`);
    await runOp(client, o, uuids);
  }
}

/** Plans and carries the plan out; the plan must be applyable. */
export async function converge(s: SimSession, desired: DesiredState, o: { allowRestart?: boolean } = {}): Promise<void> {
  const { json } = await planWith(s, desired, o);
  expect(json.diagnostics.filter((d) => d.severity === "error")).toEqual([]);
  await runOps(s.client, planOps(json));
}

const schema = JSON.parse(readFileSync(join(repoRoot, "schemas", "plan.schema.json"), "utf8")) as object;
const ajv = new Ajv({ allErrors: true, strict: true });
const validate = ajv.compile(schema);

/** Fails the test when the JSON plan does not match schemas/plan.schema.json. */
export function expectValidPlanJson(json: unknown): void {
  const ok = validate(json);
  expect(ok ? [] : validate.errors).toEqual([]);
}

export const errorCodes = (json: JsonPlan): string[] => json.diagnostics.filter((d) => d.severity === "error").map((d) => d.code);
