// The benchmark's in-memory plan-computation harness runs end to end on small systems: configs
// generated from the simulator's fixtures load, the real apply engine adopts the qubes, and the
// three plan shapes have the expected steps. Nothing here looks at timings.
import { describe, expect, it } from "vitest";
import { adoptConfig, createConfig, planCallsNeeded, withProperty } from "../../bench/fleet.js";
import { desiredOf, measurePlanComputation } from "../../bench/plan-compute.js";
import { generateFixtureState } from "../../src/providers/qubes/simulator/index.js";

describe("plan-computation harness", () => {
  it("measures adopt-all, no-op and change-all plans at each size", async () => {
    const rows = await measurePlanComputation([15, 40], { repeat: 1 });
    expect(rows.map((r) => r.qubes)).toEqual([15, 40]);
    for (const row of rows) {
      const byShape = new Map(row.figures.map((f) => [f.shape, f]));
      // Adopting writes the ownership format record first (one setup step), then one step per qube.
      expect(byShape.get("adopt-all")).toMatchObject({ resources: row.qubes, steps: row.qubes + 1 });
      expect(byShape.get("no-op")).toMatchObject({ resources: row.qubes, steps: 0 });
      expect(byShape.get("change-all")).toMatchObject({ resources: row.qubes, steps: row.qubes });
      for (const f of row.figures) {
        expect(Number.isFinite(f.buildMs) && f.buildMs >= 0).toBe(true);
        expect(Number.isFinite(f.jsonMs) && f.jsonMs >= 0).toBe(true);
      }
    }
  });

  it("writes configs the loader accepts, across several files for a large system", () => {
    const doc = generateFixtureState(1500);
    const adopt = desiredOf(adoptConfig(doc, "bench", 1499));
    expect(adopt.qubes.size).toBe(1499);
    const changed = desiredOf(withProperty(adoptConfig(doc, "bench", 20), "qrexec_timeout", 90));
    expect([...changed.qubes.values()].every((q) => q.properties.get("qrexec_timeout")?.kind === "int")).toBe(true);
    expect(desiredOf(createConfig("bench-new", 5)).qubes.size).toBe(5);
  });

  it("counts the calls a plan needs from the config and the system", () => {
    const doc = generateFixtureState(14);
    const config = adoptConfig(doc, "bench", 3);
    const features = Object.values(config.qubes).reduce((n, q) => n + Object.keys(q.features ?? {}).length, 0);
    const firewalls = Object.values(config.qubes).filter((q) => q.firewall !== undefined).length;
    // Not adopted yet: no format record on dom0, no records on the qubes. Three calls of dom0's:
    // vm.List, feature.List (the inventory) and property.List (the release).
    expect(planCallsNeeded(doc, config)).toBe(3 + 3 * 3 + features + firewalls);
  });
});
