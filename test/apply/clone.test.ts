// Applying clones against the simulator of each release (the release projects run this file):
// examples/templates.yaml from the default fixture, the exact ordered mutating calls of its clones
// (Create, then CloneFrom on the source and CloneTo on the copy per volume), the progress of each
// copy with its size (human and --json), the next plan `No changes.`; a running file-pool source
// stopped and started again only with --allow-restart; and saved plans with a forged CloneFrom,
// refused by the executor before any call.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { planProblems } from "../../src/apply/enforce.js";
import type { JsonPlan, JsonStep } from "../../src/plan/json.js";
import { applyEvents } from "../helpers/apply-events.js";
import { isLockCall, isMutating } from "../helpers/sim.js";
import { startSession, type SimSession } from "../plan/_helpers.js";
import { mutations, runIn } from "./_cli.js";

let s: SimSession;
let dir: string;
beforeEach(async () => {
  s = await startSession();
  dir = mkdtempSync(join(tmpdir(), "qiac-clone-"));
});
afterEach(async () => {
  await s.stop();
  rmSync(dir, { recursive: true, force: true });
});

const connect = (): string[] => ["--connect", `qubesd:${s.sim.socketPath}`];
const apply = (args: string[]) => runIn(["apply", ...connect(), ...args]);
const plan = (args: string[]) => runIn(["plan", ...connect(), ...args]);
const UUID = /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/;
const mutated = (from = 0): string[] => mutations(s.sim.calls.slice(from).filter((c) => !isLockCall(c)), isMutating).map((m) => m.replace(UUID, "<uuid>"));
const stepOf = (p: JsonPlan, id: string): JsonStep => {
  const step = p.steps.find((x) => x.id === id);
  if (step === undefined) throw new Error(`no step ${id}`);
  return step;
};

/** The mutating calls of creating `vm` by cloning, after Create and the records (the intent, owner tag and created entry). */
const FEDORA_DEV_COPIES = [
  "admin.vm.volume.CloneFrom+root → fedora-40",
  "admin.vm.volume.CloneTo+root → fedora-dev",
  "admin.vm.volume.CloneFrom+private → fedora-40",
  "admin.vm.volume.CloneTo+private → fedora-dev",
];

describe("examples/templates.yaml", () => {
  it("applies with the copies in order, shows each copy with its size, and plans No changes after", async () => {
    const r = await apply(["--auto-approve", "--parallelism", "1", "examples/templates.yaml"]);
    expect(r.stderr).not.toMatch(/error/);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("create:qube.fedora-dev: copying root of fedora-40 (10.0 GiB)\n");
    expect(r.stdout).toMatch(/create:qube\.fedora-dev: copied private of fedora-40 \(2\.0 GiB\) in \d+\.\ds\n/);
    expect(r.stdout).toContain("create:qube.devbox: copying root of fedora-dev (10.0 GiB)\n");
    const calls = mutated();
    const fedoraDev = calls.slice(calls.indexOf("admin.vm.Create.TemplateVM+ → dom0"));
    expect(fedoraDev.filter((c) => c.startsWith("admin.vm.volume.") && (c.endsWith("→ fedora-40") || c.includes("CloneTo+") && c.endsWith("→ fedora-dev")))).toEqual(FEDORA_DEV_COPIES);
    // The copies come after the qube is recorded as ours, and before the config's own feature.
    expect(fedoraDev.indexOf("admin.vm.feature.Set+qubes-iac.templates.created.fedora-dev → dom0")).toBeLessThan(fedoraDev.indexOf(FEDORA_DEV_COPIES[0] as string));
    // A standalone from a template: its root only.
    expect(calls.filter((c) => c.endsWith("→ devbox") && c.startsWith("admin.vm.volume."))).toEqual(["admin.vm.volume.CloneTo+root → devbox"]);
    // Never another qube's ownership marks: no qubes-iac feature is written on a copy but its own records.
    expect(calls.filter((c) => /^admin\.vm\.feature\.Set\+qubes-iac\.(?!templates\.<uuid>\.)/.test(c) && !c.endsWith("→ dom0"))).toEqual([]);
    const sizes = await Promise.all(["fedora-40", "fedora-dev", "devbox"].map(async (vm) => (await s.client.volume.info(vm, "root")).size));
    expect(new Set(sizes).size).toBe(1);

    const next = await plan(["examples/templates.yaml"]);
    expect(next.code).toBe(0);
    expect(next.stdout).toBe("No changes.\n");
    // clone: on qubes that exist is a note, once per qube.
    expect(next.stderr.match(/QIAC-W160/g)).toHaveLength(2);
  });

  it("--json: a volume_copy_start and a volume_copy_done event per copy, with its size", async () => {
    const r = await apply(["--auto-approve", "--json", "examples/templates.yaml"]);
    expect(r.code).toBe(0);
    const events = applyEvents(r.stdout);
    const copies = events.filter((e) => e.type === "volume_copy_done").map((e) => [e.qube, e.volume, e.from, e.size]);
    expect(copies.sort()).toEqual(
      [
        ["devbox", "root", "fedora-dev", String(10 * 1024 ** 3)],
        ["fedora-dev", "private", "fedora-40", String(2 * 1024 ** 3)],
        ["fedora-dev", "root", "fedora-40", String(10 * 1024 ** 3)],
      ].sort(),
    );
    expect(events.filter((e) => e.type === "volume_copy_start")).toHaveLength(3);
  });
});

describe("a running source in a file pool", () => {
  const config = (): string => {
    const file = join(dir, "q.yaml");
    writeFileSync(file, "version: 1\nowner: o\nqubes:\n  fedora-dev:\n    class: TemplateVM\n    label: black\n    clone: fedora-40\n");
    return file;
  };

  it("is refused without --allow-restart; with it apply stops the source for the copy and starts it again", async () => {
    await s.client.vm.start("fedora-40");
    const refused = await plan([config()]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain("QIAC-E164");
    const from = s.sim.calls.length;
    const r = await apply(["--auto-approve", "--allow-restart", config()]);
    expect(r.stderr).not.toMatch(/error/);
    expect(r.code).toBe(0);
    const calls = mutated(from).filter((c) => c.endsWith("→ fedora-40") || c.includes("volume.Clone"));
    expect(calls).toEqual(["admin.vm.Shutdown+wait → fedora-40", ...FEDORA_DEV_COPIES, "admin.vm.Start+ → fedora-40"]);
    expect((await s.client.vm.list()).find((q) => q.name === "fedora-40")?.state).toBe("Running");
  });
});

describe("a saved plan with a forged CloneFrom", () => {
  async function saved(): Promise<{ file: string; plan: JsonPlan }> {
    const file = join(dir, "p.plan");
    const r = await plan(["--out", file, "examples/templates.yaml"]);
    expect(r.stderr).not.toMatch(/error/);
    return { file, plan: JSON.parse(readFileSync(file, "utf8")) as JsonPlan };
  }

  it("in a step that does not create its copy: refused before any call, naming the op", async () => {
    const { file, plan: p } = await saved();
    expect(planProblems(p)).toEqual([]);
    // Copy vault's private volume into fedora-dev, from the step of another qube.
    stepOf(p, "create:qube.build").ops.push({ op: "volume.clone-from", vm: "vault", volume: "private", to: "fedora-dev" });
    writeFileSync(file, JSON.stringify(p));
    s.sim.calls.length = 0;
    const r = await apply(["--auto-approve", file]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("error QIAC-E205: refused before any call: op 9 of step create:qube.build (admin.vm.volume.CloneFrom on vault): it copies a volume into fedora-dev, not into qube.build");
    expect(s.sim.calls).toEqual([]);
  });

  it("a CloneFrom whose token no CloneTo of the step takes, one in an update step, and a source restart without a copy: each refused", async () => {
    const { plan: p } = await saved();
    const build = stepOf(p, "create:qube.build");
    build.ops.push({ op: "volume.clone-from", vm: "vault", volume: "private", to: "build" }, { op: "vm.shutdown", vm: "work" });
    p.resource_changes.push({ address: "qube.work", type: "qube", name: "work", action: "update", reasons: [], destroys_data: false, before: {}, after: {}, before_default: [], after_default: [], needs_halt: [] });
    p.steps.push({ id: "update:qube.work", address: "qube.work", kind: "update", wave: 9, depends_on: [], ops: [{ op: "volume.clone-from", vm: "vault", volume: "private", to: "work" }] });
    expect(planProblems(p).map((x) => `${x.step}#${x.opIndex ?? "-"}: ${x.why}`)).toEqual([
      "create:qube.build#8: no CloneTo of build takes its token",
      "create:qube.build#9: it acts on qube work, not on qube.build",
      "update:qube.work#0: a volume is copied only in the create step of its copy (or the step that finishes that create)",
    ]);
  });
});

describe("a fault at a clone's calls", () => {
  for (const [rule, what] of [
    ["admin.vm.volume.CloneTo+root/fedora-dev@1=exception:QubesException", "CloneTo refused"],
    ["admin.vm.volume.CloneTo+private/fedora-dev@1=close-after", "CloneTo made, its answer lost"],
    ["admin.vm.volume.CloneFrom+private/fedora-40@1=close-after", "CloneFrom's token lost"],
  ] as const) {
    it(`${what}: the step fails, the next apply copies again, and then No changes`, async () => {
      s.sim.faults.add(rule);
      const first = await apply(["--auto-approve", "examples/templates.yaml"]);
      expect(first.code).toBe(1);
      expect(first.stdout).toMatch(/create:qube\.fedora-dev: failed/);
      expect(s.sim.faults.fired()).toHaveLength(1);
      const from = s.sim.calls.length;
      const second = await apply(["--auto-approve", "examples/templates.yaml"]);
      expect(second.stderr).not.toMatch(/error/);
      expect(second.code).toBe(0);
      // The half-made copy is finished, not made again: no Create of fedora-dev, its volumes copied.
      const calls = mutated(from);
      expect(calls).not.toContain("admin.vm.Create.TemplateVM+ → dom0");
      expect(calls.filter((c) => c.startsWith("admin.vm.volume.") && (c.endsWith("→ fedora-40") || (c.includes("CloneTo+") && c.endsWith("→ fedora-dev"))))).toEqual(FEDORA_DEV_COPIES);
      const next = await plan(["examples/templates.yaml"]);
      expect(next.stdout).toBe("No changes.\n");
    });
  }
});

describe("a saved plan that copies into a qube whose create is finished", () => {
  it("is refused before any call: its volumes are never overwritten", async () => {
    expect((await apply(["--auto-approve", "examples/templates.yaml"])).code).toBe(0);
    const file = join(dir, "p.plan");
    const r = await plan(["--out", file, "examples/templates.yaml"]);
    expect(r.code).toBe(0);
    const p = JSON.parse(readFileSync(file, "utf8")) as JsonPlan;
    p.resource_changes.push({ address: "qube.devbox", type: "qube", name: "devbox", action: "update", reasons: [], destroys_data: false, before: {}, after: {}, before_default: [], after_default: [], needs_halt: [] });
    p.steps.push({
      id: "update:qube.devbox",
      address: "qube.devbox",
      kind: "update",
      wave: 1,
      depends_on: [],
      ops: [
        { op: "volume.clone-from", vm: "vault", volume: "root", to: "devbox" },
        { op: "volume.clone-to", vm: "devbox", volume: "root", from: "vault" },
        { op: "feature.remove", vm: "dom0", name: "qubes-iac.templates.intent.devbox" },
      ],
    });
    p.applyable = true;
    writeFileSync(file, JSON.stringify(p));
    const from = s.sim.calls.length;
    const refused = await apply(["--auto-approve", file]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain("step update:qube.devbox: it overwrites volumes of qube devbox, whose create is finished");
    expect(mutated(from)).toEqual([]);
  });
});
