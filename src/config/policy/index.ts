// The policy side of config checking, as other stages call it: the text parser, the per-release
// problems plan must refuse, and the checks of what rules refer to (qubes, include files) that need
// the whole config — or, at plan, the system's qube names.

import type { DesiredState } from "../../model/desired.js";
import type { Diagnostic, SourceLocation } from "../../model/diagnostics.js";
import { policyAddress, type DesiredPolicyFile, type PolicyRule, type PolicyStatement } from "../../model/qrexec-policy.js";
import type { ReleaseId } from "../../model/release.js";
import { diagnostic } from "../codes.js";
import { didYouMean } from "../_suggest.js";
import { namedQube } from "./check.js";
import { resolveIncludePath } from "./parse.js";

export { parsePolicyText, resolveIncludePath, type ParsedPolicy, type PolicyTextOrigin, type ResolvedIncludePath } from "./parse.js";
export { checkRule, checkToken, readToken, namedQube, type RuleInput } from "./check.js";
export { normalizePolicies, textOrigin } from "./normalize.js";
export { policySet, type PolicyTexts } from "./set.js";

/**
 * The problems `release`'s qrexec has with the config's policy files that `validate` could only
 * warn about (QIAC-W401): errors, at their config locations. Plan calls this once it knows the
 * release, and refuses to go on when any is returned.
 */
export function policyProblemsFor(policies: ReadonlyMap<string, DesiredPolicyFile>, release: ReleaseId): Diagnostic[] {
  return [...policies.values()].flatMap((f) => [...(f.releaseProblems?.[release] ?? [])]);
}

type NameUse = { name: string; at: SourceLocation; file: DesiredPolicyFile };

/** Every qube name the rules use (plain names and the templates of `@dispvm:NAME`), where written. */
export function policyQubeNames(policies: ReadonlyMap<string, DesiredPolicyFile>): NameUse[] {
  const out: NameUse[] = [];
  for (const file of policies.values()) {
    for (const s of file.statements) {
      if (s.kind !== "rule") continue;
      const cols: Array<[keyof NonNullable<PolicyRule["fieldAt"]>, string | undefined]> = [
        ["source", s.source],
        ["target", s.target],
        ["redirect", s.params.redirect],
        ["default_target", s.params.default_target],
      ];
      for (const [col, token] of cols) {
        if (token === undefined) continue;
        const name = namedQube(token);
        if (name !== undefined) out.push({ name, at: s.fieldAt?.[col] ?? s.at ?? file.at, file });
      }
    }
  }
  return out;
}

/**
 * QIAC-W400 for each qube name a rule uses that is neither in `known` nor dom0. At validate `known`
 * is the config's qubes; plan (policy-io) calls it again with the config's and the system's names,
 * so only names that exist nowhere stay.
 */
export function unknownPolicyQubes(policies: ReadonlyMap<string, DesiredPolicyFile>, known: ReadonlySet<string>, where: "config" | "system" = "config"): Diagnostic[] {
  const names = [...known];
  return policyQubeNames(policies)
    .filter((u) => u.name !== "dom0" && !known.has(u.name))
    .map((u) =>
      diagnostic(
        "QIAC-W400",
        where === "config" ? `qube '${u.name}' in a rule of ${policyAddress(u.file)} is not defined in this config` : `qube '${u.name}' in a rule of ${policyAddress(u.file)} does not exist`,
        u.at,
        didYouMean(u.name, names) ?? (where === "config" ? "if it exists on the system, plan checks it there" : "a rule naming a qube that does not exist never matches it"),
      ),
    );
}

/** The include directives of a file. */
const includesOf = (f: DesiredPolicyFile): Array<Exclude<PolicyStatement, PolicyRule>> => f.statements.filter((s): s is Exclude<PolicyStatement, PolicyRule> => s.kind !== "rule");

/**
 * What the policy files of the config refer to: include files the config does not manage
 * (QIAC-W404), include files read in the other syntax (QIAC-E417), and qubes it does not define
 * (QIAC-W400).
 */
export function checkPolicyReferences(state: DesiredState): Diagnostic[] {
  const out: Diagnostic[] = [];
  for (const f of state.policies.values()) {
    for (const inc of includesOf(f)) {
      if (inc.kind === "include-dir") continue;
      const r = resolveIncludePath(inc.path);
      if ("error" in r || r.scope === "dir") continue;
      const name = r.scope === "policy" ? r.name.replace(/\.policy$/, "") : r.name;
      const target = state.policies.get(policyAddress({ name, scope: r.scope }));
      const at = inc.at ?? f.at;
      if (!target) {
        const what = r.scope === "include" ? `include file '${name}'` : `policy file '${r.name}'`;
        out.push(diagnostic("QIAC-W404", `${policyAddress(f)} includes ${what}, which this config does not manage`, at, r.scope === "include" ? `declare it under policy_includes: ${r.name}, or make sure it exists` : undefined));
        continue;
      }
      if (target.absent) {
        out.push(diagnostic("QIAC-E412", `${policyAddress(f)} includes ${policyAddress(target)}, which this config removes (absent: true)`, at, "qrexec refuses a policy that includes a missing file: every call would be denied"));
        continue;
      }
      if (target.release) continue;
      const want = inc.kind === "include-service" || f.syntax === "service" ? "service" : "policy";
      if (target.syntax !== want) {
        out.push(
          diagnostic(
            "QIAC-E417",
            `${policyAddress(f)} reads ${policyAddress(target)} with ${inc.kind === "include-service" ? "!include-service" : "!include"}, but its lines are ${target.syntax === "service" ? "SOURCE TARGET ACTION" : "full rules"}`,
            at,
            want === "service" ? "an !include-service file has no service or argument columns (syntax: service)" : "use include_service (with the service and argument), or give its rules a service",
          ),
        );
      }
    }
  }
  out.push(...unknownPolicyQubes(state.policies, new Set(state.qubes.keys())));
  return out;
}
