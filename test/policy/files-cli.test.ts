// The issue's `policies:` example through the built CLI, on each connection qubes-iac has: the
// embedded simulator (`sim:STATE`), dom0 (`qubesd:SOCKET`, policy.* through the
// qubes-rpc-multiplexer stand-in) and a management qube (`qrexec`, every call decided by the
// qrexec-client-vm stand-in against the simulated policy directory). It validates, plans with the
// diff shown, applies through policy.*, and plans `No changes.`; a file it does not name stays
// byte-identical; a policy call the management qube's policy denies is reported as a refusal.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { createPolicyClient } from "../../src/providers/qubes/policy-client.js";
import { simServiceRunner } from "../../src/providers/qubes/service-runner.js";
import { runBuiltCli } from "../helpers/cli.js";
import { repoRoot } from "../helpers/shared.js";
import { startTestSim, type TestSim } from "../helpers/sim.js";
import { cli, clientOf } from "../reliability/_harness.js";
import { POLICY_STANDIN_DIR, viaQrexec } from "../reliability/_qrexec.js";

const CONFIG = `version: 1
owner: laptop
policies:
  30-split-gpg:
    - {service: qubes.Gpg, source: work, target: vault, action: allow}
    - {service: qubes.Filecopy, source: "@tag:work", target: "@anyvm", action: ask, default_target: vault}
    - {service: qubes.OpenInVM, argument: "+", source: work, target: "@dispvm:default-dvm", action: allow}
    - {service: "*", source: "@anyvm", target: vault, action: deny, notify: false}
  31-raw:
    text: |
      qubes.Gpg2 * personal vault ask default_target=vault
`;

const HEADER = "# managed by qubes-iac: owner laptop, format 1; edits here are overwritten by the next apply\n";
const GPG = `${HEADER}qubes.Gpg * work vault allow
qubes.Filecopy * @tag:work @anyvm ask default_target=vault
qubes.OpenInVM + work @dispvm:default-dvm allow
* * @anyvm vault deny notify=no
`;
const RAW = `${HEADER}qubes.Gpg2 * personal vault ask default_target=vault\n`;
const OTHER = "# Qubes' own, not the config's\nqubes.Filecopy * @anyvm @anyvm ask\n";

let dir: string;
let config: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "qiac-policy-cli-"));
  config = join(dir, "qubes.yaml");
  writeFileSync(config, CONFIG);
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const state = (path: string) => (JSON.parse(readFileSync(path, "utf8")) as { policy?: { files: Record<string, string> } }).policy?.files ?? {};

describe("policies: through the built CLI", () => {
  it("the embedded simulator: validates, plans (diff shown), applies through policy.*, plans No changes.", async () => {
    const statePath = join(dir, "state.json");
    const run = (args: string[]) => runBuiltCli([args[0] as string, "--connect", `sim:${statePath}`, ...args.slice(1)], { cwd: dir, timeoutMs: 60_000 });
    expect((await runBuiltCli(["validate", config], { cwd: dir })).code).toBe(0);
    const planned = await run(["plan", "--out", "plan.json", config]);
    expect(planned.code).toBe(0);
    expect(planned.stdout).toContain("+ policy.30-split-gpg");
    expect(planned.stdout).toContain("+++ /etc/qubes/policy.d/30-split-gpg.policy");
    expect(planned.stdout).toContain("+qubes.OpenInVM + work @dispvm:default-dvm allow");
    expect(planned.stdout).toContain("+qubes.Gpg2 * personal vault ask default_target=vault");
    expect(planned.stdout).toContain("Plan: 2 to add, 0 to change, 0 to destroy.");
    // validate warned of work, vault, personal and default-dvm (not in the config); plan finds them on the system.
    expect(planned.stderr).not.toContain("QIAC-W400");
    const json = JSON.parse(readFileSync(join(dir, "plan.json"), "utf8")) as { policies: Array<{ address: string; new_token: string }> };
    expect(json.policies.map((p) => p.address)).toEqual(["policy.30-split-gpg", "policy.31-raw"]);
    const applied = await run(["apply", "--auto-approve", "plan.json"]);
    expect(applied.code).toBe(0);
    expect(state(statePath)).toEqual({ "30-split-gpg": GPG, "31-raw": RAW });
    const again = await run(["plan", "--detailed-exitcode", config]);
    expect(again.code).toBe(0);
    expect(again.stdout).toContain("No changes.");
  }, 120_000);
});

describe("policies: include files through the built CLI", () => {
  it("an include file is written before the file that includes it and removed after it (qrexec validates the directory on each write)", async () => {
    const statePath = join(dir, "state.json");
    const run = (args: string[]) => runBuiltCli([args[0] as string, "--connect", `sim:${statePath}`, ...args.slice(1)], { cwd: dir, timeoutMs: 60_000 });
    writeFileSync(
      config,
      `version: 1
owner: laptop
policies:
  20-admin:
    text: |
      !include-service admin.vm.List * include/admin-ro
      !include include/gpg
policy_includes:
  admin-ro:
    syntax: service
    text: |
      work @adminvm allow target=dom0
  gpg:
    - {service: qubes.Gpg, source: work, target: vault, action: ask}
`,
    );
    const applied = await run(["apply", "--auto-approve", config]);
    expect(applied.stderr).not.toContain("QIAC-E");
    expect(applied.code).toBe(0);
    const doc = JSON.parse(readFileSync(statePath, "utf8")) as { policy: { files: Record<string, string>; include: Record<string, string> } };
    expect(Object.keys(doc.policy.files)).toEqual(["20-admin"]);
    expect(Object.keys(doc.policy.include).sort()).toEqual(["admin-ro", "gpg"]);
    writeFileSync(config, "version: 1\nowner: laptop\n");
    const dropped = await run(["apply", "--auto-approve", "--allow-destroy", config]);
    expect(dropped.stderr).not.toContain("QIAC-E");
    expect(dropped.code).toBe(0);
    expect(state(statePath)).toEqual({});
  }, 120_000);
});

describe("policies: dom0 and a management qube, through the stand-ins", () => {
  let sim: TestSim;
  beforeEach(async () => {
    sim = await startTestSim();
    const seed = createPolicyClient(simServiceRunner(sim.socketPath, { timeoutMs: 10_000 }));
    await seed.replace("policy", "50-qubes-own", "new", OTHER);
    sim.calls.length = 0;
  });
  afterEach(async () => sim.stop());

  it("dom0: policy.* through qubes-rpc-multiplexer; a file the config does not name stays byte-identical", async () => {
    const env = { QUBES_IAC_RPC_MULTIPLEXER: join(POLICY_STANDIN_DIR, "qubes-rpc-multiplexer"), QIAC_STANDIN_SOCKET: sim.socketPath };
    const run = (args: string[]) => runBuiltCli([args[0] as string, "--connect", `qubesd:${sim.socketPath}`, ...args.slice(1)], { cwd: dir, env, timeoutMs: 60_000 });
    const applied = await run(["apply", "--auto-approve", config]);
    expect(applied.stderr).not.toContain("QIAC-E");
    expect(applied.code).toBe(0);
    expect(state(sim.statePath)).toEqual({ "30-split-gpg": GPG, "31-raw": RAW, "50-qubes-own": OTHER });
    // Read (policy.Get) to judge what the plan's changes loosen against the whole policy
    // (src/plan/policy-context.ts), never written.
    expect(sim.calls.filter((c) => /^policy\.(include\.)?(Replace|Remove)$/.test(c.method) && c.arg === "50-qubes-own")).toEqual([]);
    expect((await run(["plan", "--detailed-exitcode", config])).stdout).toContain("No changes.");
  }, 120_000);

  it("a management qube: the simulated policy decides each call; a denied policy.Replace is reported as a refusal by qrexec policy", async () => {
    const c = clientOf(sim);
    await c.vm.create({ klass: "AppVM", name: "mgmt", label: "black", template: "fedora-40" });
    await c.close();
    // The Admin API rights qubes-iac policy generates, as the stand-in's base file; policy.* rights in the simulated directory.
    const gen = await cli(sim, ["policy", "--mgmt", "mgmt", "--apply", config]);
    expect(gen.code).toBe(0);
    const base = join(dir, "admin.policy");
    writeFileSync(base, gen.stdout);
    const seed = createPolicyClient(simServiceRunner(sim.socketPath, { timeoutMs: 10_000 }));
    const rights = (replace: string[]) =>
      ["policy.List * mgmt @adminvm allow target=dom0", "policy.Get +30-split-gpg mgmt @adminvm allow target=dom0", "policy.Get +31-raw mgmt @adminvm allow target=dom0", ...replace.map((f) => `policy.Replace +${f} mgmt @adminvm allow target=dom0`), ""].join("\n");
    const s = { socketPath: sim.socketPath, src: "mgmt", policy: base, log: join(dir, "decisions.jsonl") };
    // Without policy.List and policy.Get, planning cannot read the files: a located error naming the refusal.
    const unread = await viaQrexec(["plan", config], s);
    expect(unread.code).toBe(1);
    expect(unread.stderr).toContain("QIAC-E191");
    expect(unread.stderr).toContain("policy.List to dom0 was refused by qrexec policy");
    await seed.replace("policy", "20-mgmt", "new", rights(["31-raw"]));

    const planned = await viaQrexec(["plan", config], s);
    expect(planned.stderr).not.toContain("QIAC-E");
    expect(planned.code).toBe(0);
    expect(planned.stdout).toContain("+++ /etc/qubes/policy.d/30-split-gpg.policy");
    const denied = await viaQrexec(["apply", "--auto-approve", config], s);
    expect(denied.code).toBe(1);
    expect(denied.stdout + denied.stderr).toContain("policy.Replace+30-split-gpg to dom0 was refused by qrexec policy");
    expect(state(sim.statePath)["30-split-gpg"]).toBeUndefined();
    expect(state(sim.statePath)["50-qubes-own"]).toBe(OTHER);

    const { token } = await seed.get("policy", "20-mgmt");
    await seed.replace("policy", "20-mgmt", token, rights(["30-split-gpg", "31-raw"]));
    const applied = await viaQrexec(["apply", "--auto-approve", config], s);
    expect(applied.stderr).not.toContain("QIAC-E");
    expect(applied.code).toBe(0);
    expect(state(sim.statePath)).toMatchObject({ "30-split-gpg": GPG, "31-raw": RAW, "50-qubes-own": OTHER });
    expect((await viaQrexec(["plan", config], s)).stdout).toContain("No changes.");
  }, 180_000);
});
