// dom0's policy admin services through the test stand-ins, as qubes-iac reaches them: from a
// management qube through qrexec-client-vm (test/reliability/bin), which decides every call —
// admin.* and policy.* — by the simulated policy directory, and in dom0 through the
// qubes-rpc-multiplexer stand-in, which asks no policy. Raw replies, exit statuses, token
// semantics and upstream messages per release (qubes-core-qrexec qrexec/policy/admin.py and
// qrexec/tools/qubes_policy_admin.py, release4.2/release4.3/main); a denied call is reported as a
// policy refusal.
import { spawn } from "node:child_process";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { policyExecutor } from "../../src/apply/policy-files.js";
import { policyToken } from "../../src/model/qrexec-policy-admin.js";
import { createPolicyClient, PolicyAdminError } from "../../src/providers/qubes/policy-client.js";
import { multiplexerServiceRunner, qrexecServiceRunner, simServiceRunner } from "../../src/providers/qubes/service-runner.js";
import { POLICY_STANDIN, POLICY_STANDIN_DIR } from "../reliability/_qrexec.js";
import { startTestSim, testRelease, type TestSim } from "../helpers/sim.js";

const MULTIPLEXER = join(POLICY_STANDIN_DIR, "qubes-rpc-multiplexer");
const release = testRelease();
/** How this release's qubes-policy-admin reports a failure (src/model/qrexec-policy-admin.ts). */
const classed = release === "main";

let sim: TestSim;
beforeEach(async () => {
  sim = await startTestSim();
});
afterEach(async () => {
  await sim.stop();
});

const env = (src = "mgmt") => ({ PATH: process.env.PATH ?? "/usr/bin:/bin", QIAC_STANDIN_SOCKET: sim.socketPath, QIAC_STANDIN_SRC: src, QIAC_STANDIN_RELEASE: release, QIAC_STANDIN_LOG: join(sim.dir, "decisions.log") });

/** Runs a stand-in as qubes-iac does (asynchronously: the simulator answers it from this process), returning exactly what it gave. */
function run(command: string, args: string[], input = "", src = "mgmt"): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { env: env(src) });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on("data", (d: Buffer) => out.push(d));
    child.stderr.on("data", (d: Buffer) => err.push(d));
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stdout: Buffer.concat(out).toString("utf8"), stderr: Buffer.concat(err).toString("utf8") }));
    child.stdin.end(input);
  });
}

const seed = async (name: string, text: string): Promise<void> => createPolicyClient(simServiceRunner(sim.socketPath, { timeoutMs: 10_000 })).replace("policy", name, "new", text);

/** The management qube's rights, as a file of the simulated policy directory. */
const MGMT_RIGHTS = [
  "admin.vm.List * mgmt @adminvm allow target=dom0",
  "admin.vm.List * mgmt @tag:managed allow target=dom0",
  "policy.List * mgmt @adminvm allow target=dom0",
  "policy.Get +30-gpg mgmt @adminvm allow target=dom0",
  "policy.Replace +30-gpg mgmt @adminvm allow target=dom0",
  "policy.Get +40-other mgmt @adminvm allow target=dom0",
  "",
].join("\n");

describe("the qrexec stand-in decides policy.* and admin.* by the simulated policy directory", () => {
  it("answers an allowed policy.Get raw (token line, then content) and refuses what the simulated policy does not allow", async () => {
    await seed("20-mgmt", MGMT_RIGHTS);
    await seed("30-gpg", "qubes.Gpg * work vault allow\n");
    const got = await run(POLICY_STANDIN, ["dom0", "policy.Get+30-gpg"]);
    expect(got).toEqual({ code: 0, stdout: `${policyToken("qubes.Gpg * work vault allow\n")}\nqubes.Gpg * work vault allow\n`, stderr: "" });
    // No rule allows policy.Remove, nor policy.Get of another file: refused as qrexec refuses.
    expect(await run(POLICY_STANDIN, ["dom0", "policy.Remove+30-gpg"], policyToken("qubes.Gpg * work vault allow\n"))).toEqual({ code: 126, stdout: "", stderr: "Request refused\n" });
    expect((await run(POLICY_STANDIN, ["dom0", "policy.Get+20-mgmt"])).code).toBe(126);
    // admin.* too: the simulated policy allows admin.vm.List, and nothing else.
    expect((await run(POLICY_STANDIN, ["dom0", "admin.vm.List"])).code).toBe(0);
    expect((await run(POLICY_STANDIN, ["dom0", "admin.vm.property.Get+netvm"])).code).toBe(126);
    // A deny placed before the allow, in a file earlier by name, takes effect: first match across files.
    await seed("10-deny", "admin.vm.List * mgmt @adminvm deny\n");
    expect((await run(POLICY_STANDIN, ["dom0", "admin.vm.List"])).code).toBe(126);
  });

  it("passes the service's exit status and message: a missing file, a token mismatch, `new` on an existing file", async () => {
    await seed("20-mgmt", MGMT_RIGHTS);
    await seed("30-gpg", "qubes.Gpg * work vault allow\n");
    const missing = await run(POLICY_STANDIN, ["dom0", "policy.Get+40-other"]);
    expect(missing.code).toBe(1);
    expect(classed ? missing.stderr : missing.stdout).toBe(classed ? "PolicyAdminFileNotFoundException Not found: /etc/qubes/policy.d/40-other.policy" : "Not found: /etc/qubes/policy.d/40-other.policy\n");

    const stale = await run(POLICY_STANDIN, ["dom0", "policy.Replace+30-gpg"], `${policyToken("something else")}\nqubes.Gpg * work vault deny\n`);
    const isNew = await run(POLICY_STANDIN, ["dom0", "policy.Replace+30-gpg"], "new\nqubes.Gpg * work vault deny\n");
    if (classed) {
      expect(stale).toEqual({ code: 1, stdout: "", stderr: "PolicyAdminTokenException Token mismatch" });
      expect(isNew).toEqual({ code: 1, stdout: "", stderr: "PolicyAdminTokenException File exists but token is 'new'" });
    } else {
      // R4.2/R4.3: PolicyAdminTokenException is no PolicyAdminException there: an internal error.
      const internal = { code: 2, stdout: "Internal error. See /var/log/qubes/policy-admin.log in dom0 for details.\n", stderr: "" };
      expect(stale).toEqual(internal);
      expect(isNew).toEqual(internal);
    }
    // The file kept its content through both refusals; the right token replaces it.
    const ok = await run(POLICY_STANDIN, ["dom0", "policy.Replace+30-gpg"], `${policyToken("qubes.Gpg * work vault allow\n")}\nqubes.Gpg * work vault deny\n`);
    expect(ok).toEqual({ code: 0, stdout: "", stderr: "" });
    expect((await run(POLICY_STANDIN, ["dom0", "policy.Get+30-gpg"])).stdout).toBe(`${policyToken("qubes.Gpg * work vault deny\n")}\nqubes.Gpg * work vault deny\n`);
    const bad = await run(POLICY_STANDIN, ["dom0", "policy.Replace+30-gpg"], `${policyToken("qubes.Gpg * work vault deny\n")}\nqubes.Gpg * work vault permit\n`);
    expect(bad.code).toBe(1);
    expect(classed ? bad.stderr : bad.stdout).toContain("Policy change validation failed: /etc/qubes/policy.d/30-gpg.policy:1:");
  });

  it("qubes-iac reports a denied policy call as a refusal by qrexec policy, in planning's reads and in apply's writes", async () => {
    await seed("20-mgmt", MGMT_RIGHTS);
    await seed("40-other", "qubes.Filecopy * @anyvm @anyvm ask\n");
    const client = createPolicyClient(qrexecServiceRunner(POLICY_STANDIN, { timeoutMs: 10_000, env: env() }));
    await expect(client.get("policy", "20-mgmt")).rejects.toMatchObject({ kind: "refused" });
    const err = await client.get("policy", "20-mgmt").catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PolicyAdminError);
    expect((err as Error).message).toBe("policy.Get+20-mgmt to dom0 was refused by qrexec policy: Request refused");
    const out = await policyExecutor(client).run({ op: "policy.remove", scope: "policy", name: "40-other", expected_token: policyToken("qubes.Filecopy * @anyvm @anyvm ask\n"), restricts: true });
    expect(out).toMatchObject({ kind: "failed", failure: { code: "refused" } });
    if (out.kind === "failed") expect(out.failure.message).toContain("refused by qrexec policy");
    // Nothing reached the simulator's policy.Remove.
    expect(sim.calls.filter((c) => c.method === "policy.Remove")).toEqual([]);
  });
});

describe("the dom0 multiplexer stand-in runs policy.* locally", () => {
  it("serves List, Get, Replace and Remove with tokens, and asks no policy", async () => {
    const client = createPolicyClient(multiplexerServiceRunner(MULTIPLEXER, { timeoutMs: 10_000, env: env() }));
    expect(await client.list("policy")).toEqual([]);
    await client.replace("policy", "30-gpg", "new", "qubes.Gpg * work vault allow\n");
    await client.replace("include", "admin-local", "new", "admin.vm.List * @anyvm @adminvm deny\n");
    expect(await client.list("policy")).toEqual(["30-gpg"]);
    expect(await client.list("include")).toEqual(["admin-local"]);
    const f = await client.get("policy", "30-gpg");
    expect(f).toEqual({ token: policyToken("qubes.Gpg * work vault allow\n"), content: "qubes.Gpg * work vault allow\n" });
    await expect(client.replace("policy", "30-gpg", policyToken("other"), "x")).rejects.toMatchObject({ kind: classed ? "token" : "internal" });
    await client.remove("policy", "30-gpg", f.token);
    expect(await client.list("policy")).toEqual([]);
    // An include still included cannot go (admin.py _validate of the directory without it).
    await client.replace("policy", "10-inc", "new", "!include include/admin-local\n");
    await expect(client.remove("include", "admin-local", policyToken("admin.vm.List * @anyvm @adminvm deny\n"))).rejects.toMatchObject({ kind: "rejected" });
    expect((await run(MULTIPLEXER, ["admin.vm.List", "dom0"])).code).toBe(127);
  });
});
