// Loading a config: files (or directories of *.yaml/*.yml) → YAML with positions → JSON Schema →
// normalised values with Qubes' rules → merged → cross-entry rules → DesiredState, or every
// diagnostic found on the way. File access comes in through ConfigIO; nothing here touches dom0
// or a guest (guest files' `source:` files are looked at, not read).

import { hasErrors, type Diagnostic } from "../model/diagnostics.js";
import type { DesiredState } from "../model/desired.js";
import type { ReleaseId } from "../model/release.js";
import { diagnostic } from "./codes.js";
import { mergeParts } from "./_merge.js";
import { normalizeFile, type ConfigPart } from "./_normalize.js";
import { checkRules } from "./rules.js";
import { checkPolicyReferences } from "./policy/index.js";
import { checkSchema } from "./_schema-check.js";
import { readYaml } from "./_yaml.js";

export { nodeConfigIO } from "./node-io.js";
export { CONFIG_CODES, type ConfigCode } from "./codes.js";
export { buildSchema } from "./schema.js";
export { inlineContentAt } from "./content.js";

/** What is at a path, following symlinks: its kind and absolute real path, or why it cannot be used. */
export type PathInfo =
  | { kind: "file" | "directory" | "other"; realPath: string; readable: boolean }
  | { kind: "missing" }
  | { kind: "error"; reason: string };

/** File access for the loader. `readDir` returns entry names (not paths); paths are used as given. */
export type ConfigIO = {
  readFile(path: string): string;
  readDir(path: string): string[];
  isDirectory(path: string): boolean;
  exists(path: string): boolean;
  /** The size in bytes of a file, to refuse one too large before reading it; without it, the text read is measured. */
  size?(path: string): number;
  /**
   * For guest files: the real path of a config file and what a `source:` names (looked at, never
   * read). Loaders without it (configs from memory) refuse `source:` and keep config paths as given.
   */
  inspect?(path: string): PathInfo;
};

export type LoadResult = {
  /** Present only when no diagnostic is an error. */
  config?: DesiredState;
  /** Every diagnostic, sorted by file (in load order), line and column. */
  diagnostics: Diagnostic[];
  /** Each file read (path as given) and its text, for rendering source lines with a caret. */
  sources: Map<string, string>;
};

export const DEFAULT_CONFIG_PATH = "qubes.yaml";
/**
 * The largest config file read (docs/config.md): some 30 000 qubes of a typical shape. A larger one
 * is refused before it is read or parsed, since the YAML parser holds several times the text.
 */
export const MAX_CONFIG_FILE_BYTES = 16 * 1024 * 1024;
const CONFIG_FILE_RE = /\.ya?ml$/;

/** How a config is judged where that depends on the Qubes release. */
export type LoadOptions = {
  /**
   * The releases whose qrexec judges `policies:` (default all three: a problem of only some is
   * the warning QIAC-W401). `validate --release` passes one: its problems are errors.
   */
  policyReleases?: readonly ReleaseId[];
};

/** Loads and validates the config at `paths` (files or directories); none means qubes.yaml. */
export function loadConfig(paths: string[], io: ConfigIO, options: LoadOptions = {}): LoadResult {
  const diagnostics: Diagnostic[] = [];
  const sources = new Map<string, string>();
  const files = configFiles(paths.length > 0 ? paths : [DEFAULT_CONFIG_PATH], io, diagnostics, paths.length === 0);
  const parts: ConfigPart[] = [];
  let complete = diagnostics.length === 0;
  for (const file of files) {
    let text: string;
    try {
      const tooLarge = io.size && io.size(file) > MAX_CONFIG_FILE_BYTES;
      text = tooLarge ? "" : io.readFile(file);
      // A string of n UTF-16 units is at least n bytes of UTF-8.
      if (tooLarge || text.length > MAX_CONFIG_FILE_BYTES) {
        diagnostics.push(sizeDiagnostic(file));
        complete = false;
        continue;
      }
    } catch (e) {
      diagnostics.push(diagnostic("QIAC-E001", `cannot read ${file}: ${e instanceof Error ? e.message : String(e)}`, undefined));
      complete = false;
      continue;
    }
    sources.set(file, text);
    const read = readYaml(file, text);
    diagnostics.push(...read.diagnostics);
    if (!read.written) {
      complete = false;
      continue;
    }
    diagnostics.push(...checkSchema(read.written));
    const normalized = normalizeFile(read.written, io, options.policyReleases);
    diagnostics.push(...normalized.diagnostics);
    parts.push(normalized.part);
  }
  let config: DesiredState | undefined;
  if (parts.length > 0) {
    const merged = mergeParts(parts, complete);
    diagnostics.push(...merged.diagnostics, ...checkRules(merged.state), ...checkPolicyReferences(merged.state));
    config = merged.state;
  }
  const sorted = sortDiagnostics(diagnostics, files);
  return hasErrors(sorted) || config === undefined ? { diagnostics: sorted, sources } : { config, diagnostics: sorted, sources };
}

const sizeDiagnostic = (file: string): Diagnostic =>
  diagnostic(
    "QIAC-E007",
    `${file} is larger than ${MAX_CONFIG_FILE_BYTES / 1024 / 1024} MiB, the most qubes-iac reads from one config file`,
    { file, line: 1, column: 1 },
    "split the config into several files in one directory (qubes-iac validate DIR)",
  );

/** The files a list of paths stands for: files as given, directories' *.yaml and *.yml (sorted, not recursive). */
function configFiles(paths: string[], io: ConfigIO, diagnostics: Diagnostic[], implicit: boolean): string[] {
  const files = new Set<string>();
  const add = (f: string): void => {
    files.add(f);
  };
  for (const p of paths) {
    if (!io.exists(p)) {
      const hint = implicit ? "run in the directory that holds qubes.yaml, or name the config: qubes-iac validate <file-or-directory>" : undefined;
      diagnostics.push(diagnostic("QIAC-E001", `config path ${p} does not exist`, undefined, hint));
      continue;
    }
    if (!io.isDirectory(p)) {
      add(p);
      continue;
    }
    const entries = io
      .readDir(p)
      .filter((name) => CONFIG_FILE_RE.test(name))
      .sort()
      .map((name) => (p.endsWith("/") ? `${p}${name}` : `${p}/${name}`))
      .filter((f) => !io.isDirectory(f));
    if (entries.length === 0) diagnostics.push(diagnostic("QIAC-E002", `directory ${p} holds no *.yaml or *.yml file`, undefined));
    entries.forEach(add);
  }
  return [...files];
}

function sortDiagnostics(ds: Diagnostic[], files: string[]): Diagnostic[] {
  const fileRank = new Map(files.map((f, i) => [f, i + 1]));
  const rank = (d: Diagnostic): [number, number, number] =>
    d.location ? [fileRank.get(d.location.file) ?? 0, d.location.line, d.location.column] : [0, 0, 0];
  return ds
    .map((d, i) => ({ d, i, r: rank(d) }))
    .sort((a, b) => a.r[0] - b.r[0] || a.r[1] - b.r[1] || a.r[2] - b.r[2] || a.i - b.i)
    .map((x) => x.d);
}
