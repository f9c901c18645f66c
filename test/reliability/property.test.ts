// Property-based tests (fast-check) over random configs and random starting systems, through the
// CLI against the simulator. A system starts from the default fixture, gets random foreign qubes
// and labels (some with names the config also uses), then a random earlier config of the same
// owner is applied (so the owner already has qubes, labels and pools to change or remove), then
// foreign qubes may come to use what the owner made. For a random config on that system:
//  1. a plan never creates, deletes or changes a qube, label or pool that is not the owner's —
//     every op names the config's or the inventory's things (a foreign netvm may be started);
//  2. the order of steps never sets a reference to something that does not exist yet: whatever
//     a step makes a property, a created qube or a label name is there before it, in every order
//     the steps' dependencies allow, and nothing is removed before what stops using it;
//  3. apply, then plan: `No changes.`; and nothing outside the config and the inventory changed.
// The universe of names is small on purpose, so that references and names collide.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { opCall } from "../../src/apply/admin-api.js";
import { QUBE_PROPERTIES, GLOBAL_PROPERTIES } from "../../src/config/catalog.js";
import { readInventory } from "../../src/model/ownership.js";
import type { JsonPlan, JsonStep } from "../../src/plan/json.js";
import type { Op } from "../../src/plan/ops.js";
import { cli, clientOf, events, propertySettings, snapshotForeign, startSim, type Ours, type Sim } from "./_harness.js";

const OWNER = "prop";

// ---------------------------------------------------------------------------------------------
// Random configs

type QubeSpec = {
  class: "AppVM" | "TemplateVM" | "StandaloneVM";
  label: string;
  template?: string;
  pool?: string;
  properties: Record<string, string | number | boolean | null>;
  features: Record<string, string>;
  tags: string[];
  firewall?: Array<Record<string, string | number>>;
  protect?: boolean;
  root?: "empty";
};
type Config = { version: 1; owner: string; labels?: Record<string, string>; pools?: Record<string, Record<string, string>>; properties?: Record<string, string>; qubes: Record<string, QubeSpec | { adopt: true; tags?: string[]; features?: Record<string, string> }> };

const LABELS = ["red", "green", "blue", "purple", "c1", "c2"];
const COLOURS = ["0x112233", "0x445566"];

const featureMap = fc.dictionary(fc.constantFrom("service.cups", "service.crond", "x.mark"), fc.constantFrom("1", "", "yes"), { maxKeys: 2 });
const tagList = fc.uniqueArray(fc.constantFrom("work", "alpha", "beta"), { maxLength: 2 });
const firewall = fc.option(fc.constantFrom<Array<Record<string, string | number>>>([{ action: "drop" }], [{ action: "accept", proto: "tcp", dstports: 443 }, { action: "drop" }], []), { nil: undefined });

/** A config of owner `prop` over the names a1 a2 (AppVMs), t1 (a TemplateVM), n1 (a netvm), s1 (a StandaloneVM). */
const configArb: fc.Arbitrary<Config> = fc
  .record({
    labels: fc.subarray(["c1", "c2"]).chain((ls) => fc.tuple(...ls.map((l) => fc.constantFrom(...COLOURS).map((c) => [l, c] as const)))),
    pool: fc.boolean(),
    t1: fc.boolean(),
    n1: fc.boolean(),
    s1: fc.boolean(),
    apps: fc.subarray(["a1", "a2"]),
    adopt: fc.subarray(["personal", "untrusted"]),
    defaultNetvm: fc.constantFrom<string | undefined>(undefined, "sys-firewall", "n1"),
  })
  .chain((shape) => {
    const labels = new Set(["red", "green", "blue", "purple", ...shape.labels.map(([l]) => l)]);
    const label = fc.constantFrom(...LABELS.filter((l) => labels.has(l)));
    const templates = ["fedora-40", ...(shape.t1 ? ["t1"] : [])];
    const netvms: Array<string | null> = [null, "sys-firewall", ...(shape.n1 ? ["n1"] : [])];
    const pool = shape.pool ? fc.constantFrom<string | undefined>(undefined, "p1") : fc.constant(undefined);
    const common = fc.record({ label, features: featureMap, tags: tagList, firewall, protect: fc.constantFrom(false, false, false, true), memory: fc.option(fc.constantFrom(400, 800), { nil: undefined }), pool });
    const app = fc.tuple(common, fc.constantFrom(...templates), fc.constantFrom(...netvms)).map(([c, template, netvm]): QubeSpec => ({
      class: "AppVM",
      label: c.label,
      template,
      ...(c.pool !== undefined ? { pool: c.pool } : {}),
      properties: { netvm, ...(c.memory !== undefined ? { memory: c.memory } : {}) },
      features: c.features,
      tags: c.tags,
      ...(c.firewall !== undefined ? { firewall: c.firewall } : {}),
      ...(c.protect ? { protect: true } : {}),
    }));
    const qubes: Record<string, fc.Arbitrary<Config["qubes"][string]>> = {};
    for (const a of shape.apps) qubes[a] = app;
    if (shape.n1) qubes.n1 = app.map((q) => ({ ...q, properties: { ...q.properties, netvm: "sys-firewall", provides_network: true } }));
    if (shape.t1) qubes.t1 = common.map((c): QubeSpec => ({ class: "TemplateVM", root: "empty", label: c.label, properties: {}, features: c.features, tags: c.tags }));
    if (shape.s1) qubes.s1 = common.map((c): QubeSpec => ({ class: "StandaloneVM", root: "empty", label: c.label, properties: { netvm: null }, features: c.features, tags: c.tags, ...(c.pool !== undefined ? { pool: c.pool } : {}) }));
    for (const a of shape.adopt) qubes[a] = fc.record({ tags: tagList, features: featureMap }).map((x) => ({ adopt: true as const, ...x }));
    return fc.record(qubes).map(
      (qs): Config => ({
        version: 1,
        owner: OWNER,
        ...(shape.labels.length > 0 ? { labels: Object.fromEntries(shape.labels) } : {}),
        ...(shape.pool ? { pools: { p1: { driver: "file", dir_path: "/var/lib/qubes/p1" } } } : {}),
        ...(shape.defaultNetvm !== undefined && (shape.defaultNetvm !== "n1" || shape.n1) ? { properties: { default_netvm: shape.defaultNetvm } } : {}),
        qubes: qs,
      }),
    );
  });

// ---------------------------------------------------------------------------------------------
// Random starting systems

/** What is done to the system around the earlier apply, through the Admin API (foreign to the owner). */
type Foreign = {
  /** Qubes created by hand before anything: names the config also uses make conflicts. */
  qubes: Array<{ name: string; label: string }>;
  /** A label created by hand, maybe with the name of one the config declares. */
  label?: { name: string; colour: string };
  /** After the earlier apply: a foreign qube made to use one of the owner's qubes as its netvm. */
  usesOurs?: string;
};

const foreignArb: fc.Arbitrary<Foreign> = fc.record(
  {
    qubes: fc.uniqueArray(fc.record({ name: fc.constantFrom("a2", "f1", "f2"), label: fc.constantFrom("red", "green") }), { maxLength: 2, selector: (q) => q.name }),
    label: fc.record({ name: fc.constantFrom("c2", "c3"), colour: fc.constantFrom(...COLOURS) }),
    usesOurs: fc.constantFrom("n1", "a1"),
  },
  { requiredKeys: ["qubes"] },
);

let dir: string;
let n = 0;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "qiac-prop-"));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function configFile(c: Config): string {
  const path = join(dir, `c${n++}.yaml`);
  writeFileSync(path, JSON.stringify(c, null, 1));
  return path;
}

async function buildSystem(sim: Sim, foreign: Foreign, earlier: Config): Promise<{ earlierApplied: boolean }> {
  const c = clientOf(sim);
  try {
    if (foreign.label !== undefined) await c.label.create(foreign.label.name, foreign.label.colour);
    for (const q of foreign.qubes) await c.vm.create({ klass: "AppVM", name: q.name, label: q.label, template: "fedora-40" });
    const r = await cli(sim, ["apply", "--auto-approve", configFile(earlier)]);
    const earlierApplied = r.code === 0;
    // A foreign qube comes to use one of the owner's qubes, when the owner has it and it can serve.
    const listed = (await c.vm.list()).map((q) => q.name);
    if (foreign.usesOurs !== undefined && listed.includes(foreign.usesOurs) && listed.includes("f1")) {
      const provides = (await c.property.get({ vm: foreign.usesOurs }, "provides_network")).value === "True";
      if (provides) await c.property.set({ vm: "f1" }, "netvm", foreign.usesOurs);
    }
    return { earlierApplied };
  } finally {
    await c.close();
  }
}

// ---------------------------------------------------------------------------------------------
// The checks

type Ownership = { qubes: Set<string>; labels: Set<string>; pools: Set<string>; globals: Set<string> };

async function ownership(sim: Sim, config: Config): Promise<Ownership> {
  const c = clientOf(sim);
  try {
    const inv = readInventory(OWNER, await c.feature.list("dom0"));
    return {
      qubes: new Set([...Object.keys(config.qubes), ...inv.qubes, ...inv.intents]),
      labels: new Set([...Object.keys(config.labels ?? {}), ...inv.labels]),
      pools: new Set([...Object.keys(config.pools ?? {}), ...inv.pools]),
      globals: new Set(Object.keys(config.properties ?? {})),
    };
  } finally {
    await c.close();
  }
}

/** The qubes a config makes or keeps as netvms, and what they in turn use: apply may start these. */
function netvmChain(config: Config): Set<string> {
  const out = new Set<string>(["sys-firewall", "sys-net"]);
  for (const q of Object.values(config.qubes)) if ("properties" in q && typeof q.properties.netvm === "string") out.add(q.properties.netvm);
  return out;
}

/** Property 1: what each op touches, and each resource change, is the owner's. */
function foreignTouches(plan: JsonPlan, own: Ownership, config: Config): string[] {
  const bad: string[] = [];
  const mayStart = netvmChain(config);
  for (const step of plan.steps) {
    for (const op of step.ops as Op[]) {
      const c = opCall(op);
      const what = `${step.id}: ${c.method}+${c.arg} → ${c.dest}`;
      switch (op.op) {
        case "vm.create":
          if (!Object.hasOwn(config.qubes, op.name)) bad.push(what);
          break;
        case "label.create":
        case "label.remove":
          if (!own.labels.has(op.name)) bad.push(what);
          break;
        case "pool.add":
        case "pool.remove":
          if (!own.pools.has(op.name)) bad.push(what);
          break;
        case "property.set":
        case "property.reset":
          if (op.holder === "global" ? !own.globals.has(op.name) : !own.qubes.has(op.holder.vm)) bad.push(what);
          break;
        case "vm.start":
          if (!own.qubes.has(op.vm) && !mayStart.has(op.vm)) bad.push(what);
          break;
        case "feature.set":
        case "feature.remove":
          if (op.vm === "dom0" ? !op.name.startsWith(`qubes-iac.${OWNER}.`) : !own.qubes.has(op.vm)) bad.push(what);
          break;
        default:
          if ("vm" in op && !own.qubes.has(op.vm)) bad.push(what);
      }
    }
  }
  for (const rc of plan.resource_changes) {
    if (rc.action === "no-op" || rc.action === "create") continue;
    const [kind, ...rest] = rc.address.split(".");
    const name = rest.join(".");
    const mine = kind === "qube" ? own.qubes.has(name) : kind === "label" ? own.labels.has(name) : kind === "pool" ? own.pools.has(name) : true;
    if (!mine) bad.push(`${rc.address}: ${rc.action}`);
  }
  return bad;
}

/** Steps that must have finished before `id` runs: its dependencies, transitively. */
function before(plan: JsonPlan): (id: string) => Set<string> {
  const byId = new Map(plan.steps.map((s) => [s.id, s]));
  const memo = new Map<string, Set<string>>();
  const walk = (id: string): Set<string> => {
    const hit = memo.get(id);
    if (hit !== undefined) return hit;
    const out = new Set<string>();
    for (const d of (byId.get(id) as JsonStep).depends_on) {
      out.add(d);
      for (const x of walk(d)) out.add(x);
    }
    memo.set(id, out);
    return out;
  };
  return walk;
}

const VM_PROPERTIES = new Set([...Object.entries(QUBE_PROPERTIES), ...Object.entries(GLOBAL_PROPERTIES)].filter(([, p]) => p.type === "vm").map(([k]) => k));

/**
 * Property 2: every reference an op sets (a vm property, a created qube's template, label and pool,
 * a label property) names something that exists when the op runs, in any order the dependencies
 * allow: it existed before the plan and no step that removes it can run first, or a step that
 * makes it has finished (or it is made earlier in the same step).
 */
function danglingReferences(plan: JsonPlan, existing: { qubes: Set<string>; labels: Set<string>; pools: Set<string> }): string[] {
  const deps = before(plan);
  const makers = new Map<string, Array<{ step: string; index: number }>>();
  const removers = new Map<string, string[]>();
  const key = (kind: string, name: string): string => `${kind}:${name}`;
  for (const step of plan.steps) {
    (step.ops as Op[]).forEach((op, index) => {
      if (op.op === "vm.create") makers.set(key("qube", op.name), [...(makers.get(key("qube", op.name)) ?? []), { step: step.id, index }]);
      if (op.op === "label.create") makers.set(key("label", op.name), [...(makers.get(key("label", op.name)) ?? []), { step: step.id, index }]);
      if (op.op === "pool.add") makers.set(key("pool", op.name), [...(makers.get(key("pool", op.name)) ?? []), { step: step.id, index }]);
      if (op.op === "vm.remove") removers.set(key("qube", op.vm), [...(removers.get(key("qube", op.vm)) ?? []), step.id]);
      if (op.op === "label.remove") removers.set(key("label", op.name), [...(removers.get(key("label", op.name)) ?? []), step.id]);
      if (op.op === "pool.remove") removers.set(key("pool", op.name), [...(removers.get(key("pool", op.name)) ?? []), step.id]);
    });
  }
  const bad: string[] = [];
  for (const step of plan.steps) {
    (step.ops as Op[]).forEach((op, index) => {
      const refs: Array<[string, string]> = [];
      if (op.op === "vm.create") {
        refs.push(["label", op.label]);
        if (op.template !== undefined) refs.push(["qube", op.template]);
        if (op.pool !== undefined) refs.push(["pool", op.pool]);
      }
      if (op.op === "property.set" && op.value !== "") {
        if (VM_PROPERTIES.has(op.name) || op.name === "template") refs.push(["qube", op.value]);
        if (op.name === "label") refs.push(["label", op.value]);
      }
      for (const [kind, name] of refs) {
        if (kind === "qube" && name === "dom0") continue;
        const k = key(kind, name);
        const made = (makers.get(k) ?? []).some((m) => (m.step === step.id ? m.index < index : deps(step.id).has(m.step)));
        const there = (kind === "qube" ? existing.qubes : kind === "label" ? existing.labels : existing.pools).has(name);
        // Something that existed may only be removed by a step that waits for this one.
        const removedFirst = (removers.get(k) ?? []).some((r) => r !== step.id && !deps(r).has(step.id));
        if (!(made || (there && !removedFirst))) bad.push(`${step.id}: ${opCall(op).method}+${opCall(op).arg} refers to ${kind} ${name}`);
      }
    });
  }
  return bad;
}

// ---------------------------------------------------------------------------------------------

describe("the checks catch what they look for", () => {
  const step = (id: string, depends_on: string[], ops: Op[]): JsonStep => ({ id, address: id.slice(id.indexOf(":") + 1), kind: "create", wave: 1, depends_on, ops });
  const plan = (steps: JsonStep[], resource_changes: JsonPlan["resource_changes"] = []): JsonPlan => ({ steps, resource_changes }) as unknown as JsonPlan;
  const none = { qubes: new Set<string>(["fedora-40", "sys-firewall"]), labels: new Set(["red"]), pools: new Set<string>() };
  const createT1: Op = { op: "vm.create", class: "TemplateVM", name: "t1", label: "red" };
  const createA1: Op = { op: "vm.create", class: "AppVM", name: "a1", label: "red", template: "t1" };

  it("a reference to a qube made by a step it does not wait for", () => {
    expect(danglingReferences(plan([step("create:qube.t1", [], [createT1]), step("create:qube.a1", ["create:qube.t1"], [createA1])]), none)).toEqual([]);
    expect(danglingReferences(plan([step("create:qube.t1", [], [createT1]), step("create:qube.a1", [], [createA1])]), none)).toEqual(["create:qube.a1: admin.vm.Create.AppVM+t1 refers to qube t1"]);
  });

  it("a netvm set to a qube that a step not waiting for it removes, or that does not exist", () => {
    const setNetvm: Op = { op: "property.set", holder: { vm: "a1" }, name: "netvm", value: "n1" };
    const removeN1: Op = { op: "vm.remove", vm: "n1" };
    const withN1 = { ...none, qubes: new Set([...none.qubes, "n1", "a1"]) };
    expect(danglingReferences(plan([step("update:qube.a1", [], [setNetvm]), step("delete:qube.n1", ["update:qube.a1"], [removeN1])]), withN1)).toEqual([]);
    expect(danglingReferences(plan([step("update:qube.a1", [], [setNetvm]), step("delete:qube.n1", [], [removeN1])]), withN1)).toHaveLength(1);
    expect(danglingReferences(plan([step("update:qube.a1", [], [setNetvm])]), none)).toHaveLength(1);
  });

  it("an op on, or a change to, what is not the owner's", () => {
    const own: Ownership = { qubes: new Set(["a1"]), labels: new Set(), pools: new Set(), globals: new Set() };
    const config: Config = { version: 1, owner: OWNER, qubes: {} };
    expect(foreignTouches(plan([step("update:qube.a1", [], [{ op: "tag.set", vm: "a1", name: "x" }])]), own, config)).toEqual([]);
    expect(foreignTouches(plan([step("update:qube.f1", [], [{ op: "tag.set", vm: "f1", name: "x" }])]), own, config)).toHaveLength(1);
    expect(foreignTouches(plan([step("delete:label.c3", [], [{ op: "label.remove", name: "c3" }])]), own, config)).toHaveLength(1);
    expect(foreignTouches(plan([step("setup:ownership", [], [{ op: "feature.set", vm: "dom0", name: "qubes-iac.other.format", value: "1" }])]), own, config)).toHaveLength(1);
    expect(foreignTouches(plan([], [{ address: "qube.f1", action: "delete" } as JsonPlan["resource_changes"][number]]), own, config)).toEqual(["qube.f1: delete"]);
  });
});

describe("random configs on random systems", () => {
  it("plans touch only the owner's things, never refer ahead of what they make, and apply converges", async () => {
    const stats = { cases: 0, refusedConfig: 0, errored: 0, applied: 0, steps: 0, deletes: 0 };
    await fc.assert(
      fc.asyncProperty(foreignArb, configArb, configArb, async (foreign, earlier, config) => {
        stats.cases++;
        const sim = await startSim();
        try {
          await buildSystem(sim, foreign, earlier);
          const path = configFile(config);
          const planned = await cli(sim, ["plan", "--json", path]);
          if (planned.stdout === "") {
            // The config itself was refused (e.g. a reference the config rules reject): nothing to check.
            expect(planned.code).toBe(1);
            stats.refusedConfig++;
            return;
          }
          const plan = JSON.parse(planned.stdout) as JsonPlan;
          const own = await ownership(sim, config);
          expect(foreignTouches(plan, own, config)).toEqual([]);

          const c = clientOf(sim);
          const existing = { qubes: new Set((await c.vm.list()).map((q) => q.name)), labels: new Set(await c.label.list()), pools: new Set(await c.pool.list()) };
          await c.close();
          expect(danglingReferences(plan, existing)).toEqual([]);

          if (plan.errored) {
            stats.errored++;
            return;
          }
          stats.steps += plan.steps.length;
          stats.deletes += plan.steps.filter((s) => s.kind === "delete").length;
          const ours: Ours = { qubes: own.qubes, globals: own.globals, labels: own.labels, pools: own.pools, ownerPrefix: `qubes-iac.${OWNER}.` };
          const outside = await snapshotForeign(sim, ours, { explicitOnly: true, power: false });
          const applied = await cli(sim, ["apply", "--auto-approve", "--allow-destroy", "--json", path]);
          const summary = events(applied.stdout).find((e) => e.type === "apply_complete") as { ok: boolean; failed: Array<{ step: string; error: { class?: string } }>; skipped: unknown[] } | undefined;
          // A plan without errors applies in full (a pool still in use is refused by the plan, QIAC-E127).
          expect({ code: applied.code, summary }).toMatchObject({ code: 0, summary: { ok: true } });
          stats.applied++;
          expect((await cli(sim, ["plan", path])).stdout).toBe("No changes.\n");
          expect(await snapshotForeign(sim, ours, { explicitOnly: true, power: false })).toEqual(outside);
        } finally {
          await sim.stop();
        }
      }),
      propertySettings(30),
    );
    // The generators reach every branch: applied plans with deletions, and plans refused with errors.
    expect(stats.applied).toBeGreaterThan(stats.cases / 3);
    expect(stats.deletes).toBeGreaterThan(0);
    expect(stats.errored).toBeGreaterThan(0);
    if (process.env.QIAC_PROPERTY_STATS) console.log(JSON.stringify(stats));
  }, 120_000);
});
