// The foreign-state snapshot that the fault matrix, the property tests and the lock tests rely
// on must see every kind of change to what a config does not own — else "byte-identical before
// and after" would prove nothing. Each change below is made through the Admin API, as a careless
// apply would make it, and must show in the snapshot; a change to what the config owns must not.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AdminClient } from "../../src/providers/qubes/client.js";
import { buildForeignState, clientOf, snapshotForeign, startSim } from "./_harness.js";

const ours = {
  qubes: new Set(["work"]),
  globals: new Set(["default_netvm"]),
  labels: new Set<string>(),
  pools: new Set<string>(),
  ownerPrefix: "qubes-iac.workstation.",
};

const CHANGES: Array<[string, (c: AdminClient) => Promise<void>]> = [
  ["a property", (c) => c.property.set({ vm: "foreign" }, "memory", "556")],
  ["a property reset to its default", (c) => c.property.reset({ vm: "foreign" }, "memory")],
  ["a feature value", (c) => c.feature.set("foreign", "service.crond", "")],
  ["a feature removed", (c) => c.feature.remove("impostor", "service.cups")],
  ["another owner's record", (c) => c.feature.remove("foreign", "qubes-iac.other.feature.service.crond")],
  ["a tag added", (c) => c.tag.set("fedora-40", "x")],
  ["a tag removed", (c) => c.tag.remove("impostor", "managed-by-workstation")],
  ["the firewall", (c) => c.firewall.set("foreign", ["action=drop"])],
  ["the power state", (c) => c.vm.shutdown("bystander")],
  ["a dom0 feature", (c) => c.feature.set("dom0", "gui-default-trayicon-mode", "bg")],
  ["another owner's inventory", (c) => c.feature.remove("dom0", "qubes-iac.workstation-old.qube.bystander")],
  ["a global property the config does not set", (c) => c.property.set("global", "default_kernel", "")],
  ["a label removed", (c) => c.label.remove("spare-label")],
  ["a new label", (c) => c.label.create("extra", "0x010203")],
  ["a pool", (c) => c.pool.add("file", "extra-pool", { dir_path: "/var/lib/qubes/extra" })],
  ["a new qube", (c) => c.vm.create({ klass: "AppVM", name: "newcomer", label: "red", template: "fedora-40" })],
];

describe("snapshotForeign", () => {
  let dir: string;
  let template: string;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "qiac-snap-"));
    template = join(dir, "template.json");
    await buildForeignState(template, "workstation");
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  for (const [what, change] of CHANGES) {
    it(`sees ${what}`, async () => {
      const sim = await startSim({ template });
      const c = clientOf(sim);
      try {
        const before = await snapshotForeign(sim, ours);
        await change(c);
        expect(await snapshotForeign(sim, ours)).not.toEqual(before);
      } finally {
        await c.close();
        await sim.stop();
      }
    });
  }

  it("does not see changes to what the config owns", async () => {
    const sim = await startSim({ template });
    const c = clientOf(sim);
    try {
      const before = await snapshotForeign(sim, ours);
      await c.property.set({ vm: "work" }, "memory", "900");
      await c.feature.set("dom0", "qubes-iac.workstation.format", "1");
      await c.tag.set("work", "managed-by-workstation");
      expect(await snapshotForeign(sim, ours)).toEqual(before);
    } finally {
      await c.close();
      await sim.stop();
    }
  });

  it("explicitOnly: a global the config owns changes other qubes' derived defaults, not their own values", async () => {
    const sim = await startSim({ template });
    const c = clientOf(sim);
    try {
      const full = await snapshotForeign(sim, ours);
      const explicit = await snapshotForeign(sim, ours, { explicitOnly: true });
      await c.property.set("global", "default_netvm", "sys-net");
      expect(await snapshotForeign(sim, ours)).not.toEqual(full);
      expect(await snapshotForeign(sim, ours, { explicitOnly: true })).toEqual(explicit);
      await c.property.set({ vm: "foreign" }, "vcpus", "3");
      expect(await snapshotForeign(sim, ours, { explicitOnly: true })).not.toEqual(explicit);
    } finally {
      await c.close();
      await sim.stop();
    }
  });
});
