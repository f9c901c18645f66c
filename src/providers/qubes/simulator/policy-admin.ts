// dom0's qrexec policy admin services as the simulator serves them: policy.List, Get, Replace,
// Remove, GetFiles and policy.include.List/Get/Replace/Remove over the World's policy directory,
// with admin.py's token semantics and messages and each release's way of reporting a failure
// (src/model/qrexec-policy-admin.ts). Models QubesOS/qubes-core-qrexec qrexec/policy/admin.py
// and qrexec/tools/qubes_policy_admin.py; the syntax check before a write is a line-level one
// (the columns and keywords of qrexec/policy/parser.py), not the full parser. Pure over the World.

import { POLICY_ADMIN_RELEASES, POLICY_FILE_NAME_RE, policyFilePath, policyToken, POLICY_DIR, type ServiceReply } from "../../../model/qrexec-policy-admin.js";
import type { PolicyScope } from "../../../model/qrexec-policy.js";
import type { PolicyDir, World } from "./state.js";

/** admin.py's exception classes, by what went wrong. */
type AdminError = { cls: "PolicyAdminProtocolException" | "PolicyAdminTokenException" | "PolicyAdminFileNotFoundException" | "PolicyAdminSyntaxException" | "PolicyAdminInvalidFileNameException"; message: string };

class Failure extends Error {
  constructor(readonly error: AdminError) {
    super(error.message);
  }
}

const fail = (cls: AdminError["cls"], message: string): never => {
  throw new Failure({ cls, message });
};

/** qrexec's RPCNAME_ALLOWED_CHARSET (qrexec/__init__.py): letters, digits, `+-._`. */
const ARG_CHARSET = /^[A-Za-z0-9+._-]*$/;

export const isPolicyService = (method: string): boolean => method.startsWith("policy.");

/** What a call changed: the directory and file, so the server saves the state. */
export type PolicyOutcome = { reply: ServiceReply; changed: boolean };

/** Runs one policy.* service as dom0's qubes-policy-admin would (as root, no policy check: qrexec decided already). */
export function runPolicyService(world: World, service: string, arg: string, payload: Buffer): PolicyOutcome {
  const report = POLICY_ADMIN_RELEASES[world.release.name];
  try {
    const { stdout, changed } = handle(world.policy, service, arg, payload);
    return { reply: { stdout, stderr: Buffer.alloc(0), exit: 0 }, changed };
  } catch (e) {
    if (!(e instanceof Failure)) {
      const msg = Buffer.from(report.errors === "stdout-plain" ? `${report.internalError}\n` : report.internalError);
      return { reply: report.errors === "stdout-plain" ? { stdout: msg, stderr: Buffer.alloc(0), exit: 2 } : { stdout: Buffer.alloc(0), stderr: msg, exit: 2 }, changed: false };
    }
    const { cls, message } = e.error;
    if (cls === "PolicyAdminTokenException" && report.tokenErrorIsInternal) {
      return { reply: { stdout: Buffer.from(`${report.internalError}\n`), stderr: Buffer.alloc(0), exit: 2 }, changed: false };
    }
    if (report.errors === "stdout-plain") return { reply: { stdout: Buffer.from(`${message}\n`), stderr: Buffer.alloc(0), exit: 1 }, changed: false };
    return { reply: { stdout: Buffer.alloc(0), stderr: Buffer.from(`${cls} ${message}`), exit: 1 }, changed: false };
  }
}

function handle(dir: PolicyDir, service: string, arg: string, payload: Buffer): { stdout: Buffer; changed: boolean } {
  if (!ARG_CHARSET.test(arg)) {
    fail("PolicyAdminProtocolException", `Invalid argument: "${arg}"\nValid characters are letters, numbers, dot, plus, hyphen and underline`);
  }
  const m = /^policy\.(include\.)?(List|Get|Replace|Remove|GetFiles)$/.exec(service);
  if (!m || (m[1] !== undefined && m[2] === "GetFiles")) return fail("PolicyAdminProtocolException", `unrecognized method: ${service}`);
  const scope: PolicyScope = m[1] !== undefined ? "include" : "policy";
  const files = scope === "include" ? dir.include : dir.files;
  const noArg = m[2] === "List";
  const noPayload = m[2] === "List" || m[2] === "Get" || m[2] === "GetFiles";
  if (noArg && arg !== "") fail("PolicyAdminProtocolException", "Unexpected argument");
  if (noPayload && payload.length > 0) fail("PolicyAdminProtocolException", "Unexpected payload");
  switch (m[2]) {
    case "List":
      return { stdout: Buffer.from([...files.keys()].sort().map((n) => `${n}\n`).join(""), "ascii"), changed: false };
    case "Get": {
      checkName(arg);
      const text = files.get(arg);
      if (text === undefined) return fail("PolicyAdminFileNotFoundException", `Not found: ${policyFilePath(scope, arg)}`);
      return { stdout: Buffer.concat([Buffer.from(`${policyToken(text)}\n`), Buffer.from(text, "utf8")]), changed: false };
    }
    case "Replace": {
      checkName(arg);
      const nl = payload.indexOf(0x0a);
      if (nl < 0) return fail("PolicyAdminProtocolException", "Payload needs to include first line with token");
      checkToken(payload.subarray(0, nl).toString("latin1"), files.get(arg));
      const data = payload.subarray(nl + 1);
      const text = data.toString("utf8");
      // Python's bytes.decode("utf-8") raises on bad UTF-8: an internal error (exit 2).
      if (!Buffer.from(text, "utf8").equals(data)) throw new Error("UnicodeDecodeError");
      validate(dir, scope, arg, text);
      files.set(arg, text);
      return { stdout: Buffer.alloc(0), changed: true };
    }
    case "Remove": {
      checkName(arg);
      checkToken(payload.toString("latin1"), files.get(arg));
      if (!files.has(arg)) return fail("PolicyAdminFileNotFoundException", `Not found: ${policyFilePath(scope, arg)}`);
      validate(dir, scope, arg, undefined);
      files.delete(arg);
      return { stdout: Buffer.alloc(0), changed: true };
    }
    case "GetFiles": {
      if (arg === "") return fail("PolicyAdminProtocolException", "Service cannot be empty.");
      if (arg.includes("+")) return fail("PolicyAdminProtocolException", `Service '${arg}' contains invalid characters: '+'`);
      const out: string[] = [];
      for (const [name, text] of [...dir.files].sort(([a], [b]) => (a < b ? -1 : 1))) {
        if (ruleLines(text).some((cols) => !cols[0]?.startsWith("!") && (cols[0] === "*" || cols[0] === arg)) && !out.includes(name)) out.push(name);
      }
      return { stdout: Buffer.from(out.map((n) => `${n}\n`).join(""), "utf8"), changed: false };
    }
    default:
      return fail("PolicyAdminProtocolException", `unrecognized method: ${service}`);
  }
}

function checkName(arg: string): void {
  // admin.py `_get_path`; Python's \w is Unicode, but the argument charset above is ASCII already.
  if (!POLICY_FILE_NAME_RE.test(arg)) {
    fail("PolicyAdminInvalidFileNameException", `Invalid policy file name: ${arg}\nNames must contain only alphanumeric characters, underscore and hyphen.`);
  }
}

/** admin.py `_check_token`: `any`, `new`, or the file's exact token. */
function checkToken(token: string, current: string | undefined): void {
  if (token === "any") return;
  if (token === "new") {
    if (current !== undefined) fail("PolicyAdminTokenException", "File exists but token is 'new'");
    return;
  }
  if (!token.startsWith("sha256:")) fail("PolicyAdminProtocolException", "Unrecognized token");
  if (current === undefined) fail("PolicyAdminTokenException", "File doesn't exist, but token isn't 'new'");
  if (policyToken(current ?? "") !== token) fail("PolicyAdminTokenException", "Token mismatch");
}

/** The statement lines of a file, split into columns (comments and blank lines dropped). */
function ruleLines(text: string): string[][] {
  return text
    .split("\n")
    .map((l) => l.replace(/#.*/, "").trim())
    .filter((l) => l !== "")
    .map((l) => l.split(/\s+/));
}

const ACTIONS = new Set(["allow", "deny", "ask"]);

/**
 * admin.py `_validate` (ValidateParser over the directory with the change applied), at line
 * level: each statement has its columns and a known action, and an `!include` names a file that
 * exists; a file still included cannot be removed. `text` undefined: the file is removed.
 */
function validate(dir: PolicyDir, scope: PolicyScope, name: string, text: string | undefined): void {
  const after: PolicyDir = { files: new Map(dir.files), include: new Map(dir.include) };
  const target = scope === "include" ? after.include : after.files;
  if (text === undefined) target.delete(name);
  else target.set(name, text);
  const problem = (file: string, line: number, msg: string): never =>
    fail("PolicyAdminSyntaxException", `Policy change validation failed: ${file}:${line}: ${msg}`);
  const includeExists = (path: string): boolean => {
    const rel = path.startsWith(`${POLICY_DIR}/`) ? path.slice(POLICY_DIR.length + 1) : path;
    return rel.startsWith("include/") && after.include.has(rel.slice("include/".length));
  };
  const check = (s: PolicyScope, file: string, content: string): void => {
    const path = policyFilePath(s, file);
    for (const [i, raw] of content.split("\n").entries()) {
      const line = raw.replace(/#.*/, "").trim();
      if (line === "") continue;
      const cols = line.split(/\s+/);
      const head = cols[0] ?? "";
      if (head.startsWith("!")) {
        const want = head === "!include" || head === "!include-dir" ? 2 : head === "!include-service" ? 4 : 0;
        if (want === 0) problem(path, i + 1, `invalid directive: ${head}`);
        if (cols.length !== want) problem(path, i + 1, `invalid number of params to ${head}`);
        if (head === "!include" && !includeExists(cols[1] ?? "")) problem(path, i + 1, `including a file that does not exist: ${cols[1] ?? ""}`);
        if (head === "!include-service" && !includeExists(cols[3] ?? "")) problem(path, i + 1, `including a file that does not exist: ${cols[3] ?? ""}`);
        continue;
      }
      // An include file outside a !include-service context has 5 columns, one within it 3; accept both shapes.
      const actionAt = cols.length >= 5 && ACTIONS.has(cols[4] ?? "") ? 4 : s === "include" && cols.length >= 3 && ACTIONS.has(cols[2] ?? "") ? 2 : -1;
      if (actionAt < 0) problem(path, i + 1, cols.length < 5 ? "wrong number of fields" : `invalid action: ${cols[4] ?? ""}`);
      for (const p of cols.slice(actionAt + 1)) if (!/^[a-z_]+=\S+$/.test(p)) problem(path, i + 1, `invalid action parameter syntax: ${p}`);
    }
  };
  for (const [f, t] of after.files) check("policy", f, t);
  for (const [f, t] of after.include) check("include", f, t);
}
