// `qubes-iac export [--owner NAME] [--all] [-o FILE]`: reads the current system through the
// planner's read-only reader and writes it as a config in the format users write — by default
// what the owner manages (from its inventory), with --all every qube but dom0 (to adopt), the
// custom labels, the pools and the global properties. Exit 1 when something the owner manages
// cannot be exported (nothing is written then).

import { existsSync } from "node:fs";
import { dirname, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { readerFromClient } from "../../apply/admin-api.js";
import { readForExport } from "../../export/read.js";
import { renderExport } from "../../export/render.js";
import { hasErrors } from "../../model/diagnostics.js";
import { RECORD_PREFIX } from "../../model/ownership.js";
import { parsePositiveInt, withClient, type ConnectionOptions } from "../connection.js";
import { CliError, interruptFlag, tell, write, writeFileWhole, type CliIO } from "../io.js";
import { packageVersion } from "../version.js";
import { renderDiagnostics } from "./validate.js";

export type ExportCommandOptions = ConnectionOptions & { owner?: string; all?: boolean; output?: string; hostValues?: boolean; notes?: boolean };

const OWNER_RE = /^[A-Za-z0-9_-]+$/;

/** The schema file shipped with qubes-iac (next to dist/ when bundled, at the repository root from source). */
function installedSchema(): string | undefined {
  for (const rel of ["../schemas/qubes-iac.schema.json", "../../../schemas/qubes-iac.schema.json"]) {
    const path = fileURLToPath(new URL(rel, import.meta.url));
    if (existsSync(path)) return path;
  }
  return undefined;
}

/** The owners whose records dom0 holds (from the names of its features). */
function ownersIn(dom0Features: readonly string[]): string[] {
  const owners = new Set<string>();
  for (const f of dom0Features) {
    if (!f.startsWith(RECORD_PREFIX)) continue;
    const owner = f.slice(RECORD_PREFIX.length).split(".")[0] ?? "";
    if (OWNER_RE.test(owner)) owners.add(owner);
  }
  return [...owners].sort();
}

export async function exportCommand(io: CliIO, o: ExportCommandOptions): Promise<number> {
  const parallelism = parsePositiveInt(o.parallelism, "--parallelism", 8);
  if (o.owner !== undefined && !OWNER_RE.test(o.owner)) throw new CliError(`--owner '${o.owner}' is not an owner name (letters, digits, _ and -)`);
  const target = o.output === undefined ? undefined : resolve(io.cwd, o.output);
  if (target !== undefined && existsSync(target)) throw new CliError(`${o.output} exists; export never overwrites a file: choose another name or remove it`);

  const stopped = interruptFlag(io);
  const result = await withClient(io, o, async (client) => {
    const reader = readerFromClient(client);
    let owner = o.owner;
    if (owner === undefined) {
      const owners = ownersIn(await reader.featureNames("dom0"));
      if (owners.length !== 1) {
        throw new CliError(
          owners.length === 0
            ? "no owner's records on this system: name the owner of the exported config with --owner NAME"
            : `records of several owners (${owners.join(", ")}): choose one with --owner NAME`,
        );
      }
      owner = owners[0] as string;
    }
    const actual = await readForExport(reader, { owner, all: o.all === true, notes: o.notes === true }, { parallelism });
    const schema = installedSchema();
    const schemaPath = schema === undefined ? "qubes-iac.schema.json" : relative(target === undefined ? io.cwd : dirname(target), schema);
    return renderExport(actual, { owner, all: o.all === true, schemaPath, generator: `qubes-iac ${packageVersion()}`, hostValues: o.hostValues === true });
  });

  if (stopped() !== undefined) return 1;
  if (result.diagnostics.length > 0) write(io.stderr, `${renderDiagnostics(result.diagnostics, new Map())}\n`);
  if (hasErrors(result.diagnostics)) {
    write(io.stderr, "qubes-iac: nothing was exported");
    return 1;
  }
  const { qubes, labels, pools, properties } = result.counts;
  const plural = (n: number, w: string): string => `${n} ${w}${n === 1 ? "" : "s"}`;
  const summary = `${plural(qubes, "qube")}, ${plural(labels, "label")}, ${plural(pools, "pool")}, ${plural(properties, "global property").replace(/propertys$/, "properties")}`;
  if (target === undefined) io.stdout.write(result.text);
  else writeFileWhole(target, result.text, { exclusive: true });
  tell(io.stderr, `qubes-iac: exported ${summary}${o.output === undefined ? "" : ` to ${o.output}`}`);
  return 0;
}
