// Volumes (size, revisions_to_keep, ephemeral, the pools of a new qube's volumes) and notes,
// planned and carried out against the simulator of each release: what qubesd would refuse is a
// located plan error naming the release or the pool driver, what it takes converges to a plan
// with no changes, and export writes what it read so that the exported config plans no change.
import { afterEach, describe, expect, it } from "vitest";
import { readerFromClient } from "../../src/apply/admin-api.js";
import { readForExport } from "../../src/export/read.js";
import { renderExport } from "../../src/export/render.js";
import { renderShownState, shownState } from "../../src/cli/commands/show.js";
import { readActualState } from "../../src/plan/reader.js";
import type { SimRelease } from "../../src/providers/qubes/simulator/index.js";
import { isMutating, testRelease } from "../helpers/sim.js";
import { converge, desiredFromYaml, errorCodes, expectValidPlanJson, planOps, planWith, runOps, startSession, type SimSession } from "./_helpers.js";

const GiB = 1024 ** 3;

let s: SimSession | undefined;
afterEach(async () => {
  await s?.stop();
  s = undefined;
});

const session = async (release: SimRelease = testRelease()): Promise<SimSession> => (s = await startSession({ release }));

/** `work` (a halted AppVM of the default fixture), adopted with `extra` under it. */
const adoptWork = (extra: string): string => `version: 1\nowner: vol\nqubes:\n  work:\n    adopt: true\n${extra}`;

async function noChanges(sess: SimSession, yaml: string): Promise<void> {
  const again = await planWith(sess, desiredFromYaml(yaml));
  expect(again.json.diagnostics.filter((d) => d.severity === "error")).toEqual([]);
  expect(again.json.steps).toEqual([]);
}

async function info(sess: SimSession, vm: string, volume: string) {
  return sess.client.volume.info(vm, volume);
}

describe("CreateInPool: where a new qube's volumes land", () => {
  const yaml = [
    "version: 1",
    "owner: vol",
    "pools:",
    "  fast: {driver: file, dir_path: /var/lib/qubes-fast}",
    "qubes:",
    "  dev:",
    "    class: AppVM",
    "    template: fedora-40",
    "    label: blue",
    "    pool: fast",
    "",
  ].join("\n");

  it("the plan shows the writable volumes in the pool and the snapshot root staying in the template's; Info agrees after apply", async () => {
    const sess = await session();
    const { json } = await planWith(sess, desiredFromYaml(yaml));
    expectValidPlanJson(json);
    const dev = json.resource_changes.find((c) => c.address === "qube.dev");
    expect(dev?.after).toMatchObject({ "volumes.private.pool": "fast", "volumes.volatile.pool": "fast" });
    expect(dev?.after).not.toHaveProperty("volumes.root.pool");
    expect(dev?.reasons.join("\n")).toMatch(/root is a snapshot of fedora-40's and stays in its pool/);
    await runOps(sess.client, planOps(json));
    expect((await info(sess, "dev", "private")).pool).toBe("fast");
    expect((await info(sess, "dev", "volatile")).pool).toBe("fast");
    // The recorded CreateInPool (classes.jsonl): root's pool and source are the template's.
    const root = await info(sess, "dev", "root");
    expect([root.pool, root.fields.get("source")]).toEqual(["varlibqubes", "vm-templates/fedora-40/root"]);
    expect((await info(sess, "dev", "kernel")).pool).toBe("linux-kernel");
    await noChanges(sess, yaml);
  });

  it("a TemplateVM's own root moves with the rest", async () => {
    const sess = await session();
    const tpl = yaml.replace("  dev:\n    class: AppVM\n    template: fedora-40\n    label: blue\n", "  tpl:\n    class: TemplateVM\n    label: black\n    root: empty\n");
    const { json } = await planWith(sess, desiredFromYaml(tpl));
    const after = json.resource_changes.find((c) => c.address === "qube.tpl")?.after;
    expect(after).toMatchObject({ "volumes.root.pool": "fast", "volumes.private.pool": "fast", "volumes.volatile.pool": "fast" });
  });

  it("the simulator refuses pool:root= for a snapshot, as qubesd does, and leaves no qube", async () => {
    const sess = await session();
    await expect(sess.client.vm.create({ klass: "AppVM", name: "snap", label: "red", template: "fedora-40", volumePools: { root: "varlibqubes" } })).rejects.toThrow();
    expect((await sess.client.vm.list()).some((q) => q.name === "snap")).toBe(false);
  });
});

describe("size", () => {
  it("a new qube's volume smaller than it is created with is refused at its line (E183)", async () => {
    const sess = await session();
    const yaml = "version: 1\nowner: vol\nqubes:\n  small:\n    class: AppVM\n    template: fedora-40\n    label: red\n    volumes:\n      private: {size: 1GiB}\n";
    const { json } = await planWith(sess, desiredFromYaml(yaml));
    const d = json.diagnostics.find((x) => x.code === "QIAC-E183");
    expect(d).toMatchObject({ address: "qube.small", location: { line: 9, column: 23 } });
    expect(json.applyable).toBe(false);
  });

  it("the creation size itself needs no resize; more grows once", async () => {
    const sess = await session();
    const yaml = "version: 1\nowner: vol\nqubes:\n  big:\n    class: AppVM\n    template: fedora-40\n    label: red\n    volumes:\n      private: {size: 2GiB}\n      volatile: {size: 12GiB}\n";
    const { json } = await planWith(sess, desiredFromYaml(yaml));
    expect(planOps(json).filter((o) => o.op === "volume.resize")).toEqual([{ op: "volume.resize", vm: "big", volume: "volatile", size: String(12 * GiB) }]);
    await runOps(sess.client, planOps(json));
    await noChanges(sess, yaml);
  });
});

describe("revisions_to_keep", () => {
  it("set within the file driver's limit converges", async () => {
    const sess = await session();
    const yaml = adoptWork("    volumes:\n      private: {revisions_to_keep: 0}\n");
    const { json } = await planWith(sess, desiredFromYaml(yaml));
    expectValidPlanJson(json);
    expect(planOps(json).filter((o) => o.op.startsWith("volume."))).toEqual([{ op: "volume.revisions", vm: "work", volume: "private", value: "0" }]);
    expect(json.prior_state).toContainEqual({ check: "volume", vm: "work", volume: "private", key: "revisions_to_keep", value: "1" });
    // Fewer revisions: the older ones go at the next shutdown, which the plan says at the line.
    expect(json.diagnostics.find((d) => d.code === "QIAC-W180")).toMatchObject({ severity: "warning", location: { line: 7, column: 36 } });
    await runOps(sess.client, planOps(json));
    expect((await info(sess, "work", "private")).revisionsToKeep).toBe(0);
    await noChanges(sess, yaml);
  });

  it("above the file driver's 1 is refused at its line, naming the pool and driver (E180), before any call", async () => {
    const sess = await session();
    const { json } = await planWith(sess, desiredFromYaml(adoptWork("    volumes:\n      private: {revisions_to_keep: 3}\n")));
    const d = json.diagnostics.find((x) => x.code === "QIAC-E180");
    expect(d?.message).toBe("qube work: volume private is in pool varlibqubes (driver file), whose volumes keep " + (testRelease() === "r4.2" ? "0 to 1" : "-1 to 1") + " revisions, not 3");
    expect(d?.location).toMatchObject({ line: 7, column: 36 });
    expect(sess.sim.calls.filter((c) => isMutating(c.method))).toEqual([]);
  });

  it("a qube to create in an existing file pool: its limit is checked too", async () => {
    const sess = await session();
    const yaml = "version: 1\nowner: vol\nqubes:\n  new:\n    class: AppVM\n    template: fedora-40\n    label: red\n    pool: varlibqubes\n    volumes:\n      private: {revisions_to_keep: 2}\n";
    const { json } = await planWith(sess, desiredFromYaml(yaml));
    expect(json.diagnostics.find((x) => x.code === "QIAC-E180")?.message).toMatch(/^qube new: volume private is in pool varlibqubes \(driver file\)/);
    expect(sess.sim.calls.filter((c) => c.method === "admin.pool.Info").map((c) => c.arg)).toEqual(["varlibqubes"]);
  });

  it("-1 (no snapshots): refused on R4.2 naming it; R4.3 and main take it while the qube is halted", async () => {
    const yaml = adoptWork("    volumes:\n      private: {revisions_to_keep: -1}\n");
    const r42 = await session("r4.2");
    const refused = await planWith(r42, desiredFromYaml(yaml));
    expect(refused.json.diagnostics.find((x) => x.code === "QIAC-E180")?.message).toMatch(/^qube work: volume private cannot keep -1 revisions: R4\.2 takes 0 or more/);
    await r42.stop();
    s = undefined;
    for (const release of ["r4.3", "main"] as const) {
      const sess = await session(release);
      await converge(sess, desiredFromYaml(yaml));
      expect((await info(sess, "work", "private")).revisionsToKeep).toBe(-1);
      await noChanges(sess, yaml);
      await sess.stop();
      s = undefined;
    }
  });

  it("switching snapshots off on a running qube needs it halted (E105 without --allow-restart)", async () => {
    const sess = await session("main");
    await sess.client.vm.start("work");
    const yaml = adoptWork("    volumes:\n      private: {revisions_to_keep: -1}\n");
    const { json } = await planWith(sess, desiredFromYaml(yaml));
    expect(errorCodes(json)).toContain("QIAC-E105");
    const restart = await planWith(sess, desiredFromYaml(yaml), { allowRestart: true });
    expect(errorCodes(restart.json)).toEqual([]);
    expect(planOps(restart.json).map((o) => o.op)).toEqual(expect.arrayContaining(["vm.shutdown", "volume.revisions", "vm.start"]));
    await runOps(sess.client, planOps(restart.json));
    expect((await info(sess, "work", "private")).revisionsToKeep).toBe(-1);
  });
});

describe("ephemeral", () => {
  it("volatile made ephemeral converges; on R4.2 only while halted", async () => {
    const yaml = adoptWork("    volumes:\n      volatile: {ephemeral: true}\n");
    const sess = await session();
    await sess.client.vm.start("work");
    const running = await planWith(sess, desiredFromYaml(yaml));
    if (testRelease() === "r4.2") {
      expect(errorCodes(running.json)).toEqual(["QIAC-E105"]);
      await sess.client.vm.shutdown("work", { wait: true });
    } else expect(errorCodes(running.json)).toEqual([]);
    await converge(sess, desiredFromYaml(yaml));
    expect((await info(sess, "work", "volatile")).ephemeral).toBe(true);
    await noChanges(sess, yaml);
  });
});

describe("notes", () => {
  const yaml = adoptWork("    notes: |\n      Work qube.\n      Ключи — 鍵\n");

  it("R4.3 and main: set, read back as written, then no changes", async () => {
    const sess = await session(testRelease() === "r4.2" ? "main" : testRelease());
    const { json } = await planWith(sess, desiredFromYaml(yaml));
    expectValidPlanJson(json);
    expect(planOps(json).filter((o) => o.op === "notes.set")).toEqual([{ op: "notes.set", vm: "work", text: "Work qube.\nКлючи — 鍵\n" }]);
    await runOps(sess.client, planOps(json));
    expect(await sess.client.notes.get("work")).toBe("Work qube.\nКлючи — 鍵\n");
    await noChanges(sess, yaml);
  });

  it("R4.2 has none: a plan error at the notes line naming the release, and no notes call", async () => {
    const sess = await session("r4.2");
    const { json } = await planWith(sess, desiredFromYaml(yaml));
    const d = json.diagnostics.find((x) => x.code === "QIAC-E181");
    expect(d).toMatchObject({ message: "qube work: R4.2 has no qube notes (admin.vm.notes.* are R4.3 and later)", location: { line: 6, column: 12 } });
    expect(sess.sim.calls.some((c) => c.method.startsWith("admin.vm.notes."))).toBe(false);
  });

  it("clearing notes: R4.3 takes an empty payload, main refuses it (E182)", async () => {
    const clear = adoptWork('    notes: ""\n');
    const r43 = await session("r4.3");
    await converge(r43, desiredFromYaml(yaml));
    await converge(r43, desiredFromYaml(clear));
    expect(await r43.client.notes.get("work")).toBe("");
    await r43.stop();
    s = undefined;
    const main = await session("main");
    await converge(main, desiredFromYaml(yaml));
    const { json } = await planWith(main, desiredFromYaml(clear));
    expect(errorCodes(json)).toEqual(["QIAC-E182"]);
  });
});

describe("show", () => {
  it("the volume settings and notes the config manages, as read now", async () => {
    const sess = await session(testRelease() === "r4.2" ? "main" : testRelease());
    const yaml = adoptWork("    volumes:\n      private: {size: 3GiB, revisions_to_keep: 0}\n      volatile: {ephemeral: true}\n    notes: \"two\\nlines\\n\"\n");
    await converge(sess, desiredFromYaml(yaml));
    const desired = desiredFromYaml(yaml);
    const text = renderShownState(shownState(desired, await readActualState(readerFromClient(sess.client), desired, { parallelism: 4 })));
    expect(text).toContain(
      ["    volumes.private.size: 3GiB", "    volumes.private.revisions_to_keep: 0", "    volumes.volatile.ephemeral: true", '    notes: "two\\x0alines\\x0a"'].join("\n"),
    );
  });
});

describe("export writes what it read", () => {
  it("sizes, non-default revisions_to_keep and ephemeral, and notes; the export plans no change", async () => {
    const sess = await session(testRelease() === "r4.2" ? "main" : testRelease());
    await converge(
      sess,
      desiredFromYaml(adoptWork("    volumes:\n      private: {size: 3GiB, revisions_to_keep: 0}\n      volatile: {ephemeral: true}\n    notes: \"kept\\n\"\n")),
    );
    const actual = await readForExport(readerFromClient(sess.client), { owner: "vol", all: false, notes: true }, { parallelism: 4 });
    const out = renderExport(actual, { owner: "vol", all: false, schemaPath: "schema.json", generator: "test" });
    expect(out.text).toContain("private: {size: 3GiB, revisions_to_keep: 0}");
    expect(out.text).toContain("volatile: {size: 10GiB, ephemeral: true}");
    expect(out.text).toMatch(/notes: \|\n\s+kept\n/);
    const exported = desiredFromYaml(out.text);
    const { json } = await planWith(sess, exported);
    expect(json.diagnostics.filter((d) => d.severity === "error")).toEqual([]);
    expect(json.steps).toEqual([]);
  });

  it("without --notes, notes are never read (they may hold secrets): the export has none and still plans no change", async () => {
    const sess = await session(testRelease() === "r4.2" ? "main" : testRelease());
    const yaml = adoptWork('    notes: "kept"\n');
    await converge(sess, desiredFromYaml(yaml));
    const from = sess.sim.calls.length;
    const actual = await readForExport(readerFromClient(sess.client), { owner: "vol", all: false }, { parallelism: 4 });
    expect(sess.sim.calls.slice(from).some((c) => c.method.startsWith("admin.vm.notes."))).toBe(false);
    const out = renderExport(actual, { owner: "vol", all: false, schemaPath: "schema.json", generator: "test" });
    expect(out.text).not.toContain("notes:");
    expect((await planWith(sess, desiredFromYaml(out.text))).json.steps).toEqual([]);
  });

  it("R4.2: no notes are read (the release has none), and the export plans no change", async () => {
    const sess = await session("r4.2");
    await converge(sess, desiredFromYaml(adoptWork("    volumes:\n      private: {size: 3GiB, revisions_to_keep: 0}\n")));
    const actual = await readForExport(readerFromClient(sess.client), { owner: "vol", all: false, notes: true }, { parallelism: 4 });
    expect(sess.sim.calls.some((c) => c.method.startsWith("admin.vm.notes."))).toBe(false);
    const out = renderExport(actual, { owner: "vol", all: false, schemaPath: "schema.json", generator: "test" });
    expect(out.text).not.toContain("notes:");
    const { json } = await planWith(sess, desiredFromYaml(out.text));
    expect(json.steps).toEqual([]);
  });
});
