// The config's policy files as the planner takes them: DesiredState.policies (by address), which
// the config loader of `policies:` and `policy_includes:` fills (src/config/policy/).

import type { DesiredState } from "../model/desired.js";
import type { DesiredPolicyFile } from "../model/qrexec-policy.js";

export const desiredPolicies = (desired: DesiredState): ReadonlyMap<string, DesiredPolicyFile> => desired.policies;
