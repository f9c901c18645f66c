// `qubes-iac validate [PATH…]`: loads and checks the config, prints every diagnostic at once
// (compiler style, or --json), exit 0 when valid (warnings allowed), 1 on any error. It makes
// no Admin API call and opens no connection; a signal ends it, also while a config is parsed.

import { readdirSync, statSync } from "node:fs";
import { join, resolve } from "node:path";
import { loadConfig, nodeConfigIO, type ConfigIO, type LoadOptions } from "../../config/index.js";
import type { ReleaseId } from "../../model/release.js";
import { hasErrors, renderDiagnostic, type Diagnostic } from "../../model/diagnostics.js";
import { write, type CliIO } from "../io.js";

export const DIAGNOSTICS_FORMAT_VERSION = 1;

export function renderDiagnostics(diagnostics: readonly Diagnostic[], sources: ReadonlyMap<string, string>): string {
  return diagnostics.map((d) => renderDiagnostic(d, (f) => sources.get(f))).join("\n\n");
}

export function summarize(diagnostics: readonly Diagnostic[]): string {
  const errors = diagnostics.filter((d) => d.severity === "error").length;
  const warnings = diagnostics.length - errors;
  const plural = (n: number, w: string): string => `${n} ${w}${n === 1 ? "" : "s"}`;
  return `${plural(errors, "error")}, ${plural(warnings, "warning")}`;
}

/** File access relative to the command's working directory, keeping paths as the user wrote them. */
export const configIOAt = (cwd: string): ConfigIO => ({
  readFile: (p) => nodeConfigIO.readFile(resolve(cwd, p)),
  readDir: (p) => nodeConfigIO.readDir(resolve(cwd, p)),
  isDirectory: (p) => nodeConfigIO.isDirectory(resolve(cwd, p)),
  exists: (p) => nodeConfigIO.exists(resolve(cwd, p)),
  inspect: (p) => nodeConfigIO.inspect(resolve(cwd, p)),
});

/**
 * Configs from this size on load in a worker thread (when the process provides one): loading is
 * synchronous, and a signal must still end validate while a large config is parsed. Smaller ones
 * load in place, where the thread would cost more than the load (a tenth of a second).
 */
export const WORKER_LOAD_BYTES = 256 * 1024;

/** Whether the config at `paths` is large enough (or of unknown size: a pipe) to load off the main thread. */
function loadsLong(io: CliIO, paths: readonly string[]): boolean {
  let bytes = 0;
  for (const p of paths.length > 0 ? paths : ["qubes.yaml"]) {
    const path = resolve(io.cwd, p);
    try {
      const st = statSync(path);
      if (st.isDirectory()) for (const e of readdirSync(path)) bytes += statSync(join(path, e)).size;
      else if (st.isFile()) bytes += st.size;
      else return true;
    } catch {
      continue;
    }
  }
  return bytes >= WORKER_LOAD_BYTES;
}

export async function validateCommand(io: CliIO, paths: string[], o: { json?: boolean; release?: ReleaseId }): Promise<number> {
  const options: LoadOptions = o.release ? { policyReleases: [o.release] } : {};
  const result = io.loadInWorker !== undefined && loadsLong(io, paths) ? await io.loadInWorker(paths, options) : loadConfig(paths, configIOAt(io.cwd), options);
  const failed = hasErrors(result.diagnostics);
  if (o.json) {
    write(io.stdout, JSON.stringify({ format_version: DIAGNOSTICS_FORMAT_VERSION, valid: !failed, diagnostics: result.diagnostics }, null, 2));
    return failed ? 1 : 0;
  }
  if (result.diagnostics.length > 0) write(io.stderr, `${renderDiagnostics(result.diagnostics, result.sources)}\n`);
  const shown = paths.length > 0 ? paths.join(", ") : "qubes.yaml";
  write(io.stdout, failed ? `${shown}: invalid (${summarize(result.diagnostics)})` : `${shown}: valid${result.diagnostics.length ? ` (${summarize(result.diagnostics)})` : ""}`);
  return failed ? 1 : 0;
}
