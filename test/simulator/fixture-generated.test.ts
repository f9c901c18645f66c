// Generated fixtures: exact counts, determinism (same N, same document; qube i the same for
// every N), the invariants a real Qubes system keeps (checked over the socket where the API can
// say it), persistence across a restart, and the `--fixture` text.

import { readFileSync } from "node:fs";
import { afterEach, describe, expect, it } from "vitest";
import { checkVmName, parseFirewallRule } from "../../src/model/qubes-rules.js";
import {
  generateFixtureState,
  GENERATED_MAX_QUBES,
  GENERATED_MIN_QUBES,
  parseFixture,
  type SimulatorOptions,
  type StateDocument,
} from "../../src/providers/qubes/simulator/index.js";
import { ok, tempSim, type TempSim } from "./wire.js";

const cleanup: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

async function sim(opts: Partial<SimulatorOptions>): Promise<TempSim> {
  const s = await tempSim(opts);
  cleanup.push(() => s.stop());
  return s;
}

const BASE = ["dom0", "fedora-41", "debian-12", "whonix-gateway-17", "whonix-workstation-17", "sys-net", "sys-firewall", "sys-usb", "sys-whonix", "sys-vpn"];
const USER_TAG = (t: string): boolean => !["audiovm-dom0", "guivm-dom0", "anon-vm", "anon-gateway", "whonix-updatevm"].includes(t);

describe("generateFixtureState", () => {
  it.each([GENERATED_MIN_QUBES, 15, 200, 1000])("has exactly %i qubes: dom0, 4 templates, AppVMs for the rest", (n) => {
    const doc = generateFixtureState(n);
    expect(doc.qubes).toHaveLength(n);
    const byClass = (c: string) => doc.qubes.filter((q) => q.class === c).length;
    expect(byClass("AdminVM")).toBe(1);
    expect(byClass("TemplateVM")).toBe(4);
    expect(byClass("AppVM")).toBe(n - 5);
    expect(doc.qubes.slice(0, BASE.length).map((q) => q.name)).toEqual(BASE);
    expect(new Set(doc.qubes.map((q) => q.name)).size).toBe(n);
  });

  it("refuses sizes it cannot build, saying the range", () => {
    expect(() => generateFixtureState(GENERATED_MIN_QUBES - 1)).toThrow(`from ${GENERATED_MIN_QUBES} qubes`);
    expect(() => generateFixtureState(GENERATED_MAX_QUBES + 1)).toThrow(`to ${GENERATED_MAX_QUBES}, not ${GENERATED_MAX_QUBES + 1}`);
    expect(() => generateFixtureState(100.5)).toThrow(RangeError);
  });

  it("is deterministic, and qube i is the same whatever N", () => {
    const a = JSON.stringify(generateFixtureState(300));
    expect(JSON.stringify(generateFixtureState(300))).toBe(a);
    const small = generateFixtureState(120);
    const large = generateFixtureState(700);
    expect(large.qubes.slice(0, 120)).toEqual(small.qubes);
    // Pinned: a change to the generator changes every benchmark's input, so it must be deliberate.
    const q = large.qubes[20];
    expect([q?.name, q?.props.uuid, q?.props.label, q?.props.template]).toMatchInlineSnapshot(`
      [
        "media-7",
        "fcb76dc0-0029-485d-9052-e1d17bb736e5",
        "red",
        "fedora-41",
      ]
    `);
  });

  it("takes well under a second for 1000 qubes", () => {
    const t0 = performance.now();
    generateFixtureState(1000);
    expect(performance.now() - t0).toBeLessThan(1000);
  });

  it("builds 10 000 qubes with unique names, qids and UUIDs", () => {
    const doc = generateFixtureState(10_000);
    expect(doc.qubes).toHaveLength(10_000);
    const qids = doc.qubes.filter((q) => q.class !== "AdminVM").map((q) => Number(q.props.qid));
    expect(new Set(qids).size).toBe(9_999);
    expect(Math.max(...qids)).toBe(9_999);
    expect(new Set(doc.qubes.filter((q) => q.class !== "AdminVM").map((q) => q.props.uuid)).size).toBe(9_999);
    for (const q of doc.qubes) expect(checkVmName(q.name), q.name).toBeNull();
  });

  it("spreads the non-default settings the way it says", () => {
    const doc = generateFixtureState(1000);
    const bulk = doc.qubes.slice(14);
    expect(new Set(bulk.map((q) => q.props.label))).toEqual(new Set(doc.labels.map((l) => l.name)));
    const share = (pred: (q: StateDocument["qubes"][number]) => boolean) => bulk.filter(pred).length / bulk.length;
    expect(share((q) => q.props.memory !== undefined)).toBeGreaterThan(0.25);
    expect(share((q) => q.props.maxmem !== undefined)).toBeGreaterThan(0.15);
    expect(share((q) => "netvm" in q.props)).toBeGreaterThan(0.2);
    expect(share((q) => q.props.template_for_dispvms === true)).toBeGreaterThan(0.005);
    expect(share((q) => q.power === "Running")).toBeGreaterThan(0.03);
    for (const q of bulk) {
      const services = q.features.filter(([k]) => k.startsWith("service."));
      expect(services.length, q.name).toBeGreaterThanOrEqual(2);
      expect(services.length, q.name).toBeLessThanOrEqual(4);
      const userTags = q.tags.filter(USER_TAG);
      expect(userTags.length, q.name).toBeGreaterThanOrEqual(2);
      expect(userTags.length, q.name).toBeLessThanOrEqual(3);
      expect(q.firewall?.length ?? 0, q.name).toBeLessThanOrEqual(5);
      for (const rule of q.firewall ?? []) expect(parseFirewallRule(rule).ok, rule).toBe(true);
      if (q.props.memory !== undefined && q.props.maxmem !== undefined) expect(Number(q.props.maxmem)).toBeGreaterThanOrEqual(Number(q.props.memory));
    }
    const firewallSizes = new Set(bulk.map((q) => q.firewall?.length ?? 0));
    expect(firewallSizes).toEqual(new Set([0, 1, 2, 3, 4, 5]));
  });

  it("keeps a running qube's netvm running", () => {
    const doc = generateFixtureState(1000);
    const byName = new Map(doc.qubes.map((q) => [q.name, q]));
    for (const q of doc.qubes.filter((x) => x.power === "Running" && x.class === "AppVM")) {
      const netvm = "netvm" in q.props ? q.props.netvm : doc.globals.default_netvm;
      if (typeof netvm === "string") expect(byName.get(netvm)?.power, `${q.name} -> ${netvm}`).toBe("Running");
    }
  });
});

describe("a simulator serving a generated system", () => {
  it("answers with a system whose references hold, checked through the API", async () => {
    const s = await sim({ fixture: { generated: 150 }, statePath: undefined });
    const list = (await ok(s.socketPath, "admin.vm.List", "", "dom0")).trim().split("\n");
    expect(list).toHaveLength(150);
    const classOf = new Map(list.map((l) => [l.split(" ")[0] ?? "", /class=(\S+)/.exec(l)?.[1] ?? ""]));
    const value = (reply: string) => reply.replace(/^default=(True|False) type=\S+ ?/, "");
    const checked = { netvm: 0, template: 0, dispvm: 0 };
    for (const [name, klass] of classOf) {
      if (klass !== "AppVM") continue;
      const template = value(await ok(s.socketPath, "admin.vm.property.Get", "template", name));
      expect(classOf.get(template), `${name}'s template ${template}`).toBe("TemplateVM");
      checked.template++;
      const netvm = value(await ok(s.socketPath, "admin.vm.property.Get", "netvm", name));
      if (netvm !== "") {
        expect(value(await ok(s.socketPath, "admin.vm.property.Get", "provides_network", netvm)), `${name}'s netvm ${netvm}`).toBe("True");
        checked.netvm++;
      }
      const dispvm = value(await ok(s.socketPath, "admin.vm.property.Get", "default_dispvm", name));
      if (dispvm !== "") {
        expect(value(await ok(s.socketPath, "admin.vm.property.Get", "template_for_dispvms", dispvm)), `${name}'s default_dispvm ${dispvm}`).toBe("True");
        checked.dispvm++;
      }
    }
    expect(checked.template).toBe(145);
    expect(checked.netvm).toBeGreaterThan(100);
    expect(checked.dispvm).toBeGreaterThan(100);
    const labels = new Set<string>();
    for (const name of [...classOf.keys()].slice(14)) labels.add(value(await ok(s.socketPath, "admin.vm.property.Get", "label", name)));
    expect(labels.size).toBe(8);
  });

  it("keeps the generated state and its changes across a restart; a reset brings the same system back", async () => {
    const s = await sim({ fixture: { generated: 300 } });
    const before = await ok(s.socketPath, "admin.vm.List", "", "dom0");
    const name = before.split("\n")[100]?.split(" ")[0] ?? "";
    await ok(s.socketPath, "admin.vm.property.Set", "memory", name, "1234");
    await ok(s.socketPath, "admin.vm.feature.Set", "service.added", name, "1");
    const saved = JSON.parse(readFileSync(s.statePath, "utf8")) as StateDocument;
    expect(saved.qubes).toHaveLength(300);

    await s.restart({ fixture: "default" });
    expect(await ok(s.socketPath, "admin.vm.List", "", "dom0")).toBe(before);
    expect(await ok(s.socketPath, "admin.vm.property.Get", "memory", name)).toBe("default=False type=int 1234");
    expect(await ok(s.socketPath, "admin.vm.feature.Get", "service.added", name)).toBe("1");

    await s.restart({ fixture: { generated: 300 }, reset: true });
    expect(await ok(s.socketPath, "admin.vm.List", "", "dom0")).toBe(before);
    expect(await ok(s.socketPath, "admin.vm.property.Get", "memory", name)).not.toBe("default=False type=int 1234");
  });

  it("creates a qube on top of a generated system", async () => {
    const s = await sim({ fixture: { generated: 1000 }, statePath: undefined });
    await ok(s.socketPath, "admin.vm.Create.AppVM", "debian-12", "dom0", "name=new-one label=green");
    expect(await ok(s.socketPath, "admin.vm.property.Get", "qid", "new-one")).toBe("default=False type=int 1000");
  });
});

describe("--fixture text", () => {
  it("reads default and generated:N", () => {
    expect(parseFixture("default")).toEqual({ ok: true, fixture: "default" });
    expect(parseFixture("generated:500")).toEqual({ ok: true, fixture: { generated: 500 } });
  });

  it.each([
    ["recorded", "unknown fixture 'recorded'"],
    ["generated", "unknown fixture 'generated'"],
    ["generated:", "unknown fixture 'generated:'"],
    ["generated:-5", "unknown fixture 'generated:-5'"],
    ["generated:3", `from ${GENERATED_MIN_QUBES} qubes`],
    ["generated:20000", "not 20000"],
  ])("refuses %j", (text, message) => {
    const r = parseFixture(text);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.error).toContain(message);
  });
});
