// The diff of the config-wide resources: custom labels, storage pools and global properties.
// Labels and pools are created and deleted only when the inventory says they are ours; global
// properties are never deleted, only set or reset. Pure; reads only the DiffContext.

import { locate, type TopField } from "../model/desired.js";
import { parseQubesBool } from "../model/qubes-rules.js";
import { ENTRY_OWNED } from "../model/ownership.js";
import type { DiffContext } from "./_context.js";
import type { Action } from "./action.js";
import { newResourceChange, stepId, type Attributes, type PlannedStep, type ResourceChange } from "./changes.js";
import { planDiagnostic } from "./codes.js";
import { lackedBy } from "./release-rules.js";
import { compareProperty, displayProperty } from "./normalize.js";
import { checkedValue, poolFingerprint, type Op } from "./ops.js";
import { otherOwnerEntries } from "./diff-qube.js";
import { describeReferrer, findReferrers, isReleased, type ReleaseContext } from "./references.js";

export type SharedDiff = { changes: ResourceChange[]; steps: PlannedStep[] };

const change = (type: "label" | "pool" | "properties", name: string | null, action: Action): ResourceChange =>
  newResourceChange(type, name, name === null ? type : `${type}.${name}`, action);

const step = (kind: PlannedStep["kind"], address: string, ops: Op[], extra: Partial<PlannedStep> = {}): PlannedStep => ({
  id: stepId(kind, address),
  address,
  kind,
  ops,
  uses: [],
  unreferences: [],
  after: [],
  ...extra,
});

// ---------------------------------------------------------------------------------------------
// Labels

export function diffLabels(ctx: DiffContext, release: ReleaseContext): SharedDiff {
  const { desired, actual, inventory, names } = ctx;
  const out: SharedDiff = { changes: [], steps: [] };
  if (desired.labels.size === 0 && inventory.labels.size === 0) return out;
  const labels = actual.labels;
  if (labels === undefined) throw new Error("internal: labels were not read");

  const unreleasedUsers = (name: string): string[] =>
    findReferrers(actual, "label", name)
      .filter((r) => !isReleased(r, "label", name, release))
      .map(describeReferrer);

  for (const l of [...desired.labels.values()].sort((a, b) => (a.name < b.name ? -1 : 1))) {
    const address = `label.${l.name}`;
    const owned = inventory.labels.has(l.name);
    const actualLabel = labels.get(l.name);
    if (actualLabel === undefined) {
      const c = change("label", l.name, "create");
      const taken = otherOwnerEntries(ctx, "label", l.name, l.at, c.reasons);
      if (!taken.ok) continue;
      ctx.addCheck({ check: "label", name: l.name, expect: { absent: true } });
      c.after = { colour: l.colour };
      out.changes.push(c);
      const ops: Op[] = [...taken.ops];
      if (!owned) ops.push({ op: "feature.set", vm: "dom0", name: names.label(l.name), value: ENTRY_OWNED });
      ops.push({ op: "label.create", name: l.name, colour: l.colour });
      out.steps.push(step("create", address, ops));
      continue;
    }
    const colour = actualLabel.colour?.toLowerCase();
    const c = change("label", l.name, "no-op");
    c.before = { colour: colour ?? null };
    c.after = { colour: l.colour };
    if (colour === undefined) {
      ctx.addCheck({ check: "label", name: l.name, expect: { present: true } });
      ctx.diagnostics.push(
        planDiagnostic("QIAC-W102", `label ${l.name}: qubesd does not tell its colour (it answers so for a label created since it last started); it is assumed to match`, {
          location: l.at,
          address,
        }),
      );
      c.after = { colour: null };
      out.changes.push(c);
      continue;
    }
    ctx.addCheck({ check: "label", name: l.name, expect: checkedValue(colour) });
    if (colour === l.colour) {
      if (!owned) c.reasons.push(`exists and is not managed by ${desired.owner}: used as it is`);
      out.changes.push(c);
      continue;
    }
    if (!owned) {
      ctx.diagnostics.push(
        planDiagnostic("QIAC-E114", `label ${l.name} exists with colour ${colour} and is not managed by ${desired.owner}`, {
          location: locate(l, "colour"),
          address,
          hint: `use its colour (${colour}) or another label name`,
        }),
      );
      continue;
    }
    const users = unreleasedUsers(l.name);
    if (users.length > 0) {
      ctx.diagnostics.push(
        planDiagnostic("QIAC-E113", `label ${l.name}: Qubes cannot change a label's colour, and replacing it needs it unused, but it is used by ${users.join(", ")}`, {
          location: locate(l, "colour"),
          address,
          hint: "move those qubes to another label first, or keep the colour",
        }),
      );
      continue;
    }
    c.action = "replace";
    c.reasons.push("Qubes cannot change a label's colour: the label is removed and created again");
    out.changes.push(c);
    const del = stepId("delete", address);
    out.steps.push(step("delete", address, [{ op: "label.remove", name: l.name }]));
    out.steps.push(step("create", address, [{ op: "label.create", name: l.name, colour: l.colour }], { after: [del] }));
  }

  for (const name of [...inventory.labels].sort()) {
    if (desired.labels.has(name)) continue;
    const address = `label.${name}`;
    ctx.addCheck({ check: "feature", vm: "dom0", name: names.label(name), expect: { present: true } });
    const entryRemoval: Op = { op: "feature.remove", vm: "dom0", name: names.label(name) };
    const actualLabel = labels.get(name);
    if (actualLabel === undefined) {
      ctx.addCheck({ check: "label", name, expect: { absent: true } });
      const c = change("label", name, "forget");
      c.before = { inventory: names.label(name) };
      c.reasons.push("no longer exists and is not in the config");
      out.changes.push(c);
      out.steps.push(step("forget", address, [entryRemoval]));
      continue;
    }
    ctx.addCheck({ check: "label", name, expect: actualLabel.colour === undefined ? { present: true } : checkedValue(actualLabel.colour.toLowerCase()) });
    const users = unreleasedUsers(name);
    if (users.length > 0) {
      ctx.diagnostics.push(
        planDiagnostic("QIAC-E104", `label ${name} is no longer in the config but is still used by ${users.join(", ")}`, {
          address,
          hint: "give those qubes another label (in the config, or by hand for qubes it does not manage), or keep the label",
        }),
      );
    }
    const c = change("label", name, "delete");
    c.before = { colour: actualLabel.colour?.toLowerCase() ?? null };
    c.reasons.push(`not in the config; managed by ${desired.owner}`);
    out.changes.push(c);
    out.steps.push(step("delete", address, [{ op: "label.remove", name }, entryRemoval]));
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Pools

/** Pool parameter values compare as Qubes reads them: booleans in any spelling, the rest exactly. */
function sameParam(want: string, have: string | undefined): boolean {
  if (have === undefined) return false;
  if (want === have) return true;
  const a = parseQubesBool(want);
  return a !== null && a === parseQubesBool(have);
}

export function diffPools(ctx: DiffContext): SharedDiff {
  const { desired, actual, inventory, names } = ctx;
  const out: SharedDiff = { changes: [], steps: [] };
  if (desired.pools.size === 0 && inventory.pools.size === 0) return out;
  const poolNames = actual.poolNames;
  if (poolNames === undefined) throw new Error("internal: pools were not read");

  for (const p of [...desired.pools.values()].sort((a, b) => (a.name < b.name ? -1 : 1))) {
    const address = `pool.${p.name}`;
    const owned = inventory.pools.has(p.name);
    const after: Attributes = { driver: p.driver };
    for (const [k, v] of p.params) after[`params.${k}`] = v;
    if (!poolNames.has(p.name)) {
      const c = change("pool", p.name, "create");
      const taken = otherOwnerEntries(ctx, "pool", p.name, p.at, c.reasons);
      if (!taken.ok) continue;
      ctx.addCheck({ check: "pool", name: p.name, expect: { absent: true } });
      c.after = after;
      out.changes.push(c);
      const ops: Op[] = [...taken.ops];
      if (!owned) ops.push({ op: "feature.set", vm: "dom0", name: names.pool(p.name), value: ENTRY_OWNED });
      ops.push({ op: "pool.add", driver: p.driver, name: p.name, params: Object.fromEntries(p.params) });
      out.steps.push(step("create", address, ops));
      continue;
    }
    const ap = actual.pools.get(p.name);
    if (ap === undefined) throw new Error(`internal: pool '${p.name}' was not read`);
    ctx.addCheck({ check: "pool", name: p.name, expect: checkedValue(poolFingerprint(ap.driver, ap.params)) });
    const before: Attributes = { driver: ap.driver };
    for (const k of p.params.keys()) before[`params.${k}`] = ap.params.get(k) ?? null;
    const differs = ap.driver !== p.driver || [...p.params].some(([k, v]) => !sameParam(v, ap.params.get(k)));
    if (differs) {
      const diffs = [
        ...(ap.driver !== p.driver ? [`driver ${ap.driver} → ${p.driver}`] : []),
        ...[...p.params].filter(([k, v]) => !sameParam(v, ap.params.get(k))).map(([k, v]) => `${k} ${ap.params.get(k) ?? "(unset)"} → ${v}`),
      ];
      ctx.diagnostics.push(
        owned
          ? planDiagnostic("QIAC-E120", `pool ${p.name} differs from the config (${diffs.join(", ")}) and a pool cannot be changed in place`, {
              location: p.at,
              address,
              hint: "Qubes has no call to change a pool's settings; move the qubes off it and remove it by hand, or match the config to it",
            })
          : planDiagnostic("QIAC-E115", `pool ${p.name} exists with other settings (${diffs.join(", ")}) and is not managed by ${desired.owner}`, {
              location: p.at,
              address,
              hint: "match the config to the existing pool or use another pool name",
            }),
      );
      continue;
    }
    const c = change("pool", p.name, "no-op");
    c.before = before;
    c.after = after;
    if (!owned) c.reasons.push(`exists and is not managed by ${desired.owner}: used as it is`);
    out.changes.push(c);
  }

  for (const name of [...inventory.pools].sort()) {
    if (desired.pools.has(name)) continue;
    const address = `pool.${name}`;
    ctx.addCheck({ check: "feature", vm: "dom0", name: names.pool(name), expect: { present: true } });
    const entryRemoval: Op = { op: "feature.remove", vm: "dom0", name: names.pool(name) };
    if (!poolNames.has(name)) {
      ctx.addCheck({ check: "pool", name, expect: { absent: true } });
      const c = change("pool", name, "forget");
      c.before = { inventory: names.pool(name) };
      c.reasons.push("no longer exists and is not in the config");
      out.changes.push(c);
      out.steps.push(step("forget", address, [entryRemoval]));
      continue;
    }
    const ap = actual.pools.get(name);
    if (ap === undefined) throw new Error(`internal: pool '${name}' was not read`);
    ctx.addCheck({ check: "pool", name, expect: checkedValue(poolFingerprint(ap.driver, ap.params)) });
    const c = change("pool", name, "delete");
    c.before = { driver: ap.driver };
    c.destroysData = true;
    c.reasons.push(`not in the config; managed by ${desired.owner} (Qubes refuses to remove a pool that still holds volumes)`);
    out.changes.push(c);
    out.steps.push(step("delete", address, [{ op: "pool.remove", name }, entryRemoval]));
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Global properties

export function diffGlobals(ctx: DiffContext): SharedDiff {
  const { desired, actual } = ctx;
  const out: SharedDiff = { changes: [], steps: [] };
  if (desired.properties.size === 0) return out;
  const globals = actual.globals;
  if (globals === undefined) throw new Error("internal: global properties were not read");
  const c = change("properties", null, "no-op");
  const before: Attributes = {};
  const after: Attributes = {};
  for (const [g, v] of desired.properties) {
    const field: TopField = `properties.${g}`;
    const location = locate(desired, field);
    const ag = globals.get(g);
    if (ag === undefined) {
      ctx.diagnostics.push(planDiagnostic("QIAC-E108", `Qubes has no global property '${g}'${lackedBy(ctx.actual, "global", g)}`, { location, address: "properties" }));
      continue;
    }
    ctx.addCheck({ check: "property", holder: "global", name: g, default: ag.isDefault, value: ag.raw });
    before[g] = displayProperty(ag.type, ag.raw);
    if (ag.isDefault) c.beforeDefault.push(g);
    const cmp = compareProperty(v, ag);
    const isPool = g.startsWith("default_pool");
    const refName = (text: string): string | undefined => (text === "" ? undefined : ag.type === "vm" ? `qube.${text}` : isPool ? `pool.${text}` : undefined);
    switch (cmp.kind) {
      case "equal":
        after[g] = before[g] ?? null;
        if (ag.isDefault) c.afterDefault.push(g);
        break;
      case "set": {
        after[g] = displayProperty(ag.type, cmp.payload);
        const uses = refName(cmp.payload);
        const old = refName(ag.raw);
        const listed = ag.type === "vm" && cmp.payload !== "" && !desired.qubes.has(cmp.payload) ? actual.listing.get(cmp.payload) : undefined;
        if (listed) ctx.addCheck({ check: "qube", vm: listed.name, class: listed.klass });
        if (ag.type === "vm" && cmp.payload !== "" && !ctx.qubeKnown(cmp.payload)) {
          ctx.diagnostics.push(planDiagnostic("QIAC-E107", `global ${g}: qube '${cmp.payload}' is neither in the config nor in the system`, { location, address: "properties" }));
        }
        if (isPool && !desired.pools.has(cmp.payload) && !(actual.poolNames?.has(cmp.payload) ?? false)) {
          ctx.diagnostics.push(planDiagnostic("QIAC-E107", `global ${g}: pool '${cmp.payload}' is neither in the config nor in the system`, { location, address: "properties" }));
        }
        out.steps.push({
          id: stepId("update", "properties", g),
          address: "properties",
          kind: "update",
          ops: [{ op: "property.set", holder: "global", name: g, value: cmp.payload }],
          uses: uses === undefined ? [] : [uses],
          unreferences: old === undefined ? [] : [old],
          after: [],
        });
        break;
      }
      case "reset": {
        after[g] = null;
        c.afterDefault.push(g);
        const old = refName(ag.raw);
        out.steps.push({
          id: stepId("update", "properties", g),
          address: "properties",
          kind: "update",
          ops: [{ op: "property.reset", holder: "global", name: g }],
          uses: [],
          unreferences: old === undefined ? [] : [old],
          after: [],
        });
        break;
      }
      case "invalid":
        ctx.diagnostics.push(planDiagnostic("QIAC-E109", `global ${g} is of type ${ag.type} in Qubes: ${cmp.error}`, { location, address: "properties" }));
        break;
      default: {
        const never: never = cmp;
        throw new Error(`unhandled comparison ${String(never)}`);
      }
    }
  }
  c.before = before;
  c.after = after;
  if (out.steps.length > 0) c.action = "update";
  out.changes.push(c);
  return out;
}
