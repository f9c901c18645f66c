// The checks qrexec's policy parser makes on one rule, as the parser of one release would make them
// (QubesOS/qubes-core-qrexec qrexec/policy/parser.py: `validate_service_and_argument`,
// `VMToken.__new__` and the Source/Target/Redirect classes, `Rule.__init__`), plus the ones that
// spare the user a rule that is read but can never match (names no qube can have). Shared by the
// text parser (parse.ts) and the config's rule lists (normalize.ts): both hand in fields with the
// location each was written at, and get every problem back at once. Pure; release differences
// come from src/model/qrexec-release.ts.

import type { Diagnostic, SourceLocation } from "../../model/diagnostics.js";
import { checkTagName, checkVmName } from "../../model/qubes-rules.js";
import {
  ACTION_PARAMS,
  QREXEC_POLICY_RELEASES,
  QUBE_TYPES,
  RPCNAME_CHAR_RE,
  TOKEN_EXACTS,
  TOKEN_PREFIXES,
  TOKEN_ROLES,
  UUID_TOKEN_RE,
  type TokenKind,
  type TokenRole,
} from "../../model/qrexec-release.js";
import { POLICY_PARAM_TEXT, type PolicyAction, type PolicyParams, type PolicyRule, type PolicySyntax } from "../../model/qrexec-policy.js";
import type { ReleaseId } from "../../model/release.js";
import { diagnostic, type ConfigCode } from "../codes.js";
import { didYouMean } from "../_suggest.js";

export type Located<T> = { value: T; at: SourceLocation };

/** One parameter as written: its key as policy text spells it (`target`, `notify`, …) or as the config does (`redirect`). */
export type ParamInput = { key: string; value: string | boolean; at: SourceLocation; keyAt?: SourceLocation };

export type RuleInput = {
  service: Located<string>;
  argument: Located<string>;
  source: Located<string>;
  target: Located<string>;
  action: Located<string>;
  params: readonly ParamInput[];
  /** Spelling of the parameter keys: policy text (`target=`) or the config (`redirect:`). */
  keys: "text" | "config";
  syntax: PolicySyntax;
  at: SourceLocation;
};

/** Marks a parameter word without `=` (reported as "invalid action parameter syntax"). */
export const NO_EQUALS = "\u0000no-equals";

const ACTIONS: readonly PolicyAction[] = ["allow", "deny", "ask"];
const ROLE_CODE: Readonly<Record<TokenRole, ConfigCode>> = { source: "QIAC-E404", target: "QIAC-E405", redirect: "QIAC-E406" };
const ROLE_WORD: Readonly<Record<TokenRole, string>> = { source: "source", target: "target", redirect: "redirect" };

const invalidChars = (s: string, allowPlus: boolean): string[] =>
  [...new Set([...s].filter((c) => !RPCNAME_CHAR_RE.test(c) || (!allowPlus && c === "+")))].sort();

const quoteChars = (cs: readonly string[]): string => cs.map((c) => JSON.stringify(c)).join(", ");

/** The problem with a service name (`*` included), or null (parser.py `validate_service_and_argument`). */
export function serviceProblem(service: string): string | null {
  if (service === "*") return null;
  if (service === "") return "a service name cannot be empty (write * for any service)";
  const bad = invalidChars(service, false);
  return bad.length > 0 ? `service '${service}' contains invalid characters: ${quoteChars(bad)}` : null;
}

/** The problem with an argument given a service, or null. */
export function argumentProblem(service: string, argument: string): string | null {
  if (argument === "*") return null;
  const bad = invalidChars(argument, true);
  if (bad.length > 0) return `argument '${argument}' contains invalid characters: ${quoteChars(bad)}`;
  if (!argument.startsWith("+")) return `argument '${argument}' does not start with +`;
  if (service === "*") return "only * argument allowed for * service";
  return null;
}

export type TokenReading =
  | { kind: TokenKind; value: string }
  | { kind: "name"; value: string }
  | { kind: "uuid"; value: string }
  | { kind: "dom0"; value: string }
  | { kind: "invalid"; why: string };

/**
 * How qrexec reads a qube specification, whatever the role (parser.py `VMToken.__new__`): `*` and
 * `@` keywords, prefixed keywords with their value, or a plain name (`dom0`, `uuid:…` and any other
 * word are plain names to the parser).
 */
export function readToken(token: string): TokenReading {
  if (!(token.startsWith("@") || token === "*")) {
    if (token === "dom0") return { kind: "dom0", value: token };
    if (token.startsWith("uuid:")) return { kind: "uuid", value: token };
    return { kind: "name", value: token };
  }
  const exact = TOKEN_EXACTS.find((k) => k === token);
  if (exact) return { kind: exact, value: "" };
  // parser.py tries the prefixes in class order, skipping one whose value starts with `@`
  // (`@dispvm:@tag:x` is not `@dispvm:` with value `@tag:x`); longest-first gives the same answer.
  for (const prefix of TOKEN_PREFIXES) {
    if (!token.startsWith(prefix)) continue;
    const value = token.slice(prefix.length);
    if (value === "") return { kind: "invalid", why: `invalid empty ${prefix} token: '${token}'` };
    if (value.startsWith("@")) continue;
    return { kind: prefix, value };
  }
  return { kind: "invalid", why: `'${token}' is not a qrexec keyword` };
}

/** The qube names a specification refers to (plain names and the template of `@dispvm:NAME`), for the unknown-name check. */
export function namedQube(token: string): string | undefined {
  const r = readToken(token);
  if (r.kind === "name") return r.value;
  if (r.kind === "@dispvm:" && !r.value.startsWith("uuid:")) return r.value;
  return undefined;
}

type Report = (code: ConfigCode, message: string, at: SourceLocation, hint?: string) => void;

/** Checks one qube specification in one role, as `release` reads it; true when the parser accepts it. */
export function checkToken(token: string, role: TokenRole, release: ReleaseId, at: SourceLocation, report: Report): boolean {
  const code = ROLE_CODE[role];
  if (token === "") {
    // Only `target=` or `default_target=` with nothing after `=` can be empty. R4.3 and main
    // refuse it ("invalid empty redirect token"); R4.2 reads a qube named "" that never exists:
    // wrong either way, so one error for every release.
    report(code, `invalid empty ${ROLE_WORD[role]} token`, at, "name a qube or a keyword after =, or leave the parameter out");
    return false;
  }
  const r = readToken(token);
  if (r.kind === "invalid") {
    report(code, `invalid ${ROLE_WORD[role]} token: ${r.why}`, at, rolesHint(role));
    return false;
  }
  if (r.kind === "name") {
    const bad = checkVmName(r.value);
    if (bad) report("QIAC-E413", `'${r.value}' is not a qube name Qubes allows (${bad}): the rule never matches`, at, rolesHint(role));
    return true;
  }
  if (r.kind === "dom0") return true;
  if (r.kind === "uuid") {
    uuidCheck(r.value, release, at, report);
    return true;
  }
  if (!TOKEN_ROLES[r.kind].includes(role)) {
    report(code, `${r.kind === "@type:" || r.kind === "@tag:" || r.kind === "@dispvm:" || r.kind === "@dispvm:@tag:" ? `${r.kind}…` : r.kind} cannot be a ${ROLE_WORD[role]} (invalid ${ROLE_WORD[role]} token: '${token}')`, at, rolesHint(role));
    return false;
  }
  switch (r.kind) {
    case "@tag:":
    case "@dispvm:@tag:": {
      const bad = checkTagName(r.value);
      if (bad) report("QIAC-E413", `tag '${r.value}' in '${token}': ${bad}, so no qube carries it`, at, "tags are letters, digits, _ and -");
      break;
    }
    case "@type:":
      if (!QUBE_TYPES.includes(r.value)) report("QIAC-W402", `no qube has type '${r.value}': the rule never matches`, at, didYouMean(r.value, QUBE_TYPES) ?? `types: ${QUBE_TYPES.join(", ")}`);
      break;
    case "@dispvm:":
      if (r.value.startsWith("uuid:")) uuidCheck(r.value, release, at, report);
      else if (r.value !== "dom0") {
        const bad = checkVmName(r.value);
        if (bad) report("QIAC-E413", `'${r.value}' in '${token}' is not a qube name Qubes allows (${bad}): the rule never matches`, at);
      }
      break;
    default:
      break;
  }
  return true;
}

function uuidCheck(token: string, release: ReleaseId, at: SourceLocation, report: Report): void {
  const rel = QREXEC_POLICY_RELEASES[release];
  if (!UUID_TOKEN_RE.test(token)) {
    report("QIAC-E413", `'${token}' is not a UUID as qubesd writes it (uuid: then 8-4-4-4-12 lowercase hex digits): the rule never matches`, at);
    return;
  }
  if (!rel.uuidTokens) {
    report("QIAC-E414", `${rel.title}'s qrexec has no uuid: tokens: it reads '${token}' as a qube name no qube can have, so the rule never matches`, at, "name the qube; uuid: tokens exist from R4.3");
  }
}

function rolesHint(role: TokenRole): string {
  const ok = (Object.keys(TOKEN_ROLES) as TokenKind[]).filter((k) => TOKEN_ROLES[k].includes(role)).map((k) => (k.endsWith(":") ? `${k}…` : k));
  return `a ${ROLE_WORD[role]} is a qube name or one of ${ok.join(", ")}`;
}

/** The config key of a parameter from its policy-text spelling (`target` → `redirect`). */
const TEXT_TO_PARAM: ReadonlyMap<string, keyof PolicyParams> = new Map(
  (Object.entries(POLICY_PARAM_TEXT) as Array<[keyof PolicyParams, string]>).map(([k, t]) => [t, k]),
);
const CONFIG_PARAMS: ReadonlySet<string> = new Set(Object.keys(POLICY_PARAM_TEXT));

/** Checks one rule as `release`'s parser would; the rule when it reads (maybe with warnings), and every problem. */
export function checkRule(input: RuleInput, release: ReleaseId): { rule?: PolicyRule; diagnostics: Diagnostic[] } {
  const diagnostics: Diagnostic[] = [];
  let ok = true;
  const report: Report = (code, message, at, hint) => {
    const d = diagnostic(code, message, at, hint);
    if (d.severity === "error") ok = false;
    diagnostics.push(d);
  };
  const { service, argument, source, target, action } = input;
  if (input.syntax === "policy") {
    const sp = serviceProblem(service.value);
    if (sp) report("QIAC-E402", sp, service.at, "service names are letters, digits and - . _ (or * for any)");
    const ap = sp ? null : argumentProblem(service.value, argument.value);
    if (ap) report("QIAC-E403", ap, argument.at, "an argument is * (any) or + followed by letters, digits and + - . _ (+ alone: no argument)");
  }
  checkToken(source.value, "source", release, source.at, report);
  checkToken(target.value, "target", release, target.at, report);
  const act = ACTIONS.find((a) => a === action.value);
  if (!act) report("QIAC-E407", `invalid action: ${action.value}`, action.at, "the action is allow, deny or ask");

  const params: PolicyParams = {};
  const seen = new Set<string>();
  for (const p of input.params) {
    const key = input.keys === "text" ? TEXT_TO_PARAM.get(p.key) : CONFIG_PARAMS.has(p.key) ? (p.key as keyof PolicyParams) : undefined;
    const keyAt = p.keyAt ?? p.at;
    if (p.value === NO_EQUALS) {
      report("QIAC-E409", `invalid action parameter syntax: '${p.key}'`, p.at, "parameters are KEY=VALUE; a # after the action does not start a comment");
      continue;
    }
    if (seen.has(p.key)) {
      report("QIAC-E409", `parameter given twice: '${p.key}'`, keyAt, "give each parameter once");
      continue;
    }
    seen.add(p.key);
    if (key === undefined) {
      report("QIAC-E408", `invalid parameter for action ${action.value}: '${p.key}'`, keyAt, act ? `${act} takes ${paramList(act, input.keys)}` : undefined);
      continue;
    }
    if (act && !ACTION_PARAMS[act].includes(key)) {
      report("QIAC-E408", `${act} does not take ${input.keys === "text" ? `${POLICY_PARAM_TEXT[key]}=` : key}`, keyAt, `${act} takes ${paramList(act, input.keys)}`);
      continue;
    }
    if (key === "notify" || key === "autostart") {
      const v = typeof p.value === "boolean" ? p.value : p.value === "yes" ? true : p.value === "no" ? false : undefined;
      if (v === undefined) {
        report("QIAC-E409", `'${p.key}' is '${String(p.value)}', but can be only 'yes' or 'no'`, p.at);
        continue;
      }
      params[key] = v;
      continue;
    }
    if (typeof p.value !== "string") continue;
    if (key === "redirect" || key === "default_target") {
      if (!checkToken(p.value, "redirect", release, p.at, report)) continue;
    } else if (key === "user" && !/^\S*$/.test(p.value)) {
      report("QIAC-E409", `user '${p.value}' cannot hold spaces`, p.at);
      continue;
    }
    params[key] = p.value;
  }
  if (act === "allow" && params.redirect === undefined && readToken(target.value).kind === "@default") {
    report("QIAC-E410", "allow action for @default rule must specify target= option", target.at, input.keys === "text" ? "add target=QUBE" : "add redirect: QUBE");
  }
  if (!ok || !act) return { diagnostics };
  const rule: PolicyRule = {
    kind: "rule",
    service: input.syntax === "policy" ? service.value : "*",
    argument: input.syntax === "policy" ? argument.value : "*",
    source: source.value,
    target: target.value,
    action: act,
    params,
    at: input.at,
    fieldAt: { source: source.at, target: target.at },
  };
  for (const p of input.params) {
    const key = input.keys === "text" ? TEXT_TO_PARAM.get(p.key) : p.key;
    if ((key === "redirect" || key === "default_target") && params[key] !== undefined) rule.fieldAt![key] = p.at;
  }
  return { rule, diagnostics };
}

const paramList = (a: PolicyAction, keys: "text" | "config"): string =>
  ACTION_PARAMS[a].length === 0 ? "no parameters" : ACTION_PARAMS[a].map((k) => (keys === "text" ? `${POLICY_PARAM_TEXT[k]}=` : k)).join(", ");
