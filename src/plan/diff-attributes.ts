// The attribute-by-attribute diff of an existing qube against its desired state: label,
// template, properties, features, tags, firewall, volume sizes and the protect record. It
// accumulates before/after values, the ops (ownership records, bound to the qube's UUID,
// written before what they describe, removed after it) and the references gained or dropped;
// power and ownership ops are the caller's. Only what the config names or a record of this qube
// claims is touched: what Qubes gave the qube (a DispVM's copy of its template) stays. Pure.

import { formatAddress, labelAddress } from "../model/address.js";
import { locate, TEMPLATE_BASED_CLASSES, type DesiredQube, type QubeClass } from "../model/desired.js";
import { RECORD_PREFIX, type QubeRecords, type RecordKey } from "../model/ownership.js";
import type { DetailedQube, DiffContext } from "./_context.js";
import type { Attributes } from "./changes.js";
import { planDiagnostic } from "./codes.js";
import { compareProperty, displayProperty } from "./normalize.js";
import { checkedValue, firewallFingerprint, type Op } from "./ops.js";
import { diffDevices } from "./diff-devices.js";
import { lackedBy } from "./release-rules.js";

/** Qubes' default firewall: what a qube has when qubes-iac stops managing its rules. */
export const DEFAULT_FIREWALL: readonly string[] = ["action=accept"];

const sorted = (xs: Iterable<string>): string[] => [...xs].sort();
const sameList = (a: readonly string[], b: readonly string[]): boolean => a.length === b.length && a.every((x, i) => x === b[i]);

export type Acc = {
  before: Attributes;
  after: Attributes;
  beforeDefault: string[];
  afterDefault: string[];
  ops: Op[];
  /** Changed attribute keys. */
  changed: string[];
  /** Changed keys that need the qube halted on this release whatever changeTiming says of them (diff-devices.ts). */
  halted: string[];
  uses: string[];
  unreferences: string[];
};

export function newAcc(): Acc {
  return { before: {}, after: {}, beforeDefault: [], afterDefault: [], ops: [], changed: [], halted: [], uses: [], unreferences: [] };
}

export function diffAttributes(ctx: DiffContext, q: DesiredQube, a: DetailedQube, rec: QubeRecords, acc: Acc, uuid: string): void {
  const { names } = ctx;
  const vm = q.name;
  const owner = ctx.desired.owner;
  const setRecord = (record: RecordKey): Op => ({ op: "record.set", vm, owner, uuid, record });
  const removeRecord = (record: RecordKey): Op => ({ op: "record.remove", vm, owner, uuid, record });
  const recordCheck = (record: RecordKey): void => {
    const name = names.record(uuid, record);
    ctx.addCheck({ check: "feature", vm, name, expect: a.featureNames.has(name) ? { present: true } : { absent: true } });
  };
  const address = `qube.${vm}`;
  const prop = (p: string) => a.properties.get(p);

  if (q.label !== undefined) {
    const cur = prop("label")?.raw ?? "";
    acc.before.label = cur;
    acc.after.label = q.label;
    ctx.addCheck({ check: "property", holder: { vm }, name: "label", default: prop("label")?.isDefault ?? false, value: cur });
    if (cur !== q.label) {
      acc.ops.push({ op: "property.set", holder: { vm }, name: "label", value: q.label });
      acc.changed.push("label");
      acc.uses.push(formatAddress(labelAddress(q.label)));
      if (cur !== "") acc.unreferences.push(formatAddress(labelAddress(cur)));
    }
  }

  if (q.template !== undefined && TEMPLATE_BASED_CLASSES.has(a.klass as QubeClass)) {
    const t = prop("template");
    const cur = t?.raw ?? "";
    acc.before.template = cur === "" ? null : cur;
    acc.after.template = q.template;
    ctx.addCheck({ check: "property", holder: { vm }, name: "template", default: t?.isDefault ?? false, value: cur });
    if (cur !== q.template) {
      acc.ops.push({ op: "property.set", holder: { vm }, name: "template", value: q.template });
      acc.changed.push("template");
      acc.uses.push(`qube.${q.template}`);
      if (cur !== "") acc.unreferences.push(`qube.${cur}`);
    }
  }

  for (const [p, v] of q.properties) {
    const key = `properties.${p}`;
    const ap = prop(p);
    if (ap === undefined) {
      ctx.diagnostics.push(
        planDiagnostic("QIAC-E108", `qube ${vm} (${a.klass}) has no property '${p}'${lackedBy(ctx.actual, "qube", p, a.klass)}`, { location: locate(q, key), address }),
      );
      continue;
    }
    ctx.addCheck({ check: "property", holder: { vm }, name: p, default: ap.isDefault, value: ap.raw });
    acc.before[key] = displayProperty(ap.type, ap.raw);
    if (ap.isDefault) acc.beforeDefault.push(key);
    const cmp = compareProperty(v, ap);
    switch (cmp.kind) {
      case "equal":
        acc.after[key] = acc.before[key] ?? null;
        if (ap.isDefault) acc.afterDefault.push(key);
        break;
      case "set":
        acc.after[key] = displayProperty(ap.type, cmp.payload);
        acc.ops.push({ op: "property.set", holder: { vm }, name: p, value: cmp.payload });
        acc.changed.push(key);
        if (ap.type === "vm" && cmp.payload !== "") acc.uses.push(`qube.${cmp.payload}`);
        if (ap.type === "vm" && ap.raw !== "") acc.unreferences.push(`qube.${ap.raw}`);
        break;
      case "reset":
        acc.after[key] = null;
        acc.afterDefault.push(key);
        acc.ops.push({ op: "property.reset", holder: { vm }, name: p });
        acc.changed.push(key);
        if (ap.type === "vm" && ap.raw !== "") acc.unreferences.push(`qube.${ap.raw}`);
        break;
      case "invalid":
        ctx.diagnostics.push(
          planDiagnostic("QIAC-E109", `qube ${vm}: ${p} is of type ${ap.type} in Qubes: ${cmp.error}`, { location: locate(q, key), address }),
        );
        break;
      default: {
        const never: never = cmp;
        throw new Error(`unhandled comparison ${String(never)}`);
      }
    }
  }

  // Features: the config's, then those qubes-iac set earlier and the config no longer names.
  const featureKeys = [...q.features.keys(), ...sorted(rec.features).filter((f) => !q.features.has(f))];
  for (const f of featureKeys) {
    const key = `features.${f}`;
    if (f.startsWith(RECORD_PREFIX)) {
      ctx.diagnostics.push(
        planDiagnostic("QIAC-E119", `qube ${vm}: feature '${f}' is in qubes-iac's reserved prefix '${RECORD_PREFIX}'`, { location: locate(q, key), address }),
      );
      continue;
    }
    const present = a.featureNames.has(f);
    const cur = present ? (a.features.get(f) ?? "") : null;
    const want = q.features.has(f) ? (q.features.get(f) ?? null) : null;
    const owned = rec.features.has(f);
    ctx.addCheck({ check: "feature", vm, name: f, expect: checkedValue(cur ?? undefined) });
    recordCheck(`feature.${f}`);
    acc.before[key] = cur;
    acc.after[key] = want;
    if (want !== null) {
      if (cur !== want) {
        if (!owned) acc.ops.push(setRecord(`feature.${f}`));
        acc.ops.push({ op: "feature.set", vm, name: f, value: want });
        acc.changed.push(key);
      }
    } else {
      if (present) {
        acc.ops.push({ op: "feature.remove", vm, name: f });
        acc.changed.push(key);
      }
      if (owned) acc.ops.push(removeRecord(`feature.${f}`));
    }
  }

  // Tags: the owner tag (handled by ownershipOps), the config's, and those qubes-iac set earlier.
  const relevant = new Set([...q.tags, ...rec.tags, names.ownerTag]);
  for (const t of sorted(relevant)) {
    ctx.addCheck({ check: "tag", vm, name: t, present: a.tags.has(t) });
    if (t !== names.ownerTag) recordCheck(`tag.${t}`);
  }
  acc.before.tags = sorted([...relevant].filter((t) => a.tags.has(t)));
  acc.after.tags = sorted([...q.tags, names.ownerTag]);
  for (const t of sorted(q.tags)) {
    if (a.tags.has(t)) continue;
    if (!rec.tags.has(t)) acc.ops.push(setRecord(`tag.${t}`));
    acc.ops.push({ op: "tag.set", vm, name: t });
  }
  for (const t of sorted(rec.tags)) {
    if (q.tags.has(t)) continue;
    if (a.tags.has(t)) acc.ops.push({ op: "tag.remove", vm, name: t });
    acc.ops.push(removeRecord(`tag.${t}`));
  }
  if (!sameList(acc.before.tags, acc.after.tags)) acc.changed.push("tags");

  // Firewall: the config's list replaces the current one. When the config drops it, the rules
  // qubes-iac set go back to Qubes' default — except on a DispVM, whose starting point is its
  // template's list (qubes/vm/dispvm.py copies it): there the rules stay, only the record goes.
  if (q.firewall !== undefined || rec.firewall) {
    const cur = a.firewall;
    if (cur === undefined) throw new Error(`internal: the firewall of qube '${vm}' was not read`);
    ctx.addCheck({ check: "firewall", vm, expect: firewallFingerprint(cur) });
    recordCheck("firewall");
    const want = q.firewall ?? (a.klass === "DispVM" ? cur : DEFAULT_FIREWALL);
    acc.before.firewall = [...cur];
    acc.after.firewall = [...want];
    if (!sameList(cur, want)) {
      if (q.firewall !== undefined && !rec.firewall) acc.ops.push(setRecord("firewall"));
      acc.ops.push({ op: "firewall.set", vm, rules: [...want] });
      acc.changed.push("firewall");
    }
    if (q.firewall === undefined) acc.ops.push(removeRecord("firewall"));
  }

  for (const [v, { size }] of q.volumes) {
    const key = `volumes.${v}.size`;
    const av = a.volumes.get(v);
    if (av === undefined) throw new Error(`internal: volume ${v} of qube '${vm}' was not read`);
    ctx.addCheck({ check: "volume-size", vm, volume: v, size: av.size.toString() });
    acc.before[key] = av.size.toString();
    acc.after[key] = String(size);
    const want = BigInt(size);
    if (want < av.size) {
      ctx.diagnostics.push(
        planDiagnostic("QIAC-E110", `qube ${vm}: volume ${v} is ${av.size} bytes; it cannot shrink to ${size}`, {
          location: locate(q, `volumes.${v}`),
          address,
          hint: `give at least ${av.size}`,
        }),
      );
    } else if (want > av.size) {
      acc.ops.push({ op: "volume.resize", vm, volume: v, size: want.toString() });
      acc.changed.push(key);
    }
  }

  const virtMode = prop("virt_mode");
  diffDevices(ctx, q, { devices: a.devices ?? new Map(), owned: rec.devices, uuid, ...(virtMode !== undefined ? { virtMode } : {}) }, acc);
  for (const [, d] of q.devices ?? []) if (d.backend !== "dom0") acc.uses.push(`qube.${d.backend}`);

  // protect is recorded on the qube; only an explicit `protect: false` lifts the record.
  if (q.protect || rec.protect || q.locations.has("protect")) {
    const want = q.protect || (rec.protect && !q.locations.has("protect"));
    recordCheck("protect");
    acc.before.protect = String(rec.protect);
    acc.after.protect = String(want);
    if (want !== rec.protect) {
      acc.ops.push(want ? setRecord("protect") : removeRecord("protect"));
      acc.changed.push("protect");
    }
  }
}
