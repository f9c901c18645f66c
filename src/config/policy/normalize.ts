// `policies:` and `policy_includes:` of one config file → DesiredPolicyFile values, every rule and
// every line of a `text:` block checked as qrexec's parser of each release (R4.2, R4.3, main) would
// check it. A problem all three share is reported as is; one only some have is a warning naming
// them (QIAC-W401) and is kept per release on the file for plan (`releaseProblems`). Shapes the
// JSON Schema already refuses are skipped here without a second diagnostic.

import type { Diagnostic, SourceLocation } from "../../model/diagnostics.js";
import { policyAddress, type DesiredPolicyFile, type PolicyScope, type PolicyStatement, type PolicySyntax } from "../../model/qrexec-policy.js";
import { INCLUDE_FILE_NAME_RE, POLICY_FILE_NAME_RE, QREXEC_POLICY_RELEASES } from "../../model/qrexec-release.js";
import { RELEASE_IDS, type ReleaseId } from "../../model/release.js";
import { diagnostic, type ConfigCode } from "../codes.js";
import { childPointer, locateIn, pointerOf } from "../_paths.js";
import type { Span, WrittenFile } from "../_yaml.js";
import { argumentProblem, checkRule, serviceProblem, type ParamInput } from "./check.js";
import { INCLUDE_PATH_HINT, parsePolicyText, resolveIncludePath, type PolicyTextOrigin } from "./parse.js";

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);

const RULE_KEYS = ["service", "argument", "source", "target", "action"] as const;
const PARAM_KEYS = ["redirect", "default_target", "user", "autostart", "notify"] as const;
const INCLUDE_KEYS = ["include", "include_dir", "include_service"] as const;

/** Judges per release, then folds: the same problem everywhere stays; one of some releases only becomes W401. */
type Judged = { statements: PolicyStatement[]; diagnostics: Diagnostic[] };

/** What makes two releases' diagnostics the same problem. */
const diagKey = (d: Diagnostic): string => `${d.code}\0${d.message}\0${d.location?.line ?? 0}\0${d.location?.column ?? 0}`;

/** Linear in the diagnostics: a text block of thousands of bad lines folds in one pass per release. */
function fold(per: ReadonlyMap<ReleaseId, Judged>): { statements: PolicyStatement[]; diagnostics: Diagnostic[]; releaseProblems?: Partial<Record<ReleaseId, Diagnostic[]>> } {
  const diagnostics: Diagnostic[] = [];
  const releaseProblems: Partial<Record<ReleaseId, Diagnostic[]>> = {};
  // Which releases report each problem, in the order first seen.
  const seen = new Map<string, { d: Diagnostic; releases: ReleaseId[] }>();
  for (const [rel, j] of per) {
    for (const d of j.diagnostics) {
      const k = diagKey(d);
      const e = seen.get(k);
      if (e === undefined) seen.set(k, { d, releases: [rel] });
      else if (!e.releases.includes(rel)) e.releases.push(rel);
    }
  }
  for (const { d, releases } of seen.values()) {
    if (releases.length === per.size) {
      diagnostics.push(d);
      continue;
    }
    if (d.severity === "error") for (const rel of releases) (releaseProblems[rel] ??= []).push(d);
    const where = RELEASE_IDS.filter((r) => releases.includes(r)).map((r) => QREXEC_POLICY_RELEASES[r].title);
    const w: Diagnostic = { severity: "warning", code: "QIAC-W401", message: `${where.join(", ")} only (${d.code}): ${d.message}` };
    if (d.location) w.location = d.location;
    w.hint = d.hint ?? "plan refuses this against a system of that release";
    diagnostics.push(w);
  }
  // The statements of a release that reads the file without error: the newest first.
  const order = (["main", "r4.3", "r4.2"] as const).filter((r) => per.has(r));
  const clean = order.find((r) => !per.get(r)!.diagnostics.some((d) => d.severity === "error")) ?? order[0];
  const out: { statements: PolicyStatement[]; diagnostics: Diagnostic[]; releaseProblems?: Partial<Record<ReleaseId, Diagnostic[]>> } = {
    statements: clean === undefined ? [] : (per.get(clean)?.statements ?? []),
    diagnostics,
  };
  if (Object.keys(releaseProblems).length > 0) out.releaseProblems = releaseProblems;
  return out;
}

/** Where the lines of a YAML string were written: exact for a literal block scalar (`|`), else the value's start. */
export function textOrigin(file: string, span: Span | undefined, fallback: SourceLocation, syntax: PolicySyntax): PolicyTextOrigin {
  const at = span?.value ?? fallback;
  const raw = span?.raw;
  if (raw !== undefined && raw.startsWith("|")) {
    const rawLines = raw.split("\n");
    // An explicit indentation indicator (`|2`) counts from the indentation of the key's mapping;
    // otherwise YAML takes the first line with content.
    const explicit = /^\|[-+]?([1-9])|^\|([1-9])[-+]?/.exec(rawLines[0] ?? "");
    const digit = explicit ? Number(explicit[1] ?? explicit[2]) : undefined;
    const content = rawLines.slice(1).find((l) => l.trim() !== "");
    const indent =
      digit !== undefined && span?.key !== undefined ? span.key.column - 1 + digit : content === undefined ? 0 : content.length - content.trimStart().length;
    return { file, line: at.line + 1, column: indent + 1, indent, exact: true, syntax };
  }
  return { file, line: at.line, column: at.column, exact: false, syntax };
}

/** The policy files one config file declares, with every problem found. */
/** `releases`: whose qrexec judges (default all three); a problem of only some of them is QIAC-W401. */
export function normalizePolicies(w: WrittenFile, releases: readonly ReleaseId[] = RELEASE_IDS): { policies: Map<string, DesiredPolicyFile>; diagnostics: Diagnostic[] } {
  const diagnostics: Diagnostic[] = [];
  const policies = new Map<string, DesiredPolicyFile>();
  const loc = (ptr: string, key = false): SourceLocation => locateIn(w.spans, w.start, ptr, key);
  const report = (code: ConfigCode, message: string, ptr: string, hint?: string, key = false): void => {
    diagnostics.push(diagnostic(code, message, loc(ptr, key), hint));
  };
  const written = isRecord(w.value) ? w.value : {};

  for (const [section, scope] of [
    ["policies", "policy"],
    ["policy_includes", "include"],
  ] as const) {
    const entries = isRecord(written[section]) ? Object.entries(written[section] as Record<string, unknown>) : [];
    for (const [name, raw] of entries) {
      const ptr = pointerOf(section, name);
      const nameOk = scope === "policy" ? POLICY_FILE_NAME_RE.test(name) : INCLUDE_FILE_NAME_RE.test(name);
      if (!nameOk) {
        report(
          "QIAC-E400",
          `${scope === "policy" ? "policy file" : "include file"} name '${name}' is not one qrexec takes`,
          ptr,
          scope === "policy"
            ? "policy file names are lowercase letters, digits, _ and - (policy.Replace takes ^[\\w-]+$, and qrexec refuses the whole policy for a .policy file with other characters)"
            : "include file names are letters, digits, _ and - (policy.include.Replace: ^[\\w-]+$)",
          true,
        );
      }
      const file = normalizeEntry(name, scope, raw, ptr);
      if (file && nameOk) policies.set(policyAddress(file), file);
    }
  }
  return { policies, diagnostics };

  function normalizeEntry(name: string, scope: PolicyScope, raw: unknown, ptr: string): DesiredPolicyFile | undefined {
    let list: unknown[] | undefined;
    let listPtr = ptr;
    let text: string | undefined;
    let flags: Record<string, unknown> = {};
    let syntaxKey: PolicySyntax | undefined;
    if (Array.isArray(raw)) list = raw;
    else if (isRecord(raw)) {
      flags = raw;
      if (Array.isArray(raw.rules)) {
        list = raw.rules;
        listPtr = childPointer(ptr, "rules");
      }
      if (typeof raw.text === "string") text = raw.text;
      if (raw.syntax === "policy" || raw.syntax === "service") syntaxKey = raw.syntax;
      if ("rules" in raw && "text" in raw) {
        report("QIAC-E415", `${scope === "policy" ? "policy file" : "include file"} '${name}' has both rules and text`, childPointer(ptr, "text"), "give the rules as a list or as text, not both", true);
        return undefined;
      }
      const content = "rules" in raw || "text" in raw;
      for (const flag of ["absent", "release"] as const) {
        if (raw[flag] === true && content) {
          report("QIAC-E415", `'${name}' has ${flag}: true and content`, childPointer(ptr, flag), flag === "absent" ? "a file to remove has no rules: drop rules/text" : "a file to let go of keeps what it holds: drop rules/text", true);
          return undefined;
        }
      }
      if (raw.absent === true && raw.release === true) {
        report("QIAC-E415", `'${name}' has both absent: true and release: true`, childPointer(ptr, "release"), "absent removes the file, release lets go of it: choose one", true);
        return undefined;
      }
      if (raw.absent !== true && raw.release !== true && !content) {
        report("QIAC-E415", `'${name}' has neither rules nor text`, ptr, "give rules: [...] or text: |, or absent: true / release: true", true);
        return undefined;
      }
      if ((raw.absent === true || raw.release === true) && raw.adopt === true) {
        report("QIAC-E415", `'${name}' has adopt: true with ${raw.absent === true ? "absent" : "release"}: true`, childPointer(ptr, "adopt"), "adopt takes over a file to manage its content", true);
        return undefined;
      }
    } else return undefined;

    let syntax: PolicySyntax = syntaxKey ?? "policy";
    if (list && scope === "include" && syntaxKey === undefined) {
      // A list without service columns is read by !include-service (SOURCE TARGET ACTION).
      const rules = list.filter((e) => isRecord(e) && !INCLUDE_KEYS.some((k) => k in e));
      const withService = rules.filter((e) => isRecord(e) && "service" in e).length;
      if (rules.length > 0 && withService === 0) syntax = "service";
      if (withService > 0 && withService < rules.length) {
        report("QIAC-E417", `include file '${name}' mixes rules with and without service: one file is read one way`, listPtr, "give every rule a service (read by !include) or none (read by !include-service)");
        return undefined;
      }
    }

    const per = new Map<ReleaseId, Judged>();
    for (const release of releases.length > 0 ? releases : RELEASE_IDS) {
      if (text !== undefined) {
        const tptr = childPointer(ptr, "text");
        const origin = textOrigin(w.file, w.spans.get(tptr), loc(tptr), syntax);
        per.set(release, parsePolicyText(text, release, origin));
      } else if (list) per.set(release, judgeList(list, listPtr, release, syntax, scope));
      else per.set(release, { statements: [], diagnostics: [] });
    }
    const folded = fold(per);
    diagnostics.push(...folded.diagnostics);
    if (folded.diagnostics.some((d) => d.severity === "error")) return undefined;
    const file: DesiredPolicyFile = {
      name,
      scope,
      syntax,
      form: text !== undefined ? "text" : "rules",
      statements: folded.statements,
      adopt: flags.adopt === true,
      absent: flags.absent === true,
      release: flags.release === true,
      at: loc(ptr, true),
    };
    if (text !== undefined) file.text = text.endsWith("\n") || text === "" ? text : `${text}\n`;
    if (folded.releaseProblems) file.releaseProblems = folded.releaseProblems;
    return file;
  }

  function judgeList(list: readonly unknown[], listPtr: string, release: ReleaseId, syntax: PolicySyntax, scope: PolicyScope): Judged {
    const statements: PolicyStatement[] = [];
    const ds: Diagnostic[] = [];
    list.forEach((entry, i) => {
      const eptr = childPointer(listPtr, i);
      if (!isRecord(entry)) return;
      const at = loc(eptr);
      const field = (k: string): SourceLocation => loc(childPointer(eptr, k));
      const includeKeys = INCLUDE_KEYS.filter((k) => k in entry);
      if (includeKeys.length > 0) {
        const extra = Object.keys(entry).filter((k) => !(INCLUDE_KEYS as readonly string[]).includes(k) && !(includeKeys[0] === "include_service" && (k === "service" || k === "argument")));
        if (includeKeys.length > 1 || extra.length > 0) {
          ds.push(diagnostic("QIAC-E416", `entry ${i + 1} mixes ${[...includeKeys, ...extra].join(", ")}: an entry is one rule or one include`, field(includeKeys.length > 1 ? includeKeys[1]! : extra[0]!), "write {include: include/NAME}, {include_dir: PATH} or {include_service: include/NAME, service: S, argument: A}"));
          return;
        }
        const key = includeKeys[0]!;
        const path = entry[key];
        if (typeof path !== "string") return;
        if (syntax === "service" && key !== "include") {
          ds.push(diagnostic("QIAC-E411", `a file read by !include-service can only hold !include, not ${key}`, field(key)));
          return;
        }
        const r = resolveIncludePath(path);
        const want = key === "include_dir" ? "dir" : "file";
        const bad = "error" in r ? r.error : want === "dir" && r.scope !== "dir" ? `include_dir names a directory: ${path} is a file` : want === "file" && r.scope === "dir" ? `${path} is a directory: use include_dir` : null;
        if (bad) {
          ds.push(diagnostic("QIAC-E412", bad, field(key), INCLUDE_PATH_HINT));
          return;
        }
        if (key === "include_service") {
          const service = typeof entry.service === "string" ? entry.service : undefined;
          const argument = typeof entry.argument === "string" ? entry.argument : "*";
          if (service === undefined) {
            ds.push(diagnostic("QIAC-E416", "include_service needs the service its file's rules are for", at, "add service: NAME (and argument: +ARG, default *)"));
            return;
          }
          const sp = serviceProblem(service);
          if (sp) return void ds.push(diagnostic("QIAC-E402", sp, field("service")));
          const ap = argumentProblem(service, argument);
          if (ap) return void ds.push(diagnostic("QIAC-E403", ap, field("argument")));
          statements.push({ kind: "include-service", service, argument, path, at });
        } else statements.push({ kind: key === "include" ? "include" : "include-dir", path, at });
        return;
      }
      // Unknown keys, a wrong action or wrong types are the schema's to report.
      const allowed = new Set<string>([...RULE_KEYS, ...PARAM_KEYS]);
      if (Object.keys(entry).some((k) => !allowed.has(k))) return;
      if (typeof entry.action !== "string" || !["allow", "deny", "ask"].includes(entry.action)) return;
      for (const k of PARAM_KEYS) if (k in entry && typeof entry[k] !== (k === "notify" || k === "autostart" ? "boolean" : "string")) return;
      for (const k of RULE_KEYS) if (k in entry && typeof entry[k] !== "string") return;
      const missing = (syntax === "policy" ? RULE_KEYS : RULE_KEYS.filter((k) => k !== "service" && k !== "argument")).filter((k) => k !== "argument" && !(k in entry));
      if (missing.length > 0) {
        ds.push(diagnostic("QIAC-E416", `rule ${i + 1} lacks ${missing.join(", ")}`, at, syntax === "policy" ? "a rule is {service, argument?, source, target, action, ...params}" : "a rule of a file read by !include-service is {source, target, action, ...params}"));
        return;
      }
      if (syntax === "service" && ("service" in entry || "argument" in entry)) {
        ds.push(diagnostic("QIAC-E417", `a rule of a file read by !include-service has no ${"service" in entry ? "service" : "argument"}: the !include-service line gives it`, field("service" in entry ? "service" : "argument")));
        return;
      }
      if (scope === "policy" && syntax !== "policy") return;
      const str = (k: string): string | undefined => (typeof entry[k] === "string" ? (entry[k] as string) : undefined);
      const vals = { service: str("service") ?? "*", argument: str("argument") ?? "*", source: str("source"), target: str("target"), action: str("action") };
      if (vals.source === undefined || vals.target === undefined || vals.action === undefined) return;
      const params: ParamInput[] = [];
      for (const k of PARAM_KEYS) {
        if (!(k in entry)) continue;
        const v = entry[k];
        if (typeof v !== "string" && typeof v !== "boolean") continue;
        params.push({ key: k, value: v, at: field(k), keyAt: loc(childPointer(eptr, k), true) });
      }
      const r = checkRule(
        {
          service: { value: vals.service, at: field("service") },
          argument: { value: vals.argument, at: "argument" in entry ? field("argument") : at },
          source: { value: vals.source, at: field("source") },
          target: { value: vals.target, at: field("target") },
          action: { value: vals.action, at: field("action") },
          params,
          keys: "config",
          syntax,
          at,
        },
        release,
      );
      ds.push(...r.diagnostics);
      if (r.rule) statements.push(r.rule);
    });
    return { statements, diagnostics: ds };
  }
}
