// The policy loosening markers end to end: plans read through the simulator's policy.* (the
// files the config names, then — because the plan changes one — every other file), judged by
// first match across all files in name order; a management qube's plan refuses to write a file
// holding management rights (QIAC-E186) and says when it could not read the whole policy (W186).
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { computePlan } from "../../src/cli/commands/plan.js";
import type { DesiredState } from "../../src/model/desired.js";
import { policyAddress, type DesiredPolicyFile, type PolicyRule } from "../../src/model/qrexec-policy.js";
import type { JsonPlan } from "../../src/plan/json.js";
import { renderHumanPlan } from "../../src/plan/render.js";
import { createAdminClient } from "../../src/providers/qubes/client.js";
import { createPolicyClient, type PolicyClient } from "../../src/providers/qubes/policy-client.js";
import { simServiceRunner } from "../../src/providers/qubes/service-runner.js";
import { startSimulator } from "../../src/providers/qubes/simulator/index.js";
import { createSocketTransport } from "../../src/providers/qubes/transport-socket.js";
import { testRelease } from "../helpers/sim.js";
import { desiredFromYaml, expectValidPlanJson } from "../plan/_helpers.js";

const at = { file: "qubes.yaml", line: 5, column: 3 };
const rule = (service: string, source: string, target: string, action: PolicyRule["action"], params: PolicyRule["params"] = {}): PolicyRule => ({ kind: "rule", service, argument: "*", source, target, action, params });
const file = (name: string, statements: PolicyRule[]): DesiredPolicyFile => ({ name, scope: "policy", syntax: "policy", form: "rules", statements, adopt: false, absent: false, release: false, at }) as DesiredPolicyFile;
const withPolicies = (files: DesiredPolicyFile[]): DesiredState => ({ ...desiredFromYaml("version: 1\nowner: me\n"), policies: new Map(files.map((f) => [policyAddress(f), f])) }) as DesiredState;

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "qiac-policy-loosen-"));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

/** A plan against a simulator whose policy directory holds `existing` (name → text); `mgmt`: seen as a management qube. */
async function plan(desired: DesiredState, existing: Record<string, string>, o: { mgmt?: boolean; unreadable?: string[] } = {}): Promise<JsonPlan> {
  const run = mkdtempSync(join(dir, "run-"));
  const socketPath = join(run, "qubesd.sock");
  const server = await startSimulator({ socketPath, statePath: join(run, "state.json"), release: testRelease() });
  const service = simServiceRunner(socketPath, { timeoutMs: 10_000 });
  try {
    const seed: PolicyClient = createPolicyClient(service);
    for (const [name, text] of Object.entries(existing)) await seed.replace("policy", name, "new", text);
    // A management qube's policy lets it read only some files: the others are refused.
    const refusing: typeof service = async (svc, arg, payload) => (svc === "policy.Get" && (o.unreadable ?? []).includes(arg) ? { stdout: Buffer.from(""), stderr: Buffer.from("Request refused\n"), exit: 126 } : service(svc, arg, payload));
    const transport = { ...createSocketTransport(socketPath, { timeoutMs: 10_000 }), service: refusing, ...(o.mgmt === true ? { visibility: "policy" as const } : {}) };
    const client = createAdminClient(transport);
    try {
      const json = await computePlan(client, desired, [], { parallelism: 4 });
      expectValidPlanJson(json);
      return json;
    } finally {
      await client.close();
    }
  } finally {
    await server.close();
  }
}

const marks = (json: JsonPlan): string[] => json.resource_changes.flatMap((c) => (c.loosens ?? []).map((l) => `${c.address} ${l.kind}`));

describe("policy loosening against the simulator's policy directory", () => {
  it("a new allow is marked, with the calls it lets through; the human plan marks it and closes with the summary", async () => {
    const json = await plan(withPolicies([file("30-gpg", [rule("qubes.Gpg", "work", "vault", "allow")])]), {});
    expect(marks(json)).toEqual(["policy.30-gpg policy-wider"]);
    const human = renderHumanPlan(json, { color: false });
    expect(human).toContain("  # loosens isolation (policy-wider): lets through what it did not: qubes.Gpg from work to vault: deny (no rule) → allow (to vault) (30-gpg.policy:1)\n!  + policy.30-gpg\n");
    expect(human).toContain("1 change loosens isolation: policy.30-gpg (policy allows more).\n");
    // In the file's diff, the added allow line is marked too.
    expect(human).toContain("\n!     +qubes.Gpg * work vault allow\n");
  });

  it("judged with the files qubes-iac does not manage: an earlier deny shadows the new allow (not marked); a later deny does not", async () => {
    const gpg = withPolicies([file("30-gpg", [rule("qubes.Gpg", "work", "vault", "allow")])]);
    expect(marks(await plan(gpg, { "20-lockdown": "qubes.Gpg * @anyvm @anyvm deny\n" }))).toEqual([]);
    expect(marks(await plan(gpg, { "40-lockdown": "qubes.Gpg * @anyvm @anyvm deny\n" }))).toEqual(["policy.30-gpg policy-wider"]);
  });

  it("policy.* granted to a qube is the strongest loosening, listed first", async () => {
    const json = await plan(withPolicies([file("30-gpg", [rule("qubes.Gpg", "work", "vault", "allow")]), file("30-mgmt", [rule("policy.Replace", "mgmt", "@adminvm", "allow", { redirect: "dom0" })])]), {});
    expect(marks(json)).toEqual(["policy.30-gpg policy-wider", "policy.30-mgmt policy-admin"]);
    expect(renderHumanPlan(json, { color: false })).toContain("2 changes loosen isolation: policy.30-mgmt (grants policy or Admin API control), policy.30-gpg (policy allows more).\n");
  });

  it("from a management qube: a file holding management rights is refused (QIAC-E186, located); a file it could not read is said (W186)", async () => {
    const json = await plan(withPolicies([file("30-mgmt", [rule("admin.vm.List", "mgmt", "@adminvm", "allow", { redirect: "dom0" })])]), {}, { mgmt: true });
    expect(json.diagnostics.filter((d) => d.code === "QIAC-E186").map((d) => [d.address, d.location])).toEqual([["policy.30-mgmt", at]]);
    expect(json.errored).toBe(true);
    const partial = await plan(withPolicies([file("30-gpg", [rule("qubes.Gpg", "work", "vault", "allow")])]), { "20-lockdown": "qubes.Gpg * @anyvm @anyvm deny\n" }, { mgmt: true, unreadable: ["20-lockdown"] });
    expect(partial.diagnostics.map((d) => d.code)).toEqual(["QIAC-W186"]);
    expect(partial.diagnostics[0]?.message).toContain("1 policy file could not be read (20-lockdown)");
    // Unread, the earlier deny is not seen: the allow is marked (the safe side).
    expect(marks(partial)).toEqual(["policy.30-gpg policy-wider"]);
  });
});
