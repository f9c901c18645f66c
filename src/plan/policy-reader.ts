// Reads the policy files a plan needs through qrexec's policy admin API: policy.List of each
// scope that holds a file the config names or the inventory lists, then policy.Get of each such
// file the list shows. Nothing else is read: a file neither names is never looked at. A config
// and an inventory without policy files make no call at all.

import type { ActualPolicies } from "../model/actual.js";
import type { PolicyScope } from "../model/qrexec-policy.js";
import { policyAddressesToRead, type DesiredPolicies } from "./diff-policies.js";

/** The read-only face of the policy client that planning is given. */
export type PolicyFilesReader = {
  list(scope: PolicyScope): Promise<string[]>;
  /** undefined: the file is not there (removed since the list was read). */
  get(scope: PolicyScope, name: string): Promise<{ token: string; content: string } | undefined>;
};

/** What a reader's failure says, and whether qrexec refused it. */
export type ReadFailure = { message: string; refused: boolean };

export async function readPolicies(
  reader: PolicyFilesReader | undefined,
  owner: string,
  desired: DesiredPolicies,
  dom0FeatureNames: Iterable<string>,
  describe: (e: unknown) => ReadFailure,
): Promise<ActualPolicies | undefined> {
  const wanted = policyAddressesToRead(owner, desired, dom0FeatureNames);
  if (wanted.size === 0) return undefined;
  if (reader === undefined) return { kind: "failed", error: "this connection cannot run dom0's policy admin services", refused: false };
  try {
    const listed = new Map<PolicyScope, Set<string>>();
    for (const scope of ["policy", "include"] as const) {
      if ([...wanted.values()].some((w) => w.scope === scope)) listed.set(scope, new Set(await reader.list(scope)));
    }
    const files = new Map<string, { token: string; content: string } | { absent: true }>();
    for (const [address, w] of wanted) {
      const file = listed.get(w.scope)?.has(w.name) ? await reader.get(w.scope, w.name) : undefined;
      files.set(address, file ?? { absent: true });
    }
    return { kind: "read", files };
  } catch (e) {
    const f = describe(e);
    return { kind: "failed", error: f.message, refused: f.refused };
  }
}
