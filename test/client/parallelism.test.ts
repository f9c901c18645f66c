// The client's bound on calls in flight: it holds across the per-property fallback when GetAll is
// refused, so a reader running `parallelism` reads never puts more than `parallelism` calls on
// qubesd (or qrexec) at once. Counted on the transport, over a real socket to the simulator.
import { afterEach, describe, expect, it } from "vitest";
import { createAdminClient } from "../../src/providers/qubes/client.js";
import { createSocketTransport } from "../../src/providers/qubes/transport-socket.js";
import type { Transport } from "../../src/providers/qubes/transport.js";
import { startTestSim, type TestSim } from "../helpers/sim.js";

/** A transport that counts the calls it has in flight, around the real socket transport. */
function countingTransport(socketPath: string): Transport & { peak(): number } {
  const inner = createSocketTransport(socketPath, { timeoutMs: 10_000 });
  let active = 0;
  let peak = 0;
  return {
    ...inner,
    call: async (c, o) => {
      peak = Math.max(peak, ++active);
      try {
        return await inner.call(c, o);
      } finally {
        active--;
      }
    },
    peak: () => peak,
  };
}

let sim: TestSim | undefined;
afterEach(async () => {
  await sim?.stop();
  sim = undefined;
});

describe("calls in flight", () => {
  it("stay within the client's parallelism when GetAll falls back to one Get per property", async () => {
    sim = await startTestSim({ latency: { readMs: 20, writeMs: 20 }, faults: ["admin.vm.property.GetAll@*=exception:PermissionDenied"] });
    const transport = countingTransport(sim.socketPath);
    const client = createAdminClient(transport, { parallelism: 3 });
    const qubes = ["work", "personal", "vault", "sys-firewall"];
    // As the reader does: several getAll at once, each fanning out over its properties.
    const all = await Promise.all(qubes.map((vm) => client.property.getAll({ vm })));
    expect(client.getAllRefused).toBe(true);
    for (const props of all) expect(props.size).toBeGreaterThan(20);
    const gets = sim.calls.filter((c) => c.method === "admin.vm.property.Get");
    expect(gets.length).toBe(all.reduce((n, p) => n + p.size, 0));
    expect(transport.peak()).toBe(3);
  });
});

describe("GetAll asked once", () => {
  const qubes = ["work", "personal", "vault", "sys-firewall", "sys-net", "fedora-40"];

  it("when refused: concurrent reads of a qube wait for its first answer; each qube is asked once", async () => {
    sim = await startTestSim({ latency: { readMs: 10, writeMs: 10 }, faults: ["admin.vm.property.GetAll@*=exception:PermissionDenied"] });
    const client = createAdminClient(createSocketTransport(sim.socketPath, { timeoutMs: 10_000 }), { parallelism: 8 });
    await Promise.all([...qubes, ...qubes].map((vm) => client.property.getAll({ vm })));
    // A refusal is remembered for its qube only: a policy may allow GetAll on some qubes and not others.
    expect(sim.calls.filter((c) => c.method === "admin.vm.property.GetAll").map((c) => c.dest).sort()).toEqual([...qubes].sort());
    expect(sim.calls.filter((c) => c.method === "admin.vm.property.List")).toHaveLength(2 * qubes.length);
  });

  it("when allowed: one GetAll per qube, nothing else", async () => {
    sim = await startTestSim({ latency: { readMs: 10, writeMs: 10 } });
    const client = createAdminClient(createSocketTransport(sim.socketPath, { timeoutMs: 10_000 }), { parallelism: 8 });
    const all = await Promise.all(qubes.map((vm) => client.property.getAll({ vm })));
    expect(client.getAllRefused).toBe(false);
    expect(all.every((m) => m.size > 20)).toBe(true);
    expect(sim.calls.map((c) => `${c.method} ${c.dest}`).sort()).toEqual(qubes.map((vm) => `admin.vm.property.GetAll ${vm}`).sort());
  });

  it("a failure that is not a refusal leaves the question open for the next caller", async () => {
    sim = await startTestSim();
    const client = createAdminClient(createSocketTransport(sim.socketPath, { timeoutMs: 10_000 }));
    const [gone, work] = await Promise.allSettled([client.property.getAll({ vm: "no-such-qube" }), client.property.getAll({ vm: "work" })]);
    expect(gone.status).toBe("rejected");
    expect(work.status).toBe("fulfilled");
    expect(client.getAllRefused).toBe(false);
  });
});
