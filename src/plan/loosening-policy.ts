// The qrexec policy kinds of the loosening analysis (loosening.ts), judged by effect: qrexec takes
// the first matching rule across all policy files in name order (src/model/qrexec-eval.ts), so a
// change is judged by deciding, with the old and with the new rule set — files qubes-iac does not
// manage included — every call of the (service, argument, source, target) classes the changed
// files' rules (old and new) can match; a call no such rule matches is decided the same by both.
// Moving, removing or shadowing a deny is found so; a reordering that decides every call the same
// is not. New allow/ask rules with a broad source or target (`*`, `@anyvm`, a tag, a type) are
// marked even when no qube matches them yet (a qube may get the tag tomorrow). Pure.

import { policySet } from "../config/policy/set.js";
import type { ActualState } from "../model/actual.js";
import type { Diagnostic, SourceLocation } from "../model/diagnostics.js";
import { evaluate, expandPolicy, type EffectiveRule, type EvalPolicyFile, type EvalQube, type EvalSystem, type IncludeResolver, type PolicyDecision, type PolicyRequest } from "../model/qrexec-eval.js";
import type { PolicyScope, PolicyStatement } from "../model/qrexec-policy.js";
import { releaseOf } from "../model/release.js";
import { isPolicyAdminService } from "../model/qrexec-rights.js";
import { planDiagnostic } from "./codes.js";
import type { Loosening } from "./loosening.js";
import { refuseRightsWrites, type PolicyFileChange } from "./mgmt-rights.js";

/** One policy file the plan writes or removes: the type the management-rights check takes too. */
export type { PolicyFileChange };

export type PolicyLooseningInput = {
  /** Every `.policy` file as read before the plan (managed by qubes-iac or not). */
  files: readonly EvalPolicyFile[];
  /** Resolves includes as they are before the plan; the plan's include changes are laid over it. */
  include?: IncludeResolver;
  changes: readonly PolicyFileChange[];
  system: EvalSystem;
};

/** Above this many calls to decide, a change is judged by its lines only (conservatively). */
const MAX_REQUESTS = 50_000;
/** A qube that does not exist yet: what `@anyvm` and `*` also stand for. */
const ANOTHER_QUBE = "qubes-iac-any-other-qube";
/** An argument no rule names: what `*` also stands for. */
const ANOTHER_ARGUMENT = "+qubes-iac-any-argument";
/** A service no rule names: what `*` also stands for. */
const ANOTHER_SERVICE = "qubes-iac.AnyOtherService";
/** `policy.Replace` always stands for `*` too: granting every service on dom0 grants policy writes. */
const POLICY_WRITE = "policy.Replace";

const BROAD_RE = /^(\*|@anyvm|@tag:|@type:|@dispvm:@tag:)/;
const isDom0 = (t: string): boolean => t === "dom0" || t === "@adminvm";

/** What qrexec knows of each qube, from what the plan read (tags only of the qubes read in depth). */
export function evalSystemOf(actual: ActualState): EvalSystem {
  const qubes = new Map<string, EvalQube>();
  for (const l of actual.listing.values()) {
    const q = actual.qubes.get(l.name);
    const prop = (p: string): string | undefined => q?.properties.get(p)?.raw;
    const dvm = prop("default_dispvm");
    const e: EvalQube = {
      type: l.klass,
      tags: [...(q?.tags ?? [])],
      template_for_dispvms: prop("template_for_dispvms") === "True",
      default_dispvm: dvm === undefined || dvm === "" ? null : dvm,
      power_state: l.power,
    };
    const uuid = prop("uuid");
    if (uuid !== undefined && uuid !== "") e.uuid = uuid;
    qubes.set(l.name, e);
  }
  if (!qubes.has("dom0")) qubes.set("dom0", { type: "AdminVM", tags: [], template_for_dispvms: false, default_dispvm: null });
  const r = actual.release === undefined ? undefined : releaseOf(actual.release);
  return r === undefined ? { qubes } : { qubes, release: r };
}

function afterSet(input: PolicyLooseningInput): { files: EvalPolicyFile[]; include: IncludeResolver | undefined } {
  const byName = new Map(input.files.map((f) => [f.name, f]));
  const includes = new Map<string, readonly PolicyStatement[] | null>();
  for (const c of input.changes) {
    if (c.scope === "policy") {
      if (c.after === null) byName.delete(c.name);
      else byName.set(c.name, { name: c.name, statements: c.after });
    } else includes.set(c.name, c.after);
  }
  const base = input.include;
  const include: IncludeResolver | undefined =
    includes.size === 0
      ? base
      : (path, syntax) => {
          const m = /^(?:\/etc\/qubes\/policy\.d\/)?include\/([A-Za-z0-9_-]+)$/.exec(path);
          const name = m?.[1];
          if (name !== undefined && includes.has(name)) return includes.get(name) ?? undefined;
          return base?.(path, syntax);
        };
  return { files: [...byName.values()], include };
}

/** Whether an effective rule comes from one of the changed files (a `.policy` file, or through a changed include). */
function touchedBy(changes: readonly PolicyFileChange[]): (r: EffectiveRule) => PolicyFileChange | undefined {
  return (r) =>
    changes.find((c) => (c.scope === "policy" ? r.file === c.name && r.via.length === 0 : r.via.some((v) => v === `include/${c.name}` || v.endsWith(`/include/${c.name}`)))) ??
    changes.find((c) => c.scope === "policy" && r.file === c.name);
}

function candidateRequests(touched: readonly EffectiveRule[], all: readonly EffectiveRule[], system: EvalSystem): PolicyRequest[] | undefined {
  const qubes = [...system.qubes.entries()];
  const services = [...new Set([...all.map((r) => r.service).filter((s) => s !== "*"), ANOTHER_SERVICE, POLICY_WRITE])];
  const argsOf = (service: string): string[] => [...new Set(["+", ANOTHER_ARGUMENT, ...all.filter((r) => r.service === service && r.argument !== "*").map((r) => r.argument)])];
  const sources = (token: string): string[] => {
    if (token === "*") return [...qubes.map(([n]) => n), ANOTHER_QUBE];
    if (token === "@anyvm") return [...qubes.filter(([n]) => !isDom0(n)).map(([n]) => n), ANOTHER_QUBE];
    if (isDom0(token)) return ["dom0"];
    if (token.startsWith("@tag:")) return qubes.filter(([, q]) => q.tags.includes(token.slice(5))).map(([n]) => n);
    if (token.startsWith("@type:")) return qubes.filter(([, q]) => q.type === token.slice(6)).map(([n]) => n);
    if (token.startsWith("@")) return [];
    return [token];
  };
  const dvms = qubes.filter(([, q]) => q.template_for_dispvms).map(([n]) => `@dispvm:${n}`);
  const targets = (token: string): string[] => {
    if (token === "*" || token === "@anyvm") return [...qubes.filter(([n]) => token === "*" || !isDom0(n)).map(([n]) => (isDom0(n) ? "@adminvm" : n)), "@dispvm", "@default", ...dvms];
    if (isDom0(token)) return ["@adminvm"];
    if (token === "@default" || token === "@dispvm") return [token];
    if (token.startsWith("@dispvm:@tag:")) return qubes.filter(([, q]) => q.template_for_dispvms && q.tags.includes(token.slice(13))).map(([n]) => `@dispvm:${n}`);
    if (token.startsWith("@dispvm:")) return [token, "@dispvm"];
    if (token.startsWith("@tag:")) return qubes.filter(([, q]) => q.tags.includes(token.slice(5))).map(([n]) => n);
    if (token.startsWith("@type:")) return qubes.filter(([, q]) => q.type === token.slice(6)).map(([n]) => n);
    return [token];
  };
  const out = new Map<string, PolicyRequest>();
  for (const r of touched) {
    for (const service of r.service === "*" ? services : [r.service]) {
      const args = r.argument === "*" ? argsOf(service) : [r.argument];
      const src = sources(r.rule.source);
      const tgt = targets(r.rule.target);
      if (out.size + args.length * src.length * tgt.length > MAX_REQUESTS) return undefined;
      for (const argument of args) for (const source of src) for (const target of tgt) out.set(`${service} ${argument} ${source} ${target}`, { service, argument, source, target });
    }
  }
  return [...out.values()];
}

const RANK: Record<PolicyDecision["action"], number> = { deny: 0, ask: 1, allow: 2 };

/** Whether `now` lets the call through where `was` did not (or elsewhere). */
function wider(was: PolicyDecision, now: PolicyDecision): boolean {
  if (RANK[now.action] > RANK[was.action]) return true;
  if (now.action === "allow" && was.action === "allow") return now.target !== was.target;
  if (now.action === "ask" && was.action === "ask") return (now.targetsForAsk ?? []).some((t) => !(was.targetsForAsk ?? []).includes(t));
  return false;
}

const where = (r: EffectiveRule | undefined): string => (r === undefined ? "no rule" : `${r.file}.policy${r.at ? `:${r.at.line}` : ""}`);
const shown = (d: PolicyDecision): string => (d.action === "allow" && d.target !== undefined ? `allow (to ${d.target})` : d.action);

/** Rules of a file as lines, to tell a new rule from one it had. */
const ruleKey = (s: PolicyStatement): string => JSON.stringify(s.kind === "rule" ? [s.service, s.argument, s.source, s.target, s.action, s.params] : s);

/** The syntactic judgement, when there are too many calls to decide: every new allow or ask rule, every deny or ask rule gone. */
function byLines(c: PolicyFileChange): Loosening[] {
  const old = new Set((c.before ?? []).map(ruleKey));
  const now = new Set((c.after ?? []).map(ruleKey));
  const out: Loosening[] = [];
  const gone = (c.before ?? []).filter((s) => s.kind === "rule" && s.action !== "allow" && !now.has(ruleKey(s)));
  if (gone.length > 0) {
    const s = gone[0] as Extract<PolicyStatement, { kind: "rule" }>;
    out.push({ kind: "policy-wider", detail: `${gone.length === 1 ? "a rule that" : `${gone.length} rules that`} denied or asked ${gone.length === 1 ? "is" : "are"} gone or changed (${s.service} ${s.argument} ${s.source} ${s.target} ${s.action}; too many calls to decide each: judged by its lines)` });
  }
  for (const s of c.after ?? []) {
    if (s.kind !== "rule" || s.action === "deny" || old.has(ruleKey(s))) continue;
    const admin = isPolicyAdminService(s.service) && (isDom0(s.target) || s.target === "*" || (s.params.redirect !== undefined && isDom0(s.params.redirect)));
    out.push({ kind: admin ? "policy-admin" : "policy-wider", detail: `a new rule ${s.action}s ${s.service} ${s.argument} from ${s.source} to ${s.target} (too many calls to decide each: judged by its line)` });
  }
  return out;
}

/**
 * The loosenings of each changed policy file, by address. `policy-admin`: a call of `policy.*`
 * (or of every service) from a qube to dom0 is let through where it was not; `policy-wider`:
 * any other call let through (or to another target) where it was not, or a new allow/ask rule
 * with a broad source or target. Each names up to three example calls.
 */
export function policyLoosening(input: PolicyLooseningInput): Map<string, Loosening[]> {
  const out = new Map<string, Loosening[]>();
  if (input.changes.length === 0) return out;
  const before = expandPolicy(input.include === undefined ? { files: input.files } : { files: input.files, include: input.include });
  const next = afterSet(input);
  const after = expandPolicy(next.include === undefined ? { files: next.files } : { files: next.files, include: next.include });
  const owner = touchedBy(input.changes);
  const touched = [...before.rules, ...after.rules].filter((r) => owner(r) !== undefined);
  const requests = candidateRequests(touched, [...before.rules, ...after.rules], input.system);
  const add = (address: string, l: Loosening): void => {
    const list = out.get(address) ?? [];
    list.push(l);
    out.set(address, list);
  };
  if (requests === undefined) {
    for (const c of input.changes) for (const l of byLines(c)) add(c.address, l);
    return out;
  }
  const found = new Map<string, { admin: string[]; wider: string[] }>();
  for (const req of requests) {
    const was = evaluate(before, req, input.system);
    const now = evaluate(after, req, input.system);
    if (!wider(was, now)) continue;
    const blame = (now.rule !== undefined ? owner(now.rule) : undefined) ?? (was.rule !== undefined ? owner(was.rule) : undefined) ?? input.changes[0];
    if (blame === undefined) continue;
    const admin = req.service.startsWith("policy.") && req.target === "@adminvm" && req.source !== "dom0";
    const f = found.get(blame.address) ?? { admin: [], wider: [] };
    const service = req.service === ANOTHER_SERVICE ? "any other service" : `${req.service}${req.argument === "+" || req.argument === ANOTHER_ARGUMENT ? "" : req.argument}`;
    const source = req.source === ANOTHER_QUBE ? "a qube created later" : req.source;
    const example = `${service} from ${source} to ${req.target}: ${shown(was)} (${where(was.rule)}) → ${shown(now)} (${where(now.rule)})`;
    const list = admin ? f.admin : f.wider;
    if (!list.includes(example)) list.push(example);
    found.set(blame.address, f);
  }
  const summary = (examples: string[]): string => `${examples.slice(0, 3).join("; ")}${examples.length > 3 ? `; and ${examples.length - 3} more call${examples.length - 3 === 1 ? "" : "s"}` : ""}`;
  for (const c of input.changes) {
    const f = found.get(c.address);
    if (f !== undefined && f.admin.length > 0) add(c.address, { kind: "policy-admin", detail: `lets a qube rewrite qrexec policy: ${summary(f.admin)}` });
    if (f !== undefined && f.wider.length > 0) add(c.address, { kind: "policy-wider", detail: `lets through what it did not: ${summary(f.wider)}` });
    // A broad rule is a loosening by itself: the qubes it stands for can change without a plan.
    const old = new Set((c.before ?? []).map(ruleKey));
    const broad = (c.after ?? []).filter((s) => s.kind === "rule" && s.action !== "deny" && !old.has(ruleKey(s)) && (BROAD_RE.test(s.source) || BROAD_RE.test(s.target)));
    if (broad.length > 0 && (f === undefined || f.wider.length + f.admin.length === 0)) {
      const s = broad[0] as Extract<PolicyStatement, { kind: "rule" }>;
      add(c.address, { kind: "policy-wider", detail: `a new rule ${s.action}s ${s.service} from ${s.source} to ${s.target}: a broad source or target, whatever qubes match it now` });
    }
  }
  return out;
}

/** A policy file of the plan as diff-policies.ts plans it (PlannedPolicy), the part read here. */
export type PlannedPolicyFile = {
  address: string;
  scope: PolicyScope;
  name: string;
  before: { content: string } | null;
  after: { content: string } | null;
  beforeStatements: readonly PolicyStatement[];
  afterStatements: readonly PolicyStatement[];
};

/**
 * What the plan's policy changes loosen, and the diagnostics that go with it: QIAC-E186 for a
 * change to a file holding management rights from a management qube (mgmt-rights.ts), QIAC-W186
 * when the rest of the policy could not be read in full (the judgement is then on what was).
 */
export function planPolicyLoosening(planned: readonly PlannedPolicyFile[], actual: ActualState, locate: (address: string) => SourceLocation | undefined): { loosens: Map<string, Loosening[]>; diagnostics: Diagnostic[] } {
  const changes: PolicyFileChange[] = planned
    .filter((p) => (p.before?.content ?? null) !== (p.after?.content ?? null))
    .map((p) => ({ address: p.address, scope: p.scope, name: p.name, before: p.before === null ? null : p.beforeStatements, after: p.after === null ? null : p.afterStatements }));
  const diagnostics: Diagnostic[] = [];
  if (changes.length === 0) return { loosens: new Map(), diagnostics };
  // Every text known: the rest of dom0's policy, and the files the plan read (as they are now).
  const ctx = actual.policyContext;
  const policies = new Map(ctx?.policies ?? []);
  const includes = new Map(ctx?.includes ?? []);
  for (const p of planned) if (p.before !== null) (p.scope === "policy" ? policies : includes).set(p.name, p.before.content);
  const release = actual.release === undefined ? undefined : releaseOf(actual.release);
  const base = policySet({ policies, includes }, release ?? "main").set;
  const input: PolicyLooseningInput = { files: base.files, changes, system: evalSystemOf(actual) };
  if (base.include !== undefined) input.include = base.include;
  const loosens = policyLoosening(input);
  const known = [...base.files.flatMap((f) => f.statements), ...changes.flatMap((c) => [...(c.before ?? []), ...(c.after ?? [])])];
  const resolve = base.include === undefined ? undefined : (path: string) => base.include?.(path, "policy");
  diagnostics.push(...refuseRightsWrites(changes.map((c) => ({ ...c, ...(locate(c.address) !== undefined ? { at: locate(c.address) as SourceLocation } : {}) })), actual.visibility, known, resolve));
  if (ctx === undefined || ctx.unlisted || ctx.unread.length > 0) {
    const what = ctx === undefined || ctx.unlisted ? "the other policy files could not be listed" : `${ctx.unread.length} policy file${ctx.unread.length === 1 ? "" : "s"} could not be read (${ctx.unread.slice(0, 5).join(", ")}${ctx.unread.length > 5 ? ", …" : ""})`;
    diagnostics.push(
      planDiagnostic("QIAC-W186", `what the policy changes loosen is judged on the policy files this connection could read: ${what}; a rule in them that decides the same calls first is not seen`, {
        address: changes[0]?.address ?? "policy",
        hint: "plan from dom0 (or grant policy.Get of every file) for the whole judgement",
      }),
    );
  }
  return { loosens, diagnostics };
}
