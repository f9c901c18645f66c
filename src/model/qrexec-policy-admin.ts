// The rules of qrexec's policy admin API that both sides of it share (the simulator that serves
// it, the client and the planner that use it, the executor that checks a saved plan): file
// names, tokens, the service names per scope, and how each release reports an error. Modelled on
// QubesOS/qubes-core-qrexec qrexec/policy/admin.py and qrexec/tools/qubes_policy_admin.py
// (release4.2, release4.3, main). Pure: names and data, no I/O.

import { createHash } from "node:crypto";
import type { PolicyScope } from "./qrexec-policy.js";

/** admin.py `_get_path`: `^[\w-]+$` (Python's `\w` on str is Unicode; qubes-iac accepts ASCII only). */
export const POLICY_FILE_NAME_RE = /^[A-Za-z0-9_-]+$/;
/** Longest file name qubes-iac writes (a file system's NAME_MAX, less `.policy` and the `!` of the temporary file). */
export const POLICY_FILE_NAME_MAX = 240;

export const isPolicyFileName = (name: string): boolean => name.length <= POLICY_FILE_NAME_MAX && POLICY_FILE_NAME_RE.test(name);

/** A token as policy.Get prints it (admin.py `compute_token`). */
export const POLICY_TOKEN_RE = /^sha256:[0-9a-f]{64}$/;

/**
 * What a write expects to find. `new`: no file; a token: exactly that content. qrexec also takes
 * `any` (no check); qubes-iac never sends it, and a saved plan that holds it is refused.
 */
export type ExpectedToken = "new" | `sha256:${string}`;

export const isExpectedToken = (t: unknown): t is ExpectedToken => t === "new" || (typeof t === "string" && POLICY_TOKEN_RE.test(t));

export function policyToken(content: string | Uint8Array): `sha256:${string}` {
  return `sha256:${createHash("sha256").update(content).digest("hex")}`;
}

export type PolicyService = "List" | "Get" | "Replace" | "Remove";

/** `policy.Get` / `policy.include.Get` (admin.py `@method`). */
export const policyServiceName = (scope: PolicyScope, s: PolicyService): string => (scope === "include" ? `policy.include.${s}` : `policy.${s}`);

/** Where the file lives in dom0 (for messages: admin.py names the resolved path). */
export const POLICY_DIR = "/etc/qubes/policy.d";
export const policyFilePath = (scope: PolicyScope, name: string): string => (scope === "include" ? `${POLICY_DIR}/include/${name}` : `${POLICY_DIR}/${name}.policy`);

/**
 * How a release's qubes-policy-admin reports a failure (qrexec/tools/qubes_policy_admin.py):
 * - `stdout-plain` (release4.2, release4.3): `print(exc)` — the message and a newline on stdout,
 *   exit 1; and since there PolicyAdminTokenException is not a PolicyAdminException (admin.py),
 *   a token check that fails is an internal error: exit 2 with "Internal error. See
 *   /var/log/qubes/policy-admin.log in dom0 for details." — the reply does not say which.
 * - `stderr-classed` (main): `<ExceptionClass> <message>` on stderr, exit 1 (the token exception
 *   is a PolicyAdminException there); an internal error on stderr, exit 2.
 */
export type PolicyErrorReport = "stdout-plain" | "stderr-classed";

export type PolicyAdminRelease = {
  errors: PolicyErrorReport;
  /** A failed token check exits 2 as an internal error (release4.2, release4.3). */
  tokenErrorIsInternal: boolean;
  /** The internal error's message (log path in a release's own words). */
  internalError: string;
};

const OLD: PolicyAdminRelease = {
  errors: "stdout-plain",
  tokenErrorIsInternal: true,
  internalError: "Internal error. See /var/log/qubes/policy-admin.log in dom0 for details.",
};

/** Keyed by the release names of src/model/release.ts and the simulator (r4.2, r4.3, main). */
export const POLICY_ADMIN_RELEASES: Readonly<Record<"r4.2" | "r4.3" | "main", PolicyAdminRelease>> = {
  "r4.2": OLD,
  "r4.3": OLD,
  main: { errors: "stderr-classed", tokenErrorIsInternal: false, internalError: "Internal error. See '/var/log/qubes/policy-admin.log' in dom0 for details." },
};

/** The messages of a failed token check (admin.py `_check_token`). */
export const TOKEN_MESSAGES = ["Token mismatch", "File exists but token is 'new'", "File doesn't exist, but token isn't 'new'"] as const;

/** What a qrexec service run returned: its output, its error output, its exit status. */
export type ServiceReply = { stdout: Buffer; stderr: Buffer; exit: number };
