// The ownership promises end to end, through `qubes-iac plan`/`apply`/`release` against the
// simulator: a named DispVM keeps what it copied from its disposable template; dropping an
// adopted qube releases it, dropping a created one destroys it only when confirmed; `release`
// and `absent`; one owner per object and `--take-ownership`; and a state written by format 1.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import type { JsonPlan } from "../../src/plan/json.js";
import { readJsonl, type TranscriptRow } from "../helpers/shared.js";
import { isLockCall, isMutating } from "../helpers/sim.js";
import { startSession, type SimSession } from "../plan/_helpers.js";
import { mutations, runIn, type RunOptions } from "./_cli.js";

let s: SimSession | undefined;
let dir: string | undefined;
afterEach(async () => {
  await s?.stop();
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  s = undefined;
  dir = undefined;
});

async function session(release?: "head" | "r4.3" | "r4.2"): Promise<SimSession> {
  s = await startSession(release === undefined ? {} : { release });
  dir = mkdtempSync(join(tmpdir(), "qiac-own-"));
  return s;
}
const sim = (): SimSession => {
  if (s === undefined) throw new Error("no session");
  return s;
};
const connect = (): string[] => ["--connect", `qubesd:${sim().sim.socketPath}`];
const config = (name: string, text: string): string => {
  const path = join(dir as string, name);
  writeFileSync(path, text);
  return path;
};
const apply = (args: string[], o: RunOptions = {}) => runIn(["apply", ...connect(), ...args], { env: { NO_COLOR: "1" }, ...o });
const planJson = async (args: string[]): Promise<JsonPlan> => JSON.parse((await runIn(["plan", ...connect(), "--json", ...args])).stdout) as JsonPlan;
const planText = async (args: string[]) => runIn(["plan", ...connect(), ...args], { env: { NO_COLOR: "1" } });
/** Mutating calls since `from`, but the apply lock's. */
const mutatedSince = (from: number): string[] => mutations(sim().sim.calls.slice(from).filter((c) => !isLockCall(c)), isMutating);
const uuidOf = async (vm: string): Promise<string> => (await sim().client.property.get({ vm }, "uuid")).raw;
const features = async (vm: string): Promise<Record<string, string>> => {
  const out: Record<string, string> = {};
  for (const f of await sim().client.feature.list(vm)) out[f] = await sim().client.feature.get(vm, f);
  return out;
};
const errorsOf = (j: JsonPlan) => j.diagnostics.filter((d) => d.severity === "error");

const DISP_TEMPLATE = `  dvm:
    class: AppVM
    template: fedora-40
    label: red
    properties: {template_for_dispvms: true}
    features: {service.x: "1"}
    tags: [browser]
    firewall: [{action: accept, dsthost: example.com}, {action: drop}]
`;

describe("a named DispVM starts from what qubesd copies from its disposable template", () => {
  const RECORDINGS: Array<["head" | "r4.3" | "r4.2", string]> = [
    ["head", "qubesd"],
    ["r4.3", "qubesd-r4.3"],
    ["r4.2", "qubesd-r4.2"],
  ];
  for (const [release, recorded] of RECORDINGS) {
    it(`${release}: right after Create, as recorded, with the template's features, tags and firewall`, async () => {
      const q = await session(release);
      await q.client.feature.set("default-dvm", "preload-dispvm-max", "1");
      await q.client.tag.set("default-dvm", "browser");
      await q.client.firewall.set("default-dvm", ["action=accept dsthost=example.com", "action=drop"]);
      await q.client.vm.create({ klass: "DispVM", name: "d-disp", label: "red", template: "default-dvm" });
      // The recorded GetAll of the same Create (differences.jsonl), but for what is random per qube.
      const row = readJsonl<TranscriptRow>(`conformance/${recorded}/differences.jsonl`).find((r) => r.method === "admin.vm.property.GetAll" && r.dest === "d-disp");
      const random = /^(uuid|dispid|ip|visible_ip|mac|qid) /;
      const lines = (text: string) => text.split("\n").filter((l) => l !== "" && !random.test(l));
      const reply = Buffer.from(row?.reply_b64 ?? "", "base64").subarray(2).toString("utf8");
      const got = (await q.client.property.getAll({ vm: "d-disp" })) as Map<string, { isDefault: boolean; type: string; raw: string }>;
      const want = new Map(lines(reply).map((l) => [l.split(" ")[0] as string, l]));
      for (const k of ["label", "template", "netvm", "default_dispvm", "klass", "auto_cleanup", "include_in_backups", "icon"]) {
        const v = got.get(k);
        expect(`${k} default=${v?.isDefault ? "True" : "False"} type=${v?.type} ${v?.raw}`, k).toBe(want.get(k));
      }
      const f = await features("d-disp");
      expect(f["appmenus-dispvm"]).toBe("1");
      // qubes/vm/dispvm.py: release4.2 copies every feature; release4.3 and main leave out preload-dispvm*.
      expect(f["preload-dispvm-max"]).toBe(release === "r4.2" ? "1" : undefined);
      expect((await q.client.tag.list("d-disp")).sort()).toEqual(["audiovm-dom0", "browser", "created-by-dom0", "guivm-dom0"]);
      expect(await q.client.firewall.get("d-disp")).toEqual(["action=accept dsthost=example.com", "action=drop"]);
    });
  }

  it("a DispVM managed by the same config as its template converges and keeps its copy across two applies", async () => {
    await session();
    const file = config("disp.yaml", `version: 1\nowner: o\nqubes:\n${DISP_TEMPLATE}  web:\n    class: DispVM\n    template: dvm\n    label: red\n`);
    expect((await apply(["--auto-approve", file])).code).toBe(0);
    const dvm = await uuidOf("dvm");
    // What the DispVM copied, the template's own records included (bound to the template's UUID).
    const copied = await features("web");
    expect(copied).toMatchObject({ "service.x": "1", [`qubes-iac.o.${dvm}.feature.service.x`]: "1", [`qubes-iac.o.${dvm}.own`]: "1" });
    const tags = (await sim().client.tag.list("web")).sort();
    expect(tags).toEqual(expect.arrayContaining(["browser", "managed-by-o"]));
    const firewall = await sim().client.firewall.get("web");
    expect(firewall).toEqual(["action=accept dsthost=example.com", "action=drop"]);

    const second = await planJson([file]);
    expect(errorsOf(second)).toEqual([]);
    expect(second.steps).toEqual([]);
    const from = sim().sim.calls.length;
    expect((await apply(["--auto-approve", file])).code).toBe(0);
    expect(mutatedSince(from)).toEqual([]);
    expect(await features("web")).toEqual(copied);
    expect((await sim().client.tag.list("web")).sort()).toEqual(tags);
    expect(await sim().client.firewall.get("web")).toEqual(firewall);
  });
});

describe("created vs adopted", () => {
  it("dropping an adopted qube releases it: only qubes-iac's tag and records go (exact calls), the plan says so", async () => {
    await session();
    const v1 = config("v1.yaml", `version: 1\nowner: o\nqubes:\n  work:\n    adopt: true\n    features: {mine: "1"}\n    tags: [t]\n`);
    expect((await apply(["--auto-approve", v1])).code).toBe(0);
    const uuid = await uuidOf("work");
    const v2 = config("v2.yaml", "version: 1\nowner: o\nqubes: {}\n");
    const shown = await planText([v2]);
    expect(shown.stdout).toContain("  # qube.work will be released (not destroyed)\n");
    expect(shown.stdout).toContain("Plan: 0 to add, 0 to change, 0 to destroy, 1 to release.\n");

    const from = sim().sim.calls.length;
    // No --allow-destroy: a release destroys nothing.
    expect((await apply(["--auto-approve", v2])).code).toBe(0);
    expect(mutatedSince(from)).toEqual([
      "admin.vm.feature.Set+qubes-iac.o.intent.work → dom0",
      `admin.vm.feature.Remove+qubes-iac.o.${uuid}.feature.mine → work`,
      `admin.vm.feature.Remove+qubes-iac.o.${uuid}.own → work`,
      `admin.vm.feature.Remove+qubes-iac.o.${uuid}.tag.t → work`,
      "admin.vm.tag.Remove+managed-by-o → work",
      "admin.vm.feature.Remove+qubes-iac.o.adopted.work → dom0",
      "admin.vm.feature.Remove+qubes-iac.o.intent.work → dom0",
    ]);
    expect(await sim().client.feature.getOptional("work", "mine")).toBe("1");
    expect(await sim().client.tag.list("work")).toContain("t");
    expect((await planJson([v2])).steps).toEqual([]);
  });

  it("dropping a created qube destroys it only when confirmed; release: true and `qubes-iac release` keep it", async () => {
    await session();
    const made = config("made.yaml", "version: 1\nowner: o\nqubes:\n  notes: {class: AppVM, template: fedora-40, label: green}\n  scratch: {class: AppVM, template: fedora-40, label: green}\n");
    expect((await apply(["--auto-approve", made])).code).toBe(0);
    const dropped = config("dropped.yaml", "version: 1\nowner: o\nqubes:\n  scratch: {class: AppVM, template: fedora-40, label: green}\n");
    expect(((await planJson([dropped])).resource_changes.find((c) => c.address === "qube.notes"))?.action).toBe("delete");
    let from = sim().sim.calls.length;
    expect((await apply(["--auto-approve", dropped])).code).toBe(1);
    expect((await apply([dropped], { tty: true, input: "y\n" })).code).toBe(1);
    expect(mutatedSince(from)).toEqual([]);

    // release: true lets go of it: the qube stays, and dropping it afterwards does nothing.
    const released = config("released.yaml", "version: 1\nowner: o\nqubes:\n  notes: {release: true}\n  scratch: {class: AppVM, template: fedora-40, label: green}\n");
    expect((await planJson([released])).summary).toMatchObject({ destroy: 0, release: 1 });
    expect((await apply(["--auto-approve", released])).code).toBe(0);
    expect((await sim().client.vm.list()).map((q) => q.name)).toContain("notes");
    expect((await planJson([dropped])).steps).toEqual([]);

    // `qubes-iac release qube.scratch` with the config that still names it: kept, no longer managed.
    from = sim().sim.calls.length;
    const r = await runIn(["release", "qube.scratch", ...connect(), "--auto-approve", dropped]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("# qube.scratch will be released (not destroyed)");
    expect(mutatedSince(from).some((c) => c.startsWith("admin.vm.Remove"))).toBe(false);
    expect((await sim().client.vm.list()).map((q) => q.name)).toEqual(expect.arrayContaining(["notes", "scratch"]));
    expect(errorsOf(await planJson([dropped])).map((d) => d.code)).toEqual(["QIAC-E101"]);
    expect((await runIn(["release", "qube.notes", ...connect(), "--auto-approve", dropped])).code).toBe(1);

    // A created qube still managed: destroyed with --allow-destroy.
    const again = config("again.yaml", "version: 1\nowner: o\nqubes:\n  other: {class: AppVM, template: fedora-40, label: green}\n");
    expect((await apply(["--auto-approve", again])).code).toBe(0);
    expect((await apply(["--auto-approve", "--allow-destroy", config("none.yaml", "version: 1\nowner: o\nqubes: {}\n")])).code).toBe(0);
    expect((await sim().client.vm.list()).map((q) => q.name)).not.toContain("other");
  });

  it("absent: true destroys an adopted qube, with the same confirmation; on a qube not managed it is an error", async () => {
    await session();
    expect((await apply(["--auto-approve", config("a.yaml", "version: 1\nowner: o\nqubes:\n  work: {adopt: true}\n")])).code).toBe(0);
    const gone = config("gone.yaml", "version: 1\nowner: o\nqubes:\n  work: {absent: true}\n  personal: {absent: true}\n");
    const j = await planJson([gone]);
    expect(errorsOf(j).map((d) => [d.code, d.location?.line])).toEqual([["QIAC-E152", 5]]);
    const only = config("only.yaml", "version: 1\nowner: o\nqubes:\n  work: {absent: true}\n");
    expect((await planJson([only])).resource_changes.map((c) => [c.address, c.action, c.destroys_data])).toEqual([["qube.work", "delete", true]]);
    expect((await apply(["--auto-approve", only])).code).toBe(1);
    expect((await apply(["--auto-approve", "--allow-destroy", only])).code).toBe(0);
    expect((await sim().client.vm.list()).map((q) => q.name)).not.toContain("work");
    expect((await planJson([only])).steps).toEqual([]);
  });
});

describe("one owner per object", () => {
  it("a second owner's adopt is refused at its line, naming the owner; a copied tag alone is a warning", async () => {
    await session();
    expect((await apply(["--auto-approve", config("a.yaml", "version: 1\nowner: alice\nqubes:\n  work: {adopt: true}\n")])).code).toBe(0);
    const bob = config("b.yaml", "version: 1\nowner: bob\nqubes:\n  work:\n    adopt: true\n  personal:\n    adopt: true\n");
    await sim().client.tag.set("personal", "managed-by-alice");
    const j = await planJson([bob]);
    expect(errorsOf(j).map((d) => [d.code, d.location?.line, d.location?.column])).toEqual([["QIAC-E150", 5, 12]]);
    expect(errorsOf(j)[0]?.message).toMatch(/managed by owner alice/);
    expect(j.diagnostics.filter((d) => d.code === "QIAC-W150").map((d) => d.address)).toEqual(["qube.personal"]);
    // Labels and pools alike: another owner's inventory entry refuses the create.
    await sim().client.feature.set("dom0", "qubes-iac.alice.label.teal", "own");
    const label = await planJson([config("l.yaml", 'version: 1\nowner: bob\nlabels:\n  teal: "0x008080"\n')]);
    expect(errorsOf(label).map((d) => [d.code, d.address])).toEqual([["QIAC-E150", "label.teal"]]);
  });

  it("--take-ownership is needed to take over, is shown in the plan, and is enforced again at apply", async () => {
    await session();
    expect((await apply(["--auto-approve", config("a.yaml", "version: 1\nowner: alice\nqubes:\n  work: {adopt: true, tags: [mine]}\n")])).code).toBe(0);
    const bob = config("b.yaml", "version: 1\nowner: bob\nqubes:\n  work: {adopt: true}\n");
    const planFile = join(dir as string, "take.json");
    const shown = await runIn(["plan", ...connect(), "--take-ownership", "alice", "--out", planFile, bob], { env: { NO_COLOR: "1" } });
    expect(shown.code).toBe(0);
    expect(shown.stdout).toContain("take over from owner alice (--take-ownership alice)");
    expect(shown.stdout).toContain("Takes over from alice (--take-ownership)");
    const from = sim().sim.calls.length;
    const refused = await apply(["--auto-approve", planFile]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/QIAC-E206/);
    expect(mutatedSince(from)).toEqual([]);
    // The same take-over without the flag in a config apply is a plan error, nothing called.
    expect((await apply(["--auto-approve", bob])).code).toBe(1);
    expect(mutatedSince(from)).toEqual([]);

    expect((await apply(["--auto-approve", "--take-ownership", "alice", planFile])).code).toBe(0);
    const dom0 = await sim().client.feature.list("dom0");
    expect(dom0.filter((f) => f.includes(".work"))).toEqual(["qubes-iac.bob.adopted.work"]);
    expect(await sim().client.tag.list("work")).toEqual(expect.arrayContaining(["managed-by-bob", "mine"]));
    expect(await sim().client.tag.list("work")).not.toContain("managed-by-alice");
    expect((await sim().client.feature.list("work")).filter((f) => f.startsWith("qubes-iac.alice."))).toEqual([]);
    // alice's next plan no longer claims it: nothing to do, nothing reported as hers.
    expect((await planJson([config("a2.yaml", "version: 1\nowner: alice\nqubes: {}\n")])).steps).toEqual([]);
  });
});

describe("a state written by format 1", () => {
  it("is read (entries as adopted, records as the qube's unless its DispVM template has them) and rewritten in format 2", async () => {
    const q = await session();
    // What format 1 wrote for: work (adopted), keep (created; format 1 cannot tell), and a DispVM
    // `web` whose template `dvm` carried a format-1 feature record that qubesd copied into it.
    await q.client.vm.create({ klass: "AppVM", name: "keep", label: "green", template: "fedora-40" });
    await q.client.vm.create({ klass: "AppVM", name: "dvm", label: "red", template: "fedora-40" });
    await q.client.property.set({ vm: "dvm" }, "template_for_dispvms", "True");
    for (const vm of ["work", "keep", "dvm"]) await q.client.tag.set(vm, "managed-by-o");
    await q.client.feature.set("dvm", "qubes-iac.o.feature.service.x", "1");
    await q.client.feature.set("dvm", "service.x", "1");
    await q.client.vm.create({ klass: "DispVM", name: "web", label: "red", template: "dvm" });
    await q.client.feature.set("work", "qubes-iac.o.feature.mine", "1");
    await q.client.feature.set("work", "mine", "1");
    await q.client.feature.set("work", "qubes-iac.o.protect", "1");
    await q.client.feature.set("dom0", "qubes-iac.o.format", "1");
    for (const vm of ["work", "keep", "dvm", "web"]) await q.client.feature.set("dom0", `qubes-iac.o.qube.${vm}`, "own");

    const file = config("v1.yaml", 'version: 1\nowner: o\nqubes:\n  work: {adopt: true, features: {mine: "1"}, protect: true}\n  dvm: {adopt: true, features: {service.x: "1"}}\n  web: {adopt: true}\n');
    const j = await planJson([file]);
    expect(errorsOf(j)).toEqual([]);
    const work = await uuidOf("work");
    expect(j.steps.find((st) => st.id === "setup:ownership")?.ops).toEqual([{ op: "feature.set", vm: "dom0", name: "qubes-iac.o.format", value: "2" }]);
    expect(j.steps.find((st) => st.id === "update:qube.work")?.ops).toEqual([
      { op: "record.set", vm: "work", owner: "o", uuid: work, record: "own" },
      { op: "feature.set", vm: "dom0", name: "qubes-iac.o.adopted.work", value: "1" },
      { op: "feature.remove", vm: "dom0", name: "qubes-iac.o.qube.work" },
      { op: "record.set", vm: "work", owner: "o", uuid: work, record: "feature.mine" },
      { op: "feature.remove", vm: "work", name: "qubes-iac.o.feature.mine" },
      { op: "record.set", vm: "work", owner: "o", uuid: work, record: "protect" },
      { op: "feature.remove", vm: "work", name: "qubes-iac.o.protect" },
    ]);
    // web's copy of dvm's record is not web's: not migrated, and service.x is not web's to remove.
    const webOps = j.steps.find((st) => st.id === "update:qube.web")?.ops ?? [];
    expect(webOps.some((o) => JSON.stringify(o).includes("service.x"))).toBe(false);
    // Format 1 cannot tell created from adopted: `keep` reads as adopted, so dropping it releases it.
    expect(j.resource_changes.find((c) => c.address === "qube.keep")?.action).toBe("release");

    expect((await apply(["--auto-approve", file])).code).toBe(0);
    const after = await planJson([file]);
    expect(after.steps).toEqual([]);
    expect((await sim().client.vm.list()).map((v) => v.name)).toContain("keep");
    expect(await sim().client.feature.getOptional("web", "service.x")).toBe("1");
    expect((await sim().client.feature.list("dom0")).filter((f) => f.startsWith("qubes-iac.o.qube."))).toEqual([]);
  });
});
