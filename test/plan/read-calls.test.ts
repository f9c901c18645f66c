// The read calls of planning, from the simulator's call log: the exact calls of a no-op plan,
// that qubes the config does not name and the inventory does not list cost nothing beyond their
// admin.vm.List line, that the reference scan runs only when something may be removed, and that
// a plan makes no mutating call, ever.
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { isMutating } from "../helpers/sim.js";
import { converge, loadDesired, planWith, runOps, startSession, type SimSession } from "./_helpers.js";

const callsOf = (s: SimSession, from: number): string[] =>
  s.sim.calls
    .slice(from)
    .map((c) => `${c.method} ${c.dest} ${c.arg}`.trim())
    .sort();

describe("read calls of a plan", () => {
  let s: SimSession;
  beforeEach(async () => {
    s = await startSession();
  });
  afterEach(async () => {
    await s.stop();
  });

  it("a no-op plan of examples/workstation.yaml makes exactly these 28 read calls (3 + 3 per qube + declared features and firewalls)", async () => {
    const desired = loadDesired("examples/workstation.yaml");
    await converge(s, desired);
    const from = s.sim.calls.length;
    const { json } = await planWith(s, desired);
    expect(json.steps).toEqual([]);
    const qubes = ["default-dvm", "personal", "sys-firewall", "sys-net", "untrusted", "vault", "work"];
    expect(callsOf(s, from)).toEqual(
      [
        "admin.vm.List dom0",
        "admin.vm.feature.List dom0",
        "admin.vm.feature.Get dom0 qubes-iac.workstation.format",
        "admin.property.GetAll dom0",
        ...qubes.flatMap((q) => [`admin.vm.property.GetAll ${q}`, `admin.vm.tag.List ${q}`, `admin.vm.feature.List ${q}`]),
        "admin.vm.feature.Get work service.cups",
        "admin.vm.firewall.Get vault",
        "admin.vm.firewall.Get work",
      ].sort(),
    );
  });

  it("a no-op plan of examples/minimal.yaml reads only its one qube, however many others exist", async () => {
    const desired = loadDesired("examples/minimal.yaml");
    await converge(s, desired);
    for (let i = 0; i < 20; i++) await s.client.vm.create({ klass: "AppVM", name: `other-${i}`, label: "red", template: "fedora-40" });
    const from = s.sim.calls.length;
    await planWith(s, desired);
    expect(callsOf(s, from)).toEqual(
      [
        "admin.vm.List dom0",
        "admin.vm.feature.List dom0",
        "admin.vm.feature.Get dom0 qubes-iac.minimal.format",
        "admin.vm.property.GetAll notes",
        "admin.vm.tag.List notes",
        "admin.vm.feature.List notes",
      ].sort(),
    );
  });

  // dom0's property names tell the release (src/model/release.ts); a client asks for them once,
  // so the plans above, made after converge() with the same client, do not ask again.
  it("a first plan on a system with no records reads no format record and no label, pool or global; of a system-only netvm, only provides_network", async () => {
    const from = s.sim.calls.length;
    await planWith(s, loadDesired("examples/vpn.yaml"));
    expect(callsOf(s, from)).toEqual(
      [
        "admin.vm.List dom0",
        "admin.vm.property.List dom0",
        "admin.vm.feature.List dom0",
        "admin.vm.property.GetAll work",
        "admin.vm.tag.List work",
        "admin.vm.feature.List work",
        // sys-vpn's netvm, which the config does not declare.
        "admin.vm.property.Get sys-firewall provides_network",
      ].sort(),
    );
  });

  it("the reference scan reads every other qube's properties (and the globals) only when a qube may be removed", async () => {
    const v1 = loadDesired("test/plan/fixtures/lab-v1.yaml");
    await converge(s, v1);
    const from = s.sim.calls.length;
    const { json } = await planWith(s, loadDesired("test/plan/fixtures/lab-v2.yaml"));
    expect(json.summary.destroy).toBe(2);
    const calls = callsOf(s, from);
    const scanned = ["default-dvm", "fedora-40", "sys-firewall", "sys-net", "untrusted", "vault", "work"];
    for (const q of scanned) expect(calls.filter((c) => c.endsWith(` ${q}`))).toEqual([`admin.vm.property.GetAll ${q}`]);
    expect(calls).toContain("admin.vm.property.GetAll dom0");
    expect(calls).toContain("admin.property.GetAll dom0");
    // Without a removal, the same state plans without the scan.
    const again = s.sim.calls.length;
    await planWith(s, v1);
    expect(callsOf(s, again).filter((c) => scanned.some((q) => c.endsWith(` ${q}`)))).toEqual([]);
  });

  it("plans never mutate: the first plan of every example and each scenario makes read calls only", async () => {
    const configs = ["examples/reference.yaml", "examples/workstation.yaml", "test/plan/fixtures/lab-v1.yaml", "test/plan/fixtures/lab-v2.yaml", "test/plan/fixtures/lab-v3.yaml"];
    const from = s.sim.calls.length;
    for (const c of configs) await planWith(s, loadDesired(c), { allowRestart: true });
    const planCalls = s.sim.calls.slice(from);
    expect(planCalls.length).toBeGreaterThan(0);
    expect(planCalls.filter((c) => isMutating(c.method))).toEqual([]);
    // And after a config is applied, its plans (with changes to make) still only read.
    const { json } = await planWith(s, loadDesired("test/plan/fixtures/lab-v1.yaml"));
    await runOps(s.client, json.steps.flatMap((st) => st.ops));
    const later = s.sim.calls.length;
    for (const c of configs) await planWith(s, loadDesired(c), { allowRestart: true });
    expect(s.sim.calls.slice(later).filter((c) => isMutating(c.method))).toEqual([]);
  });

  it("--parallelism bounds the reads in flight", async () => {
    const desired = loadDesired("examples/workstation.yaml");
    await converge(s, desired);
    let inFlight = 0;
    let peak = 0;
    const transport = s.client.transport;
    const original = transport.call.bind(transport);
    transport.call = async (c, o) => {
      inFlight++;
      peak = Math.max(peak, inFlight);
      try {
        return await original(c, o);
      } finally {
        inFlight--;
      }
    };
    await planWith(s, desired, { parallelism: 2 });
    expect(peak).toBe(2);
    peak = 0;
    await planWith(s, desired, { parallelism: 1 });
    expect(peak).toBe(1);
  });
});
