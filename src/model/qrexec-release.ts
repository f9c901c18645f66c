// What the qrexec policy language of each release accepts and how it reads it, as data: the
// parser (src/config/policy/) and the evaluator (src/model/qrexec-eval.ts) read this table and
// never test a release by name. Modelled on QubesOS/qubes-core-qrexec qrexec/policy/parser.py
// and qrexec/__init__.py on the branches release4.2, release4.3 and main (read, not copied).

import type { PolicyAction, PolicyParams } from "./qrexec-policy.js";
import type { ReleaseId } from "./release.js";

/** The four places a qube specification appears (parser.py: Source, Target, Redirect classes). */
export type TokenRole = "source" | "target" | "redirect";

/** `@` keywords (parser.py: the VMToken subclasses with EXACT) and prefixes (with PREFIX). */
export type TokenKind = "*" | "@anyvm" | "@adminvm" | "@default" | "@dispvm" | "@type:" | "@tag:" | "@dispvm:" | "@dispvm:@tag:";

/**
 * Where each keyword may stand: the classes each token class inherits from (`class AnyVM(Source,
 * Target)` …). The same on all three branches. A plain qube name (or `dom0`, or `uuid:…`) is valid
 * everywhere.
 */
export const TOKEN_ROLES: Readonly<Record<TokenKind, readonly TokenRole[]>> = {
  "*": ["source", "target"],
  "@anyvm": ["source", "target"],
  "@adminvm": ["source", "target", "redirect"],
  "@default": ["target"],
  "@dispvm": ["target", "redirect"],
  "@type:": ["source", "target"],
  "@tag:": ["source", "target"],
  "@dispvm:": ["source", "target", "redirect"],
  "@dispvm:@tag:": ["source", "target"],
};

/** Prefixed keywords, longest first (parser.py tries `@dispvm:` and falls through to `@dispvm:@tag:` when the rest starts with `@`). */
export const TOKEN_PREFIXES: readonly TokenKind[] = ["@dispvm:@tag:", "@dispvm:", "@type:", "@tag:"];
export const TOKEN_EXACTS: readonly TokenKind[] = ["*", "@anyvm", "@adminvm", "@default", "@dispvm"];

/**
 * The parameters each action takes (parser.py: keyword arguments of `Allow.__init__`,
 * `Ask.__init__`, `Deny.__init__`; a parameter outside them is a TypeError, reported as "invalid
 * parameters for action"). The same on all three branches.
 */
export const ACTION_PARAMS: Readonly<Record<PolicyAction, readonly (keyof PolicyParams)[]>> = {
  allow: ["redirect", "user", "notify", "autostart"],
  ask: ["redirect", "default_target", "user", "notify", "autostart"],
  deny: ["notify"],
};

/**
 * What the parser does with a parameter when the rule does not give it (parser.py: the defaults of
 * those `__init__`s): deny notifies, allow and ask do not; both start the target.
 */
export const ACTION_DEFAULTS: Readonly<Record<PolicyAction, { notify: boolean; autostart?: boolean }>> = {
  allow: { notify: false, autostart: true },
  ask: { notify: false, autostart: true },
  deny: { notify: true },
};

/** The `!` directives (parser.py `AbstractParser.load_policy_file`) and how many parameters each takes. */
export const DIRECTIVES: Readonly<Record<string, number>> = {
  "!include": 1,
  "!include-dir": 1,
  "!include-service": 3,
  "!compat-4.0": 0,
};

/** How the policy language of one release differs from the others. */
export type QrexecPolicyRelease = {
  /** For messages. */
  title: string;
  /**
   * `uuid:<uuid>` as a qube specification (and `@dispvm:uuid:…`): a qube by UUID (release4.3 and
   * main: `match_strings`), or, in R4.2, a plain qube name that no qube can have (`:` is not
   * allowed in names), so a rule that uses it never matches.
   */
  uuidTokens: boolean;
  /**
   * How `dom0` is read: R4.2 rewrites it to `@adminvm` as it parses (`VMToken.__new__`, "first,
   * adjust some aliases"); release4.3 and main keep the name and match it as dom0 (`is_dom0`,
   * with `@adminvm` and the all-zero UUID). Either way it stands for dom0 in every role.
   */
  dom0: "alias-of-adminvm" | "matched-as-dom0";
  /** Directories qrexec loads policy files from (release4.3 and main add `/run/qubes/policy.d`, merged by file name). */
  policyDirs: readonly string[];
};

export const QREXEC_POLICY_RELEASES: Readonly<Record<ReleaseId, QrexecPolicyRelease>> = {
  "r4.2": { title: "R4.2", uuidTokens: false, dom0: "alias-of-adminvm", policyDirs: ["/etc/qubes/policy.d"] },
  "r4.3": { title: "R4.3", uuidTokens: true, dom0: "matched-as-dom0", policyDirs: ["/run/qubes/policy.d", "/etc/qubes/policy.d"] },
  main: { title: "main", uuidTokens: true, dom0: "matched-as-dom0", policyDirs: ["/run/qubes/policy.d", "/etc/qubes/policy.d"] },
};

/** qrexec/__init__.py RPCNAME_ALLOWED_CHARSET: service names take these less `+`, arguments these. */
export const RPCNAME_CHAR_RE = /^[A-Za-z0-9+\-._]$/;

/** The directory of policy files and of include files (qrexec/__init__.py POLICYPATH, INCLUDEPATH). */
export const POLICY_DIR = "/etc/qubes/policy.d";
export const INCLUDE_DIR = "/etc/qubes/policy.d/include";

/**
 * Names of files in the policy directory: qrexec/policy/admin.py `_get_path` takes `^[\w-]+$`, but
 * parser.py `filter_filepaths` refuses the whole policy (every call denied) when a `.policy` file
 * has a character outside lowercase letters, digits and `_.-`: so a policy file name is both.
 */
export const POLICY_FILE_NAME_RE = /^[a-z0-9_-]+$/;
/** Names of include files (policy.include.*: admin.py `_get_path`, ASCII as a qrexec argument must be). */
export const INCLUDE_FILE_NAME_RE = /^[A-Za-z0-9_-]+$/;

/** The qube types `@type:` can name (qubesd's classes, as qrexec's system info reports them). */
export const QUBE_TYPES: readonly string[] = ["AdminVM", "AppVM", "DispVM", "StandaloneVM", "TemplateVM", "RemoteVM"];

/** Canonical UUID form, as qubesd reports it. */
export const UUID_TOKEN_RE = /^uuid:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
export const DOM0_UUID = "00000000-0000-0000-0000-000000000000";
