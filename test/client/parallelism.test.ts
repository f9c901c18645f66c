// The client's bound on calls in flight: it holds across the per-property fallback when GetAll is
// refused, so a reader running `parallelism` reads never puts more than `parallelism` calls on
// qubesd (or qrexec) at once. Checked on the server's own call log over a real socket.
import { afterEach, describe, expect, it } from "vitest";
import { createAdminClient } from "../../src/providers/qubes/client.js";
import type { SimCallLogEntry } from "../../src/providers/qubes/simulator/index.js";
import { createSocketTransport } from "../../src/providers/qubes/transport-socket.js";
import { startTestSim, type TestSim } from "../helpers/sim.js";

/** Most calls the server held at once, from arrival (reply time minus duration) to reply. */
function peakInFlight(calls: readonly SimCallLogEntry[]): number {
  const edges = calls.flatMap((c) => {
    const end = Date.parse(c.time);
    return [
      { t: end - c.ms, d: 1 },
      { t: end, d: -1 },
    ];
  });
  edges.sort((a, b) => a.t - b.t || a.d - b.d);
  let now = 0;
  let peak = 0;
  for (const e of edges) peak = Math.max(peak, (now += e.d));
  return peak;
}

let sim: TestSim | undefined;
afterEach(async () => {
  await sim?.stop();
  sim = undefined;
});

describe("calls in flight", () => {
  it("stay within the client's parallelism when GetAll falls back to one Get per property", async () => {
    sim = await startTestSim({ latency: { readMs: 20, writeMs: 20 }, faults: ["admin.vm.property.GetAll@*=exception:PermissionDenied"] });
    const client = createAdminClient(createSocketTransport(sim.socketPath, { timeoutMs: 10_000 }), { parallelism: 3 });
    const qubes = ["work", "personal", "vault", "sys-firewall"];
    // As the reader does: several getAll at once, each fanning out over its properties.
    const all = await Promise.all(qubes.map((vm) => client.property.getAll({ vm })));
    expect(client.getAllRefused).toBe(true);
    for (const props of all) expect(props.size).toBeGreaterThan(20);
    const gets = sim.calls.filter((c) => c.method === "admin.vm.property.Get");
    expect(gets.length).toBe(all.reduce((n, p) => n + p.size, 0));
    // Arrival times are derived from millisecond clock readings: allow one call of rounding.
    expect(peakInFlight(sim.calls)).toBeLessThanOrEqual(3 + 1);
    expect(peakInFlight(sim.calls)).toBeGreaterThanOrEqual(2);
  });
});
