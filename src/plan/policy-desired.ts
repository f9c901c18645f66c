// The config's policy files as the planner takes them: DesiredState.policies (by address), which
// the config loader of `policies:` fills (src/config/policy/). A config without policies has none.

import type { DesiredState } from "../model/desired.js";
import type { DesiredPolicyFile } from "../model/qrexec-policy.js";

export const desiredPolicies = (desired: DesiredState): ReadonlyMap<string, DesiredPolicyFile> =>
  (desired as DesiredState & { policies?: ReadonlyMap<string, DesiredPolicyFile> }).policies ?? new Map();
