// The diff of qrexec policy files: each file the config names or the owner's inventory lists,
// against what policy.List/policy.Get read (content and token). Ownership is the inventory's
// (docs/ownership.md, "Policy files"): a file is written only when the inventory lists it or this
// plan creates (no file there) or adopts it (`adopt: true`); a file neither names is never read
// nor touched. Each write carries the token read here, so apply changes nothing a hand edit
// changed since. Pure: the readings come in through ActualState.policies.

import type { ActualPolicies, ActualState } from "../model/actual.js";
import type { Diagnostic, SourceLocation } from "../model/diagnostics.js";
import { ownershipNames, readOtherPolicyOwners, readPolicyInventory, type Lifecycle } from "../model/ownership.js";
import { policyToken, type ExpectedToken } from "../model/qrexec-policy-admin.js";
import { policyAddress, policyHeader, renderPolicyFile, type DesiredPolicyFile, type PolicyScope, type PolicyStatement } from "../model/qrexec-policy.js";
import type { ReleaseId } from "../model/release.js";
import { resolveIncludePath } from "../config/policy/index.js";
import type { Action } from "./action.js";
import { newResourceChange, stepId, type PlannedStep, type ResourceChange, type StepKind } from "./changes.js";
import { planDiagnostic } from "./codes.js";
import type { Op, PolicyOp } from "./ops.js";
import { holdsRestrictions, readStatements, type PolicySyntax } from "./policy-text.js";

/**
 * A policy file as the plan shows it: its content and token before and after (null: no file),
 * and its statements before and after, for the loosening analysis (src/plan/loosening) and a
 * reviewer. `lifecycle`: how the owner holds it after the plan (null: not at all).
 */
export type PlannedPolicy = {
  address: string;
  scope: PolicyScope;
  name: string;
  lifecycle: Lifecycle | null;
  before: { token: string; content: string } | null;
  after: { token: string; content: string } | null;
  beforeStatements: PolicyStatement[];
  afterStatements: PolicyStatement[];
};

export type PolicyDiff = { changes: ResourceChange[]; steps: PlannedStep[]; policies: PlannedPolicy[]; diagnostics: Diagnostic[] };

/** The files of the config (DesiredState.policies, by address). */
export type DesiredPolicies = ReadonlyMap<string, DesiredPolicyFile>;

const syntaxOf = (f: { scope: PolicyScope; syntax?: PolicySyntax } | undefined): PolicySyntax => f?.syntax ?? "policy";

/** The statements of a file's text, without qubes-iac's header line. */
const statementsOf = (content: string | undefined, syntax: PolicySyntax, release: ReleaseId): PolicyStatement[] => (content === undefined ? [] : readStatements(content, syntax, release).statements);

/** Every address the diff must read: the config's files and the inventory's. */
export function policyAddressesToRead(owner: string, desired: DesiredPolicies, dom0FeatureNames: Iterable<string>): Map<string, { scope: PolicyScope; name: string }> {
  const out = new Map<string, { scope: PolicyScope; name: string }>();
  for (const [address, f] of desired) out.set(address, { scope: f.scope, name: f.name });
  for (const [address, e] of readPolicyInventory(owner, dom0FeatureNames)) out.set(address, { scope: e.scope, name: e.name });
  return out;
}

export function diffPolicies(owner: string, desired: DesiredPolicies, actual: Pick<ActualState, "dom0FeatureNames" | "policies" | "release">, o: { takeOwnership?: readonly string[]; at: SourceLocation }): PolicyDiff {
  const out: PolicyDiff = { changes: [], steps: [], policies: [], diagnostics: [] };
  const addresses = policyAddressesToRead(owner, desired, actual.dom0FeatureNames);
  if (addresses.size === 0) return out;
  const read: ActualPolicies | undefined = actual.policies;
  if (read === undefined || read.kind === "failed") {
    out.diagnostics.push(
      planDiagnostic("QIAC-E191", `the policy files cannot be read: ${read === undefined ? "they were not read" : read.error}`, {
        location: [...desired.values()][0]?.at ?? o.at,
        ...(read?.kind === "failed" && read.refused ? { hint: "the management qube needs policy.List and policy.Get (and to apply, policy.Replace and policy.Remove) on dom0: see `qubes-iac policy`" } : {}),
      }),
    );
    return out;
  }
  const inventory = readPolicyInventory(owner, actual.dom0FeatureNames);
  // Statements are read as the newest release that may have answered reads them (all read the same statements; only their problems differ).
  const release: ReleaseId = actual.release?.candidates[actual.release.candidates.length - 1] ?? "main";
  const others = readOtherPolicyOwners(owner, actual.dom0FeatureNames);
  const take = new Set(o.takeOwnership ?? []);
  const names = ownershipNames(owner);
  for (const [address, where] of [...addresses].sort(([a], [b]) => (a < b ? -1 : 1))) {
    const d = desired.get(address);
    const entry = inventory.get(address);
    const seen = read.files.get(address);
    if (seen === undefined) throw new Error(`internal: policy file ${address} was not read`);
    const file = "absent" in seen ? undefined : seen;
    const planned: PlannedPolicy = {
      address,
      scope: where.scope,
      name: where.name,
      lifecycle: entry?.lifecycle ?? null,
      before: file === undefined ? null : { token: file.token, content: file.content },
      after: file === undefined ? null : { token: file.token, content: file.content },
      beforeStatements: statementsOf(file?.content, syntaxOf(d), release),
      afterStatements: statementsOf(file?.content, syntaxOf(d), release),
    };
    const change = newResourceChange("policy", address.slice("policy.".length), address, "no-op");
    const error = (code: Parameters<typeof planDiagnostic>[0], message: string, hint?: string): void => {
      out.diagnostics.push(planDiagnostic(code, message, { address, location: d?.at ?? o.at, ...(hint !== undefined ? { hint } : {}) }));
    };
    const claimed = (others.get(address) ?? []).filter((x) => !take.has(x));
    const record = (lifecycle: Lifecycle): string => names.policy(where.scope, lifecycle, where.name);
    const ops: Array<Op | PolicyOp> = [];
    let kind: StepKind = "update";
    let action: Action = "no-op";
    const write = (token: ExpectedToken, content: string): void => {
      ops.push({ op: "policy.replace", scope: where.scope, name: where.name, expected_token: token, content });
      planned.after = { token: policyToken(content), content };
      planned.afterStatements = statementsOf(content.startsWith(policyHeader(owner)) ? content.slice(policyHeader(owner).length) : content, syntaxOf(d), release);
    };
    const remove = (): void => {
      if (file === undefined) return;
      ops.push({ op: "policy.remove", scope: where.scope, name: where.name, expected_token: file.token as ExpectedToken, restricts: holdsRestrictions(planned.beforeStatements) });
      planned.after = null;
      planned.afterStatements = [];
    };
    const removeRecords = (): void => {
      for (const r of entry?.records ?? []) ops.push({ op: "feature.remove", vm: "dom0", name: r });
    };

    if (d !== undefined && !d.absent && !d.release) {
      if (claimed.length > 0) {
        error("QIAC-E193", `policy file ${address} is managed by owner ${claimed.join(", ")} (its inventory in dom0 lists it): one file has one owner`, `take it over with --take-ownership ${claimed[0]}, or leave it to that owner`);
        continue;
      }
      const content = renderPolicyFile(d, owner);
      if (entry === undefined && file !== undefined && !d.adopt) {
        error("QIAC-E190", `policy file ${address} exists in dom0 but is not managed by owner ${owner}`, "set adopt: true on it to take it over (its content is replaced by the config's)");
        continue;
      }
      if (entry === undefined) {
        // Create (no file) or adopt (a file that is not ours yet): the entry first, so an
        // interruption leaves a file the next plan recognises as ours.
        const lifecycle: Lifecycle = file === undefined ? "created" : "adopted";
        ops.push({ op: "feature.set", vm: "dom0", name: record(lifecycle), value: "1" });
        for (const other of others.get(address) ?? []) for (const lc of ["created", "adopted"] as const) {
          const f = ownershipNames(other).policy(where.scope, lc, where.name);
          if (actual.dom0FeatureNames.has(f)) ops.push({ op: "feature.remove", vm: "dom0", name: f });
        }
        if (file === undefined || file.content !== content) write(file === undefined ? "new" : (file.token as ExpectedToken), content);
        planned.lifecycle = lifecycle;
        kind = file === undefined ? "create" : "update";
        action = file === undefined ? "create" : "update";
        change.reasons.push(file === undefined ? "qubes-iac creates the file" : "adopt: true: qubes-iac takes the file over");
      } else if (file === undefined) {
        out.diagnostics.push(planDiagnostic("QIAC-W191", `policy file ${address} of the inventory is gone from dom0: it is written again`, { address, location: d.at }));
        write("new", content);
        kind = "create";
        action = "create";
        change.reasons.push("the file is gone from dom0: written again");
      } else if (file.content !== content) {
        // Which edits were the config's and which were by hand cannot be told apart; a file whose header is not ours was edited by hand.
        if (!file.content.startsWith(policyHeader(owner))) {
          out.diagnostics.push(planDiagnostic("QIAC-W190", `policy file ${address} was changed outside qubes-iac (its header is not owner ${owner}'s): the plan writes it back`, { address, location: d.at }));
        }
        write(file.token as ExpectedToken, content);
        action = "update";
      }
    } else if (d?.absent === true) {
      if (entry === undefined) {
        if (file !== undefined) error("QIAC-E192", `absent: true on policy file ${address}, which owner ${owner} does not manage`, "qubes-iac removes only files it created or adopted; remove it by hand, or adopt it first");
        else out.changes.push(change);
        continue;
      }
      remove();
      removeRecords();
      kind = file === undefined ? "forget" : "delete";
      action = file === undefined ? "forget" : "delete";
      planned.lifecycle = null;
    } else if (entry !== undefined) {
      // Dropped from the config (or `release: true`): a created file is removed, an adopted one released.
      if (d?.release === true || entry.lifecycle === "adopted") {
        removeRecords();
        kind = "release";
        action = "release";
        change.reasons.push("the file stays as it is; only qubes-iac's entry goes");
      } else {
        remove();
        removeRecords();
        kind = file === undefined ? "forget" : "delete";
        action = file === undefined ? "forget" : "delete";
      }
      planned.lifecycle = null;
    } else {
      out.changes.push(change);
      continue;
    }
    change.action = action;
    change.before = file === undefined ? null : { token: file.token };
    change.after = planned.after === null ? null : { token: planned.after.token };
    if (action === "delete" && ops.some((x) => x.op === "policy.remove" && x.restricts)) {
      change.destroysData = true;
      change.reasons.push("it holds deny or ask rules (or includes): removing them may loosen isolation");
    }
    out.changes.push(change);
    out.policies.push(planned);
    // qrexec validates the whole directory on every write (admin.py _validate): an include file is
    // written before the files that include it, and removed after the files that stop including it.
    const includedBy = (statements: readonly PolicyStatement[]): Set<string> => new Set(statements.flatMap((x) => (x.kind === "include" || x.kind === "include-service" ? [includedAddress(x.path)] : [])).filter((a): a is string => a !== undefined && a !== address));
    const before = includedBy(planned.beforeStatements);
    const after = includedBy(planned.afterStatements);
    if (ops.length > 0) out.steps.push({ id: stepId(kind, address), address, kind, ops, uses: [...after].sort(), unreferences: [...before].filter((a) => !after.has(a)).sort(), after: [] });
  }
  return out;
}

/** The address of the file an `!include` path names (`include/NAME`, a policy file, absolute or relative); undefined for a directory or a bad path. */
function includedAddress(path: string): string | undefined {
  const r = resolveIncludePath(path);
  if ("error" in r || r.scope === "dir") return undefined;
  return r.scope === "include" ? `policy.include.${r.name}` : `policy.${r.name}`;
}

/** The address of a desired file (re-exported for callers that build DesiredPolicies by hand). */
export { policyAddress };
