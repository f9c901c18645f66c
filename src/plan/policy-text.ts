// The statements of a policy file as read from dom0, for the plan: what the loosening analysis
// evaluates (old against new), whether a removal takes away deny or ask rules (which needs the
// typed confirmation), and whether content a saved plan would write still parses. Read by the
// config loader's parser of qrexec policy for the release in question (src/config/policy/parse.ts,
// as QubesOS/qubes-core-qrexec qrexec/policy/parser.py judges it). Pure.

import { parsePolicyText } from "../config/policy/index.js";
import type { PolicyStatement, PolicySyntax } from "../model/qrexec-policy.js";
import type { ReleaseId } from "../model/release.js";

export type { PolicySyntax };

export type ReadStatements = { statements: PolicyStatement[]; /** 1-based lines that qrexec of the release refuses. */ unparsed: number[] };

/** Reads every statement of `text` as `release`'s qrexec would; `syntax` `service` for include files read by `!include-service`. */
export function readStatements(text: string, syntax: PolicySyntax = "policy", release: ReleaseId = "main", file = "policy"): ReadStatements {
  const parsed = parsePolicyText(text, release, { file, syntax });
  const unparsed = [...new Set(parsed.diagnostics.filter((d) => d.severity === "error").map((d) => d.location?.line ?? 0))].sort((a, b) => a - b);
  return { statements: parsed.statements, unparsed };
}

/** Whether removing these statements may loosen isolation: they hold a deny or an ask rule, or include other files. */
export const holdsRestrictions = (statements: readonly PolicyStatement[]): boolean => statements.some((s) => s.kind !== "rule" || s.action !== "allow");
