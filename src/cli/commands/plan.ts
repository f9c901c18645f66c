// `qubes-iac plan [PATH…]`: loads the config, reads the actual state through a read-only view
// of the Admin API client, builds the plan and prints it — human (from the JSON plan) on stdout
// with diagnostics on stderr, or the JSON plan with --json — and with --out saves it for apply.
// Exit 0 (with --detailed-exitcode: no changes), 1 on any error, 2 changes (--detailed-exitcode).

import { writeFileSync } from "node:fs";
import { resolve } from "node:path";
import { loadConfig } from "../../config/index.js";
import { parseAddress, type Address } from "../../model/address.js";
import type { ActualProperty } from "../../model/actual.js";
import { hasErrors } from "../../model/diagnostics.js";
import { renderDiagnostics, configIOAt } from "./validate.js";
import { toJsonPlan, type JsonPlan } from "../../plan/json.js";
import { buildPlan } from "../../plan/plan.js";
import { readActualState, type QubesReader } from "../../plan/reader.js";
import { renderHumanPlan } from "../../plan/render.js";
import type { AdminClient } from "../../providers/qubes/client.js";
import { QubesApiError } from "../../providers/qubes/errors.js";
import { connectClient, parsePositiveInt, type ConnectionOptions } from "../connection.js";
import { CliError, write, type CliIO } from "../io.js";
import { packageVersion } from "../version.js";

export type PlanCommandOptions = ConnectionOptions & {
  json?: boolean;
  out?: string;
  target?: string[];
  exclude?: string[];
  detailedExitcode?: boolean;
  /** commander's --no-color sets this to false. */
  color?: boolean;
  allowRestart?: boolean;
};

/** Pool.Info keys that describe usage, not configuration. */
const POOL_STATUS_KEYS: ReadonlySet<string> = new Set(["driver", "name", "size", "usage", "included_in"]);

/** The read-only face of the Admin API client that planning is given. */
export function readerFromClient(client: AdminClient): QubesReader {
  const toActual = (m: Map<string, { isDefault: boolean; type: ActualProperty["type"]; raw: string }>): Map<string, ActualProperty> =>
    new Map([...m].map(([k, v]) => [k, { isDefault: v.isDefault, type: v.type, raw: v.raw }]));
  return {
    listQubes: async () => (await client.vm.list()).map((e) => ({ name: e.name, klass: e.klass, power: e.state })),
    properties: async (holder) => toActual(await client.property.getAll(holder === "global" ? "global" : { vm: holder.vm })),
    tags: (vm) => client.tag.list(vm),
    featureNames: (vm) => client.feature.list(vm),
    feature: (vm, name) => client.feature.getOptional(vm, name),
    firewall: (vm) => client.firewall.get(vm),
    labels: () => client.label.list(),
    labelColour: async (name) => {
      // qubesd answers nothing for a label created since it started (upstream quirk).
      try {
        const c = await client.label.get(name);
        return c === "" ? undefined : c;
      } catch (e) {
        if (e instanceof QubesApiError && e.code === "empty-reply") return undefined;
        throw e;
      }
    },
    pools: () => client.pool.list(),
    pool: async (name) => {
      const info = await client.pool.info(name);
      return { name, driver: info.get("driver") ?? "", params: new Map([...info].filter(([k]) => !POOL_STATUS_KEYS.has(k))) };
    },
    volume: async (vm, volume) => {
      const v = await client.volume.info(vm, volume);
      return { pool: v.pool, size: v.size, rw: v.rw };
    },
  };
}

function parseAddresses(values: readonly string[] | undefined, flag: string): Address[] {
  return (values ?? []).map((v) => {
    const r = parseAddress(v);
    if (!r.ok) throw new CliError(`${flag}: ${r.error}`);
    return r.address;
  });
}

function exitCode(plan: JsonPlan, detailed: boolean): number {
  if (plan.errored) return 1;
  if (!detailed) return 0;
  return plan.steps.length > 0 ? 2 : 0;
}

export async function planCommand(io: CliIO, paths: string[], o: PlanCommandOptions): Promise<number> {
  const targets = parseAddresses(o.target, "--target");
  const excludes = parseAddresses(o.exclude, "--exclude");
  const parallelism = parsePositiveInt(o.parallelism, "--parallelism", 8);
  const loaded = loadConfig(paths, configIOAt(io.cwd));
  if (!loaded.config) {
    if (o.json) write(io.stdout, JSON.stringify({ format_version: 1, valid: false, diagnostics: loaded.diagnostics }, null, 2));
    else write(io.stderr, `${renderDiagnostics(loaded.diagnostics, loaded.sources)}\n`);
    return 1;
  }
  const config = loaded.config;

  const client = await connectClient(io, o);
  let actual;
  try {
    actual = await readActualState(readerFromClient(client), config, { parallelism });
  } finally {
    await client.close();
  }
  const plan = buildPlan(config, actual, { allowRestart: o.allowRestart === true, targets, excludes });
  plan.diagnostics.unshift(...loaded.diagnostics);
  const json = toJsonPlan(plan, { version: packageVersion() });
  const text = `${JSON.stringify(json, null, 2)}\n`;

  if (o.json) io.stdout.write(text);
  else {
    if (json.diagnostics.length > 0) write(io.stderr, `${renderDiagnostics(json.diagnostics, loaded.sources)}\n`);
    const color = o.color !== false && io.stdout.isTTY === true && (io.env.NO_COLOR ?? "") === "";
    io.stdout.write(renderHumanPlan(json, { color }));
  }
  if (o.out !== undefined) {
    if (hasErrors(json.diagnostics)) write(io.stderr, `qubes-iac: the plan holds errors; not saved to ${o.out}`);
    else {
      writeFileSync(resolve(io.cwd, o.out), text, { mode: 0o600 });
      if (!o.json) write(io.stdout, `\nSaved the plan to ${o.out}. To make exactly these changes, run: qubes-iac apply ${o.out}`);
    }
  }
  return exitCode(json, o.detailedExitcode === true);
}
