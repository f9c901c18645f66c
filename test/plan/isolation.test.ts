// Never more connected than the config says, as planned: a new qube's netvm and firewall are its
// first writes after Create, an existing qube's narrowing firewall comes before a netvm change
// that connects it, and references to qubes that cannot serve for them (a netvm that provides no
// network, a default_dispvm that is not a disposable template, a template that is not a
// TemplateVM) are located plan errors, read with one property per system-only qube.
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { JsonPlan } from "../../src/plan/json.js";
import { isMutating } from "../helpers/sim.js";
import { desiredFromYaml, errorCodes, expectValidPlanJson, planWith, startSession, type SimSession } from "./_helpers.js";

let s: SimSession;
beforeEach(async () => {
  s = await startSession();
});
afterEach(async () => {
  await s.stop();
});

async function plan(text: string): Promise<JsonPlan> {
  const { json } = await planWith(s, desiredFromYaml(`version: 1\nowner: o\n${text}`));
  expectValidPlanJson(json);
  return json;
}
/** An adopt's ownership ops: intent, the UUID-bound marker, tag, entry, intent removed (docs/ownership.md). */
const ADOPTION_OPS = 5;
const UUID = expect.stringMatching(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/) as unknown as string;
const opsOf = (j: JsonPlan, id: string) => j.steps.find((x) => x.id === id)?.ops ?? [];
const reads = (from: number): string[] => s.sim.calls.slice(from).map((c) => `${c.method} ${c.dest} ${c.arg}`.trim());

describe("the order of a qube's isolation writes", () => {
  it("a new netvm: null qube: intent, Create, netvm, firewall record, firewall, then the tag, the inventory entry and the rest", async () => {
    const j = await plan(`qubes:
  offline1:
    class: AppVM
    template: fedora-40
    label: black
    properties: {memory: 400, netvm: null}
    features: {service.crond: "1"}
    tags: [offline]
    firewall:
      - {action: drop}
`);
    expect(errorCodes(j)).toEqual([]);
    expect(opsOf(j, "create:qube.offline1")).toEqual([
      { op: "feature.set", vm: "dom0", name: "qubes-iac.o.intent.offline1", value: "create" },
      { op: "vm.create", class: "AppVM", name: "offline1", label: "black", template: "fedora-40" },
      // Every record is bound to the new qube's UUID, read right after Create.
      { op: "vm.uuid", vm: "offline1" },
      { op: "property.set", holder: { vm: "offline1" }, name: "netvm", value: "" },
      { op: "record.set", vm: "offline1", owner: "o", record: "firewall" },
      { op: "firewall.set", vm: "offline1", rules: ["action=drop"] },
      { op: "record.set", vm: "offline1", owner: "o", record: "own" },
      { op: "tag.set", vm: "offline1", name: "managed-by-o" },
      { op: "feature.set", vm: "dom0", name: "qubes-iac.o.created.offline1", value: "1" },
      { op: "feature.remove", vm: "dom0", name: "qubes-iac.o.intent.offline1" },
      { op: "property.set", holder: { vm: "offline1" }, name: "memory", value: "400" },
      { op: "record.set", vm: "offline1", owner: "o", record: "feature.service.crond" },
      { op: "feature.set", vm: "offline1", name: "service.crond", value: "1" },
      { op: "record.set", vm: "offline1", owner: "o", record: "tag.offline" },
      { op: "tag.set", vm: "offline1", name: "offline" },
    ]);
  });

  it("an existing qube: a narrowing firewall before the netvm that connects it, both before the rest", async () => {
    // vault has no netvm in the default fixture; the config connects it, behind a narrow firewall.
    const j = await plan(`qubes:
  vault:
    adopt: true
    properties: {memory: 500, netvm: sys-firewall}
    firewall:
      - {action: accept, specialtarget: dns}
      - {action: drop}
`);
    expect(errorCodes(j)).toEqual([]);
    expect(opsOf(j, "update:qube.vault").slice(ADOPTION_OPS)).toEqual([
      { op: "record.set", vm: "vault", owner: "o", uuid: UUID, record: "firewall" },
      { op: "firewall.set", vm: "vault", rules: ["action=accept specialtarget=dns", "action=drop"] },
      { op: "property.set", holder: { vm: "vault" }, name: "netvm", value: "sys-firewall" },
      { op: "property.set", holder: { vm: "vault" }, name: "memory", value: "500" },
    ]);
  });

  it("an existing qube going offline: the netvm to none first (it disconnects the qube), then the firewall", async () => {
    const j = await plan(`qubes:
  work:
    adopt: true
    properties: {memory: 500, netvm: null}
    firewall:
      - {action: accept, proto: tcp, dstports: 443}
      - {action: drop}
`);
    expect(errorCodes(j)).toEqual([]);
    expect(opsOf(j, "update:qube.work").slice(ADOPTION_OPS)).toEqual([
      { op: "property.set", holder: { vm: "work" }, name: "netvm", value: "" },
      { op: "record.set", vm: "work", owner: "o", uuid: UUID, record: "firewall" },
      { op: "firewall.set", vm: "work", rules: ["action=accept proto=tcp dstports=443-443", "action=drop"] },
      { op: "property.set", holder: { vm: "work" }, name: "memory", value: "500" },
    ]);
  });

  it("a firewall that lets everything through narrows nothing: it comes after a netvm that connects the qube", async () => {
    await s.client.firewall.set("vault", ["action=drop"]);
    const j = await plan(`qubes:
  vault:
    adopt: true
    properties: {netvm: sys-firewall}
    firewall:
      - {action: accept}
`);
    expect(opsOf(j, "update:qube.vault").slice(ADOPTION_OPS)).toEqual([
      { op: "property.set", holder: { vm: "vault" }, name: "netvm", value: "sys-firewall" },
      { op: "record.set", vm: "vault", owner: "o", uuid: UUID, record: "firewall" },
      { op: "firewall.set", vm: "vault", rules: ["action=accept"] },
    ]);
  });
});

describe("power ops of one qube in another qube's step", () => {
  it("a step that starts a netvm it needs runs after that netvm's own step (so a failed one is never started)", async () => {
    await s.client.vm.start("work");
    const j = await plan(`qubes:
  vault:
    adopt: true
    properties: {provides_network: true}
  work:
    adopt: true
    properties: {netvm: vault}
`);
    expect(errorCodes(j)).toEqual([]);
    const starts = j.steps.flatMap((x) => x.ops.filter((o) => o.op === "vm.start").map((o) => ({ step: x.id, vm: (o as { vm: string }).vm, depends_on: x.depends_on })));
    expect(starts).toEqual([{ step: "update:qube.work", vm: "vault", depends_on: expect.arrayContaining(["update:qube.vault"]) as unknown }]);
  });
});

describe("what a reference needs of the qube it names", () => {
  it("system-only qubes that cannot serve: located errors, one property read each, no call that mutates", async () => {
    const from = s.sim.calls.length;
    const j = await plan(`qubes:
  a:
    class: AppVM
    template: work
    label: red
    properties:
      netvm: work
      default_dispvm: sys-net
  b:
    class: DispVM
    template: vault
    label: red
  c:
    class: AppVM
    template: fedora-40
    label: red
    properties: {netvm: sys-firewall, default_dispvm: default-dvm}
`);
    expect(j.diagnostics.filter((d) => d.code === "QIAC-E130").map((d) => [d.location?.line, d.location?.column, d.message])).toEqual([
      [6, 15, "qube a: template 'work' cannot serve as a template: it is of class AppVM, not TemplateVM"],
      [9, 14, "qube a: properties.netvm 'work' cannot serve as a netvm (a qube that provides network): it has provides_network False"],
      [10, 23, "qube a: properties.default_dispvm 'sys-net' cannot serve as a disposable template: it has template_for_dispvms False"],
      [13, 15, "qube b: template 'vault' cannot serve as a disposable template: it has template_for_dispvms False"],
    ]);
    expect(errorCodes(j)).toEqual(["QIAC-E130", "QIAC-E130", "QIAC-E130", "QIAC-E130"]);
    expect(s.sim.calls.slice(from).filter((c) => isMutating(c.method))).toEqual([]);
    // One property.Get per system-only qube and property a reference needs; the class of a template comes with admin.vm.List.
    expect(reads(from).filter((c) => c.startsWith("admin.vm.property.Get ")).sort()).toEqual([
      "admin.vm.property.Get default-dvm template_for_dispvms",
      "admin.vm.property.Get sys-firewall provides_network",
      "admin.vm.property.Get sys-net template_for_dispvms",
      "admin.vm.property.Get vault template_for_dispvms",
      "admin.vm.property.Get work provides_network",
    ]);
  });

  it("a global default that cannot serve: a located error; moving it reads every qube's properties once (the follower count, src/plan/loosening.ts)", async () => {
    const from = s.sim.calls.length;
    const j = await plan(`properties:
  default_dispvm: sys-net
`);
    expect(j.diagnostics.filter((d) => d.code === "QIAC-E130").map((d) => [d.location?.line, d.location?.column, d.message])).toEqual([
      [4, 19, "the global properties: properties.default_dispvm 'sys-net' cannot serve as a disposable template: it has template_for_dispvms False"],
    ]);
    expect(s.sim.calls.slice(from).filter((c) => isMutating(c.method))).toEqual([]);
    const listed = (await s.client.vm.list()).map((q) => q.name).sort();
    expect(reads(from).filter((c) => c.startsWith("admin.vm.property.GetAll ")).sort()).toEqual(listed.map((n) => `admin.vm.property.GetAll ${n}`));
    expect(reads(from).filter((c) => c.startsWith("admin.vm.property.Get "))).toEqual([]);
  });

  it("an adopted qube is as it is where the config does not say: read in depth, it costs no extra read", async () => {
    const from = s.sim.calls.length;
    const j = await plan(`qubes:
  user:
    class: AppVM
    template: fedora-40
    label: red
    properties: {default_dispvm: default-dvm, netvm: personal}
  personal:
    adopt: true
  default-dvm:
    adopt: true
`);
    expect(j.diagnostics.filter((d) => d.code === "QIAC-E130").map((d) => [d.location?.line, d.location?.column, d.message])).toEqual([
      [8, 54, "qube user: properties.netvm 'personal' cannot serve as a netvm (a qube that provides network): it has provides_network False"],
    ]);
    expect(reads(from).filter((c) => c.startsWith("admin.vm.property.Get "))).toEqual([]);
  });
});
