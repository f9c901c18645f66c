// `qubes-iac policy [CONFIG…] --mgmt QUBE [--apply] [--allow-policy-writes] [--connect HOW]`:
// prints the qrexec policy (Qubes 4.1+, for /etc/qubes/policy.d/) that lets the management qube
// plan — and with --apply, apply — this config, and nothing else. qrexec's policy admin services
// (policy.*) for the config's policy files are granted only with --allow-policy-writes, file by
// file (their writes only with --apply too), and never the writes of a file that holds
// management rights (QIAC-E310). Computed from the config alone;
// with an explicit --connect it also reads the owner's inventory (one call), so that what the
// config no longer names can still be removed.

import { createdDispvmTemplates, policyFilesOf, policyRules, policyWriteRefusals, renderPolicy } from "../../apply/policy.js";
import { policyAddress } from "../../model/qrexec-policy.js";
import { readerFromClient } from "../../apply/admin-api.js";
import { readInventory, readPolicyInventory, type Inventory } from "../../model/ownership.js";
import { checkVmName } from "../../model/qubes-rules.js";
import { withClient, type ConnectionOptions } from "../connection.js";
import { CliError, interruptFlag, type CliIO } from "../io.js";
import { packageVersion } from "../version.js";
import { loadConfigOrReport } from "./plan.js";
import { renderDiagnostics } from "./validate.js";

export type PolicyCommandOptions = ConnectionOptions & { mgmt: string; apply?: boolean; allowPolicyWrites?: boolean };

export async function policyCommand(io: CliIO, paths: string[], o: PolicyCommandOptions): Promise<number> {
  const bad = checkVmName(o.mgmt);
  if (bad !== null || o.mgmt === "dom0") throw new CliError(`--mgmt '${o.mgmt}' is not the name of a management qube${bad !== null ? `: ${bad}` : ""}`);
  const stopped = interruptFlag(io);
  const loaded = loadConfigOrReport(io, paths, false);
  if (!loaded) return 1;
  const desired = loaded.config;
  const dom0Features: string[] | undefined = o.connect === undefined ? undefined : await withClient(io, o, async (client) => readerFromClient(client).featureNames("dom0"));
  const inventory: Inventory | undefined = dom0Features === undefined ? undefined : readInventory(desired.owner, dom0Features);
  const policyInventory = dom0Features === undefined ? undefined : readPolicyInventory(desired.owner, dom0Features);
  if (stopped() !== undefined) return 1;
  const input = {
    desired,
    mgmt: o.mgmt,
    apply: o.apply === true,
    allowPolicyWrites: o.allowPolicyWrites === true,
    ...(inventory !== undefined ? { inventory } : {}),
    ...(policyInventory !== undefined ? { policyInventory } : {}),
  };
  const refused = policyWriteRefusals(input);
  if (refused.length > 0) {
    io.stderr.write(`${renderDiagnostics(refused, loaded.sources)}\n`);
    return 1;
  }
  const rules = policyRules(input);
  io.stdout.write(
    renderPolicy(rules, {
      owner: desired.owner,
      mgmt: o.mgmt,
      apply: o.apply === true,
      configs: paths,
      generator: `qubes-iac ${packageVersion()}`,
      allowPolicyWrites: o.allowPolicyWrites === true,
      policyFiles: policyFilesOf(desired).map(policyAddress),
      dispvmTemplates: createdDispvmTemplates(desired),
    }),
  );
  return 0;
}
