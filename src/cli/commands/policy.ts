// `qubes-iac policy [CONFIG…] --mgmt QUBE [--apply] [--connect HOW]`: prints the qrexec policy
// (Qubes 4.1+, for /etc/qubes/policy.d/) that lets the management qube plan — and with --apply,
// apply — this config, and nothing else. Computed from the config alone; with an explicit
// --connect it also reads the owner's inventory (one call), so that what the config no longer
// names can still be removed.

import { policyRules, renderPolicy } from "../../apply/policy.js";
import { readerFromClient } from "../../apply/admin-api.js";
import { readInventory, type Inventory } from "../../model/ownership.js";
import { checkVmName } from "../../model/qubes-rules.js";
import { withClient, type ConnectionOptions } from "../connection.js";
import { CliError, interruptFlag, type CliIO } from "../io.js";
import { packageVersion } from "../version.js";
import { loadConfigOrReport } from "./plan.js";

export type PolicyCommandOptions = ConnectionOptions & { mgmt: string; apply?: boolean };

export async function policyCommand(io: CliIO, paths: string[], o: PolicyCommandOptions): Promise<number> {
  const bad = checkVmName(o.mgmt);
  if (bad !== null || o.mgmt === "dom0") throw new CliError(`--mgmt '${o.mgmt}' is not the name of a management qube${bad !== null ? `: ${bad}` : ""}`);
  const stopped = interruptFlag(io);
  const loaded = loadConfigOrReport(io, paths, false);
  if (!loaded) return 1;
  const desired = loaded.config;
  const inventory: Inventory | undefined =
    o.connect === undefined ? undefined : await withClient(io, o, async (client) => readInventory(desired.owner, await readerFromClient(client).featureNames("dom0")));
  if (stopped() !== undefined) return 1;
  const rules = policyRules({ desired, mgmt: o.mgmt, apply: o.apply === true, ...(inventory !== undefined ? { inventory } : {}) });
  io.stdout.write(renderPolicy(rules, { owner: desired.owner, mgmt: o.mgmt, apply: o.apply === true, configs: paths, generator: `qubes-iac ${packageVersion()}` }));
  return 0;
}
