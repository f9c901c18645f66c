// First-match evaluation of qrexec policy, as qrexec-policy-daemon decides a call: the rules of all
// policy files in file-name order (includes expanded where they stand), the first rule whose
// service, argument, source and target match decides, and no match is a deny. Modelled on
// QubesOS/qubes-core-qrexec qrexec/policy/parser.py (release4.2, release4.3, main):
// `AbstractFileSystemLoader.load_policy_dirs` and `filter_filepaths` (order), `AbstractFileLoader.
// handle_include*` and `load_policy_file_service` (includes), `Rule.is_match`, the `match` and
// `expand` methods of the token classes, `Allow.evaluate`, `Ask.evaluate`,
// `AbstractPolicy.collect_targets_for_ask`, `IntendedTarget.verify`. Read, not copied.
//
// Pure: the policy comes in as statements (parsed by src/config/policy/parse.ts), the system as
// plain data; includes are resolved through a function the caller gives.

import type { PolicyAction, PolicyRule, PolicyStatement, PolicySyntax } from "./qrexec-policy.js";
import { ACTION_DEFAULTS, DOM0_UUID, QREXEC_POLICY_RELEASES, type QrexecPolicyRelease } from "./qrexec-release.js";
import type { SourceLocation } from "./diagnostics.js";
import type { ReleaseId } from "./release.js";

/** A file of /etc/qubes/policy.d: its name without `.policy`, and what it holds. */
export type EvalPolicyFile = { name: string; statements: readonly PolicyStatement[] };

/**
 * Resolves an `!include` (syntax `policy`), `!include-service` (syntax `service`) or
 * `!include-dir` (syntax `policy`, the statements of the directory's `.policy` files in name
 * order) path as written in the file; undefined when there is no such file. qrexec reads relative
 * paths from /etc/qubes/policy.d: `include/NAME` is the include file NAME (see
 * `resolveIncludePath` in src/config/policy/parse.ts).
 */
export type IncludeResolver = (path: string, syntax: PolicySyntax) => readonly PolicyStatement[] | undefined;

export type PolicySet = {
  /** Every policy file qrexec loads (R4.3 and later: /run/qubes/policy.d merged over /etc by name), in any order. */
  files: readonly EvalPolicyFile[];
  include?: IncludeResolver;
  /** Set when a file does not parse: qrexec then loads no policy and denies every call. */
  loadFailure?: string;
};

/** What qrexec knows of a qube (qrexec/utils.py `get_system_info`: the fields policy evaluation reads). */
export type EvalQube = {
  type: string;
  tags: readonly string[];
  template_for_dispvms: boolean;
  /** Name of the disposable template its `@dispvm` calls use, or null. */
  default_dispvm: string | null;
  uuid?: string;
  /** `Running` for a running qube (autostart=no checks it). */
  power_state?: string;
  /** Internal qubes are never offered by ask. */
  internal?: boolean;
};

export type EvalSystem = {
  /** By name; dom0 is `dom0` of type AdminVM. */
  qubes: ReadonlyMap<string, EvalQube>;
  /** Whose matching rules apply (uuid: tokens, R4.3+); default `main`. */
  release?: ReleaseId;
};

/** One call as qrexec sees it: `argument` `+` when none was given, `target` as the caller wrote it (a name, `@default` or `""`, `@dispvm`, `@dispvm:NAME`, `@adminvm`). */
export type PolicyRequest = { service: string; argument: string; source: string; target: string };

/** A rule where it applies: `service` and `argument` are those of the `!include-service` line for rules read through one. */
export type EffectiveRule = {
  rule: PolicyRule;
  service: string;
  argument: string;
  /** The policy file it is read from (name without `.policy`), and the include paths on the way, outermost first. */
  file: string;
  via: readonly string[];
  at?: SourceLocation;
  /** Position in the flattened order (0: qrexec tries it first). */
  index: number;
};

export type ExpandedPolicy = {
  rules: EffectiveRule[];
  /** Why qrexec would fail to load this policy (a missing include, a cycle): then it denies every call. */
  loadFailure?: string;
};

/** Sort key of a policy file: qrexec sorts the file names, `.policy` included (so `a-b` comes before `a`). */
const fileKey = (name: string): string => `${name}.policy`;
const byCodeUnit = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

/** The files in the order qrexec reads them. */
export function policyFileOrder<F extends { name: string }>(files: readonly F[]): F[] {
  return [...files].sort((a, b) => byCodeUnit(fileKey(a.name), fileKey(b.name)));
}

const MAX_INCLUDE_DEPTH = 32;

/** All rules in the order qrexec tries them, includes expanded in place. */
export function expandPolicy(set: PolicySet): ExpandedPolicy {
  const rules: EffectiveRule[] = [];
  let loadFailure: string | undefined;
  const walk = (statements: readonly PolicyStatement[], file: string, via: readonly string[], svc: { service: string; argument: string } | undefined): void => {
    for (const s of statements) {
      if (loadFailure) return;
      if (s.kind === "rule") {
        const r: EffectiveRule = { rule: s, service: svc ? svc.service : s.service, argument: svc ? svc.argument : s.argument, file, via, index: rules.length };
        if (s.at) r.at = s.at;
        rules.push(r);
        continue;
      }
      if (via.length >= MAX_INCLUDE_DEPTH || via.includes(s.path)) {
        loadFailure = `circular include of ${s.path} in ${file}.policy`;
        return;
      }
      // Inside a file read by !include-service, `!include` keeps that service and argument.
      const syntax: PolicySyntax = s.kind === "include-service" || (s.kind === "include" && svc) ? "service" : "policy";
      const inner = set.include?.(s.path, syntax);
      if (inner === undefined) {
        loadFailure = `${file}.policy includes ${s.path}, which does not exist or does not read as ${s.kind === "include-dir" ? "a directory" : syntax === "service" ? "an !include-service file" : "policy lines"}`;
        return;
      }
      const nextSvc = s.kind === "include-service" ? { service: s.service, argument: s.argument } : s.kind === "include" ? svc : undefined;
      walk(inner, file, [...via, s.path], nextSvc);
    }
  };
  if (set.loadFailure) return { rules: [], loadFailure: set.loadFailure };
  for (const f of policyFileOrder(set.files)) walk(f.statements, f.name, [], undefined);
  return loadFailure ? { rules, loadFailure } : { rules };
}

export type PolicyDecision = {
  /** What qrexec does: `allow` connects, `ask` asks the user (who may still refuse), `deny` refuses. */
  action: PolicyAction;
  /** The deciding rule; absent when none matched or the request or policy itself failed. */
  rule?: EffectiveRule;
  /** `rule`: a rule decided; `no-rule`: none matched; `request`: the target is not a valid one; `load`: the policy does not load. */
  reason: "rule" | "no-rule" | "request" | "load";
  /** allow: where the call goes (`dom0`, a qube, `@dispvm:TEMPLATE`). */
  target?: string;
  /** ask: what the user may choose from, and the preselected choice. */
  targetsForAsk?: string[];
  defaultTarget?: string;
  user?: string;
  autostart?: boolean;
  notify: boolean;
  /** qrexec's words for a deny ("denied by policy FILE:LINE", "no matching rule found", …). */
  message?: string;
};

type Ctx = { info: ReadonlyMap<string, EvalQube>; rel: QrexecPolicyRelease };

const isDom0 = (t: string): boolean => t === "@adminvm" || t === "dom0" || t === `uuid:${DOM0_UUID}`;

/** match_strings: names equal, or one a `uuid:` of the other (R4.3+). */
function sameQube(ctx: Ctx, a: string, b: string): boolean {
  if (!ctx.rel.uuidTokens) return a === b;
  if (a.startsWith("uuid:")) return b.startsWith("uuid:") ? a === b : ctx.info.get(b)?.uuid === a.slice(5);
  if (b.startsWith("uuid:")) return ctx.info.get(a)?.uuid === b.slice(5);
  return a === b;
}

const nameOf = (ctx: Ctx, q: string): string | undefined => {
  if (ctx.info.has(q)) return q;
  if (ctx.rel.uuidTokens && q.startsWith("uuid:")) for (const [n, i] of ctx.info) if (i.uuid === q.slice(5)) return n;
  if (isDom0(q) && ctx.info.has("dom0")) return "dom0";
  return undefined;
};

const dispvmTemplateOf = (ctx: Ctx, source: string): string | undefined => {
  const n = nameOf(ctx, source);
  const t = n === undefined ? undefined : ctx.info.get(n)?.default_dispvm;
  return t ?? undefined;
};

/** Whether a rule's source column matches the caller (parser.py: the `match` of each Source class). */
export function sourceMatches(token: string, source: string, system: EvalSystem): boolean {
  return tokenMatches(ctxOf(system), token, source, undefined);
}

/** Whether a rule's target column matches the requested target (already verified: see `verifyTarget`). */
export function targetMatches(token: string, target: string, source: string, system: EvalSystem): boolean {
  return tokenMatches(ctxOf(system), token, target, source);
}

const ctxOf = (system: EvalSystem): Ctx => ({ info: system.qubes, rel: QREXEC_POLICY_RELEASES[system.release ?? "main"] });

/**
 * `other` is the caller (when `source` is undefined) or the verified intended target; `@dispvm`,
 * `@dispvm:NAME`, `@adminvm` and `@default` in it are the keywords the caller used.
 */
function tokenMatches(ctx: Ctx, token: string, other: string, source: string | undefined): boolean {
  if (token === "*") return true;
  if (token === "@anyvm") return !isDom0(other);
  if (token === "@adminvm" || token === "dom0" || token === `uuid:${DOM0_UUID}`) {
    if (token === `uuid:${DOM0_UUID}` && !ctx.rel.uuidTokens) return false;
    return isDom0(other);
  }
  if (token === "@default" || token === "@dispvm") return other === token;
  if (token.startsWith("@type:")) {
    const n = ctx.info.has(other) ? other : undefined;
    return n !== undefined && ctx.info.get(n)!.type === token.slice(6);
  }
  if (token.startsWith("@tag:")) return ctx.info.has(other) && ctx.info.get(other)!.tags.includes(token.slice(5));
  if (token.startsWith("@dispvm:@tag:")) {
    const tag = token.slice(13);
    let tpl: string | undefined;
    if (other === "@dispvm" && source !== undefined) tpl = dispvmTemplateOf(ctx, source);
    else if (other.startsWith("@dispvm:")) tpl = other.slice(8);
    const q = tpl === undefined ? undefined : ctx.info.get(nameOf(ctx, tpl) ?? "");
    return q !== undefined && q.template_for_dispvms && q.tags.includes(tag);
  }
  if (token.startsWith("@dispvm:")) {
    if (other === "@dispvm" && source !== undefined) {
      const tpl = dispvmTemplateOf(ctx, source);
      return tpl !== undefined && sameQube(ctx, token.slice(8), tpl);
    }
    return other.startsWith("@dispvm:") && sameQube(ctx, token.slice(8), other.slice(8));
  }
  if (token.startsWith("@")) return false;
  return sameQube(ctx, token, other);
}

/**
 * The intended target as qrexec verifies it (parser.py `IntendedTarget.verify`): a qube that does
 * not exist becomes `@default`; `@dispvm:NAME` must name a disposable template (else the call is
 * refused); keywords other than `@adminvm`, `@default`, `@dispvm`, `@dispvm:` are refused.
 */
export function verifyTarget(target: string, system: EvalSystem): { target: string } | { refused: string } {
  const ctx = ctxOf(system);
  const t = target === "" ? "@default" : target;
  if (t === "@adminvm" || t === "@default" || t === "@dispvm") return { target: t };
  if (t.startsWith("@dispvm:")) {
    const n = nameOf(ctx, t.slice(8));
    if (t.slice(8).startsWith("@") || n === undefined || !ctx.info.get(n)!.template_for_dispvms) return { refused: `not a template for dispvm: ${t.slice(8)}` };
    return { target: t };
  }
  if (t.startsWith("@") || t === "*") return { refused: `invalid intendedtarget token: '${t}'` };
  if (!ctx.info.has(t) && !(ctx.rel.uuidTokens && nameOf(ctx, t) !== undefined) && !(isDom0(t) && ctx.rel.dom0 === "alias-of-adminvm")) {
    return { target: "@default" };
  }
  return { target: t };
}

function ruleMatchesButTarget(ctx: Ctx, r: EffectiveRule, req: PolicyRequest): boolean {
  return (r.service === "*" || r.service === req.service) && (r.argument === "*" || r.argument === req.argument) && tokenMatches(ctx, r.rule.source, req.source, undefined);
}

const where = (r: EffectiveRule): string => `${r.file}.policy${r.at ? `:${r.at.line}` : ""}`;

/** Decides one call: the first matching rule across the files in name order, deny when none. */
export function evaluate(set: PolicySet | ExpandedPolicy, request: PolicyRequest, system: EvalSystem): PolicyDecision {
  const expanded = "files" in set ? expandPolicy(set) : set;
  if (expanded.loadFailure) return { action: "deny", reason: "load", notify: true, message: `failed to load policy: ${expanded.loadFailure}` };
  const ctx = ctxOf(system);
  const verified = verifyTarget(request.target, system);
  if ("refused" in verified) return { action: "deny", reason: "request", notify: true, message: verified.refused };
  const req = { ...request, target: verified.target };
  const rule = expanded.rules.find((r) => ruleMatchesButTarget(ctx, r, req) && tokenMatches(ctx, r.rule.target, req.target, req.source));
  if (!rule) return { action: "deny", reason: "no-rule", notify: true, message: "no matching rule found" };
  const p = rule.rule.params;
  const defaults = ACTION_DEFAULTS[rule.rule.action];
  const notify = p.notify ?? defaults.notify;
  const deny = (message: string): PolicyDecision => ({ action: "deny", rule, reason: "rule", notify, message });
  switch (rule.rule.action) {
    case "deny":
      return deny(`denied by policy ${where(rule)}`);
    case "allow": {
      const v = verifyTarget(p.redirect ?? req.target, system);
      if ("refused" in v) return deny(v.refused);
      let target = v.target;
      if (target === "@default") return deny(`policy define 'allow' action at ${where(rule)} but no target is specified by caller or policy`);
      if (target === "@dispvm") {
        const tpl = dispvmTemplateOf(ctx, req.source);
        if (tpl === undefined) return deny(`policy define 'allow' action to @dispvm at ${where(rule)} but no DispVM base is set for this VM`);
        target = `@dispvm:${tpl}`;
      } else if (target === "@adminvm" || (isDom0(target) && ctx.rel.dom0 === "alias-of-adminvm")) target = "dom0";
      const autostart = p.autostart ?? defaults.autostart ?? true;
      if (!autostart && !startsWithout(ctx, target)) return deny(`target ${target} is denied because it would require autostart`);
      const d: PolicyDecision = { action: "allow", rule, reason: "rule", target, autostart, notify };
      if (p.user !== undefined) d.user = p.user;
      return d;
    }
    case "ask": {
      let targets: string[] = p.redirect !== undefined ? [isDom0(p.redirect) ? "dom0" : p.redirect] : targetsForAsk(ctx, expanded.rules, req);
      const autostart = p.autostart ?? defaults.autostart ?? true;
      if (!autostart) targets = targets.filter((t) => startsWithout(ctx, t));
      if (targets.length === 0) return deny(`policy define 'ask' action at ${where(rule)} but no target is available to choose from`);
      let def: string | undefined = p.default_target;
      if (def === "@dispvm") def = (t => (t === undefined ? undefined : `@dispvm:${t}`))(dispvmTemplateOf(ctx, req.source));
      else if (def !== undefined && isDom0(def)) def = "dom0";
      const d: PolicyDecision = { action: "ask", rule, reason: "rule", targetsForAsk: targets.sort(byCodeUnit), autostart, notify };
      if (def !== undefined && targets.includes(def)) d.defaultTarget = def;
      if (p.user !== undefined) d.user = p.user;
      return d;
    }
    default: {
      const never: never = rule.rule.action;
      return never;
    }
  }
}

/** Whether a call to `target` needs no start (parser.py `allow_no_autostart`). */
function startsWithout(ctx: Ctx, target: string): boolean {
  if (isDom0(target)) return true;
  if (target.startsWith("@dispvm")) return false;
  return ctx.info.get(target)?.power_state === "Running";
}

/** The targets an ask offers (parser.py `collect_targets_for_ask`): rules that match but for the target, last to first, deny removing what allow or ask added. */
function targetsForAsk(ctx: Ctx, rules: readonly EffectiveRule[], req: PolicyRequest): string[] {
  const targets = new Set<string>();
  for (const r of [...rules].reverse()) {
    if (!ruleMatchesButTarget(ctx, r, req)) continue;
    const spec = r.rule.action === "deny" ? r.rule.target : (r.rule.params.redirect ?? r.rule.target);
    const expansion = expand(ctx, spec);
    for (const t of expansion) if (r.rule.action === "deny") targets.delete(t);
    else targets.add(t);
  }
  if (targets.delete("@dispvm")) {
    const tpl = dispvmTemplateOf(ctx, req.source);
    if (tpl !== undefined) targets.add(`@dispvm:${tpl}`);
  }
  if (targets.delete("@adminvm")) targets.add("dom0");
  const src = nameOf(ctx, req.source);
  if (src !== undefined) targets.delete(src);
  targets.delete(req.source);
  for (const t of [...targets]) {
    const n = t.startsWith("@dispvm:") ? t.slice(8) : t;
    if (ctx.info.get(n)?.internal) targets.delete(t);
  }
  return [...targets];
}

/** The targets a specification stands for (parser.py: the `expand` methods), as names. */
function expand(ctx: Ctx, spec: string): string[] {
  const out: string[] = [];
  const all = (withDom0: boolean): void => {
    for (const [n, q] of ctx.info) {
      if (withDom0 || !isDom0(n)) out.push(n);
      if (q.template_for_dispvms) out.push(`@dispvm:${n}`);
    }
    out.push("@dispvm");
  };
  if (spec === "*") all(true);
  else if (spec === "@anyvm") all(false);
  else if (spec === "@adminvm") out.push("@adminvm");
  else if (spec === "@default") return out;
  else if (spec === "@dispvm") out.push("@dispvm");
  else if (spec.startsWith("@type:")) for (const [n, q] of ctx.info) (q.type === spec.slice(6) ? out.push(n) : 0);
  else if (spec.startsWith("@tag:")) for (const [n, q] of ctx.info) (q.tags.includes(spec.slice(5)) ? out.push(n) : 0);
  else if (spec.startsWith("@dispvm:@tag:")) {
    for (const [n, q] of ctx.info) if (q.template_for_dispvms && q.tags.includes(spec.slice(13))) out.push(`@dispvm:${n}`);
  } else if (spec.startsWith("@dispvm:")) {
    const n = nameOf(ctx, spec.slice(8));
    if (n !== undefined && ctx.info.get(n)!.template_for_dispvms) out.push(`@dispvm:${n}`);
  } else {
    const n = nameOf(ctx, spec);
    if (n !== undefined) out.push(n);
  }
  return out;
}

/**
 * A class of calls: each field given narrows it, an absent field stands for any value. `source`
 * and `target` are qubes or keywords as a caller writes them (a target `@dispvm`, `@dispvm:NAME`).
 */
export type RequestClass = { service?: string; argument?: string; source?: string; target?: string };

/**
 * The rules that can decide some call of the class, in qrexec's order: each one matches some call
 * of it (a specification the class leaves open counts as matching). Without `system`, `@tag:`,
 * `@type:` and `@dispvm:` columns are assumed to match (the answer is then a superset). For the
 * loosening analysis: a change to a class is judged by evaluating old and new sets on the calls
 * these rules can match.
 */
export function rulesForClass(set: PolicySet | ExpandedPolicy, cls: RequestClass, system?: EvalSystem): EffectiveRule[] {
  const expanded = "files" in set ? expandPolicy(set) : set;
  const ctx = system ? ctxOf(system) : undefined;
  const could = (token: string, value: string | undefined, source: string | undefined): boolean => {
    if (value === undefined) return true;
    if (ctx) return tokenMatches(ctx, token, value, source);
    if (/^@(tag|type|dispvm):/.test(token)) return true;
    return tokenMatches({ info: new Map(), rel: QREXEC_POLICY_RELEASES.main }, token, value, source);
  };
  return expanded.rules.filter(
    (r) =>
      (cls.service === undefined || r.service === "*" || r.service === cls.service) &&
      (cls.argument === undefined || r.argument === "*" || r.argument === cls.argument) &&
      could(r.rule.source, cls.source, undefined) &&
      could(r.rule.target, cls.target, cls.source),
  );
}

/**
 * An include resolver over parsed statements: include files by name in each syntax they read in
 * (a syntax absent: the file does not read that way), and optionally the policy files by name
 * (`!include 50-x.policy`). `resolve` maps a path as written to a file (src/config/policy/parse.ts
 * `resolveIncludePath`). `!include-dir include` reads the `.policy` files of include/, which the
 * policy admin API never writes (its names have no dot): nothing; `!include-dir` of the policy
 * directory itself reads every file again, qrexec recursing without end: a load failure.
 */
export function includeResolver(
  includes: ReadonlyMap<string, { policy?: readonly PolicyStatement[]; service?: readonly PolicyStatement[] }>,
  resolve: (path: string) => { scope: "include" | "policy"; name: string } | { scope: "dir"; path: string } | { error: string },
  policies?: ReadonlyMap<string, readonly PolicyStatement[]>,
): IncludeResolver {
  return (path, syntax) => {
    const r = resolve(path);
    if ("error" in r) return undefined;
    if (r.scope === "dir") return r.path.endsWith("/include") ? [] : undefined;
    if (r.scope === "policy") return syntax === "policy" ? policies?.get(r.name.replace(/\.policy$/, "")) : undefined;
    return includes.get(r.name)?.[syntax];
  };
}
