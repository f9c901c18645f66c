// The management qube's own rights (docs/policy.md, "Policy files and the management qube's own
// rights"): the DispVMs a management qube reaches through the created-by tag its disposable
// templates pass on are named in the generated policy, and the policy in force really reaches
// them (through the decision-making qrexec stand-in); which policy files hold management rights.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { policyWriteRefusals } from "../../src/apply/policy.js";
import type { DesiredPolicyFile, PolicyRule } from "../../src/model/qrexec-policy.js";
import { rightsIncludes, rightsReason } from "../../src/model/qrexec-rights.js";
import { createAdminClient } from "../../src/providers/qubes/client.js";
import { createQrexecTransport } from "../../src/providers/qubes/transport-qrexec.js";
import { runIn } from "../apply/_cli.js";
import { clientOf, startSim, type Sim } from "../reliability/_harness.js";
import { POLICY_STANDIN, standinEnv } from "../reliability/_qrexec.js";
import { desiredFromYaml } from "../plan/_helpers.js";

const MGMT = "mgmt";
const CONFIG = `version: 1
owner: lab
qubes:
  dvm-web:
    class: AppVM
    template: fedora-40
    label: red
    properties: {template_for_dispvms: true}
`;

describe("qubes reachable through an inherited tag", () => {
  let sim: Sim;
  let dir: string;
  beforeEach(async () => {
    sim = await startSim();
    dir = mkdtempSync(join(tmpdir(), "qiac-rights-"));
    const c = clientOf(sim);
    await c.vm.create({ klass: "AppVM", name: MGMT, label: "black", template: "fedora-40" });
    await c.close();
  });
  afterEach(async () => {
    await sim.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it("the generated policy says plainly that the DispVMs of a disposable template it creates are reachable, and they are", async () => {
    const config = join(dir, "qubes.yaml");
    writeFileSync(config, CONFIG);
    const r = await runIn(["policy", "--mgmt", MGMT, "--apply", config]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(
      "# Also reachable through @tag:created-by-mgmt: every DispVM started from dvm-web (disposable templates\n" +
        "# this config creates), whoever starts it. qubesd copies a disposable template's tags to its DispVMs\n" +
        "# (qubes/vm/dispvm.py), created-by-mgmt among them, so each @tag:created-by-mgmt line below also lets mgmt\n" +
        "# read, change and remove those DispVMs.\n",
    );
    const policy = join(dir, "30-qubes-iac-lab.policy");
    writeFileSync(policy, r.stdout);
    // The management qube creates the disposable template (qubesd tags it created-by-mgmt) ...
    const mgmt = createAdminClient(
      createQrexecTransport({ timeoutMs: 10_000, command: POLICY_STANDIN, env: { ...process.env, ...standinEnv({ socketPath: sim.socketPath, src: MGMT, policy, log: join(dir, "log.jsonl") }) } }),
    );
    const dom0 = clientOf(sim);
    try {
      await mgmt.vm.create({ klass: "AppVM", name: "dvm-web", label: "red", template: "fedora-40" });
      await mgmt.property.set({ vm: "dvm-web" }, "template_for_dispvms", "True");
      // ... and someone else starts a DispVM from it: the DispVM carries created-by-mgmt too.
      const disp = (await dom0.call("admin.vm.CreateDisposable", "dvm-web")).toString("latin1");
      expect(await dom0.tag.list(disp)).toContain("created-by-mgmt");
      // The policy's tag lines reach it: the management qube can change and remove it.
      await mgmt.property.set({ vm: disp }, "memory", "500");
      expect((await dom0.property.get({ vm: disp }, "memory")).raw).toBe("500");
      await mgmt.vm.remove(disp);
      expect((await dom0.vm.list()).map((q) => q.name)).not.toContain(disp);
    } finally {
      await mgmt.close();
      await dom0.close();
    }
  });

  it("a config without a disposable template it creates has no such note", async () => {
    const config = join(dir, "qubes.yaml");
    writeFileSync(config, CONFIG.replace("    properties: {template_for_dispvms: true}\n", ""));
    const r = await runIn(["policy", "--mgmt", MGMT, "--apply", config]);
    expect(r.code).toBe(0);
    expect(r.stdout).not.toContain("Also reachable");
  });
});

describe("policy files that hold management rights", () => {
  const rule = (service: string, action: PolicyRule["action"], source = "mgmt", target = "@adminvm"): PolicyRule => ({ kind: "rule", service, argument: "*", source, target, action, params: {} });
  const file = (name: string, statements: DesiredPolicyFile["statements"], scope: DesiredPolicyFile["scope"] = "policy"): DesiredPolicyFile => ({
    name,
    scope,
    syntax: "policy",
    form: "rules",
    statements,
    adopt: false,
    absent: false,
    release: false,
    at: { file: "qubes.yaml", line: 7, column: 3 },
  } as DesiredPolicyFile);

  it("a file that allows or asks an Admin API, policy admin or every service; one that routes them through an include; the include files that serve them", () => {
    const inc = rightsIncludes([{ kind: "include-service", service: "admin.vm.List", argument: "*", path: "include/my-admin" }]);
    expect(rightsReason(file("30-a", [rule("admin.vm.List", "allow")]), inc)).toBe("it allows admin.vm.List (mgmt → @adminvm)");
    expect(rightsReason(file("30-b", [rule("policy.Replace", "ask")]), inc)).toBe("it asks policy.Replace (mgmt → @adminvm)");
    expect(rightsReason(file("30-c", [rule("*", "allow", "@anyvm", "vault")]), inc)).toBe("it allows every service (@anyvm → vault)");
    expect(rightsReason(file("30-d", [{ kind: "include-service", service: "policy.Get", argument: "*", path: "include/admin-policy-ro" }]), inc)).toBe("it routes policy.Get through include/admin-policy-ro");
    expect(rightsReason(file("my-admin", [], "include"), inc)).toBe("include/my-admin is read by an !include-service line of the Admin API or policy admin services");
    expect(rightsReason(file("admin-local-rwx", [], "include"), inc)).toMatch(/^include\/admin-local-rwx is read/);
    // Denying them, or granting other services, is no management right.
    expect(rightsReason(file("30-e", [rule("admin.vm.List", "deny"), rule("qubes.Gpg", "allow", "work", "vault")]), inc)).toBeUndefined();
  });

  it("policy.* is granted for the config's files only, each by name, and its writes only with --allow-policy-writes", async () => {
    const { policyRules } = await import("../../src/apply/policy.js");
    const desired = desiredFromYaml("version: 1\nowner: lab\n");
    const gpg = file("30-gpg", [rule("qubes.Gpg", "allow", "work", "vault")]);
    const gone = { ...file("40-old", [rule("qubes.Filecopy", "deny", "@anyvm", "vault")]), absent: true };
    const inc = file("gpg-targets", [], "include");
    const withFiles = { ...desired, policies: new Map([["policy.30-gpg", gpg], ["policy.40-old", gone], ["policy.include.gpg-targets", inc]]) };
    const lines = (o: { apply: boolean; allowPolicyWrites?: boolean; policyInventory?: Parameters<typeof policyRules>[0]["policyInventory"] }) =>
      policyRules({ desired: withFiles, mgmt: MGMT, ...o })
        .filter((r) => r.service.startsWith("policy."))
        .map((r) => `${r.service} ${r.argument} ${r.target} ${r.purpose}`);
    const reads = [
      "policy.Get +30-gpg @adminvm policy-read",
      "policy.Get +40-old @adminvm policy-read",
      "policy.List + @adminvm policy-read",
      "policy.include.Get +gpg-targets @adminvm policy-read",
      "policy.include.List + @adminvm policy-read",
    ];
    // policy.* only with --allow-policy-writes: without it, not even the reads.
    expect(lines({ apply: false })).toEqual([]);
    expect(lines({ apply: true })).toEqual([]);
    expect(lines({ apply: false, allowPolicyWrites: true })).toEqual(reads);
    expect(lines({ apply: true, allowPolicyWrites: true })).toEqual([
      ...reads,
      "policy.Remove +40-old @adminvm policy-write",
      "policy.Replace +30-gpg @adminvm policy-write",
      "policy.include.Replace +gpg-targets @adminvm policy-write",
    ]);
    // The inventory entries apply writes before each file (diff-policies.ts), by exact name.
    const entries = (o: { apply: boolean; allowPolicyWrites?: boolean; policyInventory?: Parameters<typeof policyRules>[0]["policyInventory"] }) =>
      policyRules({ desired: withFiles, mgmt: MGMT, ...o })
        .filter((r) => r.purpose === "policy-write" && r.service.startsWith("admin."))
        .map((r) => `${r.service} ${r.argument}`);
    const granted = policyRules({ desired: withFiles, mgmt: MGMT, apply: true, allowPolicyWrites: true }).map((r) => `${r.service} ${r.argument}`);
    for (const e of [
      "admin.vm.feature.Remove +qubes-iac.lab.policy.adopted.40-old",
      "admin.vm.feature.Remove +qubes-iac.lab.policy.created.40-old",
      "admin.vm.feature.Set +qubes-iac.lab.policy.created.30-gpg",
      "admin.vm.feature.Set +qubes-iac.lab.policy.include.created.gpg-targets",
    ])
      expect(granted).toContain(e);
    // With the inventory read (--connect): a created file the config dropped is removable, by name.
    const dropped = new Map([["policy.20-dropped", { scope: "policy" as const, name: "20-dropped", lifecycle: "created" as const, records: ["qubes-iac.lab.policy.created.20-dropped"] }]]);
    expect(lines({ apply: true, allowPolicyWrites: true, policyInventory: dropped })).toContain("policy.Remove +20-dropped @adminvm policy-write");
    expect(entries({ apply: true, allowPolicyWrites: true, policyInventory: dropped })).toContain("admin.vm.feature.Remove +qubes-iac.lab.policy.created.20-dropped");
    expect(entries({ apply: true, policyInventory: dropped })).toEqual([]);
    expect(lines({ apply: true, policyInventory: dropped })).toEqual([]);
  });

  it("the generated policy says what it does not grant, and --allow-policy-writes without --apply grants the reads only", async () => {
    const dir = mkdtempSync(join(tmpdir(), "qiac-rights-cli-"));
    try {
      const config = join(dir, "qubes.yaml");
      writeFileSync(config, "version: 1\nowner: lab\npolicies:\n  30-gpg:\n    - {service: qubes.Gpg, source: work, target: vault, action: allow}\n");
      const without = await runIn(["policy", "--mgmt", MGMT, "--apply", config]);
      expect(without.code).toBe(0);
      expect(without.stdout).not.toMatch(/^policy\./m);
      expect(without.stdout).toContain("# Not granted: qrexec's policy admin services for the config's policy files (policy.30-gpg).\n");
      const reads = await runIn(["policy", "--mgmt", MGMT, "--allow-policy-writes", config]);
      expect(reads.code).toBe(0);
      expect(reads.stdout.split("\n").filter((l) => l.startsWith("policy.")).map((l) => l.split(/\s+/).slice(0, 2).join(" "))).toEqual(["policy.Get +30-gpg", "policy.List +"]);
      const all = await runIn(["policy", "--mgmt", MGMT, "--apply", "--allow-policy-writes", config]);
      expect(all.stdout.split("\n").filter((l) => l.startsWith("policy.")).map((l) => l.split(/\s+/).slice(0, 2).join(" "))).toEqual(["policy.Get +30-gpg", "policy.List +", "policy.Replace +30-gpg"]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("policy --allow-policy-writes refuses to grant one, located at its key (QIAC-E310); without the flag nothing is refused", () => {
    const desired = desiredFromYaml("version: 1\nowner: lab\n");
    const withFiles = { ...desired, policies: new Map([["policy.30-mine", file("30-mine", [rule("admin.vm.feature.Set", "allow")])], ["policy.30-gpg", file("30-gpg", [rule("qubes.Gpg", "allow", "work", "vault")])]]) };
    expect(policyWriteRefusals({ desired: withFiles, mgmt: MGMT, apply: true, allowPolicyWrites: true })).toEqual([
      {
        severity: "error",
        code: "QIAC-E310",
        message: "policy.30-mine holds management rights (it allows admin.vm.feature.Set (mgmt → @adminvm)): it can be written only from dom0, so --allow-policy-writes does not grant it to mgmt",
        hint: "apply this file from dom0 (a config of its own, or `--target` from dom0), and generate the management qube's policy without it",
        location: { file: "qubes.yaml", line: 7, column: 3 },
      },
    ]);
    expect(policyWriteRefusals({ desired: withFiles, mgmt: MGMT, apply: true })).toEqual([]);
  });
});

describe("docs/policy.md", () => {
  it("lists every code of the policy command with its meaning, and no other", async () => {
    const { readFileSync } = await import("node:fs");
    const { POLICY_COMMAND_CODES } = await import("../../src/apply/policy.js");
    const doc = readFileSync(join(__dirname, "..", "..", "docs", "policy.md"), "utf8");
    for (const [code, meaning] of Object.entries(POLICY_COMMAND_CODES)) expect(doc).toContain(`| ${code} | ${meaning} |`);
    expect([...doc.matchAll(/^\| (QIAC-[EW]\d+) \|/gm)].map((m) => m[1])).toEqual(Object.keys(POLICY_COMMAND_CODES));
  });
});
