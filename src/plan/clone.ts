// The part of a create that `clone:` adds (src/model/clone.ts says what qvm-clone copies): the
// source's attributes the config does not set itself, the CloneFrom/CloneTo pair of each volume
// to copy, and — for a `file`-pool source that will not be halted — its shutdown and restart
// (with --allow-restart) or a located error. Also the two checks of item "no empty disks": a
// TemplateVM or StandaloneVM created without `clone:` needs `root: empty`, and a template that
// exists nowhere prints how to install it. Pure; reads only the DiffContext.

import type { ActualProperty, CloneSource } from "../model/actual.js";
import { cloneVolumes, copiedFeature, copiedTag, HALTED_COPY_DRIVERS, NOT_COPIED_PROPERTIES, type CloneVolume } from "../model/clone.js";
import { locate, type DesiredQube, type QubeClass } from "../model/desired.js";
import { PROHIBITED_FEATURES } from "../model/qubes-rules.js";
import { classesOf, QUBE_PROPERTIES, UNSETTABLE_QUBE_PROPERTIES } from "../config/catalog.js";
import type { DiffContext } from "./_context.js";
import type { Attributes } from "./changes.js";
import { planDiagnostic } from "./codes.js";
import { displayProperty, payloadOf, desiredType } from "./normalize.js";
import type { Op } from "./ops.js";
import { devicesOfSource } from "./diff-devices.js";
import { deviceRecordKey } from "../model/devices.js";

/** One attribute a clone copies from its source, as ops of the new qube and as the plan shows it. */
export type CopiedItem = { key: string; shown: string | string[] | null; ops: Op[]; uses?: string };

/** What a source gives its copy: attributes by plan key, and the volumes with what the plan knows of them. */
type SourceAttributes = {
  properties: Map<string, { type: ActualProperty["type"]; raw: string }>;
  features: Map<string, string>;
  tags: Set<string>;
  firewall?: readonly string[];
};

/**
 * The device assignments a copy takes with `clone_devices: true` (qubesadmin/app.py clone_vm
 * copies a source's assignments unless told not to; qubes-iac only when the config says so, since
 * a cloned sys-net must not claim the same NIC by surprise): the source's as it holds them (read
 * with it, src/plan/clone-reader.ts) or, for a source this plan creates, as its config gives them.
 * The copy's own `devices:` win port by port. They join the copy's desired assignments for its
 * create, so the device diff assigns them like any other (release rules, PCI checks, loosening
 * marks); like every copied attribute they are not managed afterwards: `unrecord` names their
 * ownership records, which the create leaves out (the config does not list them, so a later plan
 * must neither keep them nor detach them). `keys`: the plan keys copied (shown `(from SOURCE)`).
 */
export function withClonedDevices(ctx: DiffContext, q: DesiredQube): { qube: DesiredQube; keys: string[]; unrecord: Set<string> } {
  if (q.cloneDevices !== true || q.clone === undefined) return { qube: q, keys: [], unrecord: new Set() };
  const read = ctx.actual.cloneSources?.get(q.clone)?.devices;
  const source = read !== undefined ? devicesOfSource(read) : new Map(ctx.desired.qubes.get(q.clone)?.devices ?? []);
  const own = q.devices ?? new Map();
  const copied = [...source].filter(([k]) => !own.has(k));
  if (copied.length === 0) return { qube: q, keys: [], unrecord: new Set() };
  return {
    qube: { ...q, devices: new Map([...copied, ...own]) },
    keys: copied.map(([k]) => k),
    unrecord: new Set(copied.map(([, d]) => deviceRecordKey(d.devclass, d.backend, d.port))),
  };
}

/** The create's ops without the ownership records of what it copies (withClonedDevices). */
export const withoutRecords = (ops: Op[], unrecord: ReadonlySet<string>): Op[] => (unrecord.size === 0 ? ops : ops.filter((o) => !(o.op === "record.set" && unrecord.has(o.record))));

/** The plan's clone of one qube: copied attributes, volume ops, power ops around them, display. */
export type PlannedClone = {
  copied: CopiedItem[];
  /** The source's shutdown (when it must be halted and --allow-restart), CloneFrom/CloneTo pairs, its start again. */
  volumeOps: Op[];
  after: Attributes;
  /** The plan keys whose values come from the source (`tags`: the copied ones among them, in `copiedTags`). */
  fromSource: string[];
  copiedTags: string[];
  reasons: string[];
  uses: string[];
};

const GIB = 1024 ** 3;
const MIB = 1024 ** 2;
/** A size as the plan shows it: `10.0 GiB`, `512 MiB`. */
export function showSize(bytes: bigint): string {
  const n = Number(bytes);
  return n >= GIB ? `${(n / GIB).toFixed(1)} GiB` : `${Math.round(n / MIB)} MiB`;
}

/** The class a source has or will have: the config's (it is created or adopted) or the system's. */
function sourceClass(ctx: DiffContext, name: string): string | undefined {
  return ctx.desired.qubes.get(name)?.class ?? ctx.actual.listing.get(name)?.klass;
}

/** A property of the source that comes along: set (not default), writable, and one the new class has. */
function copiedProperty(name: string, target: QubeClass, sameClass: boolean): boolean {
  if (NOT_COPIED_PROPERTIES.has(name) || UNSETTABLE_QUBE_PROPERTIES[name] !== undefined) return false;
  const spec = QUBE_PROPERTIES[name];
  return spec === undefined ? sameClass : classesOf(spec).includes(target);
}

/** What the source gives, read from the system or, for a source this plan creates, from its config (and its own source). */
function sourceAttributes(ctx: DiffContext, name: string, depth = 0): SourceAttributes {
  const read = ctx.actual.cloneSources?.get(name);
  const out: SourceAttributes = read !== undefined ? readAttributes(read) : { properties: new Map(), features: new Map(), tags: new Set() };
  // A source of the config reaches its config's values before it is copied (the copy's step comes after its own).
  const d = ctx.desired.qubes.get(name);
  if (d === undefined) return out;
  // A source created by this plan is itself a copy when it has a source: what it copies comes too.
  if (read === undefined && d.clone !== undefined && depth < 8 && !ctx.actual.listing.has(name)) {
    const inner = sourceAttributes(ctx, d.clone, depth + 1);
    for (const [k, v] of inner.properties) out.properties.set(k, v);
    for (const [k, v] of inner.features) out.features.set(k, v);
    for (const t of inner.tags) out.tags.add(t);
    if (inner.firewall !== undefined) out.firewall = inner.firewall;
  }
  for (const [p, v] of d.properties) {
    if (v.kind === "default") out.properties.delete(p);
    else out.properties.set(p, { type: desiredType(v), raw: payloadOf(v) });
  }
  for (const [f, v] of d.features) {
    if (v === null) out.features.delete(f);
    else out.features.set(f, v);
  }
  for (const t of d.tags) out.tags.add(t);
  if (d.firewall !== undefined) out.firewall = d.firewall;
  return out;
}

function readAttributes(s: CloneSource): SourceAttributes {
  const properties = new Map<string, { type: ActualProperty["type"]; raw: string }>();
  for (const [p, v] of s.properties) if (!v.isDefault) properties.set(p, { type: v.type, raw: v.raw });
  const firewall = s.firewall.length === 1 && s.firewall[0] === "action=accept" ? undefined : s.firewall;
  return { properties, features: new Map(s.features), tags: new Set(s.tags), ...(firewall !== undefined ? { firewall } : {}) };
}

/** A volume's size once this plan made its qube: the config's size, or its own source's (a copy has the size of what it copies). */
function plannedSize(ctx: DiffContext, name: string, volume: CloneVolume, depth = 0): bigint | undefined {
  const read = ctx.actual.cloneSources?.get(name)?.volumes.get(volume)?.size;
  if (read !== undefined) return read;
  const d = ctx.desired.qubes.get(name);
  const sized = d?.volumes.get(volume)?.size;
  if (sized !== undefined) return BigInt(sized);
  return d?.clone !== undefined && depth < 8 && !ctx.actual.listing.has(name) ? plannedSize(ctx, d.clone, volume, depth + 1) : undefined;
}

/**
 * Whether the source will be running when its volumes are copied: as read, or — for a source this
 * plan creates or changes — as its config's `state` leaves it.
 */
function sourceRunsAtCopy(ctx: DiffContext, name: string): boolean {
  const d = ctx.desired.qubes.get(name);
  if (d?.state !== undefined) return d.state !== "halted";
  const listed = ctx.actual.listing.get(name);
  return listed !== undefined && listed.power !== "Halted";
}

/**
 * The clone part of creating `q` (which has `clone:`), or undefined after a located error. The
 * source must exist or be created by this plan (its create step comes first: `uses`).
 */
export function planClone(ctx: DiffContext, q: DesiredQube, klass: QubeClass): PlannedClone | undefined {
  const source = q.clone as string;
  const at = locate(q, "clone");
  const address = `qube.${q.name}`;
  const srcDesired = ctx.desired.qubes.get(source);
  // Destroyed by the same plan: `absent: true`, or created by this owner and dropped from the config.
  const dropped = srcDesired === undefined && (ctx.inventory.created.has(source) || ctx.inventory.legacy.has(source)) && !ctx.releases(source);
  if (srcDesired?.absent === true || dropped) {
    const why = dropped ? "dropped from the config, which destroys it" : "`absent: true`";
    ctx.diagnostics.push(planDiagnostic("QIAC-E165", `qube ${q.name}: its clone source ${source} is destroyed by the same plan (${why})`, { location: at, address, hint: `clone another qube, or keep ${source} in the config` }));
    return undefined;
  }
  const klassOfSource = sourceClass(ctx, source);
  if (klassOfSource === undefined) {
    ctx.diagnostics.push(
      planDiagnostic("QIAC-E162", `qube ${q.name}: clone source '${source}' is neither in the config nor in the system`, {
        location: at,
        address,
        hint: `declare qube ${source} in the config, fix the name, or install the template in dom0: qvm-template install ${source}`,
      }),
    );
    return undefined;
  }
  const vols = cloneVolumes(klassOfSource, klass);
  if ("error" in vols) {
    ctx.diagnostics.push(planDiagnostic("QIAC-E163", `qube ${q.name}: clone source ${source}: ${vols.error}`, { location: at, address, hint: "copy a qube of a class this one can be made from" }));
    return undefined;
  }
  const listed = ctx.actual.listing.get(source);
  const read = ctx.actual.cloneSources?.get(source);
  if (listed !== undefined) ctx.addCheck({ check: "qube", vm: source, class: listed.klass, ...(srcDesired === undefined ? { power: listed.power } : {}) });

  const attrs = sourceAttributes(ctx, source);
  const sameClass = klassOfSource === klass;
  const copied: CopiedItem[] = [];
  for (const [p, v] of [...attrs.properties].sort(([a], [b]) => (a < b ? -1 : 1))) {
    if (q.properties.has(p) || !copiedProperty(p, klass, sameClass)) continue;
    const item: CopiedItem = { key: `properties.${p}`, shown: displayProperty(v.type, v.raw), ops: [{ op: "property.set", holder: { vm: q.name }, name: p, value: v.raw }] };
    if (v.type === "vm" && v.raw !== "" && v.raw !== "dom0") item.uses = `qube.${v.raw}`;
    copied.push(item);
  }
  for (const [f, v] of [...attrs.features].sort(([a], [b]) => (a < b ? -1 : 1))) {
    if (q.features.has(f) || !copiedFeature(f) || PROHIBITED_FEATURES.has(f)) continue;
    copied.push({ key: `features.${f}`, shown: v, ops: [{ op: "feature.set", vm: q.name, name: f, value: v }] });
  }
  const tags = [...attrs.tags].filter((t) => copiedTag(t) && !q.tags.has(t)).sort();
  if (tags.length > 0) copied.push({ key: "tags", shown: tags, ops: tags.map((t): Op => ({ op: "tag.set", vm: q.name, name: t })) });
  if (q.firewall === undefined && attrs.firewall !== undefined) {
    copied.push({ key: "firewall", shown: [...attrs.firewall], ops: [{ op: "firewall.set", vm: q.name, rules: [...attrs.firewall] }] });
  }

  const after: Attributes = { clone: source };
  const reasons: string[] = [];
  const copies: Op[] = [];
  let mustHalt = false;
  for (const v of vols.volumes) {
    const info = read?.volumes.get(v);
    const size = info?.size ?? plannedSize(ctx, source, v);
    after[`volumes.${v}`] = `cloned from ${source}${size !== undefined ? ` (${showSize(size)})` : ""}`;
    // A volume of a source this plan creates: its pool is not read; it is treated as a file pool's.
    if (info === undefined || HALTED_COPY_DRIVERS.has(info.driver)) mustHalt = true;
    const sizeText = size === undefined ? {} : { size: size.toString() };
    copies.push({ op: "volume.clone-from", vm: source, volume: v as CloneVolume, to: q.name, ...sizeText }, { op: "volume.clone-to", vm: q.name, volume: v as CloneVolume, from: source, ...sizeText });
  }
  const runs = sourceRunsAtCopy(ctx, source);
  const volumeOps: Op[] = [];
  if (runs && mustHalt) {
    if (!ctx.options.allowRestart) {
      ctx.diagnostics.push(
        planDiagnostic("QIAC-E164", `qube ${q.name}: its clone source ${source} ${listed !== undefined && srcDesired?.state === undefined ? "is running" : "will be running"}, and a file pool copies only a halted volume`, {
          location: at,
          address,
          hint: `shut ${source} down first, or plan and apply with --allow-restart (apply stops ${source} for the copy and starts it again)`,
        }),
      );
      return undefined;
    }
    reasons.push(`apply shuts ${source} down for the copy (a file pool copies only a halted volume) and starts it again`);
    volumeOps.push({ op: "vm.shutdown", vm: source }, ...copies, { op: "vm.start", vm: source });
  } else {
    if (runs) reasons.push(`the copy is of ${source} as of its last shutdown (it is running; its pool keeps that snapshot)`);
    volumeOps.push(...copies);
  }
  const fromSource = copied.map((c) => c.key);
  for (const c of copied) if (c.key !== "tags") after[c.key] = c.shown;
  const uses = [`qube.${source}`, ...copied.flatMap((c) => (c.uses === undefined ? [] : [c.uses]))];
  if (fromSource.length > 0) reasons.push(`copied from ${source} as qvm-clone copies it: ${fromSource.map((k) => (k === "tags" ? `tags ${tags.join(" ")}` : k)).join(", ")}`);
  return { copied, volumeOps, after, fromSource, copiedTags: tags, reasons, uses };
}

/** A TemplateVM or StandaloneVM created without a copy must say that its empty root is intended. */
export function checkEmptyRoot(ctx: DiffContext, q: DesiredQube, klass: QubeClass): boolean {
  if ((klass !== "TemplateVM" && klass !== "StandaloneVM") || q.clone !== undefined || q.emptyRoot === true) return true;
  // An example to copy from: a template this system has, when it has one.
  const template = [...ctx.actual.listing.values()].filter((l) => l.klass === "TemplateVM").map((l) => l.name).sort()[0] ?? "TEMPLATE";
  const fill =
    klass === "TemplateVM"
      ? `copy a template (clone: ${template}), or install the template in dom0 instead of declaring it here: qvm-template install ${q.name} (qvm-template list --available lists the names)`
      : `make it from a template (clone: ${template}, as qvm-create --standalone -t does); a template not on the system yet is installed in dom0 with qvm-template install NAME`;
  ctx.diagnostics.push(
    planDiagnostic("QIAC-E160", `qube ${q.name}: a ${klass} created without clone: gets an empty root volume (no operating system)`, {
      location: locate(q, "class"),
      address: `qube.${q.name}`,
      hint: `${fill}; or say that the empty disk is intended (root: empty)`,
    }),
  );
  return false;
}

/** A `template:` that exists nowhere: the error prints how to install it. */
export function missingTemplate(ctx: DiffContext, q: DesiredQube): void {
  const t = q.template as string;
  ctx.diagnostics.push(
    planDiagnostic("QIAC-E161", `qube ${q.name}: template '${t}' is neither in the config nor in the system`, {
      location: locate(q, "template"),
      address: `qube.${q.name}`,
      hint: `install it in dom0: qvm-template install ${t} (qvm-template list --available lists the names), declare it in the config, or fix the name`,
    }),
  );
}
