// The client adapter against the simulator over its socket: every op makes exactly the one call
// opCall names (the table `qubes-iac policy` grants from), verifyOp says "not done" before it and
// "done" after it, every reader function calls only what READER_CALLS lists, and plan + apply of
// every example make no call outside the two tables.
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { opCall, READER_CALLS, readerFromClient, runOp } from "../../src/apply/admin-api.js";
import { verifyOp } from "../../src/apply/verify.js";
import type { Op } from "../../src/plan/ops.js";
import type { QubesReader } from "../../src/plan/reader.js";
import { isMutating } from "../helpers/sim.js";
import { runIn } from "./_cli.js";
import { startSession, type SimSession } from "../plan/_helpers.js";

let s: SimSession;
beforeEach(async () => {
  s = await startSession();
});
afterEach(async () => {
  await s.stop();
});

/** Every op kind, in an order in which each one changes something on the default fixture. */
const OPS: Op[] = [
  { op: "label.create", name: "teal", colour: "0x008080" },
  { op: "pool.add", driver: "file", name: "fast", params: { dir_path: "/var/lib/qubes-fast", revisions_to_keep: "1" } },
  { op: "vm.create", class: "AppVM", name: "t1", label: "teal", template: "fedora-40" },
  { op: "vm.create", class: "AppVM", name: "t2", label: "red", template: "fedora-40", pool: "fast" },
  { op: "vm.create", class: "StandaloneVM", name: "t3", label: "red" },
  { op: "property.set", holder: { vm: "t1" }, name: "memory", value: "500" },
  { op: "property.reset", holder: { vm: "t1" }, name: "memory" },
  { op: "property.set", holder: { vm: "t1" }, name: "netvm", value: "" },
  { op: "property.set", holder: "global", name: "default_qrexec_timeout", value: "90" },
  { op: "property.reset", holder: "global", name: "default_qrexec_timeout" },
  { op: "feature.set", vm: "t1", name: "service.cups", value: "1" },
  { op: "feature.set", vm: "dom0", name: "qubes-iac.t.format", value: "1" },
  { op: "feature.remove", vm: "t1", name: "service.cups" },
  { op: "tag.set", vm: "t1", name: "dev" },
  { op: "tag.remove", vm: "t1", name: "dev" },
  { op: "firewall.set", vm: "t1", rules: ["action=accept specialtarget=dns", "action=drop"] },
  { op: "firewall.set", vm: "t1", rules: [] },
  { op: "volume.resize", vm: "t1", volume: "private", size: String(3 * 1024 ** 3) },
  { op: "vm.start", vm: "t1" },
  { op: "vm.pause", vm: "t1" },
  { op: "vm.unpause", vm: "t1" },
  { op: "vm.shutdown", vm: "t1" },
  { op: "vm.remove", vm: "t2" },
  { op: "pool.remove", name: "fast" },
  { op: "vm.remove", vm: "t1" },
  { op: "label.remove", name: "teal" },
];

describe("ops", () => {
  it("every op kind is covered", () => {
    const kinds = new Set(OPS.map((o) => o.op));
    expect([...kinds].sort()).toEqual(
      ["feature.remove", "feature.set", "firewall.set", "label.create", "label.remove", "pool.add", "pool.remove", "property.reset", "property.set", "tag.remove", "tag.set", "vm.create", "vm.pause", "vm.remove", "vm.shutdown", "vm.start", "vm.unpause", "volume.resize"].sort(),
    );
  });

  it("each op is exactly the one call opCall names; re-reading says not done before and done after", async () => {
    const reader = readerFromClient(s.client);
    for (const op of OPS) {
      expect({ op, before: await verifyOp(reader, op) }).toMatchObject({ op, before: { kind: "not-done" } });
      const from = s.sim.calls.length;
      await runOp(s.client, op);
      const made = s.sim.calls.slice(from).map((c) => ({ method: c.method, dest: c.dest, arg: c.arg, reply: c.reply }));
      expect({ op, made }).toEqual({ op, made: [{ ...opCall(op), reply: "ok" }] });
      expect({ op, after: await verifyOp(reader, op) }).toEqual({ op, after: { kind: "done" } });
    }
  });

  it("vm.uuid binds a new qube's UUID for its record ops (one call each); a record op with no UUID to use is refused unsent", async () => {
    const uuids = new Map<string, string>();
    const reader = readerFromClient(s.client);
    await runOp(s.client, { op: "vm.create", class: "AppVM", name: "t1", label: "red", template: "fedora-40" }, uuids);
    const own: Op = { op: "record.set", vm: "t1", owner: "t", record: "own" };
    let from = s.sim.calls.length;
    await expect(runOp(s.client, own, uuids)).rejects.toThrow(/the UUID of t1 was not read by this apply/);
    expect(await verifyOp(reader, own, uuids)).toEqual({ kind: "not-done", detail: "the UUID of t1 was not read by this apply" });
    expect(s.sim.calls.length - from).toBe(0);

    const read: Op = { op: "vm.uuid", vm: "t1" };
    from = s.sim.calls.length;
    await runOp(s.client, read, uuids);
    expect(s.sim.calls.slice(from).map((c) => ({ method: c.method, dest: c.dest, arg: c.arg }))).toEqual([opCall(read)]);
    const uuid = uuids.get("t1") as string;
    expect(uuid).toBe((await s.client.property.get({ vm: "t1" }, "uuid")).raw);
    const gone: Op = { op: "record.remove", vm: "t1", owner: "t", uuid, record: "own" };
    for (const op of [own, gone]) {
      from = s.sim.calls.length;
      await runOp(s.client, op, uuids);
      expect({ op, made: s.sim.calls.slice(from).map((c) => ({ method: c.method, dest: c.dest, arg: c.arg })) }).toEqual({
        op,
        made: [{ ...opCall({ ...op, uuid }), arg: `qubes-iac.t.${uuid}.own` }],
      });
      expect({ op, after: await verifyOp(reader, op, uuids) }).toEqual({ op, after: { kind: "done" } });
    }
  });

  it("a re-read that fails leaves the outcome unknown", async () => {
    await s.sim.faults.add("admin.vm.List@*=close-before");
    expect(await verifyOp(readerFromClient(s.client), { op: "vm.remove", vm: "work" })).toEqual({
      kind: "unknown",
      detail: expect.stringMatching(/^re-reading failed: qubesd gave an empty reply to admin\.vm\.List\+ → dom0/) as unknown as string,
    });
  });

  it("a label whose colour qubesd does not tell is verified by its existence", async () => {
    await runOp(s.client, { op: "label.create", name: "teal", colour: "0x008080" });
    const reader = readerFromClient(s.client);
    expect(await reader.labelColour("teal")).toBeUndefined();
    expect(await verifyOp(reader, { op: "label.create", name: "teal", colour: "0x008080" })).toEqual({ kind: "done" });
  });
});

describe("reader", () => {
  it("each reader function calls only what READER_CALLS lists for it", async () => {
    const reader = readerFromClient(s.client);
    const uses: { [K in keyof QubesReader]: () => Promise<unknown> } = {
      listQubes: () => reader.listQubes(),
      release: () => reader.release(),
      properties: async () => {
        await reader.properties({ vm: "work" });
        await reader.properties("global");
      },
      vmProperty: () => reader.vmProperty("sys-firewall", "provides_network"),
      tags: () => reader.tags("work"),
      featureNames: () => reader.featureNames("dom0"),
      feature: () => reader.feature("sys-net", "servicevm"),
      firewall: () => reader.firewall("work"),
      labels: () => reader.labels(),
      labelColour: () => reader.labelColour("red"),
      pools: () => reader.pools(),
      pool: () => reader.pool("varlibqubes"),
      poolVolumes: () => reader.poolVolumes("varlibqubes"),
      volumeNames: () => reader.volumeNames("work"),
      volume: () => reader.volume("work", "private"),
      deviceClasses: () => reader.deviceClasses(),
      deviceAssignments: () => reader.deviceAssignments("work", "block", "assignment"),
      deviceAt: () => reader.deviceAt("sys-net", "block", "xvdi", "assignment"),
    };
    // The device functions list every class and both releases' calls; one call makes one of them.
    const perClass: ReadonlySet<keyof QubesReader> = new Set(["deviceAssignments", "deviceAt"]);
    for (const [name, use] of Object.entries(uses) as Array<[keyof QubesReader, () => Promise<unknown>]>) {
      const from = s.sim.calls.length;
      await use();
      const made = [...new Set(s.sim.calls.slice(from).map((c) => c.method))].sort();
      const listed = READER_CALLS[name].map((u) => u.method).sort();
      if (perClass.has(name)) expect({ name, made: made.length === 1 && listed.includes(made[0] ?? "") }).toEqual({ name, made: true });
      else expect({ name, made }).toEqual({ name, made: listed });
    }
  });
});

describe("plan and apply of every example call nothing outside the two tables", () => {
  // Apply reads too: the UUID of a qube it creates (op vm.uuid), in the op table.
  const allowed = new Set([...Object.values(READER_CALLS).flatMap((uses) => uses.map((u) => u.method)), opCall({ op: "vm.uuid", vm: "x" }).method]);
  for (const example of ["examples/minimal.yaml", "examples/workstation.yaml", "examples/reference.yaml", "examples/offline-vault.yaml", "examples/vpn.yaml", "examples/split-config"]) {
    it(example, async () => {
      const r = await runIn(["apply", "--auto-approve", "--connect", `qubesd:${s.sim.socketPath}`, example]);
      expect(r.code).toBe(0);
      const reads = s.sim.calls.filter((c) => !isMutating(c.method)).map((c) => c.method);
      expect(reads.filter((m) => !allowed.has(m))).toEqual([]);
      expect(s.sim.calls.filter((c) => isMutating(c.method)).length).toBeGreaterThan(0);
    });
  }
});
