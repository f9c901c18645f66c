// The policy admin API as the capabilities plan and apply are given: the planner's read-only
// PolicyFilesReader, apply's executor of policy ops (each op one policy.Replace or policy.Remove
// with the token planning read), and the re-check of a plan's files before anything runs. A file
// changed since the plan keeps that change: the compare-and-set refuses the write, and the message
// names the file. R4.2/R4.3 report a failed token check as an internal error (exit 2); the
// executor then reads the file again to tell which it was.

import { isPolicyFileName, policyFilePath, policyToken, type ExpectedToken } from "../model/qrexec-policy-admin.js";
import type { Diagnostic } from "../model/diagnostics.js";
import { policyHeader } from "../model/qrexec-policy.js";
import type { JsonPlan } from "../plan/json.js";
import { isPolicyOp, stepOpMethod, type PolicyOp } from "../plan/ops.js";
import { holdsRestrictions, readStatements } from "../plan/policy-text.js";
import type { PolicyFilesReader, ReadFailure } from "../plan/policy-reader.js";
import { QubesApiError } from "../providers/qubes/errors.js";
import { createPolicyClient, PolicyAdminError, type PolicyClient } from "../providers/qubes/policy-client.js";
import type { Transport } from "../providers/qubes/transport.js";
import { applyDiagnostic } from "./codes.js";
import type { CallFailure, OpExecutor, OpOutcome, Verification } from "./engine.js";

/** The policy client of a connection; undefined when it cannot run dom0's services. */
export const policyClientOf = (transport: Pick<Transport, "service">): PolicyClient | undefined =>
  transport.service === undefined ? undefined : createPolicyClient(transport.service);

export const policyReaderOf = (client: PolicyClient | undefined): PolicyFilesReader | undefined =>
  client === undefined
    ? undefined
    : {
        list: (scope) => client.list(scope),
        get: (scope, name) =>
          client.get(scope, name).catch((e: unknown) => {
            if (e instanceof PolicyAdminError && e.kind === "not-found") return undefined;
            throw e;
          }),
      };

export function describePolicyFailure(e: unknown): ReadFailure {
  if (e instanceof PolicyAdminError) return { message: e.message, refused: e.kind === "refused" };
  if (e instanceof QubesApiError) return { message: e.message, refused: false };
  throw e;
}

const fileOf = (o: PolicyOp): string => `policy file ${policyFilePath(o.scope, o.name)}`;

/** The file as it is now: its token, or absent. */
async function currentToken(client: PolicyClient, o: Pick<PolicyOp, "scope" | "name">): Promise<{ token: string; content: string } | undefined> {
  const names = await client.list(o.scope);
  return names.includes(o.name) ? client.get(o.scope, o.name) : undefined;
}

const matches = (expected: ExpectedToken, now: { token: string } | undefined): boolean => (expected === "new" ? now === undefined : now?.token === expected);

const changedMessage = (o: PolicyOp, detail: string): string =>
  `${fileOf(o)} changed since the plan was made (${detail}): it keeps that change, and qubes-iac did not write it; run \`qubes-iac plan\` again`;

/** Apply's executor of policy ops. */
export function policyExecutor(client: PolicyClient): OpExecutor<PolicyOp> {
  const failure = (o: PolicyOp, code: string, message: string): CallFailure => ({ code, message, call: `${stepOpMethod(o)} → dom0` });
  return {
    run: async (o): Promise<OpOutcome> => {
      try {
        if (o.op === "policy.replace") await client.replace(o.scope, o.name, o.expected_token, o.content);
        else await client.remove(o.scope, o.name, o.expected_token);
        return { kind: "ok" };
      } catch (e) {
        if (e instanceof PolicyAdminError) {
          if (e.kind === "token") return { kind: "failed", failure: failure(o, "token", changedMessage(o, e.message.replace(/^[^:]*: /, ""))) };
          if (e.kind === "refused") return { kind: "failed", failure: failure(o, "refused", `${e.message}; allow it in dom0's /etc/qubes/policy.d (see \`qubes-iac policy\`)`) };
          if (e.kind === "internal" || e.kind === "rejected") {
            // R4.2/R4.3 report a failed token check as an internal error, and over qrexec a reply
            // may come without its message: a file that changed says which it was.
            try {
              const now = await currentToken(client, o);
              if (!matches(o.expected_token, now)) return { kind: "failed", failure: failure(o, "token", changedMessage(o, `its token is ${now?.token ?? "absent"} now`)) };
            } catch {
              return { kind: "unknown", failure: failure(o, "internal", e.message) };
            }
          }
          return { kind: "failed", failure: failure(o, e.kind, e.message) };
        }
        if (e instanceof QubesApiError) return { kind: e.details.maybeDelivered === true ? "unknown" : "failed", failure: failure(o, e.code, e.message) };
        throw e;
      }
    },
    verify: async (o): Promise<Verification> => {
      try {
        const now = await currentToken(client, o);
        if (o.op === "policy.remove") return now === undefined ? { kind: "done" } : { kind: "not-done", detail: `${fileOf(o)} is still there` };
        return now?.token === policyToken(o.content) ? { kind: "done" } : { kind: "not-done", detail: `${fileOf(o)} does not hold the planned content` };
      } catch (e) {
        return { kind: "unknown", detail: e instanceof Error ? e.message : String(e) };
      }
    },
  };
}

/**
 * Before anything runs: every file a policy op acts on is still as planning read it (its token,
 * or absent for a create), and a removal that says the file holds no deny or ask rules is true
 * of the file as it is (a saved plan may say anything). Diagnostics name each file.
 */
export async function checkPolicyPriorState(plan: Pick<JsonPlan, "steps" | "owner">, client: PolicyClient | undefined): Promise<Diagnostic[]> {
  const ops = plan.steps.flatMap((s) => s.ops.filter(isPolicyOp).map((o) => ({ o, address: s.address })));
  if (ops.length === 0) return [];
  if (client === undefined) return [applyDiagnostic("QIAC-E211", "this connection cannot run dom0's policy admin services (policy.*), which the plan's policy steps need")];
  const out: Diagnostic[] = [];
  for (const { o, address } of ops) {
    if (!isPolicyFileName(o.name)) continue; // refused by the structure check already
    let now: { token: string; content: string } | undefined;
    try {
      now = await currentToken(client, o);
    } catch (e) {
      const f = describePolicyFailure(e);
      out.push(applyDiagnostic(f.refused ? "QIAC-E211" : "QIAC-E210", `${fileOf(o)} cannot be read again before writing it: ${f.message}`, { address }));
      continue;
    }
    if (!matches(o.expected_token, now)) {
      out.push(
        applyDiagnostic("QIAC-E210", changedMessage(o, `planned ${o.expected_token === "new" ? "no file" : o.expected_token.slice(0, 19)}, now ${now === undefined ? "no file" : now.token.slice(0, 19)}`), {
          address,
          hint: "apply changes nothing: plan again to see the other edit in the diff",
        }),
      );
      continue;
    }
    if (o.op === "policy.remove" && !o.restricts && now !== undefined) {
      const body = now.content.startsWith(policyHeader(plan.owner)) ? now.content.slice(policyHeader(plan.owner).length) : now.content;
      if (holdsRestrictions(readStatements(body, o.scope === "include" ? "service" : "policy").statements) || holdsRestrictions(readStatements(body, "policy").statements)) {
        out.push(applyDiagnostic("QIAC-E212", `the plan removes ${fileOf(o)} as if it held only allow rules, but it holds deny or ask rules or includes`, { address, hint: "a plan made by qubes-iac never says so: make a new plan" }));
      }
    }
  }
  return out;
}
