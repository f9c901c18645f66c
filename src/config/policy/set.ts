// A whole policy as qrexec of one release would load it, for evaluation (src/model/qrexec-eval.ts):
// the texts of the policy and include files (as read from a system through policy.Get and
// policy.include.Get), optionally overlaid with the files a config wants, so that the policy
// before and after a plan can be compared. Pure.

import type { Diagnostic } from "../../model/diagnostics.js";
import { includeResolver, type PolicySet } from "../../model/qrexec-eval.js";
import type { DesiredPolicyFile, PolicyStatement } from "../../model/qrexec-policy.js";
import { INCLUDE_DIR, POLICY_DIR } from "../../model/qrexec-release.js";
import type { ReleaseId } from "../../model/release.js";
import { parsePolicyText, resolveIncludePath } from "./parse.js";

export type PolicyTexts = {
  /** Policy files by name (without `.policy`) → text. */
  policies: ReadonlyMap<string, string>;
  /** Include files by name → text. */
  includes?: ReadonlyMap<string, string>;
};

/**
 * The policy `texts` make, with `desired` (a config's files: rules or text replace a file of the
 * same name, `absent` removes it, `release` leaves the text as it is) laid over them. A policy file
 * with an error makes qrexec load no policy at all (`loadFailure`: every call denied), as does an
 * include read in a syntax it does not parse in; the diagnostics say where (file paths as on dom0).
 */
export function policySet(texts: PolicyTexts, release: ReleaseId, desired?: ReadonlyMap<string, DesiredPolicyFile>): { set: PolicySet; diagnostics: Diagnostic[] } {
  const policyStatements = new Map<string, readonly PolicyStatement[]>();
  const includeTexts = new Map(texts.includes ?? []);
  const policyTexts = new Map(texts.policies);
  const parsedIncludes = new Map<string, { policy?: readonly PolicyStatement[]; service?: readonly PolicyStatement[] }>();
  const diagnostics: Diagnostic[] = [];
  let loadFailure: string | undefined;

  for (const f of desired?.values() ?? []) {
    if (f.release) continue;
    const scopeTexts = f.scope === "policy" ? policyTexts : includeTexts;
    if (f.absent) {
      scopeTexts.delete(f.name);
      continue;
    }
    scopeTexts.delete(f.name);
    if (f.scope === "policy") policyStatements.set(f.name, f.statements);
    else parsedIncludes.set(f.name, { [f.syntax]: f.statements });
  }
  for (const [name, text] of policyTexts) {
    const file = `${POLICY_DIR}/${name}.policy`;
    const p = parsePolicyText(text, release, { file });
    diagnostics.push(...p.diagnostics);
    if (p.diagnostics.some((d) => d.severity === "error")) loadFailure ??= `${file} does not parse`;
    policyStatements.set(name, p.statements);
  }
  for (const [name, text] of includeTexts) {
    const file = `${INCLUDE_DIR}/${name}`;
    const entry: { policy?: readonly PolicyStatement[]; service?: readonly PolicyStatement[] } = {};
    for (const syntax of ["policy", "service"] as const) {
      const p = parsePolicyText(text, release, { file, syntax });
      if (!p.diagnostics.some((d) => d.severity === "error")) entry[syntax] = p.statements;
    }
    parsedIncludes.set(name, entry);
  }
  const set: PolicySet = {
    files: [...policyStatements].map(([name, statements]) => ({ name, statements })),
    include: includeResolver(parsedIncludes, resolveIncludePath, policyStatements),
  };
  if (loadFailure) set.loadFailure = loadFailure;
  return { set, diagnostics };
}
