// The public JSON plan (`--json`, `--out FILE`): a versioned, self-identifying document described
// by schemas/plan.schema.json. The human plan is rendered from this, never from the in-memory
// Plan, so a person can never read more than a machine can check. A saved plan is recognised by
// its `format` field, not by its file name.

import { formatAddress } from "../model/address.js";
import { hasErrors, type Diagnostic } from "../model/diagnostics.js";
import { countsAsAdd, countsAsChange, countsAsDestroy, countsAsForget, countsAsRelease, type Action } from "./action.js";
import type { AgentSpec, GuestFacts } from "../model/guest.js";
import type { AttrValue, StepKind } from "./changes.js";
import type { PlannedGuest } from "./diff-guests.js";
import type { Loosening } from "./loosening.js";
import type { Check, StepOp } from "./ops.js";
import type { Plan } from "./plan.js";
import type { PlannedPolicy } from "./diff-policies.js";
import type { PolicyRule, PolicyScope, PolicyStatement } from "../model/qrexec-policy.js";
import type { PlanRelease } from "./release-rules.js";

export const PLAN_FORMAT = "qubes-iac-plan";
/** Bump on any change a reader of version 1 could misread; readers refuse newer majors. */
export const PLAN_FORMAT_VERSION = 1;

export type JsonResourceChange = {
  address: string;
  type: "qube" | "label" | "pool" | "properties" | "guest" | "policy";
  name: string | null;
  action: Action;
  reasons: string[];
  destroys_data: boolean;
  before: Record<string, AttrValue> | null;
  after: Record<string, AttrValue> | null;
  before_default: string[];
  after_default: string[];
  needs_halt: string[];
  /** A qube created by cloning: its source, and the `after` keys whose values are copied from it. */
  from_source?: { qube: string; attributes: string[] };
  /** What the change loosens, strongest first (absent in plans made before qubes-iac marked it). */
  loosens?: Loosening[];
};

export type JsonStep = {
  id: string;
  address: string;
  kind: StepKind;
  wave: number;
  depends_on: string[];
  ops: StepOp[];
};

export type JsonGuestFacts = {
  agent_version: string;
  os: {
    id: string | null;
    name: string | null;
    pretty_name: string | null;
    version: string | null;
    version_id: string | null;
    kernel_release: string | null;
    kernel_version: string | null;
    machine: string | null;
  } | null;
  hostname: string | null;
  interfaces: Array<{ name: string; hardware_address: string | null; addresses: Array<{ address: string; type: "ipv4" | "ipv6"; prefix: number }> }> | null;
  /** Facts the agent does not offer, and why (for display only). */
  missing: Array<{ fact: "os" | "hostname" | "interfaces"; reason: string }>;
};

/**
 * A guest as planning read it through its agent. `files[].observed` is each managed file as read
 * (full SHA-256; null: not read): apply reads them again before acting on a saved plan.
 */
export type JsonGuest = {
  address: string;
  qube: string | null;
  agent: AgentSpec;
  wait_ms: number | null;
  read: PlannedGuest["read"];
  reason: string | null;
  facts: JsonGuestFacts | null;
  files: Array<{ path: string; observed: { size: number; sha256: string } | { absent: true } | null }>;
};

/**
 * A qrexec policy file the plan reads or writes: content and token before (what policy.Get
 * returned) and after (null: no file), and the statements of each, for the loosening analysis
 * and for reviewers. Apply re-reads each file it writes and refuses when the token changed.
 */
export type JsonPolicyFile = {
  address: string;
  scope: PolicyScope;
  name: string;
  /** How the owner holds the file after the plan; null: not (released, removed, or never). */
  lifecycle: "created" | "adopted" | null;
  old_token: string | null;
  new_token: string | null;
  old_content: string | null;
  new_content: string | null;
  old_statements: PolicyStatement[];
  new_statements: PolicyStatement[];
};

export type JsonPlan = {
  format: typeof PLAN_FORMAT;
  format_version: number;
  qubes_iac_version: string;
  owner: string;
  /** Which Qubes release answered (absent in plans made before qubes-iac told releases apart). */
  qubes_release?: PlanRelease;
  /**
   * `take_ownership`: owners whose objects this plan takes over (`--take-ownership`); apply
   * refuses a take-over op unless its own command line names the same owner.
   * `release`: qubes `qubes-iac release` lets go of.
   */
  options: { allow_restart: boolean; targets: string[]; excludes: string[]; take_ownership: string[]; release: string[] };
  /** True when the plan holds an error: it is shown in full but cannot be applied. */
  errored: boolean;
  /** No errors and at least one step. */
  applyable: boolean;
  summary: { add: number; change: number; destroy: number; forget: number; release: number };
  resource_changes: JsonResourceChange[];
  steps: JsonStep[];
  /** Current values the plan relies on; apply re-reads them and refuses if any changed. */
  prior_state: Check[];
  /** Present when the config has guests in scope. */
  guests?: JsonGuest[];
  /** Present when the config names policy files or the inventory lists some (in scope). */
  policies?: JsonPolicyFile[];
  diagnostics: Diagnostic[];
};

export function toJsonFacts(f: GuestFacts): JsonGuestFacts {
  return {
    agent_version: f.agentVersion,
    os:
      f.os === null
        ? null
        : {
            id: f.os.id,
            name: f.os.name,
            pretty_name: f.os.prettyName,
            version: f.os.version,
            version_id: f.os.versionId,
            kernel_release: f.os.kernelRelease,
            kernel_version: f.os.kernelVersion,
            machine: f.os.machine,
          },
    hostname: f.hostname,
    interfaces: f.interfaces === null ? null : f.interfaces.map((i) => ({ name: i.name, hardware_address: i.hardwareAddress, addresses: i.addresses.map((a) => ({ ...a })) })),
    missing: f.missing.map((m) => ({ ...m })),
  };
}

function toJsonGuest(g: PlannedGuest): JsonGuest {
  return {
    address: g.address,
    qube: g.qube ?? null,
    agent: g.agent,
    wait_ms: g.waitMs ?? null,
    read: g.read,
    reason: g.reason ?? null,
    facts: g.facts === undefined ? null : toJsonFacts(g.facts),
    files: g.files.map((f) => ({ path: f.path, observed: f.observed })),
  };
}

/** A statement without where the config wrote it (a plan names files, not config lines). */
const bareStatement = (s: PolicyStatement): PolicyStatement => {
  const { at: _at, ...rest } = s;
  if (s.kind !== "rule") return rest as PolicyStatement;
  const { fieldAt: _fieldAt, ...rule } = rest as PolicyRule;
  return { ...rule, params: { ...s.params } };
};

function toJsonPolicy(p: PlannedPolicy): JsonPolicyFile {
  return {
    address: p.address,
    scope: p.scope,
    name: p.name,
    lifecycle: p.lifecycle,
    old_token: p.before?.token ?? null,
    new_token: p.after?.token ?? null,
    old_content: p.before?.content ?? null,
    new_content: p.after?.content ?? null,
    old_statements: p.beforeStatements.map(bareStatement),
    new_statements: p.afterStatements.map(bareStatement),
  };
}

export function toJsonPlan(plan: Plan, generator: { version: string }): JsonPlan {
  const errored = hasErrors(plan.diagnostics);
  const count = (pred: (a: Action) => boolean): number => plan.changes.filter((c) => pred(c.action)).length;
  return {
    format: PLAN_FORMAT,
    format_version: PLAN_FORMAT_VERSION,
    qubes_iac_version: generator.version,
    owner: plan.owner,
    qubes_release: plan.release,
    options: {
      allow_restart: plan.options.allowRestart,
      targets: plan.options.targets.map(formatAddress),
      excludes: plan.options.excludes.map(formatAddress),
      take_ownership: [...(plan.options.takeOwnership ?? [])],
      release: [...(plan.options.release ?? [])],
    },
    errored,
    applyable: !errored && plan.steps.length > 0,
    summary: { add: count(countsAsAdd), change: count(countsAsChange), destroy: count(countsAsDestroy), forget: count(countsAsForget), release: count(countsAsRelease) },
    resource_changes: plan.changes.map((c) => ({
      address: c.address,
      type: c.type,
      name: c.name,
      action: c.action,
      reasons: c.reasons,
      destroys_data: c.destroysData,
      before: c.before,
      after: c.after,
      before_default: c.beforeDefault,
      after_default: c.afterDefault,
      needs_halt: c.needsHalt,
      ...(c.fromSource !== undefined ? { from_source: { qube: c.fromSource.qube, attributes: [...c.fromSource.attributes] } } : {}),
      loosens: c.loosens,
    })),
    steps: plan.steps.map((s) => ({ id: s.id, address: s.address, kind: s.kind, wave: s.wave, depends_on: s.dependsOn, ops: s.ops })),
    prior_state: plan.checks,
    ...(plan.guests.length > 0 ? { guests: plan.guests.map(toJsonGuest) } : {}),
    ...(plan.policies.length > 0 ? { policies: plan.policies.map(toJsonPolicy) } : {}),
    diagnostics: plan.diagnostics,
  };
}

export type SavedPlanRecognition =
  | { kind: "plan"; plan: unknown }
  | { kind: "newer"; version: unknown }
  | { kind: "not-a-plan" };

/**
 * Tells a saved plan from anything else by its content: a JSON object whose `format` is
 * `qubes-iac-plan`. Schema validation of the rest is the reader's next step.
 */
export function recognizeSavedPlan(text: string): SavedPlanRecognition {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return { kind: "not-a-plan" };
  }
  if (typeof parsed !== "object" || parsed === null || (parsed as { format?: unknown }).format !== PLAN_FORMAT) return { kind: "not-a-plan" };
  const version = (parsed as { format_version?: unknown }).format_version;
  if (version !== PLAN_FORMAT_VERSION) return { kind: "newer", version };
  return { kind: "plan", plan: parsed };
}
