// A simulated Qubes system in memory, without a socket: the real Admin API client over a
// transport that hands each request to the simulator's dispatcher. Used only to prepare the large
// states of the plan-computation figures (thousands of qubes, adopted by the real apply engine),
// where going through sockets would spend the benchmark's time on setup that is not measured.

import { createAdminClient, type AdminClient } from "../src/providers/qubes/client.js";
import type { AdminCall, Transport } from "../src/providers/qubes/transport.js";
import { dispatch } from "../src/providers/qubes/simulator/dispatch.js";
import type { StateDocument } from "../src/providers/qubes/simulator/index.js";
import { worldFromDocument } from "../src/providers/qubes/simulator/state.js";

/** A client whose every call is answered by the simulator's dispatcher over the world of `doc`. */
export function memoryClient(doc: StateDocument, parallelism: number): AdminClient {
  const world = worldFromDocument(doc);
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
    call: async (c: AdminCall) => {
      const outcome = dispatch(world, { src: "dom0", dest: c.dest, method: c.method, arg: c.arg ?? "", payload: c.payload ?? new Uint8Array() }, { errorStyle: "head", vmListUuid: true }, services);
      if (outcome.kind !== "reply") throw new Error(`${c.method} is an event stream; the in-memory transport serves calls only`);
      return outcome.bytes;
    },
    stream: () => {
      throw new Error("the in-memory transport serves no event streams");
    },
    close: async () => {},
  };
  return createAdminClient(transport, { parallelism });
}
