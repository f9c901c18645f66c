// A simulated Qubes system in memory, without a socket: the real Admin API client over a
// transport that hands each request to the simulator's dispatcher, and the adoption of a config's
// qubes by the real reader, planner and apply engine over it. Used to prepare large systems
// (thousands of qubes, adopted) where going through sockets, and the simulator saving its state
// file after every write, would spend the benchmark's time on setup that is not measured. The
// result can be written as a state file for the socket simulator to serve.

import { executorFromClient, readerFromClient } from "../src/apply/admin-api.js";
import { applySteps, type ApplyHooks } from "../src/apply/engine.js";
import type { ActualState } from "../src/model/actual.js";
import type { DesiredState } from "../src/model/desired.js";
import { toJsonPlan } from "../src/plan/json.js";
import { buildPlan, type PlanOptions } from "../src/plan/plan.js";
import { readActualState } from "../src/plan/reader.js";
import { createAdminClient, type AdminClient } from "../src/providers/qubes/client.js";
import type { AdminCall, Transport } from "../src/providers/qubes/transport.js";
import { dispatch } from "../src/providers/qubes/simulator/dispatch.js";
import type { StateDocument } from "../src/providers/qubes/simulator/index.js";
import { serializeState, worldFromDocument } from "../src/providers/qubes/simulator/state.js";

export type MemorySystem = {
  client: AdminClient;
  /** Calls answered so far. */
  calls(): number;
  /** The system now, as the text of a simulator state file. */
  stateText(): string;
};

export const PLAN_OPTIONS: PlanOptions = { allowRestart: false, targets: [], excludes: [] };

/** A system whose every call is answered by the simulator's dispatcher over the world of `doc`. */
export function memorySystem(doc: StateDocument, parallelism: number): MemorySystem {
  const world = worldFromDocument(doc);
  let calls = 0;
  let uuids = 0;
  let seed = 1;
  const services = {
    now: () => 1_735_700_000_000,
    randomUuid: () => `00000000-0000-4000-8000-${(++uuids).toString(16).padStart(12, "0")}`,
    randomInt: (max: number) => {
      seed = (seed * 48271) % 0x7fffffff;
      return seed % max;
    },
  };
  const transport: Transport = {
    description: "in-memory simulator",
    source: "dom0",
    visibility: "all",
    call: async (c: AdminCall) => {
      calls++;
      const outcome = dispatch(world, { src: "dom0", dest: c.dest, method: c.method, arg: c.arg ?? "", payload: c.payload ?? new Uint8Array() }, services);
      if (outcome.kind !== "reply") throw new Error(`${c.method} is an event stream; the in-memory transport serves calls only`);
      return outcome.bytes;
    },
    stream: () => {
      throw new Error("the in-memory transport serves no event streams");
    },
    close: async () => {},
  };
  return { client: createAdminClient(transport, { parallelism }), calls: () => calls, stateText: () => serializeState(world) };
}

const silentHooks: ApplyHooks = {
  onStepStart: () => {},
  onOpUnknown: () => {},
  onOpResolved: () => {},
  onOpNote: () => {},
  onStepDone: () => {},
  onStepFailed: () => {},
  onStepSkipped: () => {},
};

/**
 * Plans `desired` on the system (from `actual` when it was just read) and applies that plan with
 * the real apply engine; throws unless every step applied.
 */
export async function applyInMemory(system: MemorySystem, desired: DesiredState, parallelism: number, actual?: ActualState): Promise<void> {
  actual ??= await readActualState(readerFromClient(system.client), desired, { parallelism });
  const plan = toJsonPlan(buildPlan(desired, actual, PLAN_OPTIONS), { version: "bench" });
  const applied = await applySteps(plan.steps, { parallelism, executor: executorFromClient(system.client), now: () => performance.now(), hooks: silentHooks });
  if (!applied.ok) throw new Error(`applying the plan of ${desired.owner} in memory failed`);
}
