// The planner's rules against the simulator: ownership (adopt, drift, hand-added tags, records of
// what qubes-iac set, protect), removals blocked by references, references against reality,
// labels, pools, global properties and their order, power states, scope, and cycles.
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { acquireLock, lockStoreFromClient, newHolder } from "../../src/apply/lock.js";
import { parseAddress, type Address } from "../../src/model/address.js";
import type { JsonPlan } from "../../src/plan/json.js";
import { converge, desiredFromYaml, errorCodes, expectValidPlanJson, planOps, planWith, runOps, startSession, type SimSession } from "./_helpers.js";

const yaml = (owner: string, body: string): string => `version: 1\nowner: ${owner}\n${body}`;
const addr = (t: string): Address => {
  const r = parseAddress(t);
  if (!r.ok) throw new Error(r.error);
  return r.address;
};
const stepIds = (j: JsonPlan): string[] => j.steps.map((s) => s.id);
const opsOf = (j: JsonPlan, id: string) => j.steps.find((s) => s.id === id)?.ops ?? [];
const actionOf = (j: JsonPlan, address: string) => j.resource_changes.find((c) => c.address === address)?.action;
const diag = (j: JsonPlan, code: string) => j.diagnostics.find((d) => d.code === code);

let s: SimSession;
const uuidOf = async (vm: string): Promise<string> => (await s.client.property.get({ vm }, "uuid")).raw;
beforeEach(async () => {
  s = await startSession();
});
afterEach(async () => {
  await s.stop();
});

async function plan(text: string, o: { allowRestart?: boolean; targets?: string[]; excludes?: string[] } = {}): Promise<JsonPlan> {
  const { json } = await planWith(s, desiredFromYaml(text), {
    allowRestart: o.allowRestart ?? false,
    targets: (o.targets ?? []).map(addr),
    excludes: (o.excludes ?? []).map(addr),
  });
  expectValidPlanJson(json);
  return json;
}

describe("ownership", () => {
  it("a qube of the config that exists and is not ours is an error unless adopt: true", async () => {
    const refused = await plan(yaml("o", "qubes:\n  work: {class: AppVM, template: fedora-40, label: red}\n"));
    expect(errorCodes(refused)).toEqual(["QIAC-E101"]);
    expect(diag(refused, "QIAC-E101")?.location).toMatchObject({ file: "qubes.yaml", line: 4, column: 3 });
    expect(refused.steps).toEqual([]);

    const adopted = await plan(yaml("o", "qubes:\n  work:\n    adopt: true\n    label: red\n"));
    expect(errorCodes(adopted)).toEqual([]);
    expect(opsOf(adopted, "update:qube.work")).toEqual([
      { op: "feature.set", vm: "dom0", name: "qubes-iac.o.intent.work", value: "adopt" },
      { op: "record.set", vm: "work", owner: "o", uuid: await uuidOf("work"), record: "own" },
      { op: "tag.set", vm: "work", name: "managed-by-o" },
      { op: "feature.set", vm: "dom0", name: "qubes-iac.o.adopted.work", value: "1" },
      { op: "feature.remove", vm: "dom0", name: "qubes-iac.o.intent.work" },
      { op: "property.set", holder: { vm: "work" }, name: "label", value: "red" },
    ]);
    expect(adopted.resource_changes[0]?.reasons.join(" ")).toMatch(/adopt/);
  });

  it("a hand-added owner tag outside the inventory means nothing: not adopted, never deleted", async () => {
    await s.client.tag.set("work", "managed-by-o");
    expect(errorCodes(await plan(yaml("o", "qubes:\n  work: {class: AppVM, template: fedora-40, label: blue}\n")))).toEqual(["QIAC-E101"]);
    const other = await plan(yaml("o", "qubes:\n  notes:\n    class: AppVM\n    template: fedora-40\n    label: green\n"));
    expect(other.resource_changes.map((c) => c.address)).toEqual(["qube.notes"]);
  });

  it("a listed qube whose marker record was removed is drift: reported, left alone, deleted never; adopt: true takes it back", async () => {
    const config = yaml("o", "qubes:\n  work:\n    adopt: true\n    tags: [w]\n");
    await converge(s, desiredFromYaml(config));
    // The tag alone neither claims nor disclaims: stripped, the next plan puts it back.
    await s.client.tag.remove("work", "managed-by-o");
    expect(opsOf(await plan(config), "update:qube.work")).toEqual([{ op: "tag.set", vm: "work", name: "managed-by-o" }]);
    await s.client.feature.remove("work", `qubes-iac.o.${await uuidOf("work")}.own`);

    const drift = await plan(yaml("o", "qubes:\n  work: {class: AppVM, template: fedora-40, label: blue, tags: [w]}\n"));
    expect(errorCodes(drift)).toEqual(["QIAC-E102"]);
    expect(drift.steps).toEqual([]);
    const dropped = await plan(yaml("o", "qubes: {}\n"));
    expect(errorCodes(dropped)).toEqual(["QIAC-E102"]);
    expect(dropped.steps).toEqual([]);

    const retaken = await plan(config);
    expect(errorCodes(retaken)).toEqual([]);
    expect(opsOf(retaken, "update:qube.work")).toContainEqual({ op: "record.set", vm: "work", owner: "o", uuid: await uuidOf("work"), record: "own" });
  });

  it("a qube made again by hand under the name of one qubes-iac created is not it: drift, never destroyed", async () => {
    const config = yaml("o", "qubes:\n  notes: {class: AppVM, template: fedora-40, label: green, features: {f: x}}\n");
    await converge(s, desiredFromYaml(config));
    await s.client.vm.remove("notes");
    await s.client.vm.create({ klass: "AppVM", name: "notes", label: "green", template: "fedora-40" });
    const j = await plan(yaml("o", "qubes: {}\n"));
    expect(errorCodes(j)).toEqual(["QIAC-E102"]);
    expect(j.steps).toEqual([]);
  });

  it("removing a feature or tag from the config removes only what qubes-iac set", async () => {
    await s.client.feature.set("work", "already", "1");
    const v1 = yaml("o", 'qubes:\n  work:\n    adopt: true\n    features: {mine: "1", already: "1"}\n    tags: [t, fixture]\n');
    await converge(s, desiredFromYaml(v1));
    await s.client.feature.set("work", "by-hand", "x");
    await s.client.tag.set("work", "hand");

    const v2 = await plan(yaml("o", "qubes:\n  work:\n    adopt: true\n"));
    const uuid = await uuidOf("work");
    expect(opsOf(v2, "update:qube.work")).toEqual([
      { op: "feature.remove", vm: "work", name: "mine" },
      { op: "record.remove", vm: "work", owner: "o", uuid, record: "feature.mine" },
      { op: "tag.remove", vm: "work", name: "t" },
      { op: "record.remove", vm: "work", owner: "o", uuid, record: "tag.t" },
    ]);
    await runOps(s.client, planOps(v2));
    expect(await s.client.feature.getOptional("work", "already")).toBe("1");
    expect(await s.client.feature.getOptional("work", "by-hand")).toBe("x");
    expect(await s.client.tag.list("work")).toEqual(expect.arrayContaining(["fixture", "hand", "managed-by-o"]));
  });

  it("protect is recorded on the qube: dropping the qube (or the key) does not lift it; protect: false does", async () => {
    const v1 = yaml("o", "qubes:\n  keys:\n    class: AppVM\n    template: fedora-40\n    label: black\n    protect: true\n");
    await converge(s, desiredFromYaml(v1));
    const dropped = await plan(yaml("o", "qubes: {}\n"));
    expect(errorCodes(dropped)).toEqual(["QIAC-E103"]);
    expect(actionOf(dropped, "qube.keys")).toBe("delete");

    const keyDropped = await plan(yaml("o", "qubes:\n  keys:\n    class: AppVM\n    template: fedora-40\n    label: black\n"));
    expect(keyDropped.steps).toEqual([]);
    const replaced = await plan(yaml("o", "qubes:\n  keys:\n    class: StandaloneVM\n    label: black\n    root: empty\n"));
    expect(errorCodes(replaced)).toEqual(["QIAC-E103"]);

    const lifted = await plan(yaml("o", "qubes:\n  keys:\n    class: AppVM\n    template: fedora-40\n    label: black\n    protect: false\n"));
    expect(opsOf(lifted, "update:qube.keys")).toEqual([{ op: "record.remove", vm: "keys", owner: "o", uuid: await uuidOf("keys"), record: "protect" }]);
    await runOps(s.client, planOps(lifted));
    const deleted = await plan(yaml("o", "qubes: {}\n"));
    expect(errorCodes(deleted)).toEqual([]);
    expect(opsOf(deleted, "delete:qube.keys")).toEqual([
      { op: "vm.remove", vm: "keys" },
      { op: "feature.remove", vm: "dom0", name: "qubes-iac.o.created.keys" },
    ]);
  });

  it("a listed qube removed by hand is forgotten; an interrupted adopt of a dropped qube is forgotten, the qube untouched", async () => {
    await converge(s, desiredFromYaml(yaml("o", "qubes:\n  notes:\n    class: AppVM\n    template: fedora-40\n    label: green\n")));
    await s.client.vm.remove("notes");
    await s.client.feature.set("dom0", "qubes-iac.o.intent.work", "adopt");
    const j = await plan(yaml("o", "qubes: {}\n"));
    expect(errorCodes(j)).toEqual([]);
    expect(j.resource_changes.map((c) => [c.address, c.action])).toEqual([
      ["qube.notes", "forget"],
      ["qube.work", "forget"],
    ]);
    expect(planOps(j)).toEqual([
      { op: "feature.remove", vm: "dom0", name: "qubes-iac.o.created.notes" },
      { op: "feature.remove", vm: "dom0", name: "qubes-iac.o.intent.work" },
    ]);
    expect(j.summary).toEqual({ add: 0, change: 0, destroy: 0, forget: 2, release: 0 });
  });

  it("records of a newer format are refused", async () => {
    await s.client.feature.set("dom0", "qubes-iac.o.format", "3");
    const j = await plan(yaml("o", "qubes: {}\n"));
    expect(errorCodes(j)).toEqual(["QIAC-E116"]);
  });

  it("while an apply of the same owner holds the lock, warns who holds it and how to break a stale lock", async () => {
    const config = yaml("o", "qubes:\n  notes: {class: AppVM, template: fedora-40, label: red}\n");
    const lockReads = () => s.sim.calls.filter((c) => c.method === "admin.vm.feature.Get" && c.arg.endsWith(".lock")).length;
    const free = await plan(config);
    expect(diag(free, "QIAC-W104")).toBeUndefined();
    expect(lockReads()).toBe(0);

    // Another owner's apply does not concern this plan.
    const other = await acquireLock(lockStoreFromClient(s.client), "p", newHolder({ id: "bbbbbbbbbbbb", host: "mgmt-p", pid: 7, now: new Date(), version: "0.1.0" }));
    expect(other.kind).toBe("acquired");
    expect(diag(await plan(config), "QIAC-W104")).toBeUndefined();
    expect(lockReads()).toBe(0);

    const since = new Date("2025-06-01T10:00:00.000Z");
    const taken = await acquireLock(lockStoreFromClient(s.client), "o", newHolder({ id: "3f9a1c2b7d10", host: "mgmt", pid: 4242, now: since, version: "0.1.0" }));
    expect(taken.kind).toBe("acquired");
    const held = await plan(config);
    const w = diag(held, "QIAC-W104");
    expect(w?.severity).toBe("warning");
    expect(w?.message).toBe(
      "an apply of owner o is running: the lock is held by apply 3f9a1c2b7d10 on mgmt (pid 4242, qubes-iac 0.1.0) since 2025-06-01T10:00:00.000Z. This plan shows Qubes before the rest of that apply's changes",
    );
    expect(w?.hint).toContain("qubes-iac apply --break-lock 3f9a1c2b7d10");
    // The plan itself is unchanged: a warning, and the qube still to create.
    expect(errorCodes(held)).toEqual([]);
    expect(actionOf(held, "qube.notes")).toBe("create");
    expect(planOps(held).filter((op) => JSON.stringify(op).includes("lock"))).toEqual([]);
    expect(lockReads()).toBe(1);
  });

  it("a lock record qubes-iac did not write is named as an unrecorded holder", async () => {
    await s.client.feature.set("dom0", "qubes-iac.o.lock", "not a record");
    const w = diag(await plan(yaml("o", "qubes: {}\n")), "QIAC-W104");
    expect(w?.message).toContain("the lock is held by an apply that has not recorded who it is");
    expect(w?.hint).toContain("--break-lock unknown");
  });
});

describe("removals and references", () => {
  const lab = yaml(
    "o",
    `qubes:
  sys-vpn: {class: AppVM, template: fedora-40, label: orange, properties: {provides_network: true, netvm: sys-firewall}}
  dev: {class: AppVM, template: fedora-40, label: blue, properties: {netvm: sys-vpn}}
`,
  );

  it("a qube to delete that an unmanaged qube uses is an error naming the referrer", async () => {
    await converge(s, desiredFromYaml(lab));
    await s.client.property.set({ vm: "untrusted" }, "netvm", "sys-vpn");
    const j = await plan(yaml("o", "qubes:\n  dev: {class: AppVM, template: fedora-40, label: blue, properties: {netvm: sys-firewall}}\n"));
    expect(errorCodes(j)).toEqual(["QIAC-E104"]);
    expect(diag(j, "QIAC-E104")?.message).toMatch(/used by qube untrusted \(netvm\)/);
  });

  it("a reference the config does not change blocks the delete; one it changes orders the delete after it", async () => {
    await converge(s, desiredFromYaml(lab));
    const kept = await plan(yaml("o", "qubes:\n  dev: {class: AppVM, template: fedora-40, label: blue}\n"));
    expect(errorCodes(kept)).toEqual(["QIAC-E104"]);
    expect(diag(kept, "QIAC-E104")?.message).toMatch(/qube dev \(netvm\)/);

    const moved = await plan(yaml("o", "qubes:\n  dev: {class: AppVM, template: fedora-40, label: blue, properties: {netvm: null}}\n"));
    expect(errorCodes(moved)).toEqual([]);
    expect(moved.steps.map((st) => [st.id, st.wave])).toEqual([
      ["update:qube.dev", 1],
      ["delete:qube.sys-vpn", 2],
    ]);
    await runOps(s.client, planOps(moved));
  });

  it("a global default pointing at a qube to delete: changed by the config first, else an error", async () => {
    await converge(s, desiredFromYaml(lab));
    await s.client.property.set("global", "default_netvm", "sys-vpn");
    const blocked = await plan(yaml("o", "qubes:\n  dev: {class: AppVM, template: fedora-40, label: blue, properties: {netvm: null}}\n"));
    expect(diag(blocked, "QIAC-E104")?.message).toMatch(/the global property default_netvm/);
    const released = await plan(
      yaml("o", "properties: {default_netvm: sys-firewall}\nqubes:\n  dev: {class: AppVM, template: fedora-40, label: blue, properties: {netvm: null}}\n"),
    );
    expect(errorCodes(released)).toEqual([]);
    expect(released.steps.find((st) => st.id === "delete:qube.sys-vpn")?.depends_on).toEqual(["update:properties:default_netvm", "update:qube.dev"]);
  });

  it("a qube to replace that another qube uses is an error", async () => {
    await converge(s, desiredFromYaml(lab));
    const j = await plan(
      yaml("o", "qubes:\n  sys-vpn: {class: StandaloneVM, root: empty, label: orange, properties: {provides_network: true, netvm: sys-firewall}}\n  dev: {class: AppVM, template: fedora-40, label: blue, properties: {netvm: sys-vpn}}\n"),
    );
    expect(errorCodes(j)).toEqual(["QIAC-E121"]);
  });

  it("a template, netvm, label or pool neither in the config nor in the system is an error at its config location", async () => {
    const j = await plan(
      yaml("o", "qubes:\n  a:\n    class: AppVM\n    template: debian-13\n    label: cyan\n    pool: fast\n    properties: {netvm: sys-nope}\n"),
    );
    expect(j.diagnostics.filter((d) => d.code === "QIAC-E161").map((d) => [d.location?.line, d.message, d.hint?.split(" (")[0]])).toEqual([
      [6, "qube a: template 'debian-13' is neither in the config nor in the system", "install it in dom0: qvm-template install debian-13"],
    ]);
    expect(j.diagnostics.filter((d) => d.code === "QIAC-E107").map((d) => [d.location?.line, d.message])).toEqual([
      [7, "qube a: label 'cyan' is neither in the config nor in the system"],
      [8, "qube a: pool 'fast' is neither in the config nor in the system"],
      [9, "qube a: qube for netvm 'sys-nope' is neither in the config nor in the system"],
    ]);
  });

  it("an adopted qube whose class differs from the config is an error, never a replace", async () => {
    const j = await plan(yaml("o", "qubes:\n  work: {adopt: true, class: StandaloneVM}\n"));
    expect(errorCodes(j)).toEqual(["QIAC-E111"]);
    expect(j.steps).toEqual([]);
  });
});

describe("labels, pools and global properties", () => {
  it("a label of ours changes colour by replacement when unused, and is an error when used", async () => {
    await converge(s, desiredFromYaml(yaml("o", 'labels: {magenta: "0xff00ff"}\n')));
    // A fresh qubesd tells colours of labels it loaded; the simulator does after a restart.
    const recolour = yaml("o", 'labels: {magenta: "0xaa00aa"}\n');
    const fresh = await restartSimulator();
    expect(fresh).toBe(true);
    const unused = await plan(recolour);
    expect(actionOf(unused, "label.magenta")).toBe("replace");
    expect(stepIds(unused)).toEqual(["delete:label.magenta", "create:label.magenta"]);
    await s.client.property.set({ vm: "work" }, "label", "magenta");
    const used = await plan(recolour);
    expect(errorCodes(used)).toEqual(["QIAC-E113"]);
    expect(diag(used, "QIAC-E113")?.message).toMatch(/qube work \(label\)/);
  });

  it("a label that exists with another colour and is not ours is an error; with the same colour it is used as it is", async () => {
    await s.client.label.create("teal", "0x008080");
    await restartSimulator();
    expect(errorCodes(await plan(yaml("o", 'labels: {teal: "0x00ffff"}\n')))).toEqual(["QIAC-E114"]);
    const same = await plan(yaml("o", 'labels: {teal: "0x008080"}\n'));
    expect(same.steps).toEqual([]);
    // Not ours: dropping it from the config does not delete it.
    expect((await plan(yaml("o", "qubes: {}\n"))).steps).toEqual([]);
  });

  it("a pool is created and, once dropped from the config, removed after the qubes that are deleted", async () => {
    const v1 = yaml("o", "pools:\n  fast: {driver: file, dir_path: /var/lib/fast}\nqubes:\n  a: {class: AppVM, template: fedora-40, label: red, pool: fast}\n");
    const created = await plan(v1);
    expect(created.steps.find((st) => st.id === "create:qube.a")?.depends_on).toContain("create:pool.fast");
    await runOps(s.client, planOps(created));
    const dropped = await plan(yaml("o", "qubes: {}\n"));
    expect(dropped.steps.map((st) => [st.id, st.wave])).toEqual([
      ["delete:qube.a", 1],
      ["delete:pool.fast", 2],
    ]);
    const changed = await plan(yaml("o", "pools:\n  fast: {driver: file, dir_path: /elsewhere}\nqubes:\n  a: {class: AppVM, template: fedora-40, label: red, pool: fast}\n"));
    expect(errorCodes(changed)).toEqual(["QIAC-E120"]);
  });

  it("a pool is removed only when what it holds goes with the qubes the plan deletes (QIAC-E127)", async () => {
    const v1 = yaml(
      "o",
      "pools:\n  fast: {driver: file, dir_path: /var/lib/fast}\nqubes:\n  a: {class: AppVM, template: fedora-40, label: red, pool: fast}\n  b: {class: AppVM, template: fedora-40, label: red, pool: fast}\n",
    );
    await runOps(s.client, planOps(await plan(v1)));
    const reads = (method: string): string[] => s.sim.calls.filter((c) => c.method === method).map((c) => (c.arg === "" ? c.dest : `${c.dest}:${c.arg}`));

    // Nothing to remove: the pool's volumes are not read.
    s.sim.calls.length = 0;
    expect((await plan(v1)).steps).toEqual([]);
    expect(reads("admin.pool.volume.List")).toEqual([]);
    expect(reads("admin.vm.volume.List")).toEqual([]);

    // The pool and both its qubes go: nothing stays in it.
    s.sim.calls.length = 0;
    const both = await plan(yaml("o", "qubes: {}\n"));
    expect(errorCodes(both)).toEqual([]);
    expect(both.steps.find((st) => st.id === "delete:pool.fast")?.depends_on).toEqual(["delete:qube.a", "delete:qube.b"]);
    expect(reads("admin.pool.volume.List")).toEqual(["dom0:fast"]);
    expect(reads("admin.vm.volume.List").sort()).toEqual(["a", "b"]);
    // Apply re-reads what the pool holds before acting (an AppVM's root is a snapshot: it stays in its template's pool).
    expect(both.prior_state.filter((c) => c.check === "pool-volumes")).toEqual([
      { check: "pool-volumes", name: "fast", expect: { value: ["a", "b"].flatMap((q) => ["private", "volatile"].map((v) => `appvms/${q}/${v}`)).join("\n") } },
    ]);

    // b stays (moved out of the pool by the config): its volumes would keep the pool in use.
    const kept = await plan(yaml("o", "qubes:\n  b: {class: AppVM, template: fedora-40, label: red}\n"));
    expect(errorCodes(kept)).toEqual(["QIAC-E127"]);
    const e = diag(kept, "QIAC-E127");
    expect(e?.address).toBe("pool.fast");
    // Only b's volumes are named: a's go with its deletion.
    expect(e?.message).toBe("pool fast is to be removed but holds volumes that stay: appvms/b/private, appvms/b/volatile; qubesd refuses to remove a pool in use");
  });

  it("a pool still named by a default_pool* global is not removed unless the config moves that global", async () => {
    const v1 = yaml("o", "pools:\n  fast: {driver: file, dir_path: /var/lib/fast}\nqubes: {}\n");
    await runOps(s.client, planOps(await plan(v1)));
    await s.client.property.set("global", "default_pool_private", "fast");
    const kept = await plan(yaml("o", "qubes: {}\n"));
    expect(errorCodes(kept)).toEqual(["QIAC-E127"]);
    expect(diag(kept, "QIAC-E127")?.message).toBe("pool fast is to be removed but is still the global property default_pool_private; qubesd refuses to remove a pool in use");
    expect(diag(kept, "QIAC-E127")?.hint).toBe("set default_pool_private to another pool under the config's properties");

    const moved = await plan(yaml("o", "properties: {default_pool_private: varlibqubes}\nqubes: {}\n"));
    expect(errorCodes(moved)).toEqual([]);
    expect(moved.steps.find((st) => st.id === "delete:pool.fast")?.depends_on).toContain("update:properties:default_pool_private");
    // Apply re-reads every default_pool* global it relied on, and what the pool holds.
    expect(moved.prior_state.filter((c) => c.check === "pool-volumes" || (c.check === "property" && c.name.startsWith("default_pool"))).map((c) => (c.check === "property" ? c.name : c.check))).toEqual(
      expect.arrayContaining(["pool-volumes", "default_pool", "default_pool_private"]),
    );
    await runOps(s.client, planOps(moved));
    expect((await s.client.pool.list()).includes("fast")).toBe(false);
  });

  it("global properties are set or reset, never deleted, and default_dispvm follows its template_for_dispvms qube", async () => {
    await s.client.property.set("global", "default_qrexec_timeout", "90");
    const config = yaml(
      "o",
      `properties: {default_dispvm: my-dvm, default_qrexec_timeout: "*default*", check_updates_vm: true}
qubes:
  my-dvm: {class: AppVM, template: fedora-40, label: red, properties: {template_for_dispvms: true}}
`,
    );
    const j = await plan(config);
    expect(errorCodes(j)).toEqual([]);
    expect(opsOf(j, "update:properties:default_qrexec_timeout")).toEqual([{ op: "property.reset", holder: "global", name: "default_qrexec_timeout" }]);
    expect(opsOf(j, "update:properties:check_updates_vm")).toEqual([]);
    expect(j.steps.find((st) => st.id === "update:properties:default_dispvm")?.depends_on).toContain("create:qube.my-dvm");
    await runOps(s.client, planOps(j));
    expect((await plan(config)).steps).toEqual([]);
    // Dropping the qube while the global default_dispvm still names it is refused.
    expect(errorCodes(await plan(yaml("o", "qubes: {}\n")))).toEqual(["QIAC-E104"]);
  });

  it("values compare by meaning: equal values are no change, whether set or at their default", async () => {
    const j = await plan(yaml("o", "qubes:\n  vault:\n    adopt: true\n    properties: {include_in_backups: true, memory: 400, netvm: null, debug: false, kernelopts: '*default*'}\n"));
    expect(opsOf(j, "update:qube.vault").filter((o) => o.op === "property.set" || o.op === "property.reset")).toEqual([]);
  });
});

describe("power states and halted-only changes", () => {
  it("a halted qube takes a template change directly; a running one is blocked unless --allow-restart", async () => {
    await s.client.vm.create({ klass: "TemplateVM", name: "debian-13", label: "black" });
    const config = yaml("o", "qubes:\n  work: {adopt: true, template: debian-13}\n");
    expect(opsOf(await plan(config), "update:qube.work")).toContainEqual({ op: "property.set", holder: { vm: "work" }, name: "template", value: "debian-13" });
    await s.client.vm.start("work");
    const blocked = await plan(config);
    expect(errorCodes(blocked)).toEqual(["QIAC-E105"]);
    expect(blocked.resource_changes.find((c) => c.address === "qube.work")?.needs_halt).toEqual(["template"]);
    const allowed = await plan(config, { allowRestart: true });
    expect(allowed.options.allow_restart).toBe(true);
    const ops = opsOf(allowed, "update:qube.work").map((o) => o.op);
    expect(ops.slice(-3)).toEqual(["vm.shutdown", "property.set", "vm.start"]);
    await runOps(s.client, planOps(allowed));
    expect((await s.client.vm.list("work"))[0]?.state).toBe("Running");
  });

  it("a running qube moved to a halted netvm gets the netvm started first (qubesd refuses otherwise)", async () => {
    await s.client.vm.start("vault");
    const j = await plan(yaml("o", "qubes:\n  vault: {adopt: true, properties: {netvm: sys-firewall}}\n"));
    expect(opsOf(j, "update:qube.vault").slice(-2)).toEqual([
      { op: "vm.start", vm: "sys-firewall" },
      { op: "property.set", holder: { vm: "vault" }, name: "netvm", value: "sys-firewall" },
    ]);
    expect(j.resource_changes[0]?.reasons).toContain("apply starts sys-firewall first: Qubes connects a running qube only to a running netvm");
    await runOps(s.client, planOps(j));
    await s.client.vm.shutdown("vault", { wait: true });
    const halted = await plan(yaml("o", "qubes:\n  vault: {adopt: true, properties: {netvm: sys-net}}\n"));
    expect(opsOf(halted, "update:qube.vault").map((o) => o.op)).toEqual(["property.set"]);
  });

  it("state: running starts, state: halted shuts down first, paused pauses", async () => {
    const run = await plan(yaml("o", "qubes:\n  work: {adopt: true, state: running}\n"));
    expect(opsOf(run, "update:qube.work").at(-1)).toEqual({ op: "vm.start", vm: "work" });
    await s.client.vm.start("work");
    const halt = await plan(yaml("o", "qubes:\n  work: {adopt: true, state: halted, properties: {maxmem: 2000}}\n"));
    expect(errorCodes(halt)).toEqual([]);
    const ops = opsOf(halt, "update:qube.work").map((o) => o.op);
    expect(ops.indexOf("vm.shutdown")).toBeLessThan(ops.indexOf("property.set"));
    const pause = await plan(yaml("o", "qubes:\n  work: {adopt: true, state: paused}\n"));
    expect(opsOf(pause, "update:qube.work").at(-1)).toEqual({ op: "vm.pause", vm: "work" });
  });
});

describe("scope and cycles", () => {
  const config = yaml(
    "o",
    `labels: {magenta: "0xff00ff"}
qubes:
  a: {class: AppVM, template: fedora-40, label: magenta}
  b: {class: AppVM, template: fedora-40, label: red}
`,
  );

  it("--target takes the target and what it depends on", async () => {
    const j = await plan(config, { targets: ["qube.a"] });
    expect(stepIds(j)).toEqual(["setup:ownership", "create:label.magenta", "create:qube.a"]);
    expect(j.resource_changes.map((c) => c.address)).toEqual(["label.magenta", "qube.a"]);
    expect(j.options.targets).toEqual(["qube.a"]);
  });

  it("--target properties takes the global properties and the qubes they name", async () => {
    const withGlobal = yaml(
      "o",
      `properties: {default_dispvm: d}
qubes:
  a: {class: AppVM, template: fedora-40, label: red}
  d: {class: AppVM, template: fedora-40, label: red, properties: {template_for_dispvms: true}}
`,
    );
    const j = await plan(withGlobal, { targets: ["properties"] });
    expect(stepIds(j)).toEqual(["setup:ownership", "create:qube.d", "update:properties:default_dispvm"]);
  });

  it("--exclude leaves a resource out; a target that needs it is an error", async () => {
    expect(stepIds(await plan(config, { excludes: ["qube.b"] }))).toEqual(["setup:ownership", "create:label.magenta", "create:qube.a"]);
    const j = await plan(config, { targets: ["qube.a"], excludes: ["label.magenta"] });
    expect(errorCodes(j)).toEqual(["QIAC-E118"]);
    expect((await plan(config, { targets: ["qube.nope"] })).diagnostics.map((d) => d.code)).toContain("QIAC-W101");
  });

  it("a dependency cycle is a diagnostic, not a hang", async () => {
    const j = await plan(
      yaml(
        "o",
        `qubes:
  x: {class: AppVM, template: fedora-40, label: red, properties: {template_for_dispvms: true, default_dispvm: y}}
  y: {class: AppVM, template: fedora-40, label: red, properties: {template_for_dispvms: true, default_dispvm: x}}
`,
      ),
    );
    expect(errorCodes(j)).toEqual(["QIAC-E106"]);
    expect(diag(j, "QIAC-E106")?.message).toMatch(/create:qube.x → create:qube.y → create:qube.x/);
    expect(stepIds(j)).toEqual(["setup:ownership", "create:qube.x", "create:qube.y"]);
  });
});

/** Restarts the simulator on the same state file (qubesd then tells the colours of every label). */
async function restartSimulator(): Promise<boolean> {
  const { startSimulator } = await import("../../src/providers/qubes/simulator/index.js");
  await s.client.close();
  await s.sim.close();
  const server = await startSimulator({ socketPath: s.sim.socketPath, statePath: s.sim.statePath, onCall: (e) => s.sim.calls.push(e) });
  const { createAdminClient } = await import("../../src/providers/qubes/client.js");
  const { createSocketTransport } = await import("../../src/providers/qubes/transport-socket.js");
  s.client = createAdminClient(createSocketTransport(server.socketPath, { timeoutMs: 10_000 }));
  const dir = s.sim.dir;
  s.stop = async () => {
    await s.client.close();
    await server.close();
    const { rmSync } = await import("node:fs");
    rmSync(dir, { recursive: true, force: true });
  };
  return true;
}
