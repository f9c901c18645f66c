// The executor enforces the promises itself: a saved plan is untrusted input. Tampered plans —
// an op swapped for the removal of a foreign qube, a forged delete step, a destroys_data flag
// turned off, a dom0 feature that is not a record, another owner's qube adopted — are refused
// before any call that changes Qubes, naming the op; destruction needs --allow-destroy because of
// the ops themselves, whatever the plan's fields say. Against the simulator's socket.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { destroyedByOps, planProblems } from "../../src/apply/enforce.js";
import type { JsonPlan, JsonStep } from "../../src/plan/json.js";
import { isLockCall, isMutating } from "../helpers/sim.js";
import { startSession, type SimSession } from "../plan/_helpers.js";
import { mutations, runIn } from "./_cli.js";

let s: SimSession;
let dir: string;
beforeEach(async () => {
  s = await startSession();
  dir = mkdtempSync(join(tmpdir(), "qiac-enforce-"));
});
afterEach(async () => {
  await s.stop();
  rmSync(dir, { recursive: true, force: true });
});

const connect = (): string[] => ["--connect", `qubesd:${s.sim.socketPath}`];
const apply = (args: string[]) => runIn(["apply", ...connect(), ...args]);
const plan = (args: string[]) => runIn(["plan", ...connect(), ...args]);
const listed = async (vm: string): Promise<boolean> => (await s.client.vm.list()).some((q) => q.name === vm);
const mutated = (): string[] => mutations(s.sim.calls.filter((c) => !isLockCall(c)), isMutating);

async function savedPlan(config: string, extra: string[] = []): Promise<{ file: string; plan: JsonPlan }> {
  const file = join(dir, `${Math.random().toString(16).slice(2)}.plan`);
  const r = await plan(["--out", file, ...extra, config]);
  expect(r.stderr).not.toMatch(/error/);
  return { file, plan: JSON.parse(readFileSync(file, "utf8")) as JsonPlan };
}

const rewrite = (file: string, p: JsonPlan): void => writeFileSync(file, JSON.stringify(p));
const stepOf = (p: JsonPlan, id: string): JsonStep => {
  const step = p.steps.find((x) => x.id === id);
  if (step === undefined) throw new Error(`no step ${id}: ${p.steps.map((x) => x.id).join(", ")}`);
  return step;
};

describe("plans qubes-iac makes", () => {
  for (const example of ["examples/minimal.yaml", "examples/workstation.yaml", "examples/reference.yaml", "examples/offline-vault.yaml", "examples/vpn.yaml", "examples/split-config", "examples/templates.yaml"]) {
    it(`${example}: no op is misplaced`, async () => {
      const { plan: p } = await savedPlan(example);
      expect(p.steps.length).toBeGreaterThan(0);
      expect(planProblems(p)).toEqual([]);
    });
  }
});

describe("a tampered saved plan", () => {
  it("one op swapped for the removal of a foreign qube: refused before any call, naming the op", async () => {
    const { file, plan: p } = await savedPlan("examples/minimal.yaml");
    const create = stepOf(p, "create:qube.notes");
    create.ops[3] = { op: "vm.remove", vm: "work" };
    rewrite(file, p);
    s.sim.calls.length = 0;
    const r = await apply(["--auto-approve", "--allow-destroy", file]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("error QIAC-E205: refused before any call: op 4 of step create:qube.notes (admin.vm.Remove on work): a qube is removed only in a delete step");
    // The structure is checked before anything is connected to: not even a read.
    expect(s.sim.calls).toEqual([]);
    expect((await plan(["examples/minimal.yaml"])).code).toBe(0);
    expect(await listed("work")).toBe(true);
  });

  it("a forged delete of a foreign qube: --allow-destroy is needed because of the op, then ownership refuses it", async () => {
    const { file, plan: p } = await savedPlan("examples/minimal.yaml");
    p.resource_changes.push({ address: "qube.work", type: "qube", name: "work", action: "delete", reasons: [], destroys_data: true, before: {}, after: null, before_default: [], after_default: [], needs_halt: [] });
    p.steps.push({ id: "delete:qube.work", address: "qube.work", kind: "delete", wave: 1, depends_on: [], ops: [{ op: "vm.remove", vm: "work" }] });
    // The summary says nothing is destroyed: approval does not read it.
    p.summary.destroy = 0;
    rewrite(file, p);

    const unapproved = await apply(["--auto-approve", file]);
    expect(unapproved.code).toBe(1);
    expect(unapproved.stderr).toMatch(/the plan destroys qube\.work and all of its data; --auto-approve alone never destroys data: add --allow-destroy/);
    expect(mutated()).toEqual([]);

    const r = await apply(["--auto-approve", "--allow-destroy", file]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("error QIAC-E205: refused before any call: step delete:qube.work: it removes qube work, which minimal does not own now");
    expect(r.stderr).toMatch(/nothing was changed/);
    expect(mutated()).toEqual([]);
    expect(await listed("work")).toBe(true);
  });

  it("a delete whose change says it destroys no data: refused", async () => {
    const { file, plan: p } = await savedPlan("examples/minimal.yaml");
    p.resource_changes.push({ address: "qube.work", type: "qube", name: "work", action: "delete", reasons: [], destroys_data: false, before: {}, after: null, before_default: [], after_default: [], needs_halt: [] });
    p.steps.push({ id: "delete:qube.work", address: "qube.work", kind: "delete", wave: 1, depends_on: [], ops: [{ op: "vm.remove", vm: "work" }] });
    rewrite(file, p);
    const r = await apply(["--auto-approve", "--allow-destroy", file]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("step delete:qube.work: it removes qube.work, but its change does not say it destroys data");
    expect(s.sim.calls.filter((c) => isMutating(c.method))).toEqual([]);
  });

  it("ops on another resource, a step kind that does not fit its change, a dom0 feature that is not a record: each refused", () => {
    const p: JsonPlan = JSON.parse(
      JSON.stringify({
        owner: "me",
        resource_changes: [
          { address: "qube.a", type: "qube", name: "a", action: "create", destroys_data: false },
          { address: "label.l", type: "label", name: "l", action: "update", destroys_data: false },
        ],
        steps: [
          {
            id: "create:qube.a",
            address: "qube.a",
            kind: "create",
            ops: [
              { op: "feature.set", vm: "dom0", name: "qubes-iac.me.intent.a", value: "create" },
              { op: "vm.create", class: "AppVM", name: "a", label: "red" },
              { op: "property.set", holder: { vm: "b" }, name: "netvm", value: "" },
              { op: "feature.set", vm: "dom0", name: "qubes-iac.me.intent.b", value: "create" },
              { op: "feature.set", vm: "dom0", name: "gui-default-secure-copy-sequence", value: "x" },
              { op: "feature.set", vm: "a", name: "qubes-iac.other.protect", value: "1" },
              { op: "property.set", holder: "global", name: "default_netvm", value: "a" },
            ],
          },
          { id: "delete:label.l", address: "label.l", kind: "delete", ops: [{ op: "label.remove", name: "l" }] },
          { id: "update:qube.c", address: "qube.c", kind: "update", ops: [] },
        ],
      }),
    ) as JsonPlan;
    expect(planProblems(p).map((x) => `${x.step}#${x.opIndex ?? "-"}: ${x.why}`)).toEqual([
      "create:qube.a#2: it acts on qube b, not on qube.a",
      "create:qube.a#3: the record qubes-iac.me.intent.b is about qube b, not qube.a",
      "create:qube.a#4: dom0 feature gui-default-secure-copy-sequence is not a record of owner me: apply writes no other dom0 feature",
      "create:qube.a#5: qubes-iac.other.protect is a record of owner other",
      "create:qube.a#6: a global property written in a step for qube.a",
      'delete:label.l#-: a delete step cannot carry out the change "update" of label.l',
      "update:qube.c#-: no resource change of qube.c in the plan",
    ]);
    expect(destroyedByOps(p)).toEqual([]);
  });

  it("another owner's qube adopted: refused at apply unless --take-ownership names that owner", async () => {
    expect((await apply(["--auto-approve", "examples/minimal.yaml"])).code).toBe(0);
    const config = join(dir, "other.yaml");
    writeFileSync(config, "version: 1\nowner: other\nqubes:\n  notes:\n    adopt: true\n    tags: [mine]\n");
    // The planner refuses it at its line (QIAC-E150) unless the plan is made with --take-ownership.
    expect((await plan([config])).stderr).toContain("QIAC-E150");
    const { file, plan: p } = await savedPlan(config, ["--take-ownership", "minimal"]);
    s.sim.calls.length = 0;
    const r = await apply(["--auto-approve", file]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/--take-ownership minimal/);
    expect(mutated()).toEqual([]);
    // A plan stripped of what says it takes over is still refused: the executor reads the inventory.
    p.options.take_ownership = [];
    rewrite(file, p);
    const stripped = await apply(["--auto-approve", file]);
    expect(stripped.code).toBe(1);
    expect(stripped.stderr).toMatch(/--take-ownership minimal/);
    expect(mutated()).toEqual([]);
    const taken = await apply(["--auto-approve", "--take-ownership", "minimal", file]);
    expect(taken.code).toBe(0);
    expect(await s.client.tag.list("notes")).toContain("managed-by-other");
  });

  it("a label replaced for a new colour is created again after its removal in the same plan (R4.2 tells the colour)", async () => {
    await s.stop();
    s = await startSession({ release: "r4.2" });
    const a = join(dir, "a.yaml");
    const b = join(dir, "b.yaml");
    writeFileSync(a, 'version: 1\nowner: lab\nlabels:\n  c1: "0x112233"\n  c2: "0x112233"\n');
    writeFileSync(b, 'version: 1\nowner: lab\nlabels:\n  c1: "0x445566"\n');
    expect((await apply(["--auto-approve", a])).code).toBe(0);
    const r = await apply(["--auto-approve", "--allow-destroy", b]);
    expect(r.stderr).not.toContain("QIAC-E205");
    expect(r.code).toBe(0);
    expect((await plan([b])).stdout).toBe("No changes.\n");
  });
});
