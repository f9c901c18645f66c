// qrexec policy files as desired state: the data the config loader produces from `policies:` and
// `policy_includes:`, the planner diffs against the files read through qrexec's policy admin API
// (QubesOS/qubes-core-qrexec qrexec/policy/admin.py), and the loosening analysis evaluates. Plain
// data and one pure renderer; parsing and validation of policy text live in src/config/policy/,
// evaluation (first match across files in name order) in src/model/qrexec-eval.ts.

import type { Diagnostic, SourceLocation } from "./diagnostics.js";
import type { ReleaseId } from "./release.js";

export type PolicyAction = "allow" | "deny" | "ask";

/**
 * The parameters qrexec knows (qrexec/policy/parser.py, `Allow`/`Ask`/`Deny` action classes).
 * `redirect` is qrexec's `target=` parameter: called `redirect` here because `target` is the
 * rule's target column.
 */
export type PolicyParams = {
  redirect?: string;
  default_target?: string;
  user?: string;
  autostart?: boolean;
  notify?: boolean;
};

/** Order in which parameters are rendered (deterministic output whatever the config's order). */
export const POLICY_PARAM_ORDER: readonly (keyof PolicyParams)[] = ["redirect", "default_target", "user", "autostart", "notify"];

/** Spelling of each parameter in policy text. */
export const POLICY_PARAM_TEXT: Readonly<Record<keyof PolicyParams, string>> = {
  redirect: "target",
  default_target: "default_target",
  user: "user",
  autostart: "autostart",
  notify: "notify",
};

export type PolicyRule = {
  kind: "rule";
  /** A service name or `*`. */
  service: string;
  /** `*` (any argument, also when the config omits it) or `+ARG` (`+` alone: the empty argument). */
  argument: string;
  source: string;
  target: string;
  action: PolicyAction;
  params: PolicyParams;
  /** Where the rule was written: its config entry, or its line inside a `text:` block. */
  at?: SourceLocation;
  /** Where its qube specifications were written (for messages about the qubes they name). */
  fieldAt?: Partial<Record<"source" | "target" | "redirect" | "default_target", SourceLocation>>;
};

/** `!include PATH`, `!include-dir PATH`, `!include-service SERVICE ARGUMENT PATH`. */
export type PolicyInclude =
  | { kind: "include"; path: string; at?: SourceLocation }
  | { kind: "include-dir"; path: string; at?: SourceLocation }
  | { kind: "include-service"; service: string; argument: string; path: string; at?: SourceLocation };

export type PolicyStatement = PolicyRule | PolicyInclude;

/**
 * Where a file lives: `policy` = `/etc/qubes/policy.d/<name>.policy` (policy.List/Get/Replace/
 * Remove), `include` = `/etc/qubes/policy.d/include/<name>` (policy.include.*).
 */
export type PolicyScope = "policy" | "include";

/**
 * How a file's lines read: `policy` = `SERVICE ARGUMENT SOURCE TARGET ACTION [PARAMS]` (every
 * `.policy` file, and include files read by `!include`); `service` = `SOURCE TARGET ACTION[,PARAMS]`
 * (include files read by `!include-service SERVICE ARGUMENT PATH`, which supplies the first two
 * columns: qrexec/policy/parser.py `load_policy_file_service`). Rules of a `service` file carry
 * `service` and `argument` `*` as placeholders; they are not rendered.
 */
export type PolicySyntax = "policy" | "service";

export type DesiredPolicyFile = {
  /** File name without directory or `.policy` (policy files `^[a-z0-9_-]+$`, include files `^[A-Za-z0-9_-]+$`, checked by the loader). */
  name: string;
  scope: PolicyScope;
  /** Always `policy` for scope `policy`; include files may be either. */
  syntax: PolicySyntax;
  /** `rules`: rendered from `statements`; `text`: `text` is written as given (after the header). */
  form: "rules" | "text";
  /** The file's statements; for `text:` files, as parsed from the text. */
  statements: readonly PolicyStatement[];
  /** The verbatim text of a `text:` file (always ends with a newline). */
  text?: string;
  /** Take over an existing file qubes-iac did not create. */
  adopt: boolean;
  /** Remove the file (created or adopted). */
  absent: boolean;
  /** Let go of the file without changing it. */
  release: boolean;
  /** Location of the file's key. */
  at: SourceLocation;
  /**
   * Problems only some releases' qrexec has with this file (uuid: tokens in R4.2, an empty
   * `target=` in R4.3 and main), as errors of each such release. `validate` shows them as
   * warnings naming the releases; plan, which knows the release, refuses them
   * (src/config/policy/index.ts `policyProblemsFor`).
   */
  releaseProblems?: Partial<Record<ReleaseId, readonly Diagnostic[]>>;
};

/** Address of a policy file in plans: `policy.<name>` or `policy.include.<name>`. */
export const policyAddress = (f: { name: string; scope: PolicyScope }): string =>
  f.scope === "include" ? `policy.include.${f.name}` : `policy.${f.name}`;

/** Version of the header line and rendering below; bump when the rendered bytes change. */
export const POLICY_RENDER_FORMAT = 1;

/**
 * The header qubes-iac writes first in each file: only the owner and the format, never a path or
 * a time, so two checkouts render the same bytes.
 */
export const policyHeader = (owner: string): string =>
  `# managed by qubes-iac: owner ${owner}, format ${POLICY_RENDER_FORMAT}; edits here are overwritten by the next apply\n`;

/** One statement as a policy line (no newline); `syntax` `service` drops the service and argument columns. */
export function renderStatement(s: PolicyStatement, syntax: PolicySyntax = "policy"): string {
  switch (s.kind) {
    case "include":
      return `!include ${s.path}`;
    case "include-dir":
      return `!include-dir ${s.path}`;
    case "include-service":
      return `!include-service ${s.service} ${s.argument} ${s.path}`;
    case "rule": {
      const cols = syntax === "service" ? [s.source, s.target, s.action] : [s.service, s.argument, s.source, s.target, s.action];
      for (const key of POLICY_PARAM_ORDER) {
        const v = s.params[key];
        if (v === undefined) continue;
        cols.push(`${POLICY_PARAM_TEXT[key]}=${typeof v === "boolean" ? (v ? "yes" : "no") : v}`);
      }
      return cols.join(" ");
    }
    default: {
      const never: never = s;
      return never;
    }
  }
}

/** The exact bytes qubes-iac writes for a file: header, then the rules or the text. */
export function renderPolicyFile(file: DesiredPolicyFile, owner: string): string {
  const body = file.form === "text" ? (file.text ?? "") : file.statements.map((s) => renderStatement(s, file.syntax) + "\n").join("");
  return policyHeader(owner) + body;
}
