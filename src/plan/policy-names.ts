// What the config loader could only guess about policy files until planning read the system: which
// qube names a rule uses that exist nowhere (QIAC-W400, now judged with the system's qubes too),
// and the problems the release that answered has with the files (QIAC-W401 at validate, errors
// now: every candidate release's). Pure: the config's diagnostics and the actual state come in.

import { policyProblemsFor, unknownPolicyQubes } from "../config/policy/index.js";
import type { ActualState } from "../model/actual.js";
import type { DesiredState } from "../model/desired.js";
import type { Diagnostic } from "../model/diagnostics.js";
import { RELEASE_IDS } from "../model/release.js";

/**
 * The config's diagnostics with its unknown-qube warnings judged again against the system's qube
 * names (from a management qube that sees only some qubes, a name it does not see stays the
 * config's warning), plus the release's policy problems as errors.
 */
export function policyDiagnosticsWithSystem(desired: DesiredState, actual: Pick<ActualState, "listing" | "release" | "visibility">, configDiagnostics: readonly Diagnostic[]): Diagnostic[] {
  if (desired.policies.size === 0) return [...configDiagnostics];
  const known = new Set([...desired.qubes.keys(), ...actual.listing.keys()]);
  const unknown = unknownPolicyQubes(desired.policies, known, actual.visibility === "policy" ? "config" : "system");
  const releases = actual.release?.candidates ?? RELEASE_IDS;
  const seen = new Set<string>();
  const problems = releases.flatMap((r) => policyProblemsFor(desired.policies, r)).filter((d) => {
    const key = `${d.code} ${d.message} ${d.location?.file}:${d.location?.line}:${d.location?.column}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
  return [...configDiagnostics.filter((d) => d.code !== "QIAC-W400"), ...unknown, ...problems];
}
