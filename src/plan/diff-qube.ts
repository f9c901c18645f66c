// The diff of one qube: create, update (including adopt, take-over and finishing an interrupted
// create), replace, delete, release or forget, each as a ResourceChange plus the steps that carry
// it out, with the ownership records written in crash-safe order (intent before Create, the
// qube's UUID-bound marker right after, then the inventory entry; docs/ownership.md) and the
// power transitions around halted-only changes; the network-isolation writes go first
// (isolation.ts). Pure; reads only the DiffContext (attribute comparison is in diff-attributes.ts).

import { formatAddress, qubeAddress } from "../model/address.js";
import { settledPower, type ActualQube, type SettledPower } from "../model/actual.js";
import { locate, type DesiredQube, type QubeClass, type QubeField } from "../model/desired.js";
import { MARKER_VALUE, otherOwnerMarks, readQubeRecords, type Lifecycle, type QubeRecords, type RecordKey } from "../model/ownership.js";
import { DEFAULT_LABELS } from "../model/qubes-rules.js";
import type { DetailedQube, DiffContext, QubeOwnership } from "./_context.js";
import type { Action } from "./action.js";
import { diffAttributes, newAcc, type Acc } from "./diff-attributes.js";
import { diffDevices } from "./diff-devices.js";
import { newResourceChange, stepId, type Attributes, type PlannedStep, type ResourceChange } from "./changes.js";
import { planDiagnostic } from "./codes.js";
import { displayProperty, payloadOf } from "./normalize.js";
import { isolateCreate, isolateUpdate } from "./isolation.js";
import type { Op } from "./ops.js";
import { checkFirewallExpiry } from "./firewall-expiry.js";
import { changeTiming, checkNewQubeProperties, haltNote, nextStartReason } from "./release-rules.js";
import { checkResume, checkRunningDisposables } from "./power-order.js";

const DEFAULT_LABEL_NAMES: ReadonlySet<string> = new Set(DEFAULT_LABELS.map(([n]) => n));

export type QubeDiff = { change?: ResourceChange; steps: PlannedStep[] };

const sorted = (xs: Iterable<string>): string[] => [...xs].sort();

const emptyChange = (name: string, action: Action): ResourceChange =>
  newResourceChange("qube", name, formatAddress(qubeAddress(name)), action);

/** Addresses a desired qube refers to, with the field that names each. */
export function desiredReferences(q: DesiredQube): Array<{ address: string; field: QubeField; kind: "qube" | "label" | "pool"; name: string }> {
  const out: Array<{ address: string; field: QubeField; kind: "qube" | "label" | "pool"; name: string }> = [];
  if (q.template !== undefined) out.push({ address: `qube.${q.template}`, field: "template", kind: "qube", name: q.template });
  if (q.label !== undefined) out.push({ address: `label.${q.label}`, field: "label", kind: "label", name: q.label });
  if (q.pool !== undefined) out.push({ address: `pool.${q.pool}`, field: "pool", kind: "pool", name: q.pool });
  for (const [p, v] of q.properties) {
    if (v.kind === "vm" && v.value !== null) out.push({ address: `qube.${v.value}`, field: `properties.${p}`, kind: "qube", name: v.value });
  }
  // A device's backend (sys-usb) exists, or is created, before the assignment.
  for (const [key, d] of q.devices ?? []) if (d.backend !== "dom0") out.push({ address: `qube.${d.backend}`, field: key as QubeField, kind: "qube", name: d.backend });
  return out;
}

/** Reports references to qubes, labels and pools that neither the config nor Qubes has. */
export function checkDesiredReferences(ctx: DiffContext, q: DesiredQube): void {
  for (const r of desiredReferences(q)) {
    const known =
      r.kind === "qube"
        ? ctx.qubeKnown(r.name)
        : r.kind === "label"
          ? DEFAULT_LABEL_NAMES.has(r.name) || ctx.desired.labels.has(r.name) || (ctx.actual.labels?.has(r.name) ?? false)
          : ctx.desired.pools.has(r.name) || (ctx.actual.poolNames?.has(r.name) ?? false);
    if (known) {
      // What the plan relies on of things the config does not declare: that they still exist.
      if (r.kind === "qube" && !ctx.desired.qubes.has(r.name)) {
        const l = ctx.actual.listing.get(r.name);
        if (l) ctx.addCheck({ check: "qube", vm: r.name, class: l.klass });
      } else if (r.kind === "label" && !ctx.desired.labels.has(r.name) && !DEFAULT_LABEL_NAMES.has(r.name)) {
        ctx.addCheck({ check: "label", name: r.name, expect: { present: true } });
      } else if (r.kind === "pool" && !ctx.desired.pools.has(r.name)) {
        ctx.addCheck({ check: "pool", name: r.name, expect: { present: true } });
      }
      continue;
    }
    const what = r.field === "template" ? "template" : r.field.startsWith("properties.") ? `qube for ${r.field.slice(11)}` : r.field.startsWith("devices.") ? "device backend" : r.kind;
    ctx.diagnostics.push(
      planDiagnostic("QIAC-E107", `qube ${q.name}: ${what} '${r.name}' is neither in the config nor in the system`, {
        location: locate(q, r.field),
        address: `qube.${q.name}`,
        hint: `declare ${r.kind} '${r.name}' in the config or fix the name`,
      }),
    );
  }
}

/** The ops that bring a qube from its current power state (after `pre`) to `target`. */
function powerOps(vm: string, from: SettledPower, target: SettledPower): Op[] {
  if (from === target) return [];
  if (from === "suspended") return [{ op: "vm.resume", vm }, ...powerOps(vm, "running", target)];
  switch (target) {
    case "running":
      return from === "paused" ? [{ op: "vm.unpause", vm }] : [{ op: "vm.start", vm }];
    case "paused":
      return from === "running" ? [{ op: "vm.pause", vm }] : [{ op: "vm.start", vm }, { op: "vm.pause", vm }];
    case "halted":
      return from === "paused" ? [{ op: "vm.unpause", vm }, { op: "vm.shutdown", vm }] : [{ op: "vm.shutdown", vm }];
    case "suspended":
      // Brought back after a restart for a halt-only change: running (there is no Suspend op).
      return from === "halted" ? [{ op: "vm.start", vm }] : [];
    default: {
      const never: never = target;
      return never;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Records and entries

/** A record op on a qube: `uuid` undefined for a qube this apply creates (the executor binds it). */
export function recordSet(ctx: DiffContext, vm: string, uuid: string | undefined, record: RecordKey): Op {
  return uuid === undefined ? { op: "record.set", vm, owner: ctx.desired.owner, record } : { op: "record.set", vm, owner: ctx.desired.owner, uuid, record };
}

/** The dom0 entries of this owner that list `vm`, as they are now. */
function entryNames(ctx: DiffContext, vm: string): string[] {
  const { names, inventory } = ctx;
  return [
    ...(inventory.created.has(vm) ? [names.created(vm)] : []),
    ...(inventory.adopted.has(vm) ? [names.adopted(vm)] : []),
    ...(inventory.legacy.has(vm) ? [names.legacyQube(vm)] : []),
  ];
}

/** The plan relies on the entries and the intent being as read. */
function checkEntries(ctx: DiffContext, vm: string): void {
  const { names, inventory } = ctx;
  const exp = (b: boolean) => (b ? { present: true as const } : { absent: true as const });
  ctx.addCheck({ check: "feature", vm: "dom0", name: names.created(vm), expect: exp(inventory.created.has(vm)) });
  ctx.addCheck({ check: "feature", vm: "dom0", name: names.adopted(vm), expect: exp(inventory.adopted.has(vm)) });
  if (inventory.legacy.has(vm)) ctx.addCheck({ check: "feature", vm: "dom0", name: names.legacyQube(vm), expect: { present: true } });
  ctx.addCheck({ check: "feature", vm: "dom0", name: names.intent(vm), expect: exp(inventory.intents.has(vm)) });
}

/** The qube is the one the plan read (a qube made again under the same name has another UUID). */
function checkUuid(ctx: DiffContext, vm: string, uuid: string): void {
  ctx.addCheck({ check: "property", holder: { vm }, name: "uuid", default: false, value: uuid });
}

function noUuid(ctx: DiffContext, vm: string, q: DesiredQube | undefined): QubeDiff {
  ctx.diagnostics.push(
    planDiagnostic("QIAC-E151", `qube ${vm} has no valid \`uuid\` property: qubes-iac binds its records to it and cannot tell them from copies`, {
      address: `qube.${vm}`,
      ...(q ? { location: q.at } : {}),
      hint: "check the qube with qvm-prefs; qubes-iac needs a Qubes release whose property.GetAll prints uuid",
    }),
  );
  return { steps: [] };
}

// ---------------------------------------------------------------------------------------------
// One owner per object

/**
 * Another owner's inventory lists the object: refused (a located error naming the owner) unless
 * `--take-ownership OWNER`; then the ops that remove the other owner's dom0 entries, first.
 */
export function otherOwnerEntries(
  ctx: DiffContext,
  kind: "qube" | "label" | "pool",
  name: string,
  location: DesiredQube["at"] | undefined,
  reasons: string[],
): { ok: boolean; ops: Op[]; takenFrom: string[] } {
  const map = kind === "qube" ? ctx.others.qubes : kind === "label" ? ctx.others.labels : ctx.others.pools;
  const listed = map.get(name);
  if (listed === undefined) return { ok: true, ops: [], takenFrom: [] };
  const ops: Op[] = [];
  const takenFrom: string[] = [];
  let ok = true;
  for (const [other, features] of [...listed].sort(([a], [b]) => (a < b ? -1 : 1))) {
    if (!ctx.takeOwnership.has(other)) {
      ok = false;
      ctx.diagnostics.push(
        planDiagnostic("QIAC-E150", `${kind} ${name} is managed by owner ${other} (its inventory in dom0 lists it): one object has one owner`, {
          address: `${kind}.${name}`,
          ...(location ? { location } : {}),
          hint: `leave it to ${other}, or take it over explicitly: plan and apply with --take-ownership ${other}`,
        }),
      );
      continue;
    }
    takenFrom.push(other);
    for (const f of [...features].sort()) {
      ctx.addCheck({ check: "feature", vm: "dom0", name: f, expect: { present: true } });
      ops.push({ op: "feature.remove", vm: "dom0", name: f });
    }
    reasons.push(`take over from owner ${other} (--take-ownership ${other}): its inventory entries are removed`);
  }
  return { ok, ops, takenFrom };
}

/** The other owners' marks on the qube itself that a take-over removes: their tag and their records bound to it. */
function otherOwnerQubeOps(ctx: DiffContext, a: DetailedQube, uuid: string, owners: readonly string[]): Op[] {
  const ops: Op[] = [];
  for (const other of owners) {
    for (const f of readQubeRecords(other, uuid, a.featureNames, a.templateFeatureNames).names) ops.push({ op: "feature.remove", vm: a.name, name: f });
    const tag = `managed-by-${other}`;
    if (a.tags.has(tag)) {
      ctx.addCheck({ check: "tag", vm: a.name, name: tag, present: true });
      ops.push({ op: "tag.remove", vm: a.name, name: tag });
    }
  }
  return ops;
}

/** A tag or a record of another owner alone is no claim (a DispVM copies its template's): a warning. */
function warnOtherMarks(ctx: DiffContext, q: DesiredQube, a: DetailedQube): void {
  const listed = ctx.others.qubes.get(q.name);
  const marks = otherOwnerMarks(ctx.desired.owner, a.featureNames, a.tags).filter((o) => !listed?.has(o));
  if (marks.length === 0) return;
  ctx.diagnostics.push(
    planDiagnostic("QIAC-W150", `qube ${q.name} carries the tag or records of owner${marks.length === 1 ? "" : "s"} ${marks.join(", ")}, whose inventory does not list it: no claim (perhaps copied from its template); it is adopted`, {
      address: `qube.${q.name}`,
      location: locate(q, "adopt"),
    }),
  );
}

// ---------------------------------------------------------------------------------------------
// Create

function createOps(ctx: DiffContext, q: DesiredQube, klass: QubeClass, label: string): { ops: Op[]; after: Attributes; afterDefault: string[] } {
  const { names } = ctx;
  const vm = q.name;
  const after: Attributes = { class: klass };
  const afterDefault: string[] = [];
  const create: Op = { op: "vm.create", class: klass, name: vm, label };
  if (q.template !== undefined) {
    create.template = q.template;
    after.template = q.template;
  }
  after.label = label;
  if (q.pool !== undefined) {
    create.pool = q.pool;
    after.pool = q.pool;
  }
  // The new qube's UUID is read right after Create: every record of it is bound to that UUID.
  const record = (key: RecordKey): Op => recordSet(ctx, vm, undefined, key);
  const ops: Op[] = [
    { op: "feature.set", vm: "dom0", name: names.intent(vm), value: "create" },
    create,
    { op: "vm.uuid", vm },
    record("own"),
    { op: "tag.set", vm, name: names.ownerTag },
    { op: "feature.set", vm: "dom0", name: names.created(vm), value: MARKER_VALUE },
    { op: "feature.remove", vm: "dom0", name: names.intent(vm) },
  ];
  if (q.protect) {
    ops.push(record("protect"));
    after.protect = "true";
  }
  for (const [p, v] of q.properties) {
    const key = `properties.${p}`;
    if (v.kind === "default") {
      after[key] = null;
      afterDefault.push(key);
      continue;
    }
    const payload = payloadOf(v);
    ops.push({ op: "property.set", holder: { vm }, name: p, value: payload });
    after[key] = displayProperty(v.kind, payload);
  }
  for (const [f, v] of q.features) {
    if (v === null) continue;
    ops.push(record(`feature.${f}`), { op: "feature.set", vm, name: f, value: v });
    after[`features.${f}`] = v;
  }
  for (const t of sorted(q.tags)) ops.push(record(`tag.${t}`), { op: "tag.set", vm, name: t });
  after.tags = sorted([...q.tags, names.ownerTag]);
  if (q.firewall !== undefined) {
    ops.push(record("firewall"), { op: "firewall.set", vm, rules: [...q.firewall] });
    after.firewall = [...q.firewall];
  }
  for (const [v, { size }] of q.volumes) {
    ops.push({ op: "volume.resize", vm, volume: v, size: String(size) });
    after[`volumes.${v}.size`] = String(size);
  }
  // Devices after the properties (virt_mode), before the first start.
  const devices = { before: {}, after, ops, changed: [] as string[], halted: [] as string[] };
  diffDevices(ctx, q, undefined, devices);
  if (q.state !== undefined) {
    ops.push(...powerOps(vm, "halted", q.state));
    after.state = q.state;
  }
  return { ops: isolateCreate(ops, vm), after, afterDefault };
}

function diffCreate(ctx: DiffContext, q: DesiredQube, own: Extract<QubeOwnership, { kind: "absent" }>): QubeDiff {
  const address = `qube.${q.name}`;
  if (q.class === undefined || q.label === undefined) {
    const missing = q.class === undefined ? "class" : "label";
    ctx.diagnostics.push(
      planDiagnostic("QIAC-E112", `qube ${q.name} does not exist and has no \`${missing}\` to create it with`, {
        location: q.at,
        address,
        hint: q.adopt ? "`adopt: true` takes over an existing qube; to create it, give class, label (and template)" : `add \`${missing}\``,
      }),
    );
    return { steps: [] };
  }
  const change = emptyChange(q.name, "create");
  const taken = otherOwnerEntries(ctx, "qube", q.name, q.at, change.reasons);
  if (!taken.ok) return { steps: [] };
  ctx.addCheck({ check: "qube-absent", vm: q.name });
  checkNewQubeProperties(ctx, q, q.class);
  const { ops, after, afterDefault } = createOps(ctx, q, q.class, q.label);
  change.after = after;
  change.afterDefault = afterDefault;
  if (own.confirmed || own.intent) change.reasons.push("the inventory lists it but it does not exist: it is created again");
  return {
    change,
    steps: [{ id: stepId("create", address), address, kind: "create", ops: [...taken.ops, ...ops], uses: desiredReferences(q).map((r) => r.address), unreferences: [], after: [] }],
  };
}

// ---------------------------------------------------------------------------------------------
// Update (and adopt, and finishing an interrupted create)

type Adoption = "owned" | "adopt";
type Marks = { confirmed: boolean; intent: boolean; marked: boolean; tagged: boolean };

/**
 * What makes the qube fully recorded as the owner's: the intent of an adopt first (so an
 * interruption before the marker is recognised), the marker bound to its UUID, the tag, the
 * entry of its lifecycle (a format-1 entry is rewritten), the intent removed last.
 */
function ownershipOps(ctx: DiffContext, vm: string, uuid: string, own: Marks, lifecycle: Lifecycle, adoption: Adoption): Op[] {
  const { names, inventory } = ctx;
  const ops: Op[] = [];
  const marking = !own.marked || inventory.legacy.has(vm);
  if (marking) {
    if (adoption === "adopt" && !own.intent) ops.push({ op: "feature.set", vm: "dom0", name: names.intent(vm), value: "adopt" });
    ops.push(recordSet(ctx, vm, uuid, "own"));
  }
  if (!own.tagged) ops.push({ op: "tag.set", vm, name: names.ownerTag });
  const entry = lifecycle === "created" ? names.created(vm) : names.adopted(vm);
  if (!(lifecycle === "created" ? inventory.created : inventory.adopted).has(vm)) ops.push({ op: "feature.set", vm: "dom0", name: entry, value: MARKER_VALUE });
  if (lifecycle === "adopted" && inventory.created.has(vm)) ops.push({ op: "feature.remove", vm: "dom0", name: names.created(vm) });
  if (inventory.legacy.has(vm)) ops.push({ op: "feature.remove", vm: "dom0", name: names.legacyQube(vm) });
  if (own.intent || (adoption === "adopt" && marking && !own.marked)) ops.push({ op: "feature.remove", vm: "dom0", name: names.intent(vm) });
  return ops;
}

/** Format-1 records that are the qube's, rewritten bound to its UUID (the new one first). */
function migrationOps(ctx: DiffContext, vm: string, uuid: string, rec: QubeRecords): Op[] {
  return [...rec.legacy].sort((a, b) => (a.name < b.name ? -1 : 1)).flatMap(({ name, key }): Op[] => {
    ctx.addCheck({ check: "feature", vm, name, expect: { present: true } });
    return [recordSet(ctx, vm, uuid, key), { op: "feature.remove", vm, name }];
  });
}

/**
 * The netvm to start before a running qube is connected to it: qubesd refuses to attach a running
 * qube to a halted netvm (and starts the netvm itself only when it starts the qube).
 */
function netvmToStart(ctx: DiffContext, current: SettledPower | undefined, pre: readonly Op[], acc: Acc): string | undefined {
  if (current === undefined || current === "halted" || pre.some((o) => o.op === "vm.shutdown")) return undefined;
  const set = acc.ops.find((o) => o.op === "property.set" && o.name === "netvm");
  if (set === undefined || set.op !== "property.set" || set.value === "") return undefined;
  const netvm = set.value;
  const declared = ctx.desired.qubes.get(netvm);
  if (declared?.state === "running" || declared?.state === "paused") return undefined;
  const listed = ctx.actual.listing.get(netvm);
  if (listed) {
    ctx.addCheck({ check: "qube", vm: netvm, class: listed.klass, power: listed.power });
    if (settledPower(listed.power) !== "halted") return undefined;
  }
  return netvm;
}

function diffUpdate(ctx: DiffContext, q: DesiredQube, own: ExistingMarks, adoption: Adoption): QubeDiff {
  const vm = q.name;
  const address = `qube.${vm}`;
  const a = ctx.detail(vm);
  const uuid = ctx.uuidOf(vm);
  if (uuid === undefined) return noUuid(ctx, vm, q);
  const lifecycle: Lifecycle = adoption === "adopt" ? "adopted" : (own.lifecycle ?? "adopted");
  const reasons: string[] = [];
  let takeOver: Op[] = [];
  if (adoption === "adopt") {
    const taken = otherOwnerEntries(ctx, "qube", vm, locate(q, "adopt"), reasons);
    if (!taken.ok) return { steps: [] };
    takeOver = [...taken.ops, ...otherOwnerQubeOps(ctx, a, uuid, taken.takenFrom)];
    warnOtherMarks(ctx, q, a);
  }
  const rec = ctx.records(vm);
  ctx.addCheck({ check: "qube", vm, class: a.klass, power: a.power });
  checkUuid(ctx, vm, uuid);

  if (q.class !== undefined && q.class !== a.klass) {
    if (lifecycle === "adopted") {
      ctx.diagnostics.push(
        planDiagnostic("QIAC-E111", `qube ${vm} is a ${a.klass}, not a ${q.class}: an adopted qube is never replaced`, {
          location: locate(q, "class"),
          address,
          hint: `set \`class: ${a.klass}\` to adopt it as it is`,
        }),
      );
      return { steps: [] };
    }
    return diffReplace(ctx, q, a, rec);
  }

  const acc = newAcc();
  if (q.class !== undefined) {
    acc.before.class = a.klass;
    acc.after.class = q.class;
  }
  diffAttributes(ctx, q, a, rec, acc, uuid);
  acc.ops = isolateUpdate(acc.ops, vm);

  const current = settledPower(a.power);
  const haltKeys = acc.changed.filter((k) => changeTiming(ctx.actual, k, a.klass) === "halted" || acc.halted.includes(k));
  // Taken while running but used from the next start: restarted with --allow-restart, else said so.
  const laterKeys = current === "halted" || q.state === "halted" ? [] : acc.changed.filter((k) => changeTiming(ctx.actual, k, a.klass) === "next-start");
  const target: SettledPower | undefined = q.state ?? current;
  if (q.state !== undefined) {
    acc.before.state = current ?? a.power.toLowerCase();
    acc.after.state = q.state;
    if (current !== q.state) acc.changed.push("state");
  }
  const pre: Op[] = [];
  const post: Op[] = [];
  const needsHalt: string[] = [];
  if (current === undefined || target === undefined) {
    if (q.state !== undefined || haltKeys.length > 0) {
      ctx.diagnostics.push(
        planDiagnostic("QIAC-E117", `qube ${vm} is ${a.power}: its power state must settle before it can be ${q.state !== undefined ? `made ${q.state}` : "halted"}`, {
          address,
          location: q.locations.get("state") ?? q.at,
          hint: "wait for the qube to finish starting or stopping, then plan again",
        }),
      );
    }
  } else if (target === "halted") {
    if (current !== "halted") pre.push(...powerOps(vm, current, "halted"));
  } else if ((haltKeys.length > 0 || (laterKeys.length > 0 && ctx.options.allowRestart)) && current !== "halted") {
    needsHalt.push(...haltKeys, ...(ctx.options.allowRestart ? laterKeys : []));
    if (ctx.options.allowRestart) {
      pre.push(...powerOps(vm, current, "halted"));
      post.push(...powerOps(vm, "halted", target));
    } else {
      ctx.diagnostics.push(
        planDiagnostic("QIAC-E105", `qube ${vm} is ${current}; Qubes changes ${haltKeys.join(", ")} only while it is halted${haltNote(ctx.actual, haltKeys)}`, {
          address,
          location: locate(q, (haltKeys[0] ?? "template") as QubeField),
          hint: `plan with --allow-restart to let apply shut ${vm} down for the change and start it again, or shut it down first (qvm-shutdown --wait ${vm})`,
        }),
      );
    }
  } else {
    post.push(...powerOps(vm, current, target));
  }

  const startsNetvm = netvmToStart(ctx, current, pre, acc);
  if (startsNetvm !== undefined) {
    const at = acc.ops.findIndex((o) => o.op === "property.set" && o.name === "netvm");
    acc.ops.splice(at, 0, { op: "vm.start", vm: startsNetvm });
  }
  const ownOps = adoption === "adopt" || own.kind === "owned" ? ownershipOps(ctx, vm, uuid, own, lifecycle, adoption) : [];
  const migrate = migrationOps(ctx, vm, uuid, rec);
  checkEntries(ctx, vm);
  const ops = [...takeOver, ...ownOps, ...migrate, ...pre, ...acc.ops, ...post];
  checkResume(ctx, vm, ops, q);
  checkRunningDisposables(ctx, q, acc.changed, acc.ops);

  const change = emptyChange(vm, ops.length > 0 ? "update" : "no-op");
  change.before = acc.before;
  change.after = acc.after;
  change.beforeDefault = acc.beforeDefault;
  change.afterDefault = acc.afterDefault;
  change.needsHalt = needsHalt;
  change.reasons.push(...reasons);
  if (adoption === "adopt") change.reasons.push(`adopt: qubes-iac takes over this existing qube (tag ${ctx.names.ownerTag}); dropping it from the config later releases it, never destroys it`);
  else if (ownOps.length > 0) change.reasons.push(ctx.inventory.legacy.has(vm) ? "rewrite its ownership records in format 2" : "finish an interrupted create: record ownership");
  if (migrate.length > 0 && !ctx.inventory.legacy.has(vm)) change.reasons.push("rewrite its ownership records in format 2");
  if (pre.length > 0 && needsHalt.length > 0) change.reasons.push(`apply shuts the qube down for ${needsHalt.join(", ")} and starts it again`);
  if (laterKeys.length > 0 && !ctx.options.allowRestart) change.reasons.push(nextStartReason(ctx.actual, laterKeys, vm));
  if (startsNetvm !== undefined) change.reasons.push(`apply starts ${startsNetvm} first: Qubes connects a running qube only to a running netvm`);
  if (ops.length === 0) return { change, steps: [] };
  return {
    change,
    steps: [{ id: stepId("update", address), address, kind: "update", ops, uses: acc.uses, unreferences: acc.unreferences, after: [] }],
  };
}

type ExistingMarks = Marks & ({ kind: "owned"; lifecycle: Lifecycle } | { kind: "drift" | "pending-adopt" | "foreign"; lifecycle?: undefined });

// ---------------------------------------------------------------------------------------------
// Delete, replace and release

/** Attributes shown for a qube that is going away (or that qubes-iac lets go of). */
function goneAttributes(ctx: DiffContext, a: ActualQube & { tags: ReadonlySet<string> }, rec: QubeRecords): Attributes {
  const before: Attributes = { class: a.klass };
  const t = a.properties.get("template");
  if (t && t.raw !== "") before.template = t.raw;
  before.label = a.properties.get("label")?.raw ?? null;
  before.state = settledPower(a.power) ?? a.power.toLowerCase();
  before.tags = sorted([...a.tags].filter((x) => x === ctx.names.ownerTag || rec.tags.has(x)));
  if (rec.protect) before.protect = "true";
  return before;
}

/** What a qube refers to now (its references go away with it). */
function currentReferences(a: ActualQube): string[] {
  const out: string[] = [];
  for (const v of a.properties.values()) {
    if (v.type === "vm" && v.raw !== "" && v.raw !== a.name) out.push(`qube.${v.raw}`);
    if (v.type === "label" && v.raw !== "") out.push(`label.${v.raw}`);
  }
  return [...new Set(out)];
}

function removalOps(vm: string, power: string): Op[] {
  const p = settledPower(power);
  return [...(p === undefined || p === "halted" ? [] : powerOps(vm, p, "halted")), { op: "vm.remove", vm }];
}

function diffReplace(ctx: DiffContext, q: DesiredQube, a: DetailedQube, rec: QubeRecords): QubeDiff {
  const vm = q.name;
  const address = `qube.${vm}`;
  const klass = q.class as QubeClass;
  const change = emptyChange(vm, "replace");
  change.before = goneAttributes(ctx, a, rec);
  change.destroysData = true;
  change.reasons.push(`class ${a.klass} → ${klass} cannot change in place: the qube is deleted and created again`);
  checkMarker(ctx, vm);
  if (rec.protect) {
    ctx.diagnostics.push(
      planDiagnostic("QIAC-E103", `qube ${vm} is protected: changing its class would destroy it`, {
        address,
        location: locate(q, "class"),
        hint: `keep \`class: ${a.klass}\`, or set \`protect: false\` and apply before changing the class`,
      }),
    );
  }
  const label = q.label ?? a.properties.get("label")?.raw ?? "";
  checkNewQubeProperties(ctx, q, klass);
  const { ops, after, afterDefault } = createOps(ctx, { ...q, label }, klass, label);
  change.after = after;
  change.afterDefault = afterDefault;
  const power = settledPower(a.power);
  if (power !== undefined && power !== "halted") change.reasons.push(`it is ${power}: apply shuts it down first`);
  const del = stepId("delete", address);
  checkResume(ctx, vm, removalOps(vm, a.power), q);
  return {
    change,
    steps: [
      { id: del, address, kind: "delete", ops: removalOps(vm, a.power), uses: [], unreferences: currentReferences(a), after: [] },
      { id: stepId("create", address), address, kind: "create", ops, uses: desiredReferences(q).map((r) => r.address), unreferences: [], after: [del] },
    ],
  };
}

/** The plan relies on the qube's marker records as read: the UUID, its marker, its protect record. */
function checkMarker(ctx: DiffContext, vm: string): void {
  const uuid = ctx.uuidOf(vm);
  const a = ctx.detail(vm);
  const rec = ctx.records(vm);
  ctx.addCheck({ check: "tag", vm, name: ctx.names.ownerTag, present: a.tags.has(ctx.names.ownerTag) });
  if (uuid === undefined) return;
  checkUuid(ctx, vm, uuid);
  ctx.addCheck({ check: "feature", vm, name: ctx.names.record(uuid, "own"), expect: rec.own ? { present: true } : { absent: true } });
  ctx.addCheck({ check: "feature", vm, name: ctx.names.record(uuid, "protect"), expect: a.featureNames.has(ctx.names.record(uuid, "protect")) ? { present: true } : { absent: true } });
}

function diffDelete(ctx: DiffContext, vm: string, own: { intent: boolean }, why: string, q?: DesiredQube): QubeDiff {
  const address = `qube.${vm}`;
  const a = ctx.detail(vm);
  const rec = ctx.records(vm);
  ctx.addCheck({ check: "qube", vm, class: a.klass, power: a.power });
  checkMarker(ctx, vm);
  checkEntries(ctx, vm);
  const change = emptyChange(vm, "delete");
  change.before = goneAttributes(ctx, a, rec);
  change.destroysData = true;
  change.reasons.push(why);
  const power = settledPower(a.power);
  if (power !== undefined && power !== "halted") change.reasons.push(`it is ${power}: apply shuts it down first`);
  if (rec.protect) {
    ctx.diagnostics.push(
      planDiagnostic("QIAC-E103", `qube ${vm} is protected${q ? "" : " and no longer in the config"}: it would be destroyed`, {
        address,
        ...(q ? { location: locate(q, "absent") } : {}),
        hint: `declare qube ${vm} with \`protect: false\` and apply before removing it`,
      }),
    );
  }
  const ops: Op[] = [...removalOps(vm, a.power), ...entryNames(ctx, vm).map((name): Op => ({ op: "feature.remove", vm: "dom0", name }))];
  checkResume(ctx, vm, ops);
  if (own.intent) ops.push({ op: "feature.remove", vm: "dom0", name: ctx.names.intent(vm) });
  return {
    change,
    steps: [{ id: stepId("delete", address), address, kind: "delete", ops, uses: [], unreferences: currentReferences(a), after: [] }],
  };
}

/**
 * Lets go of a qube without touching anything but qubes-iac's own marks: intent `release`
 * first (an interruption is finished by the next plan), then the qube's records, the owner tag,
 * the inventory entries, and the intent last. The qube, its data, features and tags stay.
 */
function diffRelease(ctx: DiffContext, vm: string, own: { intent: boolean; tagged: boolean }, why: string): QubeDiff {
  const address = `qube.${vm}`;
  const a = ctx.detail(vm);
  const rec = ctx.records(vm);
  ctx.addCheck({ check: "qube", vm, class: a.klass });
  checkMarker(ctx, vm);
  checkEntries(ctx, vm);
  const { names } = ctx;
  const releasing = ctx.actual.dom0Features.get(names.intent(vm)) === "release";
  const ops: Op[] = [];
  if (!releasing) ops.push({ op: "feature.set", vm: "dom0", name: names.intent(vm), value: "release" });
  for (const name of [...rec.names].sort()) {
    ctx.addCheck({ check: "feature", vm, name, expect: { present: true } });
    ops.push({ op: "feature.remove", vm, name });
  }
  if (own.tagged) ops.push({ op: "tag.remove", vm, name: names.ownerTag });
  ops.push(...entryNames(ctx, vm).map((name): Op => ({ op: "feature.remove", vm: "dom0", name })));
  ops.push({ op: "feature.remove", vm: "dom0", name: names.intent(vm) });
  const change = emptyChange(vm, "release");
  change.before = goneAttributes(ctx, a, rec);
  change.reasons.push(why);
  if (releasing) change.reasons.push("finish an interrupted release");
  return { change, steps: [{ id: stepId("release", address), address, kind: "release", ops, uses: [], unreferences: [], after: [] }] };
}

function diffForget(ctx: DiffContext, vm: string, own: { confirmed: boolean; intent: boolean }, why: string): QubeDiff {
  const address = `qube.${vm}`;
  const ops: Op[] = [];
  const before: Attributes = {};
  for (const name of entryNames(ctx, vm)) {
    ops.push({ op: "feature.remove", vm: "dom0", name });
    before.inventory = name;
    ctx.addCheck({ check: "feature", vm: "dom0", name, expect: { present: true } });
  }
  if (own.intent) {
    ops.push({ op: "feature.remove", vm: "dom0", name: ctx.names.intent(vm) });
    before.intent = ctx.names.intent(vm);
    ctx.addCheck({ check: "feature", vm: "dom0", name: ctx.names.intent(vm), expect: { present: true } });
  }
  const change = emptyChange(vm, "forget");
  change.before = before;
  change.reasons.push(why);
  return { change, steps: [{ id: stepId("forget", address), address, kind: "forget", ops, uses: [], unreferences: [], after: [] }] };
}

// ---------------------------------------------------------------------------------------------

function driftDiagnostic(ctx: DiffContext, vm: string, q: DesiredQube | undefined): void {
  const uuid = ctx.uuidOf(vm);
  const entry = entryNames(ctx, vm)[0] ?? ctx.names.adopted(vm);
  const marker = ctx.inventory.legacy.has(vm) ? `its tag ${ctx.names.ownerTag}` : `its record ${uuid === undefined ? ctx.names.record("<uuid>", "own") : ctx.names.record(uuid, "own")}`;
  ctx.diagnostics.push(
    planDiagnostic("QIAC-E102", `ownership drift: the inventory of ${ctx.desired.owner} lists qube ${vm}, but ${marker} is missing (removed, or the qube was made again by hand); it is left alone`, {
      address: `qube.${vm}`,
      ...(q ? { location: q.at } : {}),
      hint: `if it is yours, set \`adopt: true\` on it${q ? "" : " in the config"}; if it is not, remove ${entry} from dom0's features (qvm-features dom0 ${entry} '')`,
    }),
  );
}

function notManaged(ctx: DiffContext, q: DesiredQube, what: string, field: QubeField): QubeDiff {
  ctx.addCheck({ check: "tag", vm: q.name, name: ctx.names.ownerTag, present: ctx.actual.qubes.get(q.name)?.tags?.has(ctx.names.ownerTag) ?? false });
  ctx.diagnostics.push(
    planDiagnostic(field === "absent" ? "QIAC-E152" : "QIAC-E101", `qube ${q.name} exists and is not managed by ${ctx.desired.owner}${what}`, {
      location: field === "absent" ? locate(q, "absent") : q.at,
      address: `qube.${q.name}`,
      hint:
        field === "absent"
          ? "qubes-iac destroys only a qube it manages: adopt it first (adopt: true, apply), or remove it by hand"
          : "add `adopt: true` to take it over (its attributes then follow the config), or rename the qube in the config",
    }),
  );
  return { steps: [] };
}

/** The diff of a qube the config declares with `absent: true`: destroyed when it is ours. */
function diffAbsent(ctx: DiffContext, q: DesiredQube, own: QubeOwnership): QubeDiff {
  switch (own.kind) {
    case "absent":
      return own.confirmed || own.intent ? diffForget(ctx, q.name, own, "`absent: true` and it does not exist") : { steps: [] };
    case "owned":
      return diffDelete(ctx, q.name, own, `\`absent: true\`: qubes-iac ${own.lifecycle === "created" ? "created" : "adopted"} it and destroys it`, q);
    case "releasing":
      return diffRelease(ctx, q.name, own, "a release of it was interrupted: it is finished first; plan again to destroy it");
    case "drift":
    case "pending-adopt":
    case "foreign":
      return notManaged(ctx, q, ": `absent: true` does not destroy it", "absent");
    default: {
      const never: never = own;
      throw new Error(`unhandled ownership ${String(never)}`);
    }
  }
}

/** The diff of a qube the config (or `qubes-iac release`) lets go of. */
function diffReleased(ctx: DiffContext, vm: string, own: QubeOwnership): QubeDiff {
  switch (own.kind) {
    case "owned":
    case "releasing":
      return diffRelease(ctx, vm, own, "release: qubes-iac stops managing it; the qube and its data stay as they are");
    case "absent":
    case "pending-adopt":
      return own.confirmed || own.intent ? diffForget(ctx, vm, own, "released, and not managed: only qubes-iac's entries are removed") : { steps: [] };
    case "drift":
    case "foreign":
      return { steps: [] };
    default: {
      const never: never = own;
      throw new Error(`unhandled ownership ${String(never)}`);
    }
  }
}

/** The diff of a qube the config declares. */
export function diffDesiredQube(ctx: DiffContext, q: DesiredQube): QubeDiff {
  const address = `qube.${q.name}`;
  const listed = ctx.actual.listing.get(q.name);
  if (listed && (listed.klass === "AdminVM" || listed.klass === "RemoteVM")) {
    ctx.diagnostics.push(planDiagnostic("QIAC-E122", `qube ${q.name} is a ${listed.klass}, which qubes-iac does not manage`, { location: q.at, address }));
    return { steps: [] };
  }
  const own = ctx.ownership(q.name);
  if (q.absent) return diffAbsent(ctx, q, own);
  if (ctx.releases(q.name)) return diffReleased(ctx, q.name, own);
  checkDesiredReferences(ctx, q);
  checkFirewallExpiry(ctx, q);
  switch (own.kind) {
    case "absent":
      return diffCreate(ctx, q, own);
    case "owned":
      return diffUpdate(ctx, q, own, "owned");
    case "releasing":
      ctx.diagnostics.push(
        planDiagnostic("QIAC-W151", `qube ${q.name}: a release of it was interrupted; it is finished now, and the config's attributes are not applied`, {
          address,
          location: q.at,
          hint: "to manage it again, set `adopt: true` and plan again after this apply",
        }),
      );
      return diffRelease(ctx, q.name, own, "finish an interrupted release");
    case "pending-adopt":
      return diffUpdate(ctx, q, own, "adopt");
    case "drift":
      if (q.adopt) return diffUpdate(ctx, q, own, "adopt");
      driftDiagnostic(ctx, q.name, q);
      return { steps: [] };
    case "foreign":
      if (q.adopt) return diffUpdate(ctx, q, own, "adopt");
      return notManaged(ctx, q, "", "adopt");
    default: {
      const never: never = own;
      throw new Error(`unhandled ownership ${String(never)}`);
    }
  }
}

/**
 * The diff of a qube the inventory lists and the config does not declare: a qube qubes-iac
 * created is destroyed (unless `qubes-iac release` lets go of it); an adopted one is released.
 */
export function diffUndesiredQube(ctx: DiffContext, vm: string): QubeDiff {
  const own = ctx.ownership(vm);
  if (ctx.releases(vm)) return diffReleased(ctx, vm, own);
  switch (own.kind) {
    case "absent":
      return diffForget(ctx, vm, own, "no longer exists and is not in the config");
    case "owned":
      if (own.lifecycle === "adopted") return diffRelease(ctx, vm, own, "not in the config; adopted by qubes-iac, so it is let go of: only qubes-iac's tag and records are removed");
      return diffDelete(ctx, vm, own, `not in the config; created by ${ctx.desired.owner}`);
    case "releasing":
      return diffRelease(ctx, vm, own, "not in the config");
    case "pending-adopt":
      return diffForget(ctx, vm, own, "an adopt of it was interrupted and it is no longer in the config: it stays, not managed");
    case "drift":
      driftDiagnostic(ctx, vm, undefined);
      return { steps: [] };
    case "foreign":
      return { steps: [] };
    default: {
      const never: never = own;
      throw new Error(`unhandled ownership ${String(never)}`);
    }
  }
}
