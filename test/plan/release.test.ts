// Plans on R4.2 and R4.3: the simulator's property lists are made those of the recorded
// release (test/helpers/release-overlay.ts), so the planner detects it as a real system would
// make it, and follows that release's rules (src/model/release.ts): properties it lacks are
// refused in the plan naming it (also before a Create), maxmem of a running qube is set and
// counts from the next start (qubes/vm/qubesvm.py on release4.2/release4.3 has no
// property-pre-set:maxmem handler; main's on_property_pre_set_maxmem refuses it).
import { afterEach, describe, expect, it } from "vitest";
import { readerFromClient } from "../../src/apply/admin-api.js";
import { releaseOverlay } from "../helpers/release-overlay.js";
import { converge, desiredFromYaml, errorCodes, planOps, planWith, runOps, startSession, type SimSession } from "./_helpers.js";

const qube = (extra: string): string => `version: 1\nowner: rel\nqubes:\n  rq:\n    class: AppVM\n    template: fedora-40\n    label: red\n${extra}`;

let s: SimSession | undefined;
afterEach(async () => {
  await s?.stop();
  s = undefined;
});

describe("the plan says which release it saw", () => {
  for (const [dir, id] of [["qubesd-r4.2", "r4.2"], ["qubesd-r4.3", "r4.3"]] as const) {
    it(`${id}: detected from dom0's property list`, async () => {
      s = await startSession({}, (t) => releaseOverlay(t, dir));
      const { json } = await planWith(s, desiredFromYaml(qube("")));
      expect(json.qubes_release).toEqual({ detected: id, candidates: [id], evidence: [expect.stringContaining("dom0's properties")] });
    });
  }
  it("the head (the simulator as it is)", async () => {
    s = await startSession();
    const { json } = await planWith(s, desiredFromYaml(qube("")));
    expect(json.qubes_release?.detected).toBe("main");
  });
});

describe("a property the release lacks is refused in the plan, naming the release", () => {
  it("R4.2: bootmode on a qube to create (never sent after the Create)", async () => {
    s = await startSession({}, (t) => releaseOverlay(t, "qubesd-r4.2"));
    const { json } = await planWith(s, desiredFromYaml(qube("    properties: {bootmode: default}\n")));
    const d = json.diagnostics.find((x) => x.code === "QIAC-E108");
    expect(d).toMatchObject({ severity: "error", address: "qube.rq", location: { line: 8 } });
    expect(d?.message).toBe("qube rq (AppVM) cannot have property 'bootmode': R4.2's AppVM has no bootmode");
    expect(json.applyable).toBe(false);
  });

  it("R4.2: appvm_default_bootmode on an existing TemplateVM; R4.3 takes it", async () => {
    const yaml = "version: 1\nowner: rel\nqubes:\n  fedora-40:\n    adopt: true\n    properties: {appvm_default_bootmode: default}\n";
    s = await startSession({}, (t) => releaseOverlay(t, "qubesd-r4.2"));
    const r42 = await planWith(s, desiredFromYaml(yaml));
    expect(r42.json.diagnostics.find((x) => x.code === "QIAC-E108")?.message).toBe(
      "qube fedora-40 (TemplateVM) has no property 'appvm_default_bootmode': R4.2's TemplateVM has no appvm_default_bootmode",
    );
    await s.stop();
    s = await startSession({}, (t) => releaseOverlay(t, "qubesd-r4.3"));
    expect(errorCodes((await planWith(s, desiredFromYaml(yaml))).json)).toEqual([]);
  });

  it("R4.3 creates a qube with bootmode", async () => {
    s = await startSession({}, (t) => releaseOverlay(t, "qubesd-r4.3"));
    const { json } = await planWith(s, desiredFromYaml(qube("    properties: {bootmode: default}\n")));
    expect(errorCodes(json)).toEqual([]);
    expect(planOps(json)).toContainEqual({ op: "property.set", holder: { vm: "rq" }, name: "bootmode", value: "default" });
  });
});

describe("maxmem of a running qube", () => {
  const running = (maxmem: number): string => qube(`    state: running\n    properties: {maxmem: ${maxmem}}\n`);

  it("R4.3: set while it runs, and the plan says it counts from the next start", async () => {
    s = await startSession({}, (t) => releaseOverlay(t, "qubesd-r4.3"));
    await converge(s, desiredFromYaml(running(4000)));
    const { json } = await planWith(s, desiredFromYaml(running(6000)));
    expect(errorCodes(json)).toEqual([]);
    expect(planOps(json)).toEqual([{ op: "property.set", holder: { vm: "rq" }, name: "maxmem", value: "6000" }]);
    const change = json.resource_changes.find((c) => c.address === "qube.rq");
    expect(change?.needs_halt).toEqual([]);
    expect(change?.reasons).toContain("R4.3 takes maxmem of a running qube but uses it only from its next start: restart rq for it to count now (or plan with --allow-restart)");
  });

  it("R4.2 with --allow-restart: restarted for it", async () => {
    s = await startSession({}, (t) => releaseOverlay(t, "qubesd-r4.2"));
    await converge(s, desiredFromYaml(running(4000)));
    const { json } = await planWith(s, desiredFromYaml(running(6000)), { allowRestart: true });
    expect(errorCodes(json)).toEqual([]);
    expect(planOps(json).map((o) => o.op)).toEqual(["vm.shutdown", "property.set", "vm.start"]);
    await runOps(s.client, planOps(json));
    expect((await planWith(s, desiredFromYaml(running(6000)))).json.steps).toEqual([]);
  });

  it("the head refuses it on a running qube: a halt is needed (QIAC-E105)", async () => {
    s = await startSession();
    await converge(s, desiredFromYaml(running(4000)));
    const { json } = await planWith(s, desiredFromYaml(running(6000)));
    expect(errorCodes(json)).toEqual(["QIAC-E105"]);
  });
});

describe("firewall rules with expire (qubes/firewall.py Rule.api_rule drops an expired rule from firewall.Get)", () => {
  const NOW = Date.UTC(2030, 0, 1);
  const rules = (expire: number): string => qube(`    firewall:\n      - {action: accept, dsthost: example.com, expire: ${expire}}\n      - {action: drop}\n`);

  it("one that has passed is a located plan error", async () => {
    s = await startSession();
    const { json } = await planWith(s, desiredFromYaml(rules(978307200)), { now: NOW });
    expect(json.diagnostics).toEqual([
      expect.objectContaining({
        code: "QIAC-E140",
        message: "qube rq: firewall rule 1 expired at 2001-01-01T00:00:00Z; qubesd drops an expired rule, so it would be set again on every apply",
        location: expect.objectContaining({ line: 9 }),
      }),
    ]);
  });

  it("a future one converges until it passes, and the plan says when it will", async () => {
    s = await startSession();
    const desired = desiredFromYaml(rules(4102444800));
    const first = await planWith(s, desired, { now: NOW });
    expect(errorCodes(first.json)).toEqual([]);
    await runOps(s.client, planOps(first.json));
    const second = await planWith(s, desired, { now: NOW });
    expect(second.json.steps).toEqual([]);
    expect(second.json.diagnostics.map((d) => [d.code, d.message])).toEqual([
      ["QIAC-W140", "qube rq: firewall rule 1 expires at 2100-01-01T00:00:00Z; until then plans show no change for it, from then on this plan's config is refused (QIAC-E140)"],
    ]);
  });
});

describe("a label's colour right after label.Create (the head's upstream bug: an empty reply, transcripts.jsonl row 8)", () => {
  it("on R4.3, which answers the colour, an empty reply is reported, not taken for the bug", async () => {
    s = await startSession({}, (t) => releaseOverlay(t, "qubesd-r4.3"));
    await s.client.label.create("teal", "0x008080");
    // The simulator answers as the head does: R4.3 would have sent the colour.
    await expect(readerFromClient(s.client).labelColour("teal")).rejects.toMatchObject({ code: "empty-reply" });
  });
  it("on the head it is the bug: the colour is unknown until qubesd restarts", async () => {
    s = await startSession();
    await s.client.label.create("teal", "0x008080");
    expect(await readerFromClient(s.client).labelColour("teal")).toBeUndefined();
  });
});

describe("a release the table does not know", () => {
  it("a qube of the same class read in full tells which properties a new one will lack", async () => {
    // dom0's list of no known release: no candidate; the AppVM `work`, read since the config
    // adopts it, shows R4.2's property set, so bootmode is refused for the new AppVM as well.
    s = await startSession({}, (t) => {
      const inner = releaseOverlay(t, "qubesd-r4.2");
      return { ...inner, call: async (c, o) => (c.method === "admin.vm.property.List" && c.dest === "dom0" ? Buffer.from("0\0maxmem\n") : inner.call(c, o)) };
    });
    const yaml = `${qube("    properties: {bootmode: default}\n")}  work:\n    adopt: true\n`;
    const { json } = await planWith(s, desiredFromYaml(yaml));
    expect(json.qubes_release?.candidates).toEqual([]);
    expect(json.diagnostics.filter((d) => d.code === "QIAC-E108").map((d) => d.message)).toEqual([
      "qube rq (AppVM) cannot have property 'bootmode': AppVM work has none on this system",
    ]);
  });
});
