// The diff of one qube: create, update (including adopt and finishing an interrupted create),
// replace, delete or forget, each as a ResourceChange plus the steps that carry it out, with the
// ownership records written in crash-safe order (intent before Create, tag right after, then the
// confirmed inventory entry) and the power transitions around halted-only changes. Pure; reads
// only the DiffContext (attribute comparison is in diff-attributes.ts).

import { formatAddress, qubeAddress } from "../model/address.js";
import { settledPower, type ActualQube, type SettledPower } from "../model/actual.js";
import { locate, TEMPLATE_BASED_CLASSES, type DesiredQube, type QubeClass, type QubeField } from "../model/desired.js";
import { ENTRY_OWNED, MARKER_VALUE, readQubeRecords, type QubeRecords } from "../model/ownership.js";
import { DEFAULT_LABELS } from "../model/qubes-rules.js";
import type { DetailedQube, DiffContext, QubeOwnership } from "./_context.js";
import type { Action } from "./action.js";
import { diffAttributes, newAcc, type Acc } from "./diff-attributes.js";
import { newResourceChange, stepId, type Attributes, type PlannedStep, type ResourceChange } from "./changes.js";
import { planDiagnostic } from "./codes.js";
import { displayProperty, payloadOf } from "./normalize.js";
import type { Op } from "./ops.js";
import { checkResume, checkRunningDisposables } from "./power-order.js";

const DEFAULT_LABEL_NAMES: ReadonlySet<string> = new Set(DEFAULT_LABELS.map(([n]) => n));

export type QubeDiff = { change?: ResourceChange; steps: PlannedStep[] };

const sorted = (xs: Iterable<string>): string[] => [...xs].sort();

/** Attributes Qubes changes only while the qube is halted (reference §5.3). */
function haltOnly(key: string, klass: string): boolean {
  return key === "properties.maxmem" || (key === "template" && TEMPLATE_BASED_CLASSES.has(klass as QubeClass));
}

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
    const what = r.field === "template" ? "template" : r.field.startsWith("properties.") ? `qube for ${r.field.slice(11)}` : r.kind;
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
  const ops: Op[] = [
    { op: "feature.set", vm: "dom0", name: names.intent(vm), value: "create" },
    create,
    { op: "tag.set", vm, name: names.ownerTag },
    { op: "feature.set", vm: "dom0", name: names.qube(vm), value: ENTRY_OWNED },
    { op: "feature.remove", vm: "dom0", name: names.intent(vm) },
  ];
  if (q.protect) {
    ops.push({ op: "feature.set", vm, name: names.protect, value: MARKER_VALUE });
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
    ops.push({ op: "feature.set", vm, name: names.feature(f), value: MARKER_VALUE }, { op: "feature.set", vm, name: f, value: v });
    after[`features.${f}`] = v;
  }
  for (const t of sorted(q.tags)) ops.push({ op: "feature.set", vm, name: names.tag(t), value: MARKER_VALUE }, { op: "tag.set", vm, name: t });
  after.tags = sorted([...q.tags, names.ownerTag]);
  if (q.firewall !== undefined) {
    ops.push({ op: "feature.set", vm, name: names.firewall, value: MARKER_VALUE }, { op: "firewall.set", vm, rules: [...q.firewall] });
    after.firewall = [...q.firewall];
  }
  for (const [v, { size }] of q.volumes) {
    ops.push({ op: "volume.resize", vm, volume: v, size: String(size) });
    after[`volumes.${v}.size`] = String(size);
  }
  if (q.state !== undefined) {
    ops.push(...powerOps(vm, "halted", q.state));
    after.state = q.state;
  }
  return { ops, after, afterDefault };
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
  ctx.addCheck({ check: "qube-absent", vm: q.name });
  const { ops, after, afterDefault } = createOps(ctx, q, q.class, q.label);
  const change = emptyChange(q.name, "create");
  change.after = after;
  change.afterDefault = afterDefault;
  if (own.confirmed || own.intent) change.reasons.push("the inventory lists it but it does not exist: it is created again");
  return {
    change,
    steps: [{ id: stepId("create", address), address, kind: "create", ops, uses: desiredReferences(q).map((r) => r.address), unreferences: [], after: [] }],
  };
}

// ---------------------------------------------------------------------------------------------
// Update (and adopt, and finishing an interrupted create)

type Adoption = "owned" | "adopt";
type ExistingOwnership = Exclude<QubeOwnership, { kind: "absent" }>;

function ownershipOps(ctx: DiffContext, vm: string, own: ExistingOwnership, adoption: Adoption): Op[] {
  const { names } = ctx;
  const ops: Op[] = [];
  if (!own.tagged) {
    // An adopt records its intent first, so an interruption before the tag is recognised later.
    if (adoption === "adopt" && !own.intent) ops.push({ op: "feature.set", vm: "dom0", name: names.intent(vm), value: "adopt" });
    ops.push({ op: "tag.set", vm, name: names.ownerTag });
  }
  if (!own.confirmed) ops.push({ op: "feature.set", vm: "dom0", name: names.qube(vm), value: ENTRY_OWNED });
  if (own.intent || (adoption === "adopt" && !own.tagged)) ops.push({ op: "feature.remove", vm: "dom0", name: names.intent(vm) });
  return ops;
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

function diffUpdate(ctx: DiffContext, q: DesiredQube, own: ExistingOwnership, adoption: Adoption): QubeDiff {
  const vm = q.name;
  const address = `qube.${vm}`;
  const a = ctx.detail(vm);
  const rec = readQubeRecords(ctx.desired.owner, a.featureNames);
  ctx.addCheck({ check: "qube", vm, class: a.klass, power: a.power });

  if (q.class !== undefined && q.class !== a.klass) {
    if (adoption === "adopt") {
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
  diffAttributes(ctx, q, a, rec, acc);

  const current = settledPower(a.power);
  const haltKeys = acc.changed.filter((k) => haltOnly(k, a.klass));
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
  } else if (haltKeys.length > 0 && current !== "halted") {
    needsHalt.push(...haltKeys);
    if (ctx.options.allowRestart) {
      pre.push(...powerOps(vm, current, "halted"));
      post.push(...powerOps(vm, "halted", target));
    } else {
      ctx.diagnostics.push(
        planDiagnostic("QIAC-E105", `qube ${vm} is ${current}; Qubes changes ${haltKeys.join(", ")} only while it is halted`, {
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
  const ownOps = adoption === "adopt" || own.kind === "owned" ? ownershipOps(ctx, vm, own, adoption) : [];
  ctx.addCheck({ check: "feature", vm: "dom0", name: ctx.names.qube(vm), expect: own.confirmed ? { present: true } : { absent: true } });
  ctx.addCheck({ check: "feature", vm: "dom0", name: ctx.names.intent(vm), expect: own.intent ? { present: true } : { absent: true } });
  const ops = [...ownOps, ...pre, ...acc.ops, ...post];
  checkResume(ctx, vm, ops, q);
  checkRunningDisposables(ctx, q, acc.changed, acc.ops);

  const change = emptyChange(vm, ops.length > 0 ? "update" : "no-op");
  change.before = acc.before;
  change.after = acc.after;
  change.beforeDefault = acc.beforeDefault;
  change.afterDefault = acc.afterDefault;
  change.needsHalt = needsHalt;
  if (adoption === "adopt") change.reasons.push(`adopt: qubes-iac takes over this existing qube (tag ${ctx.names.ownerTag})`);
  else if (ownOps.length > 0) change.reasons.push("finish an interrupted create: record ownership");
  if (pre.length > 0 && needsHalt.length > 0) change.reasons.push(`apply shuts the qube down for ${needsHalt.join(", ")} and starts it again`);
  if (startsNetvm !== undefined) change.reasons.push(`apply starts ${startsNetvm} first: Qubes connects a running qube only to a running netvm`);
  if (ops.length === 0) return { change, steps: [] };
  return {
    change,
    steps: [{ id: stepId("update", address), address, kind: "update", ops, uses: acc.uses, unreferences: acc.unreferences, after: [] }],
  };
}

// ---------------------------------------------------------------------------------------------
// Delete and replace

/** Attributes shown for a qube that is going away. */
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
  ctx.addCheck({ check: "tag", vm, name: ctx.names.ownerTag, present: true });
  ctx.addCheck({ check: "feature", vm, name: ctx.names.protect, expect: rec.protect ? { present: true } : { absent: true } });
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

function diffDelete(ctx: DiffContext, vm: string, own: Extract<QubeOwnership, { kind: "owned" }>): QubeDiff {
  const address = `qube.${vm}`;
  const a = ctx.detail(vm);
  const rec = readQubeRecords(ctx.desired.owner, a.featureNames);
  ctx.addCheck({ check: "qube", vm, class: a.klass, power: a.power });
  ctx.addCheck({ check: "tag", vm, name: ctx.names.ownerTag, present: own.tagged });
  ctx.addCheck({ check: "feature", vm, name: ctx.names.protect, expect: rec.protect ? { present: true } : { absent: true } });
  const change = emptyChange(vm, "delete");
  change.before = goneAttributes(ctx, a, rec);
  change.destroysData = true;
  change.reasons.push(`not in the config; managed by ${ctx.desired.owner}`);
  const power = settledPower(a.power);
  if (power !== undefined && power !== "halted") change.reasons.push(`it is ${power}: apply shuts it down first`);
  if (rec.protect) {
    ctx.diagnostics.push(
      planDiagnostic("QIAC-E103", `qube ${vm} is protected and no longer in the config: it would be destroyed`, {
        address,
        hint: `put qube ${vm} back in the config, or declare it with \`protect: false\` and apply before removing it`,
      }),
    );
  }
  const ops: Op[] = [...removalOps(vm, a.power)];
  checkResume(ctx, vm, ops);
  if (own.confirmed) ops.push({ op: "feature.remove", vm: "dom0", name: ctx.names.qube(vm) });
  if (own.intent) ops.push({ op: "feature.remove", vm: "dom0", name: ctx.names.intent(vm) });
  return {
    change,
    steps: [{ id: stepId("delete", address), address, kind: "delete", ops, uses: [], unreferences: currentReferences(a), after: [] }],
  };
}

function diffForget(ctx: DiffContext, vm: string, own: { confirmed: boolean; intent: boolean }, why: string): QubeDiff {
  const address = `qube.${vm}`;
  const ops: Op[] = [];
  const before: Attributes = {};
  if (own.confirmed) {
    ops.push({ op: "feature.remove", vm: "dom0", name: ctx.names.qube(vm) });
    before.inventory = ctx.names.qube(vm);
    ctx.addCheck({ check: "feature", vm: "dom0", name: ctx.names.qube(vm), expect: { present: true } });
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
  ctx.diagnostics.push(
    planDiagnostic("QIAC-E102", `ownership drift: the inventory of ${ctx.desired.owner} lists qube ${vm}, but its tag ${ctx.names.ownerTag} was removed; it is left alone`, {
      address: `qube.${vm}`,
      ...(q ? { location: q.at } : {}),
      hint: `if it is still yours, put the tag back (qvm-tags ${vm} add ${ctx.names.ownerTag})${q ? " or set `adopt: true`" : ""}; if it is not, remove ${ctx.names.qube(vm)} from dom0's features (qvm-features dom0 ${ctx.names.qube(vm)} '')`,
    }),
  );
}

/** The diff of a qube the config declares. */
export function diffDesiredQube(ctx: DiffContext, q: DesiredQube): QubeDiff {
  const address = `qube.${q.name}`;
  const listed = ctx.actual.listing.get(q.name);
  if (listed && (listed.klass === "AdminVM" || listed.klass === "RemoteVM")) {
    ctx.diagnostics.push(planDiagnostic("QIAC-E122", `qube ${q.name} is a ${listed.klass}, which qubes-iac does not manage`, { location: q.at, address }));
    return { steps: [] };
  }
  checkDesiredReferences(ctx, q);
  const own = ctx.ownership(q.name);
  switch (own.kind) {
    case "absent":
      return diffCreate(ctx, q, own);
    case "owned":
      return diffUpdate(ctx, q, own, "owned");
    case "pending-adopt":
      return diffUpdate(ctx, q, own, "adopt");
    case "drift":
      if (q.adopt) return diffUpdate(ctx, q, own, "adopt");
      driftDiagnostic(ctx, q.name, q);
      return { steps: [] };
    case "foreign":
      if (q.adopt) return diffUpdate(ctx, q, own, "adopt");
      ctx.addCheck({ check: "tag", vm: q.name, name: ctx.names.ownerTag, present: own.tagged });
      ctx.diagnostics.push(
        planDiagnostic("QIAC-E101", `qube ${q.name} exists and is not managed by ${ctx.desired.owner}`, {
          location: q.at,
          address,
          hint: `add \`adopt: true\` to take it over (its attributes then follow the config), or rename the qube in the config`,
        }),
      );
      return { steps: [] };
    default: {
      const never: never = own;
      throw new Error(`unhandled ownership ${String(never)}`);
    }
  }
}

/** The diff of a qube the inventory lists and the config does not declare. */
export function diffUndesiredQube(ctx: DiffContext, vm: string): QubeDiff {
  const own = ctx.ownership(vm);
  switch (own.kind) {
    case "absent":
      return diffForget(ctx, vm, own, "no longer exists and is not in the config");
    case "owned":
      return diffDelete(ctx, vm, own);
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
