// `qubes-iac policy [CONFIG…] --mgmt QUBE [--apply] [--connect HOW]`: prints the qrexec policy
// (Qubes 4.1+, for /etc/qubes/policy.d/) that lets the management qube plan — and with --apply,
// apply — this config, and nothing else. Computed from the config alone; with an explicit
// --connect it also reads the owner's inventory (one call), so that what the config no longer
// names can still be removed.

import { policyRules, renderPolicy } from "../../apply/policy.js";
import { readerFromClient } from "../../apply/admin-api.js";
import { loadConfig } from "../../config/index.js";
import { readInventory, type Inventory } from "../../model/ownership.js";
import { checkVmName } from "../../model/qubes-rules.js";
import { connectClient, type ConnectionOptions } from "../connection.js";
import { CliError, type CliIO } from "../io.js";
import { packageVersion } from "../version.js";
import { printConfigFailure } from "./plan.js";
import { configIOAt } from "./validate.js";

export type PolicyCommandOptions = ConnectionOptions & { mgmt: string; apply?: boolean };

export async function policyCommand(io: CliIO, paths: string[], o: PolicyCommandOptions): Promise<number> {
  const bad = checkVmName(o.mgmt);
  if (bad !== null || o.mgmt === "dom0") throw new CliError(`--mgmt '${o.mgmt}' is not the name of a management qube${bad !== null ? `: ${bad}` : ""}`);
  const loaded = loadConfig(paths, configIOAt(io.cwd));
  if (!loaded.config) {
    printConfigFailure(io, loaded, false);
    return 1;
  }
  const desired = loaded.config;
  let inventory: Inventory | undefined;
  if (o.connect !== undefined) {
    const client = await connectClient(io, o);
    try {
      inventory = readInventory(desired.owner, await readerFromClient(client).featureNames("dom0"));
    } finally {
      await client.close();
    }
  }
  const rules = policyRules({ desired, mgmt: o.mgmt, apply: o.apply === true, ...(inventory !== undefined ? { inventory } : {}) });
  io.stdout.write(renderPolicy(rules, { owner: desired.owner, mgmt: o.mgmt, apply: o.apply === true, configs: paths, generator: `qubes-iac ${packageVersion()}` }));
  return 0;
}
