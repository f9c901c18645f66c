// Export's pure renderer on small hand-built states: what a config lists (non-default values,
// typed as the config writes them) and what it leaves to Qubes (automatic tags and features,
// records, bookkeeping properties, default sizes and firewall), and the adopt flag.
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { formatSize, renderExport } from "../../src/export/render.js";
import type { ActualProperty, ActualQube, ActualState } from "../../src/model/actual.js";

const p = (type: ActualProperty["type"], raw: string, isDefault = false): ActualProperty => ({ type, raw, isDefault });
const GiB = 1024n ** 3n;

function qube(name: string, over: Partial<ActualQube> = {}): ActualQube {
  return {
    name,
    klass: "AppVM",
    power: "Halted",
    properties: new Map([
      ["label", p("label", "red")],
      ["template", p("vm", "fedora-40")],
    ]),
    tags: new Set(),
    featureNames: new Set(),
    features: new Map(),
    firewall: ["action=accept"],
    volumes: new Map([
      ["private", { pool: "varlibqubes", size: 2n * GiB, rw: true, revisionsToKeep: 1, ephemeral: false, snapOnStart: false, saveOnStop: true }],
      ["volatile", { pool: "varlibqubes", size: 10n * GiB, rw: true, revisionsToKeep: 0, ephemeral: false, snapOnStart: false, saveOnStop: false }],
    ]),
    ...over,
  };
}

function state(qubes: ActualQube[], over: Partial<ActualState> = {}): ActualState {
  return {
    listing: new Map(qubes.map((q) => [q.name, { name: q.name, klass: q.klass, power: q.power }])),
    qubes: new Map(qubes.map((q) => [q.name, q])),
    scanned: false,
    dom0FeatureNames: new Set(),
    dom0Features: new Map(),
    labels: new Map(),
    pools: new Map(),
    globals: new Map([["default_pool", p("str", "varlibqubes")]]),
    ...over,
  };
}

const render = (s: ActualState, all = true) => renderExport(s, { owner: "me", all, schemaPath: "schemas/qubes-iac.schema.json", generator: "qubes-iac test" });
const config = (s: ActualState, all = true) => parse(render(s, all).text) as { qubes: Record<string, Record<string, unknown>>; pools?: Record<string, unknown> };

describe("a qube", () => {
  it("lists non-default properties typed as the config writes them; leaves defaults, bookkeeping and other classes' properties out", () => {
    const q = qube("a", {
      properties: new Map([
        ["label", p("label", "blue")],
        ["template", p("vm", "fedora-40")],
        ["netvm", p("vm", "")],
        ["memory", p("int", "800")],
        ["maxmem", p("int", "4000", true)],
        ["debug", p("bool", "True")],
        ["kernelopts", p("str", "nopat quiet")],
        ["backup_timestamp", p("int", "1700000000")],
        ["appvm_default_bootmode", p("str", "x")],
        ["qid", p("int", "12")],
      ]),
    });
    expect(config(state([q])).qubes.a).toEqual({
      adopt: true,
      class: "AppVM",
      template: "fedora-40",
      label: "blue",
      properties: { netvm: null, memory: 800, debug: true, kernelopts: "nopat quiet" },
      volumes: { private: { size: "2GiB" }, volatile: { size: "10GiB" } },
    });
  });

  it("a value that does not read as its type is left out with W303", () => {
    const q = qube("a", { properties: new Map([["label", p("label", "red")], ["debug", p("bool", "maybe")]]) });
    const r = render(state([q]));
    expect(r.diagnostics.map((d) => `${d.code} ${d.message}`)).toEqual(['QIAC-W303 qube a: property debug = "maybe" is not a bool']);
    expect((parse(r.text) as { qubes: Record<string, Record<string, unknown>> }).qubes.a?.properties).toBeUndefined();
  });

  it("leaves automatic tags and features, records and prohibited features to Qubes", () => {
    const q = qube("a", {
      tags: new Set(["audiovm-dom0", "guivm-dom0", "created-by-dom0", "managed-by-other", "work"]),
      featureNames: new Set(["os", "qrexec", "supported-service.cups", "servicevm", "qubes-iac.other.protect", "preload-dispvm", "service.cups", "menu-items"]),
      features: new Map([
        ["os", "Linux"],
        ["qrexec", "1"],
        ["supported-service.cups", "1"],
        ["servicevm", "1"],
        ["qubes-iac.other.protect", "1"],
        ["preload-dispvm", ""],
        ["service.cups", ""],
        ["menu-items", "firefox.desktop"],
      ]),
    });
    const a = config(state([q])).qubes.a;
    expect(a?.tags).toEqual(["work"]);
    expect(a?.features).toEqual({ "menu-items": "firefox.desktop", "service.cups": "" });
  });

  it("a firewall other than Qubes' default as rule objects; every size as it is, in binary units", () => {
    const q = qube("a", {
      firewall: ["action=accept dst4=10.0.0.1/32 proto=tcp dstports=8000-8080 comment=dev servers", "action=accept proto=icmp icmptype=8", "action=drop"],
      volumes: new Map([
        ["private", { pool: "varlibqubes", size: 20n * GiB, rw: true, revisionsToKeep: 1, ephemeral: false, snapOnStart: false, saveOnStop: true }],
        ["volatile", { pool: "varlibqubes", size: 1536n * 1024n ** 2n, rw: true, revisionsToKeep: 0, ephemeral: false, snapOnStart: false, saveOnStop: false }],
      ]),
    });
    const a = config(state([q])).qubes.a;
    expect(a?.firewall).toEqual([
      { action: "accept", dsthost: "10.0.0.1/32", proto: "tcp", dstports: "8000-8080", comment: "dev servers" },
      { action: "accept", proto: "icmp", icmptype: 8 },
      { action: "drop" },
    ]);
    expect(a?.volumes).toEqual({ private: { size: "20GiB" }, volatile: { size: "1536MiB" } });
    expect(render(state([q])).text).toContain("      - {action: accept, proto: icmp, icmptype: 8}\n");
  });

  it("a qube the owner created: no adopt, its protect record, and its firewall even at Qubes' default", () => {
    const u = "9d2e3c4b-1a2b-4c3d-8e9f-0a1b2c3d4e5f";
    const q = qube("a", {
      properties: new Map([...qube("a").properties, ["uuid", p("str", u)]]),
      tags: new Set(["managed-by-me"]),
      featureNames: new Set([`qubes-iac.me.${u}.own`, `qubes-iac.me.${u}.protect`, `qubes-iac.me.${u}.firewall`]),
    });
    const s = state([q], { dom0FeatureNames: new Set(["qubes-iac.me.format", "qubes-iac.me.created.a"]) });
    expect(config(s).qubes.a).toEqual({ class: "AppVM", template: "fedora-40", label: "red", protect: true, firewall: [{ action: "accept" }], volumes: { private: { size: "2GiB" }, volatile: { size: "10GiB" } } });
    expect(config(s, false).qubes.a).toEqual({ class: "AppVM", template: "fedora-40", label: "red", protect: true, firewall: [{ action: "accept" }], volumes: { private: { size: "2GiB" }, volatile: { size: "10GiB" } } });
  });

  it("a qube the owner adopted, or one of format 1 (read as adopted), keeps adopt: true: dropping it releases it", () => {
    const legacy = qube("a", { tags: new Set(["managed-by-me"]), featureNames: new Set(["qubes-iac.me.protect"]) });
    const s = state([legacy], { dom0FeatureNames: new Set(["qubes-iac.me.format", "qubes-iac.me.qube.a"]) });
    expect(config(s).qubes.a).toEqual({ adopt: true, class: "AppVM", template: "fedora-40", label: "red", protect: true, volumes: { private: { size: "2GiB" }, volatile: { size: "10GiB" } } });
  });

  it("revisions_to_keep and ephemeral only where they differ from a new volume's in the same pool; notes when there are any", () => {
    const vol = (pool: string, saveOnStop: boolean, revisionsToKeep: number, ephemeral: boolean) => ({ pool, size: 2n * GiB, rw: true, revisionsToKeep, ephemeral, snapOnStart: false, saveOnStop });
    const q = qube("a", {
      volumes: new Map([
        // lvm_thin: every volume gets the pool's revisions_to_keep (2); a file pool only those kept at shutdown.
        ["private", vol("thin", true, 2, false)],
        ["volatile", vol("thin", false, 0, true)],
      ]),
      notes: "Keys only.\n",
    });
    const b = qube("b", { volumes: new Map([["private", vol("varlibqubes", true, 0, false)], ["volatile", vol("varlibqubes", false, 0, false)]]) });
    const s = state([q, b], {
      volumePools: new Map([
        ["thin", { name: "thin", driver: "lvm_thin", params: new Map([["revisions_to_keep", "2"], ["ephemeral_volatile", "False"], ["volume_group", "qubes_dom0"], ["thin_pool", "vm-pool"]]) }],
        ["varlibqubes", { name: "varlibqubes", driver: "file", params: new Map([["revisions_to_keep", "1"], ["ephemeral_volatile", "False"], ["dir_path", "/var/lib/qubes"]]) }],
      ]),
    });
    const c = config(s);
    expect(c.qubes.a?.volumes).toEqual({ private: { size: "2GiB" }, volatile: { size: "2GiB", revisions_to_keep: 0, ephemeral: true } });
    expect(c.qubes.a?.notes).toBe("Keys only.\n");
    expect(c.qubes.b?.volumes).toEqual({ private: { size: "2GiB", revisions_to_keep: 0 }, volatile: { size: "2GiB" } });
    expect(c.qubes.b).not.toHaveProperty("notes");
  });

  it("its pool when it is not the default pool", () => {
    const q = qube("a", { volumes: new Map([["private", { pool: "fast", size: 2n * GiB, rw: true, revisionsToKeep: 1, ephemeral: false, snapOnStart: false, saveOnStop: true }]]) });
    expect(config(state([q])).qubes.a?.pool).toBe("fast");
  });
});

describe("pools", () => {
  it("parameters typed by the driver's catalog; an unknown driver's passed through as text", () => {
    const s = state([], {
      pools: new Map([
        ["fast", { name: "fast", driver: "file", params: new Map([["dir_path", "/f"], ["revisions_to_keep", "2"], ["ephemeral_volatile", "False"], ["not_a_param", "x"]]) }],
        ["ext", { name: "ext", driver: "custom", params: new Map([["k", "1"]]) }],
      ]),
    });
    expect(config(s).pools).toEqual({ ext: { driver: "custom", k: "1" }, fast: { driver: "file", dir_path: "/f", ephemeral_volatile: false, revisions_to_keep: 2 } });
  });
});

describe("formatSize", () => {
  it("uses the largest exact binary unit, else bytes", () => {
    expect([formatSize(20n * GiB), formatSize(1536n * 1024n ** 2n), formatSize(4096n), formatSize(1000n), formatSize(2n * 1024n ** 4n)]).toEqual(["20GiB", "1536MiB", "4KiB", 1000, "2TiB"]);
  });
});
