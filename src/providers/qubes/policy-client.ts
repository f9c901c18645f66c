// A typed client of qrexec's policy admin API (policy.List/Get/Replace/Remove and their
// policy.include.* twins) over a ServiceRunner. It builds requests only from checked names and
// tokens, parses the raw replies (`sha256:<hex>\n` then the content for Get) and turns a failed
// run into a PolicyAdminError whose `kind` callers branch on. As QubesOS/qubes-core-qrexec
// qrexec/policy/admin_client.py, but a refusal by qrexec (exit 126) is told apart.

import { isExpectedToken, isPolicyFileName, policyServiceName, POLICY_TOKEN_RE, TOKEN_MESSAGES, type ExpectedToken, type PolicyService, type ServiceReply } from "../../model/qrexec-policy-admin.js";
import type { PolicyScope } from "../../model/qrexec-policy.js";
import type { ServiceRunner } from "./service-runner.js";

export type PolicyAdminErrorKind =
  /** qrexec policy refused the call (qrexec-client-vm exit 126). */
  | "refused"
  /** The file is not in the state the token says (admin.py PolicyAdminTokenException). */
  | "token"
  | "not-found"
  /** The service refused the request: a name, syntax or protocol error (exit 1). */
  | "rejected"
  /** The service failed inside (exit 2); R4.2/R4.3 report a failed token check so too. */
  | "internal"
  /** The reply does not have the shape the service gives. */
  | "bad-reply"
  /** We refused to send the request (a name or token that is not valid). */
  | "invalid-request";

export class PolicyAdminError extends Error {
  override readonly name = "PolicyAdminError";
  constructor(
    readonly kind: PolicyAdminErrorKind,
    message: string,
    readonly call: string,
  ) {
    super(message);
  }
}

/** qrexec-client-vm's status for a call qrexec refused (agent/qrexec-client-vm.rst, EXIT STATUS). */
export const EXIT_REFUSED = 126;

export type PolicyFile = { token: `sha256:${string}`; content: string };

export type PolicyClient = ReturnType<typeof createPolicyClient>;

/** The service's message: stdout (R4.2/R4.3 print it) or stderr (main: `<Class> <message>`), without main's class. */
function messageOf(r: ServiceReply): string {
  const text = (r.stderr.length > 0 ? r.stderr : r.stdout).toString("utf8").trim();
  return text.replace(/^PolicyAdmin[A-Za-z]*Exception /, "");
}

export function createPolicyClient(run: ServiceRunner) {
  const call = async (scope: PolicyScope, s: PolicyService, arg: string, payload: Buffer): Promise<Buffer> => {
    const service = policyServiceName(scope, s);
    const name = arg === "" ? service : `${service}+${arg}`;
    if (arg !== "" && !isPolicyFileName(arg)) throw new PolicyAdminError("invalid-request", `${JSON.stringify(arg)} is not a policy file name`, name);
    const r = await run(service, arg, payload);
    if (r.exit === 0) return r.stdout;
    const msg = messageOf(r);
    if (r.exit === EXIT_REFUSED) throw new PolicyAdminError("refused", `${name} to dom0 was refused by qrexec policy${msg ? `: ${msg}` : ""}`, name);
    if (r.exit === 2) throw new PolicyAdminError("internal", `${name} failed in dom0: ${msg || "exit 2"}`, name);
    if ((TOKEN_MESSAGES as readonly string[]).includes(msg)) throw new PolicyAdminError("token", `${name}: ${msg}`, name);
    if (msg.startsWith("Not found: ")) throw new PolicyAdminError("not-found", `${name}: ${msg}`, name);
    throw new PolicyAdminError("rejected", `${name} was rejected: ${msg || `exit ${r.exit}`}`, name);
  };
  const lines = (b: Buffer): string[] =>
    b
      .toString("utf8")
      .split("\n")
      .filter((l) => l !== "");
  return {
    /** The file names of a scope, sorted (`.policy` dropped). */
    list: async (scope: PolicyScope): Promise<string[]> => lines(await call(scope, "List", "", Buffer.alloc(0))),
    get: async (scope: PolicyScope, name: string): Promise<PolicyFile> => {
      const out = await call(scope, "Get", name, Buffer.alloc(0));
      const nl = out.indexOf(0x0a);
      const token = nl < 0 ? "" : out.subarray(0, nl).toString("latin1");
      if (!POLICY_TOKEN_RE.test(token)) throw new PolicyAdminError("bad-reply", `${policyServiceName(scope, "Get")}+${name}: the reply does not start with a token line`, name);
      return { token: token as `sha256:${string}`, content: out.subarray(nl + 1).toString("utf8") };
    },
    replace: async (scope: PolicyScope, name: string, expected: ExpectedToken, content: string): Promise<void> => {
      if (!isExpectedToken(expected)) throw new PolicyAdminError("invalid-request", `${JSON.stringify(expected)} is not a token qubes-iac sends`, name);
      await call(scope, "Replace", name, Buffer.concat([Buffer.from(`${expected}\n`, "ascii"), Buffer.from(content, "utf8")]));
    },
    remove: async (scope: PolicyScope, name: string, expected: ExpectedToken): Promise<void> => {
      if (!isExpectedToken(expected) || expected === "new") throw new PolicyAdminError("invalid-request", `${JSON.stringify(expected)} is not a token a removal sends`, name);
      await call(scope, "Remove", name, Buffer.from(expected, "ascii"));
    },
  };
}
