// Creating by cloning (src/plan/clone.ts) against the simulator over its socket: what is copied
// and what is not, the CloneFrom/CloneTo pairs and their place in the create, the file-pool
// source that must be halted, ordering after a source created by the same plan, and the errors of
// "no empty disks by surprise" at their config lines.
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { JsonPlan } from "../../src/plan/json.js";
import { renderHumanPlan } from "../../src/plan/render.js";
import { converge, desiredFromYaml, errorCodes, expectValidPlanJson, planOps, planWith, runOps, startSession, type SimSession } from "./_helpers.js";

const yaml = (body: string): string => `version: 1\nowner: o\n${body}`;
const opsOf = (j: JsonPlan, id: string) => j.steps.find((s) => s.id === id)?.ops ?? [];
const diag = (j: JsonPlan, code: string) => j.diagnostics.find((d) => d.code === code);

let s: SimSession;
beforeEach(async () => {
  s = await startSession();
});
afterEach(async () => {
  await s.stop();
});

async function plan(text: string, o: { allowRestart?: boolean } = {}): Promise<JsonPlan> {
  const { json } = await planWith(s, desiredFromYaml(text), { allowRestart: o.allowRestart ?? false, targets: [], excludes: [] });
  expectValidPlanJson(json);
  return json;
}

describe("clone", () => {
  it("a TemplateVM cloned from a template: Create, then CloneFrom on the source and CloneTo on the copy for root and private", async () => {
    const j = await plan(yaml("qubes:\n  fedora-dev:\n    class: TemplateVM\n    label: black\n    clone: fedora-40\n"));
    expect(errorCodes(j)).toEqual([]);
    const ops = opsOf(j, "create:qube.fedora-dev");
    const methods = ops.map((o) => o.op);
    expect(methods.slice(0, 3)).toEqual(["feature.set", "vm.create", "vm.uuid"]);
    const copies = ops.filter((o) => o.op === "volume.clone-from" || o.op === "volume.clone-to");
    expect(copies.map((o) => [o.op, "vm" in o ? o.vm : "", "volume" in o ? o.volume : ""])).toEqual([
      ["volume.clone-from", "fedora-40", "root"],
      ["volume.clone-to", "fedora-dev", "root"],
      ["volume.clone-from", "fedora-40", "private"],
      ["volume.clone-to", "fedora-dev", "private"],
    ]);
    const change = j.resource_changes.find((c) => c.address === "qube.fedora-dev");
    expect(change?.after?.["volumes.root"]).toMatch(/^cloned from fedora-40 \(\d+\.\d GiB\)$/);
    expect(change?.after?.clone).toBe("fedora-40");
    const human = renderHumanPlan(j, { color: false });
    expect(human).toMatch(/volumes\.root: cloned from fedora-40 \(/);
  });

  it("copies the source's features and tags but never another owner's records or managed-by/created-by tags", async () => {
    await s.client.feature.set("fedora-40", "qubes-iac.other.736a89a5-8be8-51d3-91f5-fbd683cab32f.own", "1");
    await s.client.feature.set("fedora-40", "menu-items", "org.gnome.Terminal.desktop");
    await s.client.tag.set("fedora-40", "managed-by-other");
    await s.client.tag.set("fedora-40", "dev");
    const j = await plan(yaml("qubes:\n  fedora-dev:\n    class: TemplateVM\n    label: black\n    clone: fedora-40\n"));
    expect(errorCodes(j)).toEqual([]);
    const ops = opsOf(j, "create:qube.fedora-dev");
    const features = ops.flatMap((o) => (o.op === "feature.set" && o.vm === "fedora-dev" ? [o.name] : []));
    expect(features).toContain("menu-items");
    expect(features.filter((f) => f.startsWith("qubes-iac."))).toEqual([]);
    const tags = ops.flatMap((o) => (o.op === "tag.set" && o.vm === "fedora-dev" ? [o.name] : []));
    expect(tags).toContain("dev");
    expect(tags.filter((t) => t.startsWith("created-by-") || t === "managed-by-other")).toEqual([]);
    const change = j.resource_changes.find((c) => c.address === "qube.fedora-dev");
    expect(change?.from_source?.qube).toBe("fedora-40");
    expect(change?.from_source?.attributes).toContain("features.menu-items");
  });

  it("the config's own values win over the source's, and the copied netvm goes right after Create with the firewall", async () => {
    await s.client.property.set({ vm: "work" }, "memory", "800");
    const j = await plan(yaml("qubes:\n  work2:\n    class: AppVM\n    template: fedora-40\n    label: red\n    clone: work\n    properties: {netvm: null}\n    firewall: []\n"));
    expect(errorCodes(j)).toEqual([]);
    const ops = opsOf(j, "create:qube.work2");
    const at = ops.findIndex((o) => o.op === "vm.uuid");
    expect(ops[at + 1]).toEqual({ op: "property.set", holder: { vm: "work2" }, name: "netvm", value: "" });
    expect(ops.filter((o) => o.op === "property.set" && o.name === "netvm")).toHaveLength(1);
    expect(ops).toContainEqual({ op: "property.set", holder: { vm: "work2" }, name: "memory", value: "800" });
    // An AppVM's root is its template's: only private is copied.
    expect(ops.filter((o) => o.op === "volume.clone-to").map((o) => ("volume" in o ? o.volume : ""))).toEqual(["private"]);
  });

  it("the source's netvm and firewall are copied as isolation writes: right after Create and the UUID, before anything else, with no record", async () => {
    await s.client.property.set({ vm: "work" }, "netvm", "");
    await s.client.firewall.set("work", ["action=drop"]);
    const j = await plan(yaml("qubes:\n  work2:\n    class: AppVM\n    template: fedora-40\n    label: red\n    clone: work\n    tags: [copy]\n"));
    expect(errorCodes(j)).toEqual([]);
    const ops = opsOf(j, "create:qube.work2");
    const at = ops.findIndex((o) => o.op === "vm.uuid");
    expect(ops.slice(at + 1, at + 3)).toEqual([
      { op: "property.set", holder: { vm: "work2" }, name: "netvm", value: "" },
      { op: "firewall.set", vm: "work2", rules: ["action=drop"] },
    ]);
    expect(ops.filter((o) => o.op === "record.set" && o.record === "firewall")).toEqual([]);
    const change = j.resource_changes.find((c) => c.address === "qube.work2");
    expect(change?.from_source?.attributes).toEqual(expect.arrayContaining(["properties.netvm", "firewall"]));
  });

  it("a source the config changes in the same plan is copied with the config's values, after its own step", async () => {
    const j = await plan(yaml("qubes:\n  fedora-40:\n    adopt: true\n    features: {os-version: '40.1'}\n  fedora-dev:\n    class: TemplateVM\n    label: black\n    clone: fedora-40\n"));
    expect(errorCodes(j)).toEqual([]);
    expect(opsOf(j, "create:qube.fedora-dev")).toContainEqual({ op: "feature.set", vm: "fedora-dev", name: "os-version", value: "40.1" });
    expect(j.steps.find((st) => st.id === "create:qube.fedora-dev")?.depends_on).toContain("update:qube.fedora-40");
  });

  it("a source created by the same plan is created first; its copy follows it", async () => {
    const j = await plan(
      yaml("qubes:\n  base:\n    class: TemplateVM\n    label: black\n    clone: fedora-40\n    features: {os: Linux}\n  base-2:\n    class: TemplateVM\n    label: black\n    clone: base\n"),
    );
    expect(errorCodes(j)).toEqual([]);
    expect(j.steps.find((st) => st.id === "create:qube.base-2")?.depends_on).toContain("create:qube.base");
    expect(opsOf(j, "create:qube.base-2")).toContainEqual({ op: "feature.set", vm: "base-2", name: "os", value: "Linux" });
  });

  it("applies against the simulator: the copy gets the source's volume sizes, and the next plan is No changes", async () => {
    await s.client.volume.resize("fedora-40", "root", 30n * 1024n ** 3n);
    const desired = desiredFromYaml(yaml("qubes:\n  fedora-dev:\n    class: TemplateVM\n    label: black\n    clone: fedora-40\n  sa:\n    class: StandaloneVM\n    label: red\n    clone: fedora-dev\n"));
    await converge(s, desired);
    expect((await s.client.volume.info("fedora-dev", "root")).size).toBe(30n * 1024n ** 3n);
    expect((await s.client.volume.info("sa", "root")).size).toBe(30n * 1024n ** 3n);
    const again = await planWith(s, desired, { allowRestart: false, targets: [], excludes: [] });
    expect(again.json.steps).toEqual([]);
    expect(again.json.diagnostics.map((d) => d.code)).toEqual(["QIAC-W160", "QIAC-W160"]);
  });

  it("a create interrupted before its copies were done is copied again by the next plan (its intent is still there), then No changes", async () => {
    const desired = desiredFromYaml(yaml("qubes:\n  fedora-dev:\n    class: TemplateVM\n    label: black\n    clone: fedora-40\n"));
    const first = await planWith(s, desired, { allowRestart: false, targets: [], excludes: [] });
    const ops = planOps(first.json);
    const cut = ops.findIndex((o) => o.op === "volume.clone-to");
    // The apply stops right before the first CloneTo (a crash, a lost connection).
    await runOps(s.client, ops.slice(0, cut));
    const again = await planWith(s, desired, { allowRestart: false, targets: [], excludes: [] });
    expectValidPlanJson(again.json);
    expect(errorCodes(again.json)).toEqual([]);
    expect(again.json.diagnostics.map((d) => d.code)).not.toContain("QIAC-W160");
    const finish = opsOf(again.json, "update:qube.fedora-dev");
    expect(finish.filter((o) => o.op.startsWith("volume.clone")).map((o) => o.op)).toEqual(["volume.clone-from", "volume.clone-to", "volume.clone-from", "volume.clone-to"]);
    expect(finish.at(-1)).toEqual({ op: "feature.remove", vm: "dom0", name: "qubes-iac.o.intent.fedora-dev" });
    await runOps(s.client, planOps(again.json));
    const done = await planWith(s, desired, { allowRestart: false, targets: [], excludes: [] });
    expect(done.json.steps).toEqual([]);
    expect(done.json.diagnostics.map((d) => d.code)).toEqual(["QIAC-W160"]);
  });

  it("an interrupted create by cloning whose qube was started since: an error until it is halted", async () => {
    const desired = desiredFromYaml(yaml("qubes:\n  fedora-dev:\n    class: TemplateVM\n    label: black\n    clone: fedora-40\n"));
    const ops = planOps((await planWith(s, desired, { allowRestart: false, targets: [], excludes: [] })).json);
    await runOps(s.client, ops.slice(0, ops.findIndex((o) => o.op === "volume.clone-to")));
    await s.client.vm.start("fedora-dev");
    const j = await plan(yaml("qubes:\n  fedora-dev:\n    class: TemplateVM\n    label: black\n    clone: fedora-40\n"));
    expect(errorCodes(j)).toEqual(["QIAC-E166"]);
    expect(diag(j, "QIAC-E166")?.location?.line).toBe(7);
  });

  it("a running source in another pool (file-reflink) is copied as of its last shutdown, and the plan says so", async () => {
    await s.client.pool.add("file-reflink", "reflink", { dir_path: "/var/lib/qubes-reflink" });
    await s.client.vm.create({ klass: "TemplateVM", name: "tpl", label: "black", pool: "reflink" });
    await s.client.vm.start("tpl");
    const desired = desiredFromYaml(yaml("qubes:\n  tpl-2:\n    class: TemplateVM\n    label: black\n    clone: tpl\n"));
    const { json } = await planWith(s, desired, { allowRestart: false, targets: [], excludes: [] });
    expect(errorCodes(json)).toEqual([]);
    expect(json.resource_changes.find((c) => c.address === "qube.tpl-2")?.reasons).toContain("the copy is of tpl as of its last shutdown (it is running; its pool keeps that snapshot)");
    expect(opsOf(json, "create:qube.tpl-2").some((o) => o.op === "vm.shutdown")).toBe(false);
    await runOps(s.client, planOps(json));
    expect((await s.client.vm.list()).find((q) => q.name === "tpl")?.state).toBe("Running");
  });

  it("a running source in a file pool: an error without --allow-restart; with it, Shutdown before the copy and Start after", async () => {
    await s.client.vm.start("fedora-40");
    const text = yaml("qubes:\n  fedora-dev:\n    class: TemplateVM\n    label: black\n    clone: fedora-40\n");
    const refused = await plan(text);
    expect(errorCodes(refused)).toEqual(["QIAC-E164"]);
    expect(diag(refused, "QIAC-E164")?.location).toMatchObject({ line: 7 });
    const j = await plan(text, { allowRestart: true });
    expect(errorCodes(j)).toEqual([]);
    const ops = opsOf(j, "create:qube.fedora-dev").filter((o) => o.op === "vm.shutdown" || o.op === "vm.start" || o.op.startsWith("volume.clone"));
    expect(ops.map((o) => o.op)).toEqual(["vm.shutdown", "volume.clone-from", "volume.clone-to", "volume.clone-from", "volume.clone-to", "vm.start"]);
  });
});

describe("no empty disks by surprise", () => {
  it("a TemplateVM or StandaloneVM without clone: is refused at its class line; root: empty is allowed", async () => {
    const j = await plan(yaml("qubes:\n  t:\n    class: TemplateVM\n    label: black\n  sa:\n    label: red\n    class: StandaloneVM\n"));
    expect(errorCodes(j).sort()).toEqual(["QIAC-E160", "QIAC-E160"]);
    expect(j.diagnostics.filter((d) => d.code === "QIAC-E160").map((d) => d.location?.line).sort()).toEqual([5, 9]);
    expect(j.diagnostics[0]?.hint).toMatch(/qvm-template install/);
    const ok = await plan(yaml("qubes:\n  t:\n    class: TemplateVM\n    label: black\n    root: empty\n"));
    expect(errorCodes(ok)).toEqual([]);
  });

  it("a template that exists nowhere prints qvm-template install", async () => {
    const j = await plan(yaml("qubes:\n  a:\n    class: AppVM\n    template: debian-13-xfce\n    label: red\n"));
    expect(errorCodes(j)).toEqual(["QIAC-E161"]);
    expect(diag(j, "QIAC-E161")?.hint).toMatch(/qvm-template install debian-13-xfce/);
    expect(diag(j, "QIAC-E161")?.location?.line).toBe(6);
  });

  it("state: running on an empty root is not started, with a warning", async () => {
    const j = await plan(yaml("qubes:\n  hvm:\n    class: StandaloneVM\n    label: red\n    root: empty\n    state: running\n"));
    expect(errorCodes(j)).toEqual([]);
    expect(diag(j, "QIAC-W161")?.location?.line).toBe(8);
    expect(opsOf(j, "create:qube.hvm").some((o) => o.op === "vm.start")).toBe(false);
  });

  it("a clone source the same plan destroys: absent: true, or created by this owner and dropped from the config", async () => {
    await converge(s, desiredFromYaml(yaml("qubes:\n  base:\n    class: TemplateVM\n    label: black\n    clone: fedora-40\n")));
    const dropped = await plan(yaml("qubes:\n  copy:\n    class: TemplateVM\n    label: black\n    clone: base\n"));
    expect(errorCodes(dropped)).toEqual(["QIAC-E165"]);
    expect(diag(dropped, "QIAC-E165")?.location?.line).toBe(7);
    const absent = await plan(yaml("qubes:\n  base: {absent: true}\n  copy:\n    class: TemplateVM\n    label: black\n    clone: base\n"));
    expect(errorCodes(absent)).toEqual(["QIAC-E165"]);
  });

  it("a clone source that exists nowhere, or of a class that cannot be copied", async () => {
    const missing = await plan(yaml("qubes:\n  t:\n    class: TemplateVM\n    label: black\n    clone: nope\n"));
    expect(errorCodes(missing)).toEqual(["QIAC-E162"]);
    const wrong = await plan(yaml("qubes:\n  t:\n    class: TemplateVM\n    label: black\n    clone: work\n"));
    expect(errorCodes(wrong)).toEqual(["QIAC-E163"]);
  });
});
