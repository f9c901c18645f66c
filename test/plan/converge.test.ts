// Plans of the examples against the simulator's default fixture, carried out op by op: each plan
// matches the schema, makes no mutating call, and once its ops are run the next plan is empty.
// The crash test interrupts the ops at every point: the next plan must recognise what was left
// (no "not ours", no drift) and finish it.
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { isMutating } from "../helpers/sim.js";
import { errorCodes, expectValidPlanJson, loadDesired, planOps, planWith, runOps, startSession, type SimSession } from "./_helpers.js";

const EXAMPLES = ["examples/minimal.yaml", "examples/workstation.yaml", "examples/reference.yaml", "examples/offline-vault.yaml", "examples/vpn.yaml", "examples/split-config"];

describe("plans of the examples converge", () => {
  let s: SimSession;
  beforeEach(async () => {
    s = await startSession();
  });
  afterEach(async () => {
    await s.stop();
  });

  for (const example of EXAMPLES) {
    it(`${example}: plan, run its ops, plan again: no changes`, async () => {
      const desired = loadDesired(example);
      const first = await planWith(s, desired);
      expectValidPlanJson(first.json);
      expect(errorCodes(first.json)).toEqual([]);
      expect(first.json.steps.length).toBeGreaterThan(0);
      expect(s.sim.calls.filter((c) => isMutating(c.method))).toEqual([]);

      await runOps(s.client, planOps(first.json));
      const callsBefore = s.sim.calls.length;
      const second = await planWith(s, desired);
      expectValidPlanJson(second.json);
      // W102: qubesd does not tell the colour of a label created in its current lifetime.
      expect(second.json.diagnostics.filter((d) => d.code !== "QIAC-W102")).toEqual([]);
      expect(second.json.steps).toEqual([]);
      expect(second.json.resource_changes.every((c) => c.action === "no-op")).toBe(true);
      expect(s.sim.calls.slice(callsBefore).filter((c) => isMutating(c.method))).toEqual([]);
    });
  }
});

describe("an apply interrupted at any op leaves a state the next plan finishes", () => {
  for (const example of ["examples/minimal.yaml", "examples/workstation.yaml", "examples/reference.yaml"]) {
    it(`${example}`, async () => {
      const desired = loadDesired(example);
      const probe = await startSession();
      const total = planOps((await planWith(probe, desired)).json).length;
      await probe.stop();
      for (let cut = 0; cut <= total; cut++) {
        const s = await startSession();
        try {
          const ops = planOps((await planWith(s, desired)).json);
          await runOps(s.client, ops.slice(0, cut));
          const resumed = await planWith(s, desired);
          expect({ cut, errors: errorCodes(resumed.json) }).toEqual({ cut, errors: [] });
          await runOps(s.client, planOps(resumed.json));
          const done = await planWith(s, desired);
          expect({ cut, steps: done.json.steps }).toEqual({ cut, steps: [] });
        } finally {
          await s.stop();
        }
      }
    });
  }
});
