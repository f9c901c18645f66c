// Pure parts of the planner, with small builders: value normalisation, ordering and cycles,
// scope, ownership record names, addresses, rendering and saved-plan recognition.
import { describe, expect, it } from "vitest";
import { parseAddress } from "../../src/model/address.js";
import type { ActualProperty, ActualQube, ActualState } from "../../src/model/actual.js";
import type { DesiredQube, DesiredState, PropertyValue } from "../../src/model/desired.js";
import { lifecycleOf, ownershipNames, readInventory, readOtherOwners, readQubeRecords } from "../../src/model/ownership.js";
import { actionSymbol, ACTIONS, isDestroying } from "../../src/plan/action.js";
import type { PlannedStep } from "../../src/plan/changes.js";
import { toJsonPlan, recognizeSavedPlan, PLAN_FORMAT_VERSION } from "../../src/plan/json.js";
import { compareProperty } from "../../src/plan/normalize.js";
import { checkedValue, LARGE_VALUE } from "../../src/plan/ops.js";
import { orderSteps, resolveDependencies } from "../../src/plan/order.js";
import { buildPlan } from "../../src/plan/plan.js";
import { renderHumanPlan, summaryLine } from "../../src/plan/render.js";
import { selectSteps } from "../../src/plan/scope.js";
import { expectValidPlanJson } from "./_helpers.js";

const at = { file: "q.yaml", line: 1, column: 1 };
const prop = (type: ActualProperty["type"], raw: string, isDefault = false): ActualProperty => ({ type, raw, isDefault });

function desiredQube(name: string, o: Partial<DesiredQube> = {}): DesiredQube {
  return { name, adopt: false, protect: false, properties: new Map(), features: new Map(), tags: new Set(), volumes: new Map(), at, locations: new Map(), ...o };
}

function desired(qubes: DesiredQube[], owner = "o"): DesiredState {
  return { version: 1, owner, labels: new Map(), pools: new Map(), properties: new Map(), qubes: new Map(qubes.map((q) => [q.name, q])), guests: new Map(), policies: new Map(), at, locations: new Map() };
}

const UUID = "0b5c1a52-8f55-4a7e-9d43-1d0c5a2e7b11";

/** A system where `name` is ours (format-2 entry, marker record and owner tag), with the given power state. */
function ownedSystem(name: string, power: string, properties: Record<string, ActualProperty>, owner = "o"): ActualState {
  const n = ownershipNames(owner);
  const q: ActualQube = {
    name,
    klass: "AppVM",
    power,
    properties: new Map(Object.entries({ uuid: prop("str", UUID), ...properties })),
    tags: new Set([n.ownerTag]),
    featureNames: new Set([n.record(UUID, "own")]),
    features: new Map(),
    volumes: new Map(),
  };
  return {
    listing: new Map([[name, { name, klass: "AppVM", power }]]),
    qubes: new Map([[name, q]]),
    scanned: false,
    dom0FeatureNames: new Set([n.format, n.created(name)]),
    dom0Features: new Map([[n.format, "2"]]),
    pools: new Map(),
  };
}

const step = (id: string, address: string, kind: PlannedStep["kind"], o: Partial<PlannedStep> = {}): PlannedStep => ({ id, address, kind, ops: [{ op: "vm.start", vm: "x" }], uses: [], unreferences: [], after: [], ...o });

describe("value normalisation", () => {
  const v = (x: PropertyValue) => x;
  it("compares booleans by meaning, whatever the spelling", () => {
    expect(compareProperty(v({ kind: "str", value: "yes" }), prop("bool", "True"))).toEqual({ kind: "equal" });
    expect(compareProperty(v({ kind: "str", value: "OFF" }), prop("bool", "False"))).toEqual({ kind: "equal" });
    expect(compareProperty(v({ kind: "bool", value: true }), prop("bool", "False"))).toEqual({ kind: "set", payload: "True" });
    expect(compareProperty(v({ kind: "str", value: "maybe" }), prop("bool", "False")).kind).toBe("invalid");
  });
  it("compares integers by value, beyond 2^53 too", () => {
    expect(compareProperty(v({ kind: "str", value: "0400" }), prop("int", "400"))).toEqual({ kind: "equal" });
    expect(compareProperty(v({ kind: "str", value: "18014398509481983" }), prop("int", "18014398509481983"))).toEqual({ kind: "equal" });
    expect(compareProperty(v({ kind: "int", value: 800 }), prop("int", "400", true))).toEqual({ kind: "set", payload: "800" });
    expect(compareProperty(v({ kind: "str", value: "lots" }), prop("int", "400")).kind).toBe("invalid");
  });
  it("reads none for a vm property in any of its forms", () => {
    expect(compareProperty(v({ kind: "vm", value: null }), prop("vm", ""))).toEqual({ kind: "equal" });
    expect(compareProperty(v({ kind: "str", value: "None" }), prop("vm", ""))).toEqual({ kind: "equal" });
    expect(compareProperty(v({ kind: "vm", value: null }), prop("vm", "sys-firewall", true))).toEqual({ kind: "set", payload: "" });
  });
  it("*default* resets only a value that is not at its default", () => {
    expect(compareProperty(v({ kind: "default" }), prop("int", "400", true))).toEqual({ kind: "equal" });
    expect(compareProperty(v({ kind: "default" }), prop("int", "800", false))).toEqual({ kind: "reset" });
  });
  it("compares strings exactly", () => {
    expect(compareProperty(v({ kind: "str", value: "pvh" }), prop("str", "PVH"))).toEqual({ kind: "set", payload: "pvh" });
  });
});

describe("ordering", () => {
  it("creations follow what they use; removals wait for what stops referring to them", () => {
    const steps = [
      step("create:qube.app", "qube.app", "create", { uses: ["qube.tpl", "label.l"] }),
      step("create:qube.tpl", "qube.tpl", "create"),
      step("create:label.l", "label.l", "create"),
      step("update:qube.user", "qube.user", "update", { unreferences: ["qube.old"] }),
      step("delete:qube.old", "qube.old", "delete", { unreferences: ["qube.older"] }),
      step("delete:qube.older", "qube.older", "delete"),
    ];
    const { steps: ordered, diagnostics } = orderSteps(steps, resolveDependencies(steps));
    expect(diagnostics).toEqual([]);
    expect(ordered.map((s) => [s.wave, s.id])).toEqual([
      [1, "create:label.l"],
      [1, "create:qube.tpl"],
      [1, "update:qube.user"],
      [2, "create:qube.app"],
      [2, "delete:qube.old"],
      [3, "delete:qube.older"],
    ]);
    expect(ordered.find((s) => s.id === "delete:qube.older")?.dependsOn).toEqual(["delete:qube.old"]);
  });

  it("reports a cycle with the steps on it and still lists every step", () => {
    const steps = [
      step("update:qube.a", "qube.a", "update", { uses: ["qube.b"] }),
      step("update:qube.b", "qube.b", "update", { uses: ["qube.c"] }),
      step("update:qube.c", "qube.c", "update", { uses: ["qube.a"] }),
      step("create:qube.d", "qube.d", "create"),
    ];
    const { steps: ordered, diagnostics } = orderSteps(steps, resolveDependencies(steps));
    expect(diagnostics.map((d) => [d.code, d.message])).toEqual([
      ["QIAC-E106", "these steps depend on each other in a cycle: update:qube.a → update:qube.b → update:qube.c → update:qube.a"],
    ]);
    expect(ordered.map((s) => [s.wave, s.id])).toEqual([
      [1, "create:qube.d"],
      [2, "update:qube.a"],
      [2, "update:qube.b"],
      [2, "update:qube.c"],
    ]);
  });

  it("scope: an address that matches nothing is a warning", () => {
    const steps = [step("create:qube.a", "qube.a", "create")];
    const r = selectSteps(steps, resolveDependencies(steps), { targets: [{ type: "qube", name: "zzz" }], excludes: [] }, new Set(["qube.a"]));
    expect(r.steps.size).toBe(0);
    expect(r.diagnostics.map((d) => d.code)).toEqual(["QIAC-W101"]);
  });
});

describe("diff of in-memory states", () => {
  it("a qube in a transitional power state cannot be made running or halted", () => {
    const actual = ownedSystem("a", "Transient", { label: prop("label", "red"), maxmem: prop("int", "4000", true) });
    const plan = buildPlan(desired([desiredQube("a", { state: "running" })]), actual, { allowRestart: true, targets: [], excludes: [] });
    expect(plan.diagnostics.map((d) => d.code)).toEqual(["QIAC-E117"]);
  });

  it("a paused qube with a halted-only change is unpaused, shut down, changed, started and paused again", () => {
    const actual = ownedSystem("a", "Paused", { maxmem: prop("int", "4000", true) });
    const plan = buildPlan(desired([desiredQube("a", { properties: new Map([["maxmem", { kind: "int", value: 2000 }]]) })]), actual, {
      allowRestart: true,
      targets: [],
      excludes: [],
    });
    expect(plan.diagnostics).toEqual([]);
    expect(plan.steps[0]?.ops.map((o) => o.op)).toEqual(["vm.unpause", "vm.shutdown", "property.set", "vm.start", "vm.pause"]);
    expectValidPlanJson(toJsonPlan(plan, { version: "t" }));
  });

  it("a property the qube does not have is an error at its config location", () => {
    const actual = ownedSystem("a", "Halted", {});
    const q = desiredQube("a", { properties: new Map([["nonsense", { kind: "str", value: "x" }]]), locations: new Map([["properties.nonsense", { file: "q.yaml", line: 7, column: 5 }]]) });
    const plan = buildPlan(desired([q]), actual, { allowRestart: false, targets: [], excludes: [] });
    expect(plan.diagnostics.map((d) => [d.code, d.location?.line])).toEqual([["QIAC-E108", 7]]);
  });

  it("a config feature in qubes-iac's record prefix is refused", () => {
    const actual = ownedSystem("a", "Halted", {});
    const plan = buildPlan(desired([desiredQube("a", { features: new Map([["qubes-iac.o.protect", null]]) })]), actual, { allowRestart: false, targets: [], excludes: [] });
    expect(plan.diagnostics.map((d) => d.code)).toEqual(["QIAC-E119"]);
  });
});

describe("ownership records", () => {
  it("one owner's records never read as another's; a format-1 entry reads as adopted", () => {
    const names = ["qubes-iac.a.qube.x", "qubes-iac.a.created.c", "qubes-iac.a.adopted.d", "qubes-iac.a-b.qube.y", "qubes-iac.a.intent.z", "qubes-iac.a.label.l", "qubes-iac.a.pool.p", "qubes-iac.a.format", "qubes-iac.ab.qube.w", "other"];
    const inv = readInventory("a", names);
    expect(inv).toEqual({
      formatPresent: true,
      qubes: new Set(["c", "d", "x"]),
      created: new Set(["c"]),
      adopted: new Set(["d"]),
      legacy: new Set(["x"]),
      intents: new Set(["z"]),
      labels: new Set(["l"]),
      pools: new Set(["p"]),
    });
    expect([lifecycleOf(inv, "c"), lifecycleOf(inv, "d"), lifecycleOf(inv, "x"), lifecycleOf(inv, "z")]).toEqual(["created", "adopted", "adopted", undefined]);
    expect(readInventory("a-b", names).qubes).toEqual(new Set(["y"]));
    const others = readOtherOwners("a", names);
    expect([...others.qubes].map(([q, by]) => [q, [...by]])).toEqual([
      ["y", [["a-b", ["qubes-iac.a-b.qube.y"]]]],
      ["w", [["ab", ["qubes-iac.ab.qube.w"]]]],
    ]);
  });
  it("per-qube records are the qube's only when bound to its UUID, or format 1's and not its template's", () => {
    const other = "5f0d8c8e-7c1e-4f7a-8a4b-0e6d2c9b3a10";
    const names = [
      `qubes-iac.o.${UUID}.own`,
      `qubes-iac.o.${UUID}.protect`,
      `qubes-iac.o.${UUID}.feature.service.cups`,
      `qubes-iac.o.${UUID}.device.pci.dom0.00_14.3`,
      `qubes-iac.o.${other}.device.usb.sys-usb.2-1`,
      "qubes-iac.o.device.usb.sys-usb.2-2",
      `qubes-iac.o.${other}.own`,
      `qubes-iac.o.${other}.tag.copied`,
      "qubes-iac.o.firewall",
      "qubes-iac.o.tag.vpn",
      "qubes-iac.o.feature.inherited",
      "qubes-iac.x.tag.no",
      "service.cups",
    ];
    const r = readQubeRecords("o", UUID, names, new Set(["qubes-iac.o.feature.inherited"]));
    expect(r).toEqual({
      own: true,
      protect: true,
      firewall: true,
      features: new Set(["service.cups"]),
      tags: new Set(["vpn"]),
      // Device records exist only bound to a UUID (format 2): another qube's or an unbound one is no claim.
      devices: new Set(["pci.dom0.00_14.3"]),
      legacy: [
        { name: "qubes-iac.o.firewall", key: "firewall" },
        { name: "qubes-iac.o.tag.vpn", key: "tag.vpn" },
      ],
      names: [`qubes-iac.o.${UUID}.own`, `qubes-iac.o.${UUID}.protect`, `qubes-iac.o.${UUID}.feature.service.cups`, `qubes-iac.o.${UUID}.device.pci.dom0.00_14.3`, "qubes-iac.o.firewall", "qubes-iac.o.tag.vpn"],
    });
    expect(readQubeRecords("o", other, names).tags).toEqual(new Set(["copied", "vpn"]));
  });
  it("large values are checked by hash", () => {
    expect(checkedValue("x")).toEqual({ value: "x" });
    expect(checkedValue("x".repeat(LARGE_VALUE + 1))).toEqual({ sha256: expect.stringMatching(/^[0-9a-f]{64}$/) });
    expect(checkedValue(undefined)).toEqual({ absent: true });
  });
});

describe("addresses and actions", () => {
  it("parses the four address forms and refuses others", () => {
    expect(parseAddress("qube.sys-net")).toEqual({ ok: true, address: { type: "qube", name: "sys-net" } });
    expect(parseAddress("properties")).toEqual({ ok: true, address: { type: "properties" } });
    expect(parseAddress("vm.work").ok).toBe(false);
    expect(parseAddress("qube.").ok).toBe(false);
  });
  it("every action has a distinct symbol", () => {
    expect(new Set(ACTIONS.map(actionSymbol)).size).toBe(ACTIONS.length);
    expect(ACTIONS.filter(isDestroying)).toEqual(["delete", "replace"]);
  });
});

describe("rendering and the saved plan", () => {
  const plan = buildPlan(desired([desiredQube("n", { class: "AppVM", template: "t", label: "red" })]), {
    listing: new Map([["t", { name: "t", klass: "TemplateVM", power: "Halted" }]]),
    qubes: new Map(),
    scanned: false,
    dom0FeatureNames: new Set(),
    dom0Features: new Map(),
    pools: new Map(),
  }, { allowRestart: false, targets: [], excludes: [] });
  const json = toJsonPlan(plan, { version: "t" });

  it("colours only when asked", () => {
    expect(renderHumanPlan(json, { color: true })).toContain("\x1b[32m");
    expect(renderHumanPlan(json, { color: false })).not.toContain("\x1b[");
  });
  it("the summary line", () => {
    expect(summaryLine(json)).toBe("Plan: 1 to add, 0 to change, 0 to destroy.");
    expect(summaryLine({ ...json, summary: { add: 2, change: 3, destroy: 1, forget: 0, release: 0 } })).toBe("Plan: 2 to add, 3 to change, 1 to destroy.");
    expect(summaryLine({ ...json, summary: { add: 0, change: 0, destroy: 0, forget: 1, release: 0 } })).toBe("Plan: 0 to add, 0 to change, 0 to destroy, 1 to forget.");
    expect(summaryLine({ ...json, summary: { add: 0, change: 0, destroy: 0, forget: 0, release: 2 } })).toBe("Plan: 0 to add, 0 to change, 0 to destroy, 2 to release.");
    expect(summaryLine({ ...json, summary: { add: 0, change: 0, destroy: 0, forget: 0, release: 0 } })).toBe("No changes.");
  });
  it("a saved plan is recognised by its content", () => {
    expect(recognizeSavedPlan(JSON.stringify(json))).toEqual({ kind: "plan", plan: json });
    expect(recognizeSavedPlan(JSON.stringify({ ...json, format_version: PLAN_FORMAT_VERSION + 1 }))).toEqual({ kind: "newer", version: 2 });
    expect(recognizeSavedPlan("version: 1\nowner: x\n")).toEqual({ kind: "not-a-plan" });
    expect(recognizeSavedPlan('{"format_version": 1}')).toEqual({ kind: "not-a-plan" });
  });
});

describe("documentation in step with the code", () => {
  it("docs/plan.md lists every plan diagnostic code with its meaning", async () => {
    const { readFileSync } = await import("node:fs");
    const { PLAN_CODES } = await import("../../src/plan/codes.js");
    const doc = readFileSync("docs/plan.md", "utf8");
    const listed = [...doc.matchAll(/^\| (QIAC-[EW][0-9]{3}) \| (.*) \|$/gm)].map((m) => [m[1], m[2]]);
    expect(listed).toEqual(Object.entries(PLAN_CODES));
  });

  it("docs/ownership.md names every record of the current format", async () => {
    const { readFileSync } = await import("node:fs");
    const { OWNERSHIP_FORMAT_VERSION } = await import("../../src/model/ownership.js");
    const doc = readFileSync("docs/ownership.md", "utf8");
    expect(doc).toContain(`# Ownership records (format ${OWNERSHIP_FORMAT_VERSION})`);
    const n = ownershipNames("<owner>");
    const r = (k: Parameters<typeof n.record>[1]) => n.record("<uuid>", k);
    const legacy = [n.legacyQube("<name>"), n.legacy.protect, n.legacy.feature("<feature>"), n.legacy.tag("<tag>"), n.legacy.firewall];
    for (const name of [n.format, n.created("<name>"), n.adopted("<name>"), n.intent("<name>"), n.label("<name>"), n.pool("<name>"), r("own"), r("protect"), r("feature.<feature>"), r("tag.<tag>"), r("firewall"), n.ownerTag, ...legacy]) {
      expect(doc).toContain(`\`${name}\``);
    }
  });
});
