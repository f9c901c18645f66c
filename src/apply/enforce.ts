// The executor's own guard over the plan it is about to run. A saved plan is applied without the
// config, so its file is untrusted input: nothing in it is believed because it says so. Before the
// first call, `planProblems` (pure) checks that every op belongs to the resource change of its
// step's address and that the step's kind fits the change's action; `destroyedByOps` derives what
// needs the destroy approval from the ops themselves; and `ownershipProblems`, from what apply
// reads at that moment (the inventory in dom0's features, the listing, the qubes' tags and records),
// checks that every object an op touches is the plan owner's, or is created or adopted by that
// step, and that no op touches another owner's object without --take-ownership.

import { checkDeviceAddress, checkDeviceMode, checkDeviceOption, deviceAddress, deviceRecordKey, isDeviceClass, isSafeDeviceId } from "../model/devices.js";
import type { Diagnostic } from "../model/diagnostics.js";
import { isUuid, ownerOfRecord, ownershipNames, policyEntryOf, readQubeRecords } from "../model/ownership.js";
import { isExpectedToken, isPolicyFileName } from "../model/qrexec-policy-admin.js";
import { policyHeader, type PolicyScope } from "../model/qrexec-policy.js";
import { readStatements } from "../plan/policy-text.js";
import { RELEASE_IDS, type ReleaseId } from "../model/release.js";
import type { Action } from "../plan/action.js";
import type { StepKind } from "../plan/changes.js";
import type { JsonPlan, JsonResourceChange, JsonStep } from "../plan/json.js";
import { isGuestOp, stepOpMethod, type StepOp } from "../plan/ops.js";
import { applyDiagnostic } from "./codes.js";

/** The change actions a step of each kind may carry out (`setup` has no resource change). */
const STEP_ACTIONS: { readonly [K in StepKind]: readonly Action[] } = {
  setup: [],
  create: ["create", "replace"],
  update: ["update"],
  delete: ["delete", "replace"],
  forget: ["forget"],
  release: ["release"],
};

/** One op the executor refuses to run, and why; `step`/`op` name it for the user. */
export type OpProblem = { step: string; opIndex?: number; op?: StepOp; why: string };

const describeOp = (p: OpProblem): string =>
  p.op === undefined ? `step ${p.step}` : `op ${(p.opIndex ?? 0) + 1} of step ${p.step} (${stepOpMethod(p.op)}${"vm" in p.op ? ` on ${p.op.vm}` : "name" in p.op ? ` ${p.op.name}` : ""})`;

export function enforcementDiagnostics(problems: readonly OpProblem[]): Diagnostic[] {
  return problems.map((p) =>
    applyDiagnostic("QIAC-E205", `refused before any call: ${describeOp(p)}: ${p.why}`, {
      address: p.step.split(":")[1] ?? p.step,
      hint: "apply runs only what a plan may do to what its owner owns; make a new plan with `qubes-iac plan --out FILE`",
    }),
  );
}

/** The qube, label, pool or policy file (name: the address after `policy.`) a dom0 record of `owner` is about, from its name. */
function recordSubject(owner: string, feature: string): { type: "qube" | "label" | "pool" | "policy"; name: string } | "format" | undefined {
  const n = ownershipNames(owner);
  if (!feature.startsWith(n.prefix)) return undefined;
  const rest = feature.slice(n.prefix.length);
  if (rest === "format") return "format";
  const policy = policyEntryOf(rest);
  if (policy !== undefined) return { type: "policy", name: policy.address.slice("policy.".length) };
  if (rest.startsWith("policy.")) return undefined;
  for (const [kind, type] of [
    ["qube.", "qube"],
    ["intent.", "qube"],
    ["created.", "qube"],
    ["adopted.", "qube"],
    ["label.", "label"],
    ["pool.", "pool"],
  ] as const) {
    if (rest.startsWith(kind) && rest.length > kind.length) return { type, name: rest.slice(kind.length) };
  }
  return undefined;
}

/** Where a step's ops may act: the resource its address names. */
type Subject =
  | { type: "qube" | "label" | "pool"; name: string }
  | { type: "properties" }
  | { type: "ownership" }
  | { type: "guest"; address: string }
  /** `name`: the address after `policy.` (`30-gpg`, `include.admin-local`). */
  | { type: "policy"; name: string; scope: PolicyScope; file: string };

function subjectOf(address: string): Subject | undefined {
  if (address === "properties") return { type: "properties" };
  const policy = /^policy\.(include\.)?([^.]+)$/.exec(address);
  if (policy) {
    const file = policy[2] as string;
    return isPolicyFileName(file) ? { type: "policy", name: address.slice("policy.".length), scope: policy[1] !== undefined ? "include" : "policy", file } : undefined;
  }
  if (address === "ownership") return { type: "ownership" };
  if (address.startsWith("guest.")) return { type: "guest", address };
  const dot = address.indexOf(".");
  const type = address.slice(0, dot);
  const name = address.slice(dot + 1);
  if (dot > 0 && name !== "" && (type === "qube" || type === "label" || type === "pool")) return { type, name };
  return undefined;
}

/** Names of qubes the step's property writes point at (a netvm it connects the qube to may be started first). */
function referencedQubes(step: JsonStep): Set<string> {
  const out = new Set<string>();
  for (const o of step.ops) if (!isGuestOp(o) && o.op === "property.set" && o.value !== "") out.add(o.value);
  return out;
}

/** Why `o` may not run in `step` of a plan of `owner`; undefined when it belongs there. */
function opMisplaced(owner: string, releases: readonly ReleaseId[], step: JsonStep, s: Subject, o: StepOp): string | undefined {
  if (isGuestOp(o)) return s.type === "guest" && o.guest === s.address ? undefined : `a guest operation on ${o.guest} in a step for ${step.address}`;
  const dom0Record = (name: string, removes: boolean): string | undefined => {
    // A take-over removes the other owner's entries of the object (allowed only with --take-ownership: approval.ts).
    const other = ownerOfRecord(name);
    const subj = recordSubject(removes && other !== undefined ? other : owner, name);
    if (subj === undefined) return `dom0 feature ${name} is not a record of owner ${owner}: apply writes no other dom0 feature`;
    if (subj === "format") return s.type === "ownership" ? undefined : `the format record belongs to the ownership setup step`;
    if (s.type !== subj.type || !("name" in s) || s.name !== subj.name) return `the record ${name} is about ${subj.type} ${subj.name}, not ${step.address}`;
    return undefined;
  };
  const foreignRecord = (name: string, removes: boolean): string | undefined => {
    const other = ownerOfRecord(name);
    return other !== undefined && other !== owner && !removes ? `${name} is a record of owner ${other}` : undefined;
  };
  const onSubjectQube = (vm: string): string | undefined => (s.type === "qube" && vm === s.name ? undefined : `it acts on qube ${vm}, not on ${step.address}`);
  switch (o.op) {
    case "vm.create":
      if (step.kind !== "create") return "a qube is created only in a create step";
      return onSubjectQube(o.name);
    case "vm.remove":
      if (step.kind !== "delete") return "a qube is removed only in a delete step";
      return onSubjectQube(o.vm);
    case "vm.start":
      // A running qube is connected only to a running netvm: its step may start the qube it points at.
      if (s.type === "qube" && o.vm !== s.name && step.kind === "update" && referencedQubes(step).has(o.vm)) return undefined;
      // Running qubes that follow default_netvm are connected only to a running one: the step that moves it may start it.
      if (s.type === "properties" && step.kind === "update" && step.ops.some((x) => !isGuestOp(x) && x.op === "property.set" && x.holder === "global" && x.name === "default_netvm" && x.value === o.vm)) return undefined;
      return onSubjectQube(o.vm);
    case "vm.uuid":
      return onSubjectQube(o.vm);
    case "record.set":
    case "record.remove":
      if (o.owner !== owner && o.op === "record.set") return `it writes a record of owner ${o.owner}`;
      if (o.uuid !== undefined && !isUuid(o.uuid)) return `${JSON.stringify(o.uuid)} is not a UUID`;
      return onSubjectQube(o.vm);
    case "vm.shutdown":
    case "vm.pause":
    case "vm.unpause":
    case "vm.resume":
    case "firewall.set":
    case "volume.resize":
    case "tag.set":
    case "tag.remove":
      return onSubjectQube(o.vm);
    case "device.assign":
    case "device.unassign":
    case "device.set-mode":
    case "device.attach":
    case "device.detach":
      if (step.kind !== "create" && step.kind !== "update") return "a device assignment changes only in a create or update step";
      return onSubjectQube(o.vm) ?? deviceOpProblem(o);
    case "feature.set":
    case "feature.remove":
      if (o.vm === "dom0") return dom0Record(o.name, o.op === "feature.remove");
      return onSubjectQube(o.vm) ?? foreignRecord(o.name, o.op === "feature.remove");
    case "property.set":
    case "property.reset":
      if (o.holder === "global") return s.type === "properties" ? undefined : `a global property written in a step for ${step.address}`;
      return onSubjectQube(o.holder.vm);
    case "label.create":
    case "label.remove":
      if (o.op === "label.remove" && step.kind !== "delete") return "a label is removed only in a delete step";
      return s.type === "label" && s.name === o.name ? undefined : `it acts on label ${o.name}, not on ${step.address}`;
    case "pool.add":
    case "pool.remove":
      if (o.op === "pool.remove" && step.kind !== "delete") return "a pool is removed only in a delete step";
      return s.type === "pool" && s.name === o.name ? undefined : `it acts on pool ${o.name}, not on ${step.address}`;
    case "policy.replace":
    case "policy.remove":
      return policyOpMisplaced(owner, releases, step, s, o);
    default: {
      const never: never = o;
      return `unknown op ${JSON.stringify(never)}`;
    }
  }
}

/** A device op whose parts could not have come from a checked config (a forged saved plan). */
function deviceOpProblem(o: Extract<StepOp, { op: `device.${string}` }>): string | undefined {
  const addr = checkDeviceAddress(o.devclass, deviceAddress(o.backend, o.port));
  if (!isDeviceClass(o.devclass) || "error" in addr) return `${o.devclass} device ${o.backend}:${o.port} is not a device address`;
  if (o.backend === o.vm) return "a qube is never given its own device";
  if ("device_id" in o && o.device_id !== "*" && !isSafeDeviceId(o.device_id)) return `${JSON.stringify(o.device_id)} is not a device identity`;
  if ("mode" in o && (checkDeviceMode(o.devclass, o.mode) !== null || !["required", "auto-attach", "ask-to-attach"].includes(o.mode))) return `mode ${o.mode} is not one a ${o.devclass} device takes`;
  if ("options" in o) for (const [k, v] of Object.entries(o.options)) if (checkDeviceOption(o.devclass, k, v) !== null) return `option ${k}=${v} is not one a ${o.devclass} device takes`;
  return undefined;
}


/** Largest policy file a plan may write (qubes-iac's own files are a few KiB). */
export const MAX_POLICY_CONTENT = 1024 * 1024;

/**
 * Why a policy admin call may not run: it must act on the file its step's address names, with a
 * token qubes-iac sends (never `any`), write only in a create or update step and remove only in a
 * delete step, and write content that carries this owner's header and parses as policy — a
 * saved plan's content is hostile input until it does.
 */
function policyOpMisplaced(owner: string, releases: readonly ReleaseId[], step: JsonStep, s: Subject, o: Extract<StepOp, { op: "policy.replace" | "policy.remove" }>): string | undefined {
  if (typeof o.name !== "string" || !isPolicyFileName(o.name) || (o.scope !== "policy" && o.scope !== "include")) return `${JSON.stringify(o.name)} in scope ${JSON.stringify(o.scope)} is not a policy file qubes-iac writes`;
  if (s.type !== "policy" || s.scope !== o.scope || s.file !== o.name) return `it acts on policy file ${o.scope === "include" ? "include/" : ""}${o.name}, not on ${step.address}`;
  if (!isExpectedToken(o.expected_token)) return `${JSON.stringify(o.expected_token)} is not a token qubes-iac sends (new, or sha256:<hex>)`;
  if (o.op === "policy.remove") {
    if (step.kind !== "delete") return "a policy file is removed only in a delete step";
    if (o.expected_token === "new") return "a removal names the token of the file it removes";
    if (typeof o.restricts !== "boolean") return "a removal says whether the file holds deny or ask rules";
    return undefined;
  }
  if (step.kind !== "create" && step.kind !== "update") return "a policy file is written only in a create or update step";
  if (typeof o.content !== "string") return "its content is not text";
  if (Buffer.byteLength(o.content, "utf8") > MAX_POLICY_CONTENT) return `its content is larger than ${MAX_POLICY_CONTENT} bytes`;
  if (!o.content.startsWith(policyHeader(owner))) return `its content does not start with the header of owner ${owner}`;
  if (o.content.includes("\0") || o.content.includes("\r")) return "its content holds a NUL or carriage return";
  // As every release the plan may have been made on reads it (an include file in either syntax).
  const body = o.content.slice(policyHeader(owner).length);
  for (const release of releases) {
    const asPolicy = readStatements(body, "policy", release).unparsed;
    if (asPolicy.length > 0 && (o.scope !== "include" || readStatements(body, "service", release).unparsed.length > 0)) {
      return `its content does not parse as qrexec policy of ${release} (line ${(asPolicy[0] ?? 0) + 1})`;
    }
  }
  return undefined;
}

/** Ops that destroy data, remove a resource, or remove deny/ask policy rules: the approval they need comes from here. */
const destroys = (o: StepOp): boolean => (o.op === "policy.remove" && o.restricts !== false) || (!isGuestOp(o) && (o.op === "vm.remove" || o.op === "pool.remove"));

/**
 * The structure a plan must have before any of it runs: every step is for a resource change of the
 * same address whose action its kind carries out, every op acts on that resource, and a change that
 * the ops make destroy data says so. Pure.
 */
export function planProblems(plan: JsonPlan): OpProblem[] {
  const problems: OpProblem[] = [];
  const changes = new Map<string, JsonResourceChange>(plan.resource_changes.map((c) => [c.address, c]));
  const releases = plan.qubes_release?.candidates.length ? plan.qubes_release.candidates : RELEASE_IDS;
  for (const step of plan.steps) {
    const s = subjectOf(step.address);
    if (s === undefined) {
      problems.push({ step: step.id, why: `${step.address} is not an address a plan acts on` });
      continue;
    }
    if (s.type === "ownership") {
      if (step.kind !== "setup") problems.push({ step: step.id, why: "the ownership step must be a setup step" });
    } else {
      const change = changes.get(step.address);
      const allowed = STEP_ACTIONS[step.kind];
      if (change === undefined) problems.push({ step: step.id, why: `no resource change of ${step.address} in the plan` });
      else if (!allowed.includes(change.action)) problems.push({ step: step.id, why: `a ${step.kind} step cannot carry out the change "${change.action}" of ${step.address}` });
      else if (step.ops.some(destroys) && !change.destroys_data && s.type === "qube") problems.push({ step: step.id, why: `it removes ${step.address}, but its change does not say it destroys data` });
    }
    for (const [opIndex, o] of step.ops.entries()) {
      const why = opMisplaced(plan.owner, releases, step, s, o);
      if (why !== undefined) problems.push({ step: step.id, opIndex, op: o, why });
    }
  }
  return problems;
}

/** The addresses whose data or whose existence the plan's ops end: what needs --allow-destroy or a typed yes. */
export function destroyedByOps(plan: JsonPlan): string[] {
  const out = new Set<string>();
  for (const step of plan.steps) if (step.ops.some(destroys)) out.add(step.address);
  return [...out];
}

// ---------------------------------------------------------------------------------------------
// At apply time: whose is what the ops touch, as read now.

/** What apply read just before acting (through the same cache as the prior-state re-check). */
export type ObservedOwnership = {
  /** Every qube admin.vm.List shows now. */
  listed(name: string): Promise<boolean>;
  /** dom0's feature names (every owner's inventory). */
  dom0FeatureNames(): Promise<ReadonlySet<string>>;
  tags(vm: string): Promise<ReadonlySet<string>>;
  featureNames(vm: string): Promise<ReadonlySet<string>>;
  /** The qube's `uuid` property (its records are bound to it); undefined when it has none. */
  uuid(vm: string): Promise<string | undefined>;
  labels(): Promise<ReadonlySet<string>>;
  pools(): Promise<ReadonlySet<string>>;
};

/**
 * Who else claims what: for each `type name` another owner's dom0 inventory lists, those owners
 * (sorted). Built once per apply, so the guard stays linear in the inventory's size.
 */
function otherClaims(owner: string, dom0: ReadonlySet<string>): ReadonlyMap<string, string[]> {
  const out = new Map<string, Set<string>>();
  for (const f of dom0) {
    const other = ownerOfRecord(f);
    if (other === undefined || other === owner) continue;
    const subj = recordSubject(other, f);
    if (subj === undefined || subj === "format") continue;
    const key = `${subj.type} ${subj.name}`;
    const owners = out.get(key) ?? new Set<string>();
    owners.add(other);
    out.set(key, owners);
  }
  return new Map([...out].map(([k, v]) => [k, [...v].sort()]));
}

/**
 * `savedPlan`: the plan comes from a file, not from the config now: it may not take over a policy
 * file (writing one the inventory does not list over its current content grants whatever the
 * file says; only a config's `adopt: true`, planned and applied at once, may).
 */
export type OwnershipPolicy = { takeOwnership: ReadonlySet<string>; savedPlan?: boolean };

/**
 * From what is read now: every qube an op acts on is created by its step (and absent, or removed
 * earlier in the plan), owned by the plan's owner (inventory entry or intent, and the record bound to its UUID or, for
 * a format-1 entry, the owner tag), or
 * adopted by its step (the step tags it); a qube is removed only when owned and not protected; a label
 * or pool is removed only when the owner's inventory lists it; nothing another owner's inventory lists
 * is touched unless --take-ownership names that owner. The reads are those the prior-state re-check
 * makes anyway (each list once).
 */
export async function ownershipProblems(plan: JsonPlan, seen: ObservedOwnership, policy: OwnershipPolicy): Promise<OpProblem[]> {
  const owner = plan.owner;
  const n = ownershipNames(owner);
  const dom0 = await seen.dom0FeatureNames();
  const claims = otherClaims(owner, dom0);
  const problems: OpProblem[] = [];
  /** Addresses a step removes, for the create of the same address later in the plan (a replace). */
  const removedEarlier = new Set<string>();
  const foreignClaim = (step: JsonStep, type: "qube" | "label" | "pool", name: string): void => {
    const others = (claims.get(`${type} ${name}`) ?? []).filter((o) => !policy.takeOwnership.has(o));
    if (others.length > 0) problems.push({ step: step.id, why: `${type} ${name} is in the inventory of owner ${others.join(", ")}: only --take-ownership ${others[0]} lets this plan touch it` });
  };
  for (const step of plan.steps) {
    const s = subjectOf(step.address);
    if (s?.type === "policy") {
      problems.push(...policyOwnershipProblems(owner, step, s, dom0, policy));
      continue;
    }
    if (s === undefined || (s.type !== "qube" && s.type !== "label" && s.type !== "pool")) continue;
    const ops = step.ops.filter((o) => !isGuestOp(o));
    if (s.type === "qube") {
      const vm = s.name;
      const creates = ops.some((o) => o.op === "vm.create");
      const touchesQube = ops.some((o) => !isGuestOp(o) && (("vm" in o && o.vm === vm) || (o.op === "property.set" || o.op === "property.reset" ? o.holder !== "global" && o.holder.vm === vm : false)));
      foreignClaim(step, "qube", vm);
      if (creates) {
        if ((await seen.listed(vm)) && !removedEarlier.has(step.address)) problems.push({ step: step.id, why: `it creates qube ${vm}, which exists now` });
        continue;
      }
      if (!touchesQube) continue; // only dom0 records (forget): nothing of the qube is touched
      if (!(await seen.listed(vm))) {
        problems.push({ step: step.id, why: `qube ${vm} does not exist now` });
        continue;
      }
      // docs/ownership.md, "Whose is a qube": the inventory lists it, and the qube carries the record
      // bound to its own UUID (a format-1 entry: the owner tag); an intent alone is a create or
      // adopt in progress, which the tag or that record confirms.
      const formatTwo = [n.created(vm), n.adopted(vm)].some((f) => dom0.has(f));
      const inventoried = formatTwo || dom0.has(n.legacyQube(vm)) || dom0.has(n.intent(vm));
      const records = readQubeRecords(owner, await seen.uuid(vm), await seen.featureNames(vm));
      const tagged = (await seen.tags(vm)).has(n.ownerTag);
      const adopts = ops.some((o) => (o.op === "tag.set" && o.vm === vm && o.name === n.ownerTag) || (o.op === "record.set" && o.vm === vm && o.record === "own"));
      const owned = inventoried && (records.own || (!formatTwo && tagged));
      if (ops.some((o) => o.op === "vm.remove")) {
        if (!owned) problems.push({ step: step.id, why: `it removes qube ${vm}, which ${owner} does not own now` });
        else if (records.protect) problems.push({ step: step.id, why: `it removes qube ${vm}, which is protected` });
        else removedEarlier.add(step.address);
        continue;
      }
      if (!owned && !adopts) problems.push({ step: step.id, why: `qube ${vm} is not ${owner}'s now, and the step does not adopt it` });
      // An assignment is changed or dropped only when the qube's own record says qubes-iac made it.
      for (const o of ops) {
        if (o.op !== "device.unassign" && o.op !== "device.set-mode" && o.op !== "device.detach") continue;
        const key = deviceRecordKey(o.devclass, o.backend, o.port).slice("device.".length);
        if (!records.devices.has(key)) problems.push({ step: step.id, why: `${o.devclass} device ${o.backend}:${o.port} of qube ${vm} was not assigned by ${owner}: qubes-iac never changes or detaches an assignment it did not make` });
      }
      continue;
    }
    foreignClaim(step, s.type, s.name);
    const listed = s.type === "label" ? await seen.labels() : await seen.pools();
    const entry = s.type === "label" ? n.label(s.name) : n.pool(s.name);
    const removes = ops.some((o) => o.op === "label.remove" || o.op === "pool.remove");
    const creates = ops.some((o) => o.op === "label.create" || o.op === "pool.add");
    if (removes && !dom0.has(entry)) problems.push({ step: step.id, why: `it removes ${s.type} ${s.name}, which the inventory of ${owner} does not list` });
    else if (removes) removedEarlier.add(step.address);
    // A replace (a label's new colour) removes it in an earlier step of the same plan.
    if (creates && listed.has(s.name) && !removedEarlier.has(step.address)) problems.push({ step: step.id, why: `it creates ${s.type} ${s.name}, which exists now` });
  }
  return problems;
}

/**
 * A policy file is written or removed only when the owner's inventory lists it now (created or
 * adopted), or when its own step writes that entry first: `created` before a write to a file that
 * is not there (token `new`), `adopted` before one that takes over an existing file. Another
 * owner's entry for the file refuses it unless --take-ownership names that owner.
 */
function policyOwnershipProblems(owner: string, step: JsonStep, s: Extract<Subject, { type: "policy" }>, dom0: ReadonlySet<string>, policy: OwnershipPolicy): OpProblem[] {
  const n = ownershipNames(owner);
  const problems: OpProblem[] = [];
  const created = n.policy(s.scope, "created", s.file);
  const adopted = n.policy(s.scope, "adopted", s.file);
  const listed = dom0.has(created) || dom0.has(adopted);
  const others = [...dom0]
    .map((f) => ({ f, other: ownerOfRecord(f) }))
    .filter(({ f, other }) => other !== undefined && other !== owner && !policy.takeOwnership.has(other) && policyEntryOf(f.slice(`qubes-iac.${other}.`.length))?.address === step.address)
    .map(({ other }) => other as string);
  if (others.length > 0) problems.push({ step: step.id, why: `${step.address} is in the inventory of owner ${[...new Set(others)].sort().join(", ")}: only --take-ownership ${others[0]} lets this plan touch it` });
  const writesEntry = new Set<string>();
  for (const [opIndex, o] of step.ops.entries()) {
    if (o.op === "feature.set" && o.vm === "dom0") writesEntry.add(o.name);
    if (o.op !== "policy.replace" && o.op !== "policy.remove") continue;
    if (listed) continue;
    const entry = o.op === "policy.replace" && o.expected_token === "new" ? created : adopted;
    if (o.op === "policy.replace" && writesEntry.has(entry)) {
      if (entry === adopted && policy.savedPlan === true) {
        problems.push({ step: step.id, opIndex, op: o, why: `a saved plan may not take over policy file ${s.name}, which exists and is not ${owner}'s: apply the config that says adopt: true (qubes-iac apply CONFIG)` });
      }
      continue;
    }
    problems.push({ step: step.id, opIndex, op: o, why: `the inventory of ${owner} does not list policy file ${s.name} now${o.op === "policy.replace" ? `, and the step does not ${o.expected_token === "new" ? "create" : "adopt"} it` : ""}` });
  }
  return problems;
}
