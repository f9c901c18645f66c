// The plan against what a running system adds (the simulator models it from upstream source,
// src/providers/qubes/simulator/running.ts, which cites the file and lines of each rule): clients
// that keep a qube up, default_netvm followers, running disposables, suspended qubes, and values
// pinned because the same plan moves the default they follow. Each plan is carried out op by op
// against the simulator, so a plan qubesd would refuse fails the test.
import { afterEach, describe, expect, it } from "vitest";
import { readerFromClient } from "../../src/apply/admin-api.js";
import type { ActualProperty } from "../../src/model/actual.js";
import { toJsonPlan, type JsonPlan } from "../../src/plan/json.js";
import type { Holder } from "../../src/plan/ops.js";
import { buildPlan } from "../../src/plan/plan.js";
import { renderHumanPlan } from "../../src/plan/render.js";
import { readActualState } from "../../src/plan/reader.js";
import { readJsonl, replyBytes, type TranscriptRow } from "../helpers/shared.js";
import { ok } from "../simulator/wire.js";
import { desiredFromYaml, errorCodes, expectValidPlanJson, planOps, planWith, runOps, startSession, type SimSession } from "./_helpers.js";

let s: SimSession | undefined;
afterEach(async () => {
  await s?.stop();
  s = undefined;
});

async function session(release: "head" | "r4.3" | "r4.2" = "head"): Promise<SimSession> {
  s = await startSession({ release });
  return s;
}
const yaml = (body: string): string => `version: 1\nowner: o\n${body}`;
async function plan(t: SimSession, body: string, o: { allowRestart?: boolean } = {}): Promise<JsonPlan> {
  const { json } = await planWith(t, desiredFromYaml(yaml(body)), { allowRestart: o.allowRestart ?? false });
  expectValidPlanJson(json);
  return json;
}
const step = (j: JsonPlan, id: string) => j.steps.find((x) => x.id === id);
const diag = (j: JsonPlan, code: string) => j.diagnostics.find((d) => d.code === code);
const power = async (t: SimSession, vm: string) => (await t.client.vm.list()).find((q) => q.name === vm)?.state;

describe("a qube whose clients run", () => {
  it("is shut down after the steps that shut its clients down", async () => {
    // qubes/vm/mix/net.py on_domain_pre_shutdown (R4.2 :313, R4.3/main :411) refuses otherwise.
    const t = await session();
    await t.client.vm.start("work");
    const j = await plan(t, "qubes:\n  sys-firewall: {adopt: true, state: halted}\n  work: {adopt: true, state: halted}\n");
    expect(errorCodes(j)).toEqual([]);
    expect(step(j, "update:qube.sys-firewall")?.depends_on).toContain("update:qube.work");
    await runOps(t.client, planOps(j));
    expect([await power(t, "work"), await power(t, "sys-firewall")]).toEqual(["Halted", "Halted"]);
  });

  it("is shut down after the step that points a running client elsewhere", async () => {
    const t = await session();
    await t.client.vm.start("work");
    const j = await plan(t, "qubes:\n  sys-firewall: {adopt: true, state: halted}\n  work: {adopt: true, properties: {netvm: sys-net}}\n");
    expect(errorCodes(j)).toEqual([]);
    expect(step(j, "update:qube.sys-firewall")?.depends_on).toContain("update:qube.work");
    await runOps(t.client, planOps(j));
    expect(await power(t, "sys-firewall")).toBe("Halted");
  });

  it.each(["head", "r4.2"] as const)("is refused on %s, located, naming the running clients and how they use it", async (release) => {
    const t = await session(release);
    await t.client.property.set({ vm: "vault" }, "guivm", "untrusted");
    await t.client.vm.start("untrusted");
    await t.client.vm.start("vault");
    await t.client.vm.start("work");
    const j = await plan(t, "qubes:\n  untrusted: {adopt: true, state: halted}\n  sys-firewall: {adopt: true, state: halted}\n");
    expect(errorCodes(j)).toEqual(["QIAC-E141", "QIAC-E141"]);
    const messages = j.diagnostics.filter((d) => d.code === "QIAC-E141").map((d) => d.message);
    expect(messages.find((m) => m.startsWith("qube untrusted"))).toMatch(/running qubes use it: vault \(guivm\)/);
    // untrusted, also a client, is shut down by its own step first: only work stays.
    expect(messages.find((m) => m.startsWith("qube sys-firewall"))).toMatch(/running qubes use it: work \(netvm\);/);
    expect(j.diagnostics.find((d) => d.message.startsWith("qube untrusted"))?.location).toMatchObject({ file: "qubes.yaml", line: 4 });
  });
});

describe("default_netvm", () => {
  it("a plan that moves it starts the new netvm first when a follower runs", async () => {
    // qubes/app.py on_property_pre_set_default_netvm (R4.2 :1567, main :2083) fires
    // property-pre-set:netvm on each follower: QubesVMNotStartedError for a stopped netvm.
    const t = await session();
    await t.client.property.set({ vm: "untrusted" }, "netvm", "sys-net");
    await t.client.property.set({ vm: "untrusted" }, "provides_network", "True");
    await t.client.vm.start("work");
    const j = await plan(t, "properties: {default_netvm: untrusted}\n");
    expect(errorCodes(j)).toEqual([]);
    expect(step(j, "update:properties:default_netvm")?.ops).toEqual([
      { op: "vm.start", vm: "untrusted" },
      { op: "property.set", holder: "global", name: "default_netvm", value: "untrusted" },
    ]);
    await runOps(t.client, planOps(j));
    expect((await t.client.property.get({ vm: "work" }, "netvm")).raw).toBe("untrusted");
  });

  it("refuses when the config keeps the new netvm halted", async () => {
    const t = await session();
    await t.client.property.set({ vm: "untrusted" }, "netvm", "sys-net");
    await t.client.property.set({ vm: "untrusted" }, "provides_network", "True");
    await t.client.vm.start("work");
    const j = await plan(t, "properties: {default_netvm: untrusted}\nqubes:\n  untrusted: {adopt: true, state: halted}\n");
    expect(errorCodes(j)).toEqual(["QIAC-E142"]);
    expect(diag(j, "QIAC-E142")?.message).toMatch(/running qubes follow it: .*work/);
    expect(diag(j, "QIAC-E142")?.location).toMatchObject({ file: "qubes.yaml", line: 3 });
  });

  it("pins a config value equal to the default it follows before the default moves", async () => {
    const t = await session();
    await t.client.property.set({ vm: "untrusted" }, "netvm", "sys-net");
    await t.client.property.set({ vm: "untrusted" }, "provides_network", "True");
    const j = await plan(t, "properties: {default_netvm: untrusted}\nqubes:\n  work: {adopt: true, properties: {netvm: sys-firewall}}\n");
    expect(errorCodes(j)).toEqual([]);
    expect(step(j, "update:qube.work")?.ops).toContainEqual({ op: "property.set", holder: { vm: "work" }, name: "netvm", value: "sys-firewall" });
    expect(step(j, "update:properties:default_netvm")?.depends_on).toContain("update:qube.work");
    const work = j.resource_changes.find((c) => c.address === "qube.work");
    expect(work?.after_default).not.toContain("properties.netvm");
    expect(work?.reasons.join(" ")).toMatch(/properties\.netvm is pinned to sys-firewall: it follows the global default_netvm, which this plan changes to untrusted/);
    expect(renderHumanPlan(j, { color: false })).toContain("properties.netvm: sys-firewall (default) → sys-firewall");
    await runOps(t.client, planOps(j));
    expect(await t.client.property.get({ vm: "work" }, "netvm")).toMatchObject({ isDefault: false, raw: "sys-firewall" });
  });

  it("pins a value a managed qube follows from its template, when the plan changes the template's", async () => {
    // qubes/vm/qubesvm.py _default_with_template (main :262): memory follows the template.
    const t = await session();
    await converge1(t, "qubes:\n  fedora-40: {adopt: true}\n  work: {adopt: true}\n");
    const j = await plan(t, "qubes:\n  fedora-40: {adopt: true, properties: {memory: 800}}\n  work: {adopt: true, properties: {memory: 400}}\n");
    expect(errorCodes(j)).toEqual([]);
    expect(step(j, "update:qube.work")?.ops).toEqual([{ op: "property.set", holder: { vm: "work" }, name: "memory", value: "400" }]);
    expect(j.resource_changes.find((c) => c.address === "qube.work")?.action).toBe("update");
    expect(step(j, "update:qube.fedora-40")?.depends_on).toContain("update:qube.work");
    await runOps(t.client, planOps(j));
    expect(await t.client.property.get({ vm: "work" }, "memory")).toMatchObject({ isDefault: false, raw: "400" });
  });
});

async function converge1(t: SimSession, body: string): Promise<void> {
  const j = await plan(t, body);
  expect(errorCodes(j)).toEqual([]);
  await runOps(t.client, planOps(j));
}

describe("a disposable template whose disposables run", () => {
  it("cannot change its template: a plan error naming them", async () => {
    const t = await session();
    await t.client.vm.create({ klass: "TemplateVM", name: "debian-12", label: "black" });
    const disp = await ok(t.sim.socketPath, "admin.vm.CreateDisposable", "", "default-dvm");
    await t.client.vm.start(disp);
    const j = await plan(t, "qubes:\n  default-dvm: {adopt: true, template: debian-12}\n");
    expect(errorCodes(j)).toEqual(["QIAC-E143"]);
    expect(diag(j, "QIAC-E143")?.message).toContain(`running disposables (${disp})`);
    const off = await plan(t, "qubes:\n  default-dvm: {adopt: true, properties: {template_for_dispvms: false}}\n");
    expect(errorCodes(off)).toContain("QIAC-E143");
  });
});

describe("a suspended qube", () => {
  it("is resumed with admin.vm.Resume on R4.3 and later, never unpaused", async () => {
    const t = await session("r4.3");
    await t.client.vm.start("vault");
    await ok(t.sim.socketPath, "admin.vm.Suspend", "", "vault");
    const j = await plan(t, "qubes:\n  vault: {adopt: true, state: running}\n");
    expect(errorCodes(j)).toEqual([]);
    const change = j.resource_changes.find((c) => c.address === "qube.vault");
    expect(change?.before?.state).toBe("suspended");
    expect(planOps(j).filter((o) => o.op.startsWith("vm."))).toEqual([{ op: "vm.resume", vm: "vault" }]);
    await runOps(t.client, planOps(j));
    expect(await power(t, "vault")).toBe("Running");
  });

  it("is a located error on R4.2, which has no Resume", async () => {
    // R4.2's qubesd has no admin.vm.Suspend either: the qube is suspended through R4.3's, and the
    // planner is shown R4.2 by what it reads (below).
    const t = await session("r4.3");
    await t.client.vm.start("vault");
    await ok(t.sim.socketPath, "admin.vm.Suspend", "", "vault");
    // The planner knows R4.2 by what it answers: vault's recorded R4.2 GetAll has no `bootmode`.
    const recorded = readJsonl("conformance/qubesd-r4.2/fixture-state.jsonl").find((r) => r.method === "admin.vm.property.GetAll" && r.dest === "vault");
    const lines = replyBytes(recorded as TranscriptRow).subarray(2).toString("utf8").split("\n").filter((l) => l !== "");
    const r42 = new Map(lines.map((l) => {
      const m = /^(\S+) default=(True|False) type=(\S+) ?(.*)$/.exec(l) as RegExpExecArray;
      return [m[1] as string, { isDefault: m[2] === "True", type: m[3] as ActualProperty["type"], raw: m[4] ?? "" }] as const;
    }));
    expect(r42.has("bootmode")).toBe(false);
    const base = readerFromClient(t.client);
    const reader = { ...base, properties: async (h: Holder) => (h !== "global" && h.vm === "vault" ? r42 : base.properties(h)) };
    const desired = desiredFromYaml(yaml("qubes:\n  vault: {adopt: true, state: halted}\n"));
    const actual = await readActualState(reader, desired, { parallelism: 4 });
    const j = toJsonPlan(buildPlan(desired, actual, { allowRestart: false, targets: [], excludes: [] }), { version: "0.0.0-test" });
    expect(errorCodes(j)).toEqual(["QIAC-E144"]);
    expect(diag(j, "QIAC-E144")?.message).toMatch(/vault is suspended and R4\.2 cannot resume it/);
    expect(diag(j, "QIAC-E144")?.location).toMatchObject({ file: "qubes.yaml", line: 4 });
  });
});
