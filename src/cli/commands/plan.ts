// `qubes-iac plan [PATH…]`: loads the config, reads the actual state through a read-only view
// of the Admin API client, builds the plan and prints it — human (from the JSON plan) on stdout
// with diagnostics on stderr, or the JSON plan with --json — and with --out saves it for apply.
// Exit 0 (with --detailed-exitcode: no changes), 1 on any error, 2 changes (--detailed-exitcode),
// 3 a change loosens isolation (--deny-loosening; 1 wins over it, it wins over 2).

import { resolve } from "node:path";
import { loadConfig, type LoadResult } from "../../config/index.js";
import { readerFromClient } from "../../apply/admin-api.js";
import { describePolicyFailure, policyClientOf, policyReaderOf } from "../../apply/policy-files.js";
import { readPolicyContext } from "../../plan/policy-context.js";
import { readPolicies } from "../../plan/policy-reader.js";
import { desiredPolicies } from "../../plan/policy-desired.js";
import { policyDiagnosticsWithSystem } from "../../plan/policy-names.js";
import { guestReaderFromAgents } from "../../apply/guest-agent.js";
import { parseAddress, type Address } from "../../model/address.js";
import type { DesiredState } from "../../model/desired.js";
import { hasErrors, type Diagnostic } from "../../model/diagnostics.js";
import { renderDiagnostics, configIOAt } from "./validate.js";
import { toJsonPlan, type JsonPlan } from "../../plan/json.js";
import { readGuests } from "../../plan/guest-reader.js";
import { buildPlan, guestInScope } from "../../plan/plan.js";
import { readActualState } from "../../plan/reader.js";
import { renderHumanPlan } from "../../plan/render.js";
import type { AdminClient } from "../../providers/qubes/client.js";
import { parsePositiveInt, withClient, type ConnectionOptions } from "../connection.js";
import { CliError, interruptFlag, tell, write, writeFileWhole, type CliIO } from "../io.js";
import { packageVersion } from "../version.js";

export type PlanCommandOptions = ConnectionOptions & {
  json?: boolean;
  out?: string;
  target?: string[];
  exclude?: string[];
  detailedExitcode?: boolean;
  /** Exit 3 when any change loosens isolation (a CI gate). */
  denyLoosening?: boolean;
  /** commander's --no-color sets this to false. */
  color?: boolean;
  allowRestart?: boolean;
  takeOwnership?: string[];
};

const OWNER_RE = /^[A-Za-z0-9_-]{1,64}$/;

/** The owners of --take-ownership, checked (an owner name has the tag charset). */
export function parseOwners(values: readonly string[] | undefined): string[] {
  for (const v of values ?? []) if (!OWNER_RE.test(v)) throw new CliError(`--take-ownership: '${v}' is not an owner name (letters, digits, _ and -)`);
  return [...new Set(values ?? [])].sort();
}

function parseAddresses(values: readonly string[] | undefined, flag: string): Address[] {
  return (values ?? []).map((v) => {
    const r = parseAddress(v);
    if (!r.ok) throw new CliError(`${flag}: ${r.error}`);
    return r.address;
  });
}

/** Precedence: 1 (error) over 3 (loosens, with --deny-loosening) over 2 (changes, with --detailed-exitcode). */
export function exitCode(plan: JsonPlan, detailed: boolean, denyLoosening = false): number {
  if (plan.errored) return 1;
  if (denyLoosening && plan.resource_changes.some((c) => (c.loosens ?? []).length > 0)) return 3;
  if (!detailed) return 0;
  return plan.steps.length > 0 ? 2 : 0;
}

export type PlanScope = {
  allowRestart?: boolean;
  target?: string[];
  exclude?: string[];
  /** --take-ownership: owners whose objects the plan may take over. */
  takeOwnership?: string[];
  /** Qube names `qubes-iac release` lets go of. */
  release?: string[];
};

/**
 * Reads the actual state through `client`, and the guests through their agents, and builds the
 * JSON plan of `config` (config warnings first).
 */
export async function computePlan(client: AdminClient, config: DesiredState, configDiagnostics: readonly Diagnostic[], o: PlanScope & { parallelism: number }): Promise<JsonPlan> {
  const targets = parseAddresses(o.target, "--target");
  const excludes = parseAddresses(o.exclude, "--exclude");
  const release = o.release ?? [];
  const options = { allowRestart: o.allowRestart === true, targets, excludes, takeOwnership: parseOwners(o.takeOwnership), release, now: Date.now() };
  const read = await readActualState(readerFromClient(client), config, { parallelism: o.parallelism, visibility: client.transport.visibility, release });
  // The policy files the config names or the inventory lists (none: no call).
  const policies = await readPolicies(policyReaderOf(policyClientOf(client.transport)), config.owner, desiredPolicies(config), read.dom0FeatureNames, describePolicyFailure);
  const actual = policies === undefined ? read : { ...read, policies };
  const guests = await readGuests(guestReaderFromAgents(), config, actual, { parallelism: o.parallelism, inScope: guestInScope(options) });
  let plan = buildPlan(config, actual, options, guests);
  // A plan that changes a policy file is judged against the rest of dom0's policy
  // (loosening-policy.ts): read only then, and the pure plan made again with it.
  if (plan.policies.some((p) => (p.before?.content ?? null) !== (p.after?.content ?? null))) {
    const policyContext = await readPolicyContext(policyReaderOf(policyClientOf(client.transport)), policies);
    if (policyContext !== undefined) plan = buildPlan(config, { ...actual, policyContext }, options, guests);
  }
  plan.diagnostics.unshift(...policyDiagnosticsWithSystem(config, actual, configDiagnostics));
  return toJsonPlan(plan, { version: packageVersion() });
}

/** The config at `paths`, loaded; undefined, after printing why, when it did not load (JSON with --json). */
export function loadConfigOrReport(io: CliIO, paths: string[], json: boolean): (LoadResult & { config: DesiredState }) | undefined {
  const loaded = loadConfig(paths, configIOAt(io.cwd));
  if (loaded.config) return { ...loaded, config: loaded.config };
  printConfigFailure(io, loaded, json);
  return undefined;
}

/** Prints a config's load diagnostics as `plan` does (JSON with --json); for a config that did not load. */
export function printConfigFailure(io: CliIO, loaded: { diagnostics: Diagnostic[]; sources: ReadonlyMap<string, string> }, json: boolean): void {
  if (json) write(io.stdout, JSON.stringify({ format_version: 1, valid: false, diagnostics: loaded.diagnostics }, null, 2));
  else write(io.stderr, `${renderDiagnostics(loaded.diagnostics, loaded.sources)}\n`);
}

/** The human plan on stdout (diagnostics on stderr), coloured only on a terminal. */
export function printHumanPlan(io: CliIO, json: JsonPlan, sources: ReadonlyMap<string, string>, o: { color?: boolean }): void {
  if (json.diagnostics.length > 0) write(io.stderr, `${renderDiagnostics(json.diagnostics, sources)}\n`);
  const color = o.color !== false && io.stdout.isTTY === true && (io.env.NO_COLOR ?? "") === "";
  io.stdout.write(renderHumanPlan(json, { color }));
}

export async function planCommand(io: CliIO, paths: string[], o: PlanCommandOptions): Promise<number> {
  // Bad addresses are reported before anything is read or connected.
  parseAddresses(o.target, "--target");
  parseAddresses(o.exclude, "--exclude");
  parseOwners(o.takeOwnership);
  const parallelism = parsePositiveInt(o.parallelism, "--parallelism", 8);
  const stopped = interruptFlag(io);
  const loaded = loadConfigOrReport(io, paths, o.json === true);
  if (!loaded) return 1;
  const json = await withClient(io, o, (client) => computePlan(client, loaded.config, loaded.diagnostics, { ...o, parallelism }));
  // Serialised only when printed or saved: at 1 000 qubes the JSON plan is some 4 MB.
  let serialised: string | undefined;
  const text = (): string => (serialised ??= `${JSON.stringify(json, null, 2)}\n`);

  // Interrupted while reading: untilInterrupted has answered already; nothing more is printed or saved.
  if (stopped() !== undefined) return 1;
  if (o.json) io.stdout.write(text());
  else printHumanPlan(io, json, loaded.sources, o);
  if (o.out !== undefined) {
    if (hasErrors(json.diagnostics)) tell(io.stderr, `qubes-iac: the plan holds errors; not saved to ${o.out}`);
    else {
      writeFileWhole(resolve(io.cwd, o.out), text(), { mode: 0o600 });
      if (!o.json) write(io.stdout, `\nSaved the plan to ${o.out}. To make exactly these changes, run: qubes-iac apply ${o.out}`);
    }
  }
  return exitCode(json, o.detailedExitcode === true, o.denyLoosening === true);
}
