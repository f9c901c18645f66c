// The qrexec policy a management qube needs to plan (and with `apply`, to apply) a config:
// Qubes 4.1+ policy lines (`service argument source target action`) with `allow target=dom0`.
// Derived from the same tables the code calls through — READER_CALLS for reads, opCall over the
// ops an apply of this config can make for writes — never from a list of its own. Qubes the config
// names are matched by name, qubes it creates by `@tag:created-by-<mgmt>` (a tag only dom0
// sets); nothing matches `managed-by-*`, which the management qube could set itself. Pure.

import type { CloneVolume } from "../model/clone.js";
import type { DesiredState } from "../model/desired.js";
import type { Diagnostic } from "../model/diagnostics.js";
import { policyAddress, type DesiredPolicyFile, type PolicyScope } from "../model/qrexec-policy.js";
import { rightsIncludes, rightsReason } from "../model/qrexec-rights.js";
import { desiredPolicies } from "../plan/policy-desired.js";
import { ownershipNames, type Inventory } from "../model/ownership.js";
import type { Op, OpName } from "../plan/ops.js";
import { configReferences } from "../plan/reference-needs.js";
import { DEVICE_CLASSES, deviceQargR42 } from "../model/devices.js";
import { opCall, READER_CALLS } from "./admin-api.js";
import { lockOps } from "./lock.js";

export const ADMINVM = "@adminvm";
export const createdByTag = (mgmt: string): string => `@tag:created-by-${mgmt}`;
/** The argument of a call whose argument is not known in advance (a property, feature or tag name). */
const ANY = "*";
/** Any volume a clone copies: these ops only name policy lines (opCall turns the volume into the argument). */
const ANY_VOLUME = ANY as CloneVolume;

export type PolicyRule = {
  service: string;
  /** `*`, or `+ARG` for exactly that argument. */
  argument: string;
  target: string;
  /**
   * `read`/`write`: Admin API calls, redirected to dom0. `guest`: a guest agent's qrexec service
   * in the qube itself (docs/guests.md), which plan and apply both call. `policy-read` /
   * `policy-write`: qrexec's policy admin API in dom0 (policy.List/Get, and with
   * --allow-policy-writes policy.Replace/Remove), for exactly the policy files the config manages.
   */
  purpose: "read" | "write" | "guest" | "policy-read" | "policy-write";
};

export type PolicyInput = {
  desired: DesiredState;
  mgmt: string;
  /** Also the calls of apply (else plan's only). */
  apply: boolean;
  /** The owner's inventory, when read: what the config no longer names must still be removable. */
  inventory?: Inventory;
  /** `--allow-policy-writes`: with `apply`, grant policy.Replace/Remove of the config's policy files. */
  allowPolicyWrites?: boolean;
  /** The owner's policy file entries (ownership.ts readPolicyInventory), when read: dropped files stay removable. */
  policyInventory?: ReadonlyMap<string, { scope: PolicyScope; name: string; lifecycle: "created" | "adopted"; records: readonly string[] }>;
};

/** The config's policy files (`policies:`, `policy_includes:`), by address. */
export function policyFilesOf(desired: DesiredState): DesiredPolicyFile[] {
  return [...desiredPolicies(desired).values()].sort((a, b) => (policyAddress(a) < policyAddress(b) ? -1 : 1));
}

/**
 * The policy admin calls of the config's policy files, each file by its exact name, and none at
 * all without `allowPolicyWrites` (`policy.*` only with --allow-policy-writes): plan's reads
 * (`policy.List`, `policy.Get+NAME`; `policy.include.*` for include files), and with `apply` the
 * writes apply makes (diff-policies.ts): `policy.Replace+NAME`
 * and the file's inventory entry on dom0 (`admin.vm.feature.Set` of
 * `qubes-iac.<owner>.policy.created.NAME`, or `.adopted.` for `adopt: true`); for `absent: true`
 * `policy.Remove+NAME` and the entry's removal; for `release: true` the entry's removal. With the
 * inventory read (`--connect`), the same for the files it lists that the config dropped: a
 * created one is removed, an adopted one released.
 */
export function policyFileRules(i: PolicyInput): PolicyRule[] {
  const out: PolicyRule[] = [];
  if (i.allowPolicyWrites !== true) return out;
  const writes = i.apply;
  const names = ownershipNames(i.desired.owner);
  const svc = (scope: PolicyScope, s: "List" | "Get" | "Replace" | "Remove"): string => (scope === "include" ? `policy.include.${s}` : `policy.${s}`);
  const entry = (op: "Set" | "Remove", scope: PolicyScope, lifecycle: "created" | "adopted", name: string): PolicyRule => ({
    service: `admin.vm.feature.${op}`,
    argument: `+${names.policy(scope, lifecycle, name)}`,
    target: ADMINVM,
    purpose: "policy-write",
  });
  const read = (scope: PolicyScope, name: string): void => {
    out.push({ service: svc(scope, "List"), argument: "+", target: ADMINVM, purpose: "policy-read" }, { service: svc(scope, "Get"), argument: `+${name}`, target: ADMINVM, purpose: "policy-read" });
  };
  const desired = policyFilesOf(i.desired);
  for (const f of desired) {
    read(f.scope, f.name);
    if (!writes) continue;
    if (f.release) {
      out.push(entry("Remove", f.scope, "created", f.name), entry("Remove", f.scope, "adopted", f.name));
    } else if (f.absent) {
      out.push({ service: svc(f.scope, "Remove"), argument: `+${f.name}`, target: ADMINVM, purpose: "policy-write" }, entry("Remove", f.scope, "created", f.name), entry("Remove", f.scope, "adopted", f.name));
    } else {
      out.push({ service: svc(f.scope, "Replace"), argument: `+${f.name}`, target: ADMINVM, purpose: "policy-write" }, entry("Set", f.scope, f.adopt ? "adopted" : "created", f.name));
    }
  }
  const named = new Set(desired.map(policyAddress));
  for (const [address, e] of i.policyInventory ?? new Map()) {
    if (named.has(address)) continue;
    read(e.scope, e.name);
    if (!writes) continue;
    if (e.lifecycle === "created") out.push({ service: svc(e.scope, "Remove"), argument: `+${e.name}`, target: ADMINVM, purpose: "policy-write" });
    for (const r of e.records) out.push({ service: "admin.vm.feature.Remove", argument: `+${r}`, target: ADMINVM, purpose: "policy-write" });
  }
  return out;
}

/** The diagnostic codes of `qubes-iac policy` (docs/policy.md lists them; a test keeps the two in step). */
export const POLICY_COMMAND_CODES = {
  "QIAC-E310": "with --allow-policy-writes: a policy file of the config holds management rights (it allows or asks an Admin API, policy admin or every service, routes one through !include-service, or is an include file such a line reads): only dom0 may write it",
} as const;

/**
 * QIAC-E310, at each policy file of the config that holds management rights (qrexec-rights.ts),
 * when the policy is to grant policy writes: a management qube that may write the file that holds
 * its own rights may give itself any right, so such a file is written only from dom0.
 */
export function policyWriteRefusals(i: PolicyInput): Diagnostic[] {
  if (!i.apply || i.allowPolicyWrites !== true) return [];
  const files = policyFilesOf(i.desired);
  const includes = rightsIncludes(files.flatMap((f) => f.statements));
  // The config's own include files, for the `!include` lines of its files.
  const byPath = new Map(files.filter((f) => f.scope === "include").map((f) => [`include/${f.name}`, f.statements]));
  const out: Diagnostic[] = [];
  for (const f of files) {
    if (f.release) continue;
    const why = rightsReason(f, includes, (path) => byPath.get(path.replace(/^\/etc\/qubes\/policy\.d\//, "")));
    if (why === undefined) continue;
    out.push({
      severity: "error",
      code: "QIAC-E310" satisfies keyof typeof POLICY_COMMAND_CODES,
      message: `${policyAddress(f)} holds management rights (${why}): it can be written only from dom0, so --allow-policy-writes does not grant it to ${i.mgmt}`,
      hint: "apply this file from dom0 (a config of its own, or `--target` from dom0), and generate the management qube's policy without it",
      location: f.at,
    });
  }
  return out;
}

/**
 * Disposable templates the config creates: their DispVMs carry the template's tags, the
 * management qube's `created-by-` tag among them (qubes-core-admin qubes/vm/dispvm.py copies
 * `template.tags`), whoever starts them.
 */
export function createdDispvmTemplates(desired: DesiredState): string[] {
  return [...desired.qubes.values()]
    .filter((q) => !q.adopt && q.class !== undefined && q.properties.get("template_for_dispvms")?.kind === "bool" && (q.properties.get("template_for_dispvms") as { value: boolean }).value)
    .map((q) => q.name)
    .sort();
}

/** Qubes the config refers to without declaring them: templates, netvms, disposable templates, globals. */
function referencedQubes(desired: DesiredState): string[] {
  const out = new Set<string>();
  for (const q of desired.qubes.values()) {
    if (q.template !== undefined) out.add(q.template);
    if (q.clone !== undefined) out.add(q.clone);
    for (const v of q.properties.values()) if (v.kind === "vm" && v.value !== null) out.add(v.value);
  }
  for (const v of desired.properties.values()) if (v.kind === "vm" && v.value !== null) out.add(v.value);
  out.delete("dom0");
  for (const n of desired.qubes.keys()) out.delete(n);
  return [...out].sort();
}

/** The properties the plan may read of qubes the config refers to without declaring them (reference-needs.ts). */
function referencedProperties(desired: DesiredState): Array<{ vm: string; name: string }> {
  const out = new Map<string, { vm: string; name: string }>();
  for (const r of configReferences(desired, new Map())) {
    if (r.need.kind === "property" && !desired.qubes.has(r.qube) && r.qube !== "dom0") out.set(`${r.qube} ${r.need.name}`, { vm: r.qube, name: r.need.name });
  }
  // An adopted qube without `class` may be a DispVM: its template is then read as a disposable template.
  for (const q of desired.qubes.values()) {
    if (q.class === undefined && q.template !== undefined && !desired.qubes.has(q.template)) out.set(`${q.template} template_for_dispvms`, { vm: q.template, name: "template_for_dispvms" });
  }
  return [...out.values()];
}

/** The ops an apply can make on one qube, for every op kind that goes to the qube itself. */
function qubeOps(vm: string): Op[] {
  const kinds: { [K in OpName]: Op | undefined } = {
    "vm.create": undefined,
    "vm.remove": { op: "vm.remove", vm },
    "vm.start": { op: "vm.start", vm },
    "vm.shutdown": { op: "vm.shutdown", vm },
    "vm.pause": { op: "vm.pause", vm },
    "vm.unpause": { op: "vm.unpause", vm },
    "vm.resume": { op: "vm.resume", vm },
    "property.set": { op: "property.set", holder: { vm }, name: ANY, value: "" },
    "property.reset": { op: "property.reset", holder: { vm }, name: ANY },
    "feature.set": { op: "feature.set", vm, name: ANY, value: "" },
    "feature.remove": { op: "feature.remove", vm, name: ANY },
    "tag.set": { op: "tag.set", vm, name: ANY },
    "tag.remove": { op: "tag.remove", vm, name: ANY },
    "firewall.set": { op: "firewall.set", vm, rules: [] },
    "label.create": undefined,
    "label.remove": undefined,
    "pool.add": undefined,
    "pool.remove": undefined,
    "volume.resize": { op: "volume.resize", vm, volume: ANY, size: "0" },
    "volume.revisions": { op: "volume.revisions", vm, volume: ANY, value: "0" },
    "volume.ephemeral": { op: "volume.ephemeral", vm, volume: ANY, value: false },
    "notes.set": { op: "notes.set", vm, text: "" },
    "vm.uuid": { op: "vm.uuid", vm },
    // A clone's volumes: CloneTo on the new qube, CloneFrom on its source (potentialOps).
    "volume.clone-to": { op: "volume.clone-to", vm, volume: ANY_VOLUME, from: ANY, size: "0" },
    "volume.clone-from": undefined,
    // Record ops are feature.Set/Remove on the qube, already granted above for any name.
    "record.set": undefined,
    "record.remove": undefined,
    // Device calls are granted per class and release from the config (deviceOps below).
    "device.assign": undefined,
    "device.unassign": undefined,
    "device.set-mode": undefined,
    "device.attach": undefined,
    "device.detach": undefined,
  };
  return Object.values(kinds).filter((o): o is Op => o !== undefined);
}

/**
 * Every op an apply of this config can make, whatever the system holds now. A qube the config
 * creates is named by the created-by tag (these ops never reach a client: they name policy
 * targets). Removal is granted only on qubes the management qube created, and on what the
 * inventory lists and the config dropped.
 */
export function potentialOps(i: PolicyInput): Op[] {
  const { desired, mgmt } = i;
  const names = ownershipNames(desired.owner);
  const created = createdByTag(mgmt);
  // The apply lock (docs/locking.md): its label and holder record, by their exact names.
  const lock = lockOps(desired.owner);
  const ops: Op[] = [...lock.take, ...lock.release, { op: "feature.set", vm: "dom0", name: names.format, value: "1" }];
  // The entries an apply may write or remove for a qube, by their exact names (a format-1 entry is rewritten).
  const entryOps = (n: string): Op[] => [
    { op: "feature.set", vm: "dom0", name: names.intent(n), value: "create" },
    { op: "feature.remove", vm: "dom0", name: names.intent(n) },
    { op: "feature.set", vm: "dom0", name: names.created(n), value: "1" },
    { op: "feature.set", vm: "dom0", name: names.adopted(n), value: "1" },
    { op: "feature.remove", vm: "dom0", name: names.created(n) },
    { op: "feature.remove", vm: "dom0", name: names.adopted(n) },
    { op: "feature.remove", vm: "dom0", name: names.legacyQube(n) },
  ];
  for (const l of desired.labels.values()) {
    ops.push({ op: "feature.set", vm: "dom0", name: names.label(l.name), value: "own" }, { op: "label.create", name: l.name, colour: l.colour }, { op: "label.remove", name: l.name });
  }
  for (const p of desired.pools.values()) {
    ops.push({ op: "feature.set", vm: "dom0", name: names.pool(p.name), value: "own" }, { op: "pool.add", driver: p.driver, name: p.name, params: {} });
  }
  for (const g of desired.properties.keys()) ops.push({ op: "property.set", holder: "global", name: g, value: "" }, { op: "property.reset", holder: "global", name: g });
  // A policy file's inventory entries (docs/ownership.md, "Policy files"); the policy.* calls themselves are not Admin API calls.
  for (const f of desiredPolicies(desired).values()) {
    for (const lc of ["created", "adopted"] as const) ops.push({ op: "feature.set", vm: "dom0", name: names.policy(f.scope, lc, f.name), value: "1" }, { op: "feature.remove", vm: "dom0", name: names.policy(f.scope, lc, f.name) });
  }
  // Running followers of default_netvm are connected only to a running netvm: apply may start it.
  const defaultNetvm = desired.properties.get("default_netvm");
  if (defaultNetvm?.kind === "vm" && defaultNetvm.value !== null && !desired.qubes.has(defaultNetvm.value)) ops.push({ op: "vm.start", vm: defaultNetvm.value });
  for (const q of desired.qubes.values()) {
    ops.push(...entryOps(q.name));
    if (q.class !== undefined && q.label !== undefined) {
      ops.push({ op: "vm.create", class: q.class, name: q.name, label: q.label, ...(q.template !== undefined ? { template: q.template } : {}), ...(q.pool !== undefined ? { pool: q.pool } : {}) });
    }
    const target = q.adopt ? q.name : created;
    // An adopted qube is removed only when the config says `absent: true` on it.
    ops.push(
      ...qubeOps(target).filter(
        (o) =>
          !(o.op === "vm.remove" && q.adopt && !q.absent) &&
          !(o.op === "volume.resize" && ![...q.volumes.values()].some((v) => v.size !== undefined)) &&
          !(o.op === "volume.revisions" && ![...q.volumes.values()].some((v) => v.revisionsToKeep !== undefined)) &&
          !(o.op === "volume.ephemeral" && ![...q.volumes.values()].some((v) => v.ephemeral !== undefined)) &&
          !(o.op === "notes.set" && q.notes === undefined) &&
          !(o.op === "vm.uuid" && q.adopt) &&
          !(o.op === "volume.clone-to" && (q.clone === undefined || q.adopt)),
      ),
    );
    // CloneFrom on the source, which the config names (or creates: then by the created-by tag).
    if (q.clone !== undefined && !q.adopt) {
      const src = desired.qubes.get(q.clone);
      const source = src !== undefined && !src.adopt ? created : q.clone;
      // A file pool copies only a halted volume: with --allow-restart, apply stops the source and starts it again.
      ops.push({ op: "volume.clone-from", vm: source, volume: ANY_VOLUME, to: created }, { op: "vm.shutdown", vm: source }, { op: "vm.start", vm: source });
    }
    // A running qube is connected only to a running netvm: apply may start a netvm the config does not declare.
    const netvm = q.properties.get("netvm");
    if (netvm?.kind === "vm" && netvm.value !== null && netvm.value !== "dom0" && !desired.qubes.has(netvm.value)) ops.push({ op: "vm.start", vm: netvm.value });
  }
  const inv = i.inventory;
  if (inv !== undefined) {
    for (const d of [...new Set([...inv.qubes, ...inv.intents])].filter((n) => !desired.qubes.has(n)).sort()) {
      // A qube dropped from the config is destroyed (created) or released (adopted): its records and tag go.
      ops.push(
        ...entryOps(d),
        { op: "feature.remove", vm: d, name: ANY },
        { op: "tag.remove", vm: d, name: names.ownerTag },
        { op: "vm.unpause", vm: d },
        { op: "vm.resume", vm: d },
        { op: "vm.shutdown", vm: d },
        { op: "vm.remove", vm: d },
      );
    }
    for (const l of [...inv.labels].filter((n) => !desired.labels.has(n)).sort()) ops.push({ op: "label.remove", name: l }, { op: "feature.remove", vm: "dom0", name: names.label(l) });
    for (const p of [...inv.pools].filter((n) => !desired.pools.has(n)).sort()) ops.push({ op: "pool.remove", name: p }, { op: "feature.remove", vm: "dom0", name: names.pool(p) });
  }
  return ops;
}

/** The qubes whose reads a plan needs, by name: declared, referenced, and dropped from the inventory. */
export function namedQubes(i: PolicyInput): string[] {
  const dropped = i.inventory === undefined ? [] : [...i.inventory.qubes, ...i.inventory.intents].filter((n) => !i.desired.qubes.has(n));
  return [...new Set([...i.desired.qubes.keys(), ...referencedQubes(i.desired), ...dropped])].sort();
}

const argumentOf = (arg: string): string => (arg === "" || arg === ANY ? ANY : `+${arg}`);
const targetOf = (dest: string): string => (dest === "dom0" ? ADMINVM : dest);

export function policyRules(i: PolicyInput): PolicyRule[] {
  const rules = new Map<string, PolicyRule>();
  const add = (r: PolicyRule): void => {
    const key = `${r.service} ${r.argument} ${r.target}`;
    if (!rules.has(key)) rules.set(key, r);
  };
  const qubeTargets = [...namedQubes(i), createdByTag(i.mgmt)];
  // The notes are read only of a qube whose config sets them (and that exists: never by the created-by tag).
  const reads = (method: string, t: string): boolean => method !== "admin.vm.notes.Get" || i.desired.qubes.get(t)?.notes !== undefined;
  for (const uses of Object.values(READER_CALLS)) {
    for (const u of uses) {
      if (isDeviceCall(u.method)) continue; // deviceRules: only the classes and qubes the config names

      if (u.target === "dom0" || u.target === "qube-or-dom0") add({ service: u.method, argument: ANY, target: ADMINVM, purpose: "read" });
      if (u.target === "qube" || u.target === "qube-or-dom0") for (const t of qubeTargets.filter((x) => reads(u.method, x))) add({ service: u.method, argument: ANY, target: t, purpose: "read" });
      // Without a connection the classes are unknown: every property a reference may need is granted.
      if (u.target === "referenced") for (const r of referencedProperties(i.desired)) add({ service: u.method, argument: `+${r.name}`, target: r.vm, purpose: "read" });
    }
  }
  // qubesd answers admin.vm.List with only the qubes this same policy lets the caller list.
  for (const t of qubeTargets) add({ service: "admin.vm.List", argument: ANY, target: t, purpose: "read" });
  if (i.apply) {
    for (const o of potentialOps(i)) {
      const c = opCall(o);
      add({ service: c.method, argument: argumentOf(c.arg), target: targetOf(c.dest), purpose: "write" });
    }
  }
  for (const r of deviceRules(i)) add(r);
  for (const g of i.desired.guests.values()) {
    if (g.agent.kind === "qrexec") add({ service: g.agent.service, argument: ANY, target: g.agent.qube, purpose: "guest" });
  }
  for (const r of policyFileRules(i)) add(r);
  const rank = (t: string): string => (t === ADMINVM ? `0${t}` : t.startsWith("@tag:") ? `2${t}` : `1${t}`);
  const cmp = (x: string, y: string): number => (x < y ? -1 : x > y ? 1 : 0);
  return [...rules.values()].sort(
    (a, b) => PURPOSE_ORDER.indexOf(a.purpose) - PURPOSE_ORDER.indexOf(b.purpose) || cmp(a.service, b.service) || cmp(rank(a.target), rank(b.target)) || cmp(a.argument, b.argument),
  );
}

const isDeviceCall = (method: string): boolean => method.startsWith("admin.vm.device.") || method === "admin.deviceclass.List";

/**
 * The device calls of the config's `devices:` (src/model/devices.ts), for both device APIs,
 * since the policy is written without asking which release answers: R4.3+ reads Assigned and
 * writes Assign/Unassign/Set.assignment (the argument holds the device's identity, known only
 * when the plan runs: any); R4.2 reads List and writes Attach/Detach with `+BACKEND+PORT`.
 * Available is read of each backend, for the classes it offers to the config's qubes.
 */
function deviceRules(i: PolicyInput): PolicyRule[] {
  const out: PolicyRule[] = [];
  const withDevices = [...i.desired.qubes.values()].filter((q) => (q.devices?.size ?? 0) > 0);
  // A copy with clone_devices: true takes its source's assignments, of any class (src/plan/clone.ts).
  const copying = [...i.desired.qubes.values()].filter((q) => q.cloneDevices === true && q.clone !== undefined && !q.adopt);
  if (withDevices.length === 0 && copying.length === 0) return out;
  out.push({ service: "admin.deviceclass.List", argument: ANY, target: ADMINVM, purpose: "read" });
  for (const q of copying) {
    const source = q.clone as string;
    const sourceTarget = i.desired.qubes.has(source) && i.desired.qubes.get(source)?.adopt !== true ? createdByTag(i.mgmt) : source;
    for (const c of DEVICE_CLASSES) {
      const m = (call: string): string => `admin.vm.device.${c}.${call}`;
      for (const call of ["Assigned", "List"]) out.push({ service: m(call), argument: ANY, target: sourceTarget, purpose: "read" });
      if (!i.apply) continue;
      for (const call of ["Assign", "Attach"]) out.push({ service: m(call), argument: ANY, target: createdByTag(i.mgmt), purpose: "write" });
    }
  }
  for (const q of withDevices) {
    const writeTarget = q.adopt ? q.name : createdByTag(i.mgmt);
    for (const d of q.devices?.values() ?? []) {
      const m = (call: string): string => `admin.vm.device.${d.devclass}.${call}`;
      // R4.3+ and R4.2 listings of the qube's assignments.
      for (const call of ["Assigned", "List"]) out.push({ service: m(call), argument: ANY, target: q.name, purpose: "read" });
      out.push({ service: m("Available"), argument: `+${d.port}`, target: targetOf(d.backend), purpose: "read" });
      if (!i.apply) continue;
      for (const call of ["Assign", "Unassign", "Set.assignment"]) out.push({ service: m(call), argument: ANY, target: writeTarget, purpose: "write" });
      for (const call of ["Attach", "Detach"]) out.push({ service: m(call), argument: `+${deviceQargR42(d.backend, d.port)}`, target: writeTarget, purpose: "write" });
    }
  }
  return out;
}

const PURPOSE_ORDER: ReadonlyArray<PolicyRule["purpose"]> = ["read", "write", "guest", "policy-read", "policy-write"];

export type PolicyHeader = {
  owner: string;
  mgmt: string;
  apply: boolean;
  configs: readonly string[];
  generator: string;
  /** --allow-policy-writes was given (with --apply). */
  allowPolicyWrites?: boolean;
  /** Policy files the config manages (addresses): said when their writes are not granted. */
  policyFiles?: readonly string[];
  /** Disposable templates the config creates (createdDispvmTemplates): their DispVMs are reachable by the tag. */
  dispvmTemplates?: readonly string[];
};

export function renderPolicy(rules: readonly PolicyRule[], h: PolicyHeader): string {
  const width = (f: (r: PolicyRule) => string): number => Math.max(0, ...rules.map((r) => f(r).length));
  const ws = width((r) => r.service);
  const wa = width((r) => r.argument);
  const wt = width((r) => r.target);
  const line = (r: PolicyRule): string =>
    `${r.service.padEnd(ws)}  ${r.argument.padEnd(wa)}  ${h.mgmt}  ${r.target.padEnd(wt)}  ${r.purpose === "guest" ? "allow" : "allow target=dom0"}`;
  const out = [
    `# Qubes Admin API policy for qubes-iac: ${h.apply ? "plan and apply" : "plan (read only)"} of ${h.configs.length > 0 ? h.configs.join(" ") : "qubes.yaml"}`,
    `# (owner ${h.owner}) from the management qube ${h.mgmt}. Generated by ${h.generator}.`,
    `# Install in dom0 as /etc/qubes/policy.d/30-qubes-iac-${h.owner}.policy (Qubes 4.1 or later).`,
    "# Qubes the config names are matched by name; qubes it creates by @tag:created-by-" + `${h.mgmt},`,
    "# a tag only dom0 sets. No line matches managed-by-* tags: the management qube could set those.",
    ...reachableNote(h),
    "",
    "# Reads: plan, and apply's checks before and after it acts.",
    ...rules.filter((r) => r.purpose === "read").map(line),
  ];
  if (h.apply) out.push("", "# Writes: apply.", ...rules.filter((r) => r.purpose === "write").map(line));
  const guests = rules.filter((r) => r.purpose === "guest");
  if (guests.length > 0) out.push("", "# Guest agents: the qrexec service in each qube that bridges its local qemu-ga (plan reads, apply writes).", ...guests.map(line));
  const policyReads = rules.filter((r) => r.purpose === "policy-read");
  if (policyReads.length > 0) out.push("", "# qrexec policy files the config manages, each by name: plan reads them (policy admin API, qrexec/policy/admin.py).", ...policyReads.map(line));
  const policyWrites = rules.filter((r) => r.purpose === "policy-write");
  if (policyWrites.length > 0) {
    out.push(
      "",
      "# Policy writes (--allow-policy-writes): the right to replace a policy file is the right to put any rule",
      "# in it, full control of the system. Only the files the config manages, each by name; never a file",
      "# that holds a management qube's rights (Admin API or policy admin services): those only dom0 writes.",
      ...policyWrites.map(line),
    );
  } else if (policyReads.length === 0 && (h.policyFiles?.length ?? 0) > 0) {
    out.push(
      "",
      `# Not granted: qrexec's policy admin services for the config's policy files (${(h.policyFiles ?? []).join(", ")}).`,
      "# The right to write a policy file is the right to put any rule in it; qubes-iac policy",
      "# --allow-policy-writes grants policy.* for exactly those files (with --apply, their writes too).",
      "# Without it, plan and apply them from dom0.",
    );
  }
  return `${out.join("\n")}\n`;
}

/** What the created-by tag reaches beyond the qubes the config creates: the DispVMs of its disposable templates. */
function reachableNote(h: PolicyHeader): string[] {
  const t = h.dispvmTemplates ?? [];
  if (t.length === 0) return [];
  const tag = `@tag:created-by-${h.mgmt}`;
  return [
    `# Also reachable through ${tag}: every DispVM started from ${t.join(", ")} (disposable templates`,
    `# this config creates), whoever starts it. qubesd copies a disposable template's tags to its DispVMs`,
    `# (qubes/vm/dispvm.py), ${tag.slice(5)} among them, so each ${tag} line below also lets ${h.mgmt}`,
    `# ${h.apply ? "read, change and remove those DispVMs" : "read those DispVMs"}.`,
  ];
}
