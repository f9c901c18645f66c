// The rest of dom0's qrexec policy, for the loosening analysis only (loosening-policy.ts): qrexec
// decides a call by the first matching rule across every file, so a change to one file is judged
// against all of them, files qubes-iac does not manage included. Read only when the plan reads
// policy files at all, after them; never written, never diffed. A file this connection may not
// read (a management qube's policy names only the config's files) is listed as unread, and the
// plan says the judgement saw only part of the policy (QIAC-W186).

import type { ActualPolicies } from "../model/actual.js";
import type { PolicyScope } from "../model/qrexec-policy.js";
import type { PolicyFilesReader } from "./policy-reader.js";

export type PolicyContext = {
  /** Every file that could be read, by scope and name: the text as policy.Get returned it. */
  policies: ReadonlyMap<string, string>;
  includes: ReadonlyMap<string, string>;
  /** Files listed but not readable (`include/NAME` for include files), sorted; empty from dom0. */
  unread: string[];
  /** policy.List itself could not be run: only the files the plan read are known. */
  unlisted: boolean;
};

/** The texts the plan read already, by scope. */
function known(read: ActualPolicies | undefined): Map<PolicyScope, Map<string, string>> {
  const out = new Map<PolicyScope, Map<string, string>>([
    ["policy", new Map()],
    ["include", new Map()],
  ]);
  if (read?.kind !== "read") return out;
  for (const [address, f] of read.files) {
    if ("absent" in f) continue;
    const include = address.startsWith("policy.include.");
    out.get(include ? "include" : "policy")?.set(address.slice(include ? "policy.include.".length : "policy.".length), f.content);
  }
  return out;
}

export async function readPolicyContext(reader: PolicyFilesReader | undefined, read: ActualPolicies | undefined): Promise<PolicyContext | undefined> {
  if (read === undefined || read.kind !== "read" || reader === undefined) return undefined;
  const texts = known(read);
  const unread: string[] = [];
  let unlisted = false;
  for (const scope of ["policy", "include"] as const) {
    let names: string[];
    try {
      names = await reader.list(scope);
    } catch {
      unlisted = true;
      continue;
    }
    const have = texts.get(scope) as Map<string, string>;
    for (const name of [...names].sort()) {
      if (have.has(name)) continue;
      try {
        // undefined: the file went away since the list (nothing to judge against).
        const f = await reader.get(scope, name);
        if (f !== undefined) have.set(name, f.content);
      } catch {
        unread.push(scope === "include" ? `include/${name}` : name);
      }
    }
  }
  return { policies: texts.get("policy") as Map<string, string>, includes: texts.get("include") as Map<string, string>, unread: unread.sort(), unlisted };
}
