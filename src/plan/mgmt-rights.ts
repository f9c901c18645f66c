// From a management qube, a plan never changes a policy file that holds management rights
// (src/model/qrexec-rights.ts): a management qube that may rewrite the file holding its own
// rights may give itself any right, so only dom0 writes such files. Pure: over the plan's policy
// file changes (old and new statements) and how much of Qubes the connection shows.

import type { Diagnostic, SourceLocation } from "../model/diagnostics.js";
import type { PolicyScope, PolicyStatement } from "../model/qrexec-policy.js";
import { rightsIncludes, rightsReason } from "../model/qrexec-rights.js";
import { planDiagnostic } from "./codes.js";

/** One policy file the plan writes or removes: its statements before (null: no file) and after (null: removed). */
export type PolicyFileChange = {
  address: string;
  scope: PolicyScope;
  name: string;
  before: readonly PolicyStatement[] | null;
  after: readonly PolicyStatement[] | null;
  /** The file's key in the config. */
  at?: SourceLocation;
};

/**
 * QIAC-E186 at each change to a file that holds management rights before or after, when the
 * connection is a management qube's (`visibility` `policy`, Transport.visibility). `known`: every
 * statement the plan read or writes (for the include files `!include-service` lines name);
 * `resolve`: an `!include` path's statements, to follow includes.
 */
export function refuseRightsWrites(
  changes: readonly PolicyFileChange[],
  visibility: "all" | "policy" | undefined,
  known: Iterable<PolicyStatement>,
  resolve?: (path: string) => readonly PolicyStatement[] | undefined,
): Diagnostic[] {
  if (visibility !== "policy") return [];
  const includes = rightsIncludes([...known, ...changes.flatMap((c) => [...(c.before ?? []), ...(c.after ?? [])])]);
  const out: Diagnostic[] = [];
  for (const c of changes) {
    const why = rightsReason({ scope: c.scope, name: c.name, statements: c.after ?? [] }, includes, resolve) ?? rightsReason({ scope: c.scope, name: c.name, statements: c.before ?? [] }, includes, resolve);
    if (why === undefined) continue;
    const verb = c.after === null ? "remove" : c.before === null ? "create" : "change";
    out.push(
      planDiagnostic("QIAC-E186", `${c.address} holds management rights (${why}): a management qube may not ${verb} it, only dom0 may`, {
        address: c.address,
        ...(c.at !== undefined ? { location: c.at } : {}),
        hint: "apply this file from dom0 (qubes-iac in dom0, `--connect qubesd`), or leave it out of what the management qube applies (`--exclude " + c.address + "`)",
      }),
    );
  }
  return out;
}
