// Plans of the examples against the simulator's default fixture, carried out op by op: each plan
// matches the schema, makes no mutating call, and once its ops are run the next plan is empty.
// The crash test interrupts the ops at every point: the next plan must recognise what was left
// (no "not ours", no drift) and finish it.
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { isMutating } from "../helpers/sim.js";
import { desiredFromYaml, errorCodes, expectValidPlanJson, loadDesired, planOps, planWith, runOps, startSession, type SimSession } from "./_helpers.js";

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

describe("a release and a format-1 rewrite interrupted at any op leave a state the next plan finishes", () => {
  const held = 'version: 1\nowner: o\nqubes:\n  work: {adopt: true, features: {mine: "1"}, tags: [t], protect: true}\n  notes: {class: AppVM, template: fedora-40, label: green, tags: [n]}\n';
  const letGo = "version: 1\nowner: o\nqubes:\n  notes: {release: true}\n";
  const ours = async (s: SimSession, vm: string): Promise<string[]> => [
    ...(await s.client.feature.list(vm)).filter((f) => f.startsWith("qubes-iac.o.")),
    ...(await s.client.tag.list(vm)).filter((t) => t === "managed-by-o"),
  ];
  /** What format 1 wrote for an adopted `work` with a feature, a tag and protect. */
  async function formatOne(s: SimSession): Promise<void> {
    await s.client.feature.set("dom0", "qubes-iac.o.format", "1");
    await s.client.feature.set("dom0", "qubes-iac.o.qube.work", "own");
    await s.client.tag.set("work", "managed-by-o");
    for (const [k, v] of [["mine", "1"], ["qubes-iac.o.feature.mine", "1"], ["qubes-iac.o.protect", "1"], ["qubes-iac.o.tag.t", "1"]] as const) await s.client.feature.set("work", k, v);
    await s.client.tag.set("work", "t");
  }
  const cases: Array<{ name: string; setup: (s: SimSession) => Promise<void>; desired: string; after: (s: SimSession) => Promise<void> }> = [
    {
      name: "dropping an adopted qube and `release: true` on a created one",
      setup: async (s) => runOps(s.client, planOps((await planWith(s, desiredFromYaml(held))).json)),
      desired: letGo,
      after: async (s) => {
        expect(await ours(s, "work")).toEqual([]);
        expect(await ours(s, "notes")).toEqual([]);
        expect(await s.client.feature.getOptional("work", "mine")).toBe("1");
        expect(await s.client.tag.list("notes")).toContain("n");
      },
    },
    {
      name: "rewriting format 1's records",
      setup: formatOne,
      desired: held,
      after: async (s) => {
        const uuid = (await s.client.property.get({ vm: "work" }, "uuid")).raw;
        expect((await ours(s, "work")).sort()).toEqual(["managed-by-o", `qubes-iac.o.${uuid}.feature.mine`, `qubes-iac.o.${uuid}.own`, `qubes-iac.o.${uuid}.protect`, `qubes-iac.o.${uuid}.tag.t`]);
      },
    },
  ];
  for (const c of cases) {
    it(c.name, async () => {
      const desired = desiredFromYaml(c.desired);
      const probe = await startSession();
      await c.setup(probe);
      const total = planOps((await planWith(probe, desired)).json).length;
      await probe.stop();
      expect(total).toBeGreaterThan(4);
      for (let cut = 0; cut <= total; cut++) {
        const s = await startSession();
        try {
          await c.setup(s);
          await runOps(s.client, planOps((await planWith(s, desired)).json).slice(0, cut));
          const resumed = await planWith(s, desired);
          expect({ cut, errors: errorCodes(resumed.json), destroys: resumed.json.summary.destroy }).toEqual({ cut, errors: [], destroys: 0 });
          await runOps(s.client, planOps(resumed.json));
          expect({ cut, steps: (await planWith(s, desired)).json.steps }).toEqual({ cut, steps: [] });
          await c.after(s);
        } finally {
          await s.stop();
        }
      }
    });
  }
});
