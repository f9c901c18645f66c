// Policy text → statements and located diagnostics, as the qrexec parser of one release reads a
// file (QubesOS/qubes-core-qrexec qrexec/policy/parser.py `AbstractParser.load_policy_file` for
// policy files, `load_policy_file_service` for include files read by `!include-service`). Unlike
// qrexec, which stops at the first error, every line is checked and every problem reported.
// Pure: text in, data out; the line of each statement is mapped back to where the text was written.

import type { Diagnostic, SourceLocation } from "../../model/diagnostics.js";
import type { PolicyInclude, PolicyStatement, PolicySyntax } from "../../model/qrexec-policy.js";
import { DIRECTIVES, INCLUDE_DIR, INCLUDE_FILE_NAME_RE, POLICY_DIR } from "../../model/qrexec-release.js";
import type { ReleaseId } from "../../model/release.js";
import { diagnostic } from "../codes.js";
import { NO_EQUALS, argumentProblem, checkRule, serviceProblem, type ParamInput } from "./check.js";

/**
 * Where a policy text was written. `line`/`column`: where the text's first line and first column
 * are (default 1:1, a file of its own). `indent`: columns each following line is shifted by (a YAML
 * block scalar's indentation). `exact: false`: the lines cannot be mapped (a quoted YAML string):
 * everything is reported at `line:column`, and the message names the line of the text.
 */
export type PolicyTextOrigin = {
  file: string;
  line?: number;
  column?: number;
  indent?: number;
  exact?: boolean;
  /** `service`: an include file read by `!include-service` (`SOURCE TARGET ACTION[,PARAMS]`). Default `policy`. */
  syntax?: PolicySyntax;
};

export type ParsedPolicy = { statements: PolicyStatement[]; diagnostics: Diagnostic[] };

type Word = { text: string; col: number };

/** Python's str.split(): runs of whitespace separate words. Columns are 1-based. */
function words(line: string): Word[] {
  const out: Word[] = [];
  for (const m of line.matchAll(/\S+/g)) out.push({ text: m[0], col: (m.index ?? 0) + 1 });
  return out;
}

export function parsePolicyText(text: string, release: ReleaseId, origin: PolicyTextOrigin): ParsedPolicy {
  const syntax = origin.syntax ?? "policy";
  const exact = origin.exact ?? true;
  const baseLine = origin.line ?? 1;
  const baseCol = origin.column ?? 1;
  const indent = origin.indent ?? 0;
  const statements: PolicyStatement[] = [];
  const diagnostics: Diagnostic[] = [];
  const lines = text.split("\n");
  if (lines[lines.length - 1] === "") lines.pop();

  lines.forEach((raw, i) => {
    const lineNo = i + 1;
    const line = raw.endsWith("\r") ? raw.slice(0, -1) : raw;
    const where = (col: number, len: number): SourceLocation => {
      if (!exact) return { file: origin.file, line: baseLine, column: baseCol };
      const l = baseLine + i;
      const c = (i === 0 ? baseCol : indent + 1) + col - 1;
      return { file: origin.file, line: l, column: c, endLine: l, endColumn: c + len };
    };
    const say = (m: string): string => (exact ? m : `line ${lineNo} of the text: ${m}`);
    const ws = words(line);
    if (ws.length === 0 || ws[0]!.text.startsWith("#")) return;
    const at = (w: Word): SourceLocation => where(w.col, w.text.length);
    const lineAt = where(ws[0]!.col, line.trimEnd().length - ws[0]!.col + 1);
    const local = (d: Diagnostic): Diagnostic => ({ ...d, message: say(d.message) });

    if (syntax === "service") {
      // load_policy_file_service's compatibility substitutions, then `SOURCE TARGET ACTION[,PARAMS]`.
      const subst = line.replace(/\$include:/g, "!include ").replace(/\$/g, "@").replace(/,/g, " ");
      const sws = words(subst);
      if (sws[0]?.text.startsWith("!")) {
        if (sws[0]!.text === "!include" && sws.length === 2) {
          const inc = includeOf("include", [sws[1]!], at, diagnostics, say);
          if (inc) statements.push(inc);
        } else if (sws[0]!.text === "!include") {
          diagnostics.push(diagnostic("QIAC-E411", say("invalid number of params"), lineAt, "!include PATH"));
        } else diagnostics.push(diagnostic("QIAC-E411", say(`invalid directive ${sws[0]!.text} in a file read by !include-service`), at(sws[0]!), "only !include PATH may stand here"));
        return;
      }
      if (sws.length < 3) {
        diagnostics.push(diagnostic("QIAC-E401", say("wrong number of fields"), lineAt, "a line of an !include-service file is SOURCE TARGET ACTION [PARAM=VALUE…]"));
        return;
      }
      const [src, tgt, act, ...ps] = sws as [Word, Word, Word, ...Word[]];
      const star = { value: "*", at: lineAt };
      const r = checkRule(
        { service: star, argument: star, source: { value: src.text, at: at(src) }, target: { value: tgt.text, at: at(tgt) }, action: { value: act.text, at: at(act) }, params: paramsOf(ps, at), keys: "text", syntax, at: lineAt },
        release,
      );
      diagnostics.push(...r.diagnostics.map(local));
      if (r.rule) statements.push(r.rule);
      return;
    }

    const first = ws[0]!;
    if (first.text.startsWith("!")) {
      const arity = DIRECTIVES[first.text];
      const params = ws.slice(1);
      if (arity === undefined) {
        diagnostics.push(diagnostic("QIAC-E411", say(`invalid directive ${first.text}`), at(first), "directives are !include PATH, !include-dir PATH and !include-service SERVICE ARGUMENT PATH"));
        return;
      }
      if (params.length !== arity) {
        diagnostics.push(diagnostic("QIAC-E411", say(`invalid number of params for ${first.text}`), lineAt, `${first.text} takes ${arity} parameter${arity === 1 ? "" : "s"}`));
        return;
      }
      if (first.text === "!compat-4.0") {
        diagnostics.push(diagnostic("QIAC-W403", say("!compat-4.0 is transitional and will be deprecated; qubes-iac does not evaluate the R4.0 files it reads"), at(first), "move the rules of /etc/qubes-rpc/policy into policy.d files"));
        return;
      }
      const inc = includeOf(first.text === "!include" ? "include" : first.text === "!include-dir" ? "include-dir" : "include-service", params, at, diagnostics, say);
      if (inc) statements.push({ ...inc, at: lineAt });
      return;
    }
    if (ws.length < 5) {
      diagnostics.push(diagnostic("QIAC-E401", say("wrong number of fields"), lineAt, "a rule is SERVICE ARGUMENT SOURCE TARGET ACTION [PARAM=VALUE…]"));
      return;
    }
    const [svc, arg, src, tgt, act, ...ps] = ws as [Word, Word, Word, Word, Word, ...Word[]];
    const r = checkRule(
      {
        service: { value: svc.text, at: at(svc) },
        argument: { value: arg.text, at: at(arg) },
        source: { value: src.text, at: at(src) },
        target: { value: tgt.text, at: at(tgt) },
        action: { value: act.text, at: at(act) },
        params: paramsOf(ps, at),
        keys: "text",
        syntax,
        at: lineAt,
      },
      release,
    );
    diagnostics.push(...r.diagnostics.map(local));
    if (r.rule) statements.push(r.rule);
  });
  return { statements, diagnostics };
}

/** `key=value` words; a word without `=` is reported by checkRule's caller as a syntax error. */
function paramsOf(ws: readonly Word[], at: (w: Word) => SourceLocation): ParamInput[] {
  return ws.map((w) => {
    const eq = w.text.indexOf("=");
    if (eq < 0) return { key: w.text, value: NO_EQUALS, at: at(w) };
    const valueAt = at({ text: w.text.slice(eq + 1), col: w.col + eq + 1 });
    return { key: w.text.slice(0, eq), value: w.text.slice(eq + 1), at: valueAt, keyAt: at(w) };
  });
}


function includeOf(
  kind: PolicyInclude["kind"],
  params: readonly Word[],
  at: (w: Word) => SourceLocation,
  diagnostics: Diagnostic[],
  say: (m: string) => string,
): PolicyInclude | undefined {
  if (kind === "include-service") {
    const [svc, arg, path] = params as [Word, Word, Word];
    let ok = true;
    const sp = serviceProblem(svc.text);
    if (sp) {
      diagnostics.push(diagnostic("QIAC-E402", say(sp), at(svc)));
      ok = false;
    } else {
      const ap = argumentProblem(svc.text, arg.text);
      if (ap) {
        diagnostics.push(diagnostic("QIAC-E403", say(ap), at(arg)));
        ok = false;
      }
    }
    const pp = includePathProblem(path.text, "file");
    if (pp) {
      diagnostics.push(diagnostic("QIAC-E412", say(pp), at(path), INCLUDE_PATH_HINT));
      ok = false;
    }
    return ok ? { kind, service: svc.text, argument: arg.text, path: path.text, at: at(svc) } : undefined;
  }
  const path = params[0]!;
  const pp = includePathProblem(path.text, kind === "include-dir" ? "dir" : "file");
  if (pp) {
    diagnostics.push(diagnostic("QIAC-E412", say(pp), at(path), INCLUDE_PATH_HINT));
    return undefined;
  }
  return { kind, path: path.text, at: at(path) };
}

export const INCLUDE_PATH_HINT = "include files live in /etc/qubes/policy.d/include/ (policy.include.*): write include/NAME";

/** Where an include path leads: relative paths are read from /etc/qubes/policy.d (parser.py `resolve_path`). */
export type ResolvedIncludePath = { scope: "include"; name: string } | { scope: "policy"; name: string } | { scope: "dir"; path: string };

/** Normalises an `!include*` path to the file (or directory) it names, or says why qubes-iac cannot follow it. */
export function resolveIncludePath(path: string): ResolvedIncludePath | { error: string } {
  const abs = path.startsWith("/") ? path : `${POLICY_DIR}/${path}`;
  const parts: string[] = [];
  for (const seg of abs.split("/")) {
    if (seg === "" || seg === ".") continue;
    if (seg === "..") parts.pop();
    else parts.push(seg);
  }
  const norm = `/${parts.join("/")}`;
  if (norm === POLICY_DIR || norm === INCLUDE_DIR) return { scope: "dir", path: norm };
  const slash = norm.lastIndexOf("/");
  const dir = norm.slice(0, slash);
  const name = norm.slice(slash + 1);
  if (dir === INCLUDE_DIR) {
    if (!INCLUDE_FILE_NAME_RE.test(name)) return { error: `include file name '${name}' is not one the policy admin API can hold (letters, digits, _ and -)` };
    return { scope: "include", name };
  }
  if (dir === POLICY_DIR) return { scope: "policy", name };
  return { error: `invalid path ${path}, only paths inside the directories ${POLICY_DIR} and ${INCLUDE_DIR} are considered` };
}

function includePathProblem(path: string, want: "file" | "dir"): string | null {
  const r = resolveIncludePath(path);
  if ("error" in r) return r.error;
  if (want === "dir" && r.scope !== "dir") return `!include-dir names a directory: ${path} is a file`;
  if (want === "file" && r.scope === "dir") return `${path} is a directory: use !include-dir`;
  return null;
}
