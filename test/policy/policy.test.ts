// `qubes-iac policy`: the generated files (golden), the rules every policy keeps (allow
// target=dom0, nothing by managed-by-*, removal only of what the management qube created, no
// write in a plan-only policy), that every call a real plan and apply of each example make is
// allowed by its policy, and that --connect adds what the inventory lists and the config dropped.
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { ADMINVM, createdByTag, policyRules, type PolicyRule } from "../../src/apply/policy.js";
import { readInventory } from "../../src/model/ownership.js";
import type { DesiredState } from "../../src/model/desired.js";
import { isMutating, startTestSim, type TestSim } from "../helpers/sim.js";
import { loadDesired } from "../plan/_helpers.js";
import { runIn } from "../apply/_cli.js";

// Besides the examples: volumes and notes (new ops, their reads, a pool of their own).
const EXAMPLES = ["examples/minimal.yaml", "examples/workstation.yaml", "examples/reference.yaml", "examples/offline-vault.yaml", "examples/vpn.yaml", "examples/split-config", "test/plan/fixtures/volumes-notes.yaml", "examples/templates.yaml"];
const MGMT = "mgmt";

/** Whether a rule set lets the management qube make this call (dest as sent; qubes it created carry the tag). */
function allows(rules: readonly PolicyRule[], call: { method: string; arg: string; dest: string }, createdByMgmt: ReadonlySet<string>): boolean {
  const targets = call.dest === "dom0" ? [ADMINVM] : [call.dest, ...(createdByMgmt.has(call.dest) ? [createdByTag(MGMT)] : [])];
  return rules.some((r) => r.service === call.method && (r.argument === "*" || r.argument === `+${call.arg}`) && targets.includes(r.target));
}

describe("the policy files", () => {
  it("examples/reference.yaml, plan and apply", async () => {
    const r = await runIn(["policy", "--mgmt", MGMT, "--apply", "examples/reference.yaml"]);
    expect(r.code).toBe(0);
    await expect(r.stdout).toMatchFileSnapshot("golden/reference-apply.policy");
  });

  it("examples/minimal.yaml, plan only", async () => {
    const r = await runIn(["policy", "--mgmt", MGMT, "examples/minimal.yaml"]);
    expect(r.code).toBe(0);
    await expect(r.stdout).toMatchFileSnapshot("golden/minimal-plan.policy");
  });

  it("refuses a management qube name that is not one, and an invalid config", async () => {
    expect((await runIn(["policy", "--mgmt", "dom0", "examples/minimal.yaml"])).stderr).toMatch(/--mgmt 'dom0' is not the name of a management qube/);
    expect((await runIn(["policy", "--mgmt", "-bad", "examples/minimal.yaml"])).code).toBe(1);
    expect((await runIn(["policy", "--mgmt", MGMT, "test/plan/fixtures/does-not-exist.yaml"])).code).toBe(1);
  });
});

describe("what every policy keeps to", () => {
  for (const example of EXAMPLES) {
    it(example, () => {
      const desired = loadDesired(example);
      const plan = policyRules({ desired, mgmt: MGMT, apply: false });
      const apply = policyRules({ desired, mgmt: MGMT, apply: true });
      expect(plan.filter((r) => isMutating(r.service))).toEqual([]);
      expect(apply.filter((r) => r.purpose === "read")).toEqual(plan);
      for (const r of apply) expect(r.target).not.toMatch(/managed-by/);
      const adopted = new Set([...desired.qubes.values()].filter((q) => q.adopt).map((q) => q.name));
      const referencedNetvms = new Set([...desired.qubes.values()].map((q) => q.properties.get("netvm")).flatMap((v) => (v?.kind === "vm" && v.value !== null ? [v.value] : [])));
      // A clone source the config does not create: read (CloneFrom), and stopped and started around the copy of a file pool.
      const sources = new Set([...desired.qubes.values()].flatMap((q) => (q.clone !== undefined && !desired.qubes.has(q.clone) ? [q.clone] : [])));
      const sourceCalls = new Set(["admin.vm.volume.CloneFrom", "admin.vm.Shutdown", "admin.vm.Start"]);
      for (const r of apply.filter((x) => x.purpose === "write")) {
        const ok =
          r.target === ADMINVM ||
          r.target === createdByTag(MGMT) ||
          adopted.has(r.target) ||
          (r.service === "admin.vm.Start" && referencedNetvms.has(r.target)) ||
          (sourceCalls.has(r.service) && sources.has(r.target));
        expect({ rule: r, ok }).toEqual({ rule: r, ok: true });
      }
      // Removal only of what the management qube created; a config that only adopts removes nothing.
      const creates = [...desired.qubes.values()].some((q) => !q.adopt);
      expect(apply.filter((r) => r.service === "admin.vm.Remove").map((r) => r.target)).toEqual(creates ? [createdByTag(MGMT)] : []);
    });
  }
});

describe("a policy allows every call a plan and an apply of its config make", () => {
  let sim: TestSim;
  beforeEach(async () => {
    sim = await startTestSim();
  });
  afterEach(async () => {
    await sim.stop();
  });

  for (const example of EXAMPLES) {
    it(example, async () => {
      const desired: DesiredState = loadDesired(example);
      const created = new Set([...desired.qubes.values()].filter((q) => !q.adopt).map((q) => q.name));
      const connect = ["--connect", `qubesd:${sim.socketPath}`];
      expect((await runIn(["plan", ...connect, example])).code).toBe(0);
      const planCalls = [...sim.calls];
      const readOnly = policyRules({ desired, mgmt: MGMT, apply: false });
      expect(planCalls.filter((c) => !allows(readOnly, c, created))).toEqual([]);

      expect((await runIn(["apply", ...connect, "--auto-approve", example])).code).toBe(0);
      expect((await runIn(["apply", ...connect, "--auto-approve", example])).code).toBe(0);
      const full = policyRules({ desired, mgmt: MGMT, apply: true });
      expect(sim.calls.filter((c) => !allows(full, c, created))).toEqual([]);
      expect(sim.calls.filter((c) => isMutating(c.method)).length).toBeGreaterThan(0);
    });
  }
});

describe("--connect: what the inventory lists and the config dropped stays removable", () => {
  let sim: TestSim;
  beforeEach(async () => {
    sim = await startTestSim();
  });
  afterEach(async () => {
    await sim.stop();
  });

  it("grants the removal of qube notes and its inventory entry only when the inventory was read", async () => {
    const connect = ["--connect", `qubesd:${sim.socketPath}`];
    expect((await runIn(["apply", ...connect, "--auto-approve", "examples/minimal.yaml"])).code).toBe(0);
    const without = await runIn(["policy", "--mgmt", MGMT, "--apply", "test/apply/fixtures/minimal-gone.yaml"]);
    const withInventory = await runIn(["policy", ...connect, "--mgmt", MGMT, "--apply", "test/apply/fixtures/minimal-gone.yaml"]);
    expect(withInventory.code).toBe(0);
    const lines = (t: string): string[] => t.split("\n").filter((l) => /\bnotes\b/.test(l) && !l.startsWith("#")).map((l) => l.replace(/ +/g, " "));
    expect(lines(without.stdout)).toEqual([]);
    expect(lines(withInventory.stdout)).toEqual([
      "admin.vm.List * mgmt notes allow target=dom0",
      "admin.vm.feature.Get * mgmt notes allow target=dom0",
      "admin.vm.feature.List * mgmt notes allow target=dom0",
      "admin.vm.firewall.Get * mgmt notes allow target=dom0",
      "admin.vm.property.GetAll * mgmt notes allow target=dom0",
      "admin.vm.tag.List * mgmt notes allow target=dom0",
      "admin.vm.volume.Info * mgmt notes allow target=dom0",
      "admin.vm.volume.List * mgmt notes allow target=dom0",
      "admin.vm.Remove * mgmt notes allow target=dom0",
      "admin.vm.Resume * mgmt notes allow target=dom0",
      "admin.vm.Shutdown +wait mgmt notes allow target=dom0",
      "admin.vm.Unpause * mgmt notes allow target=dom0",
      // Destroyed when created, released when adopted (or of format 1): its records, tag and entries go.
      "admin.vm.feature.Remove +qubes-iac.minimal.adopted.notes mgmt @adminvm allow target=dom0",
      "admin.vm.feature.Remove +qubes-iac.minimal.created.notes mgmt @adminvm allow target=dom0",
      "admin.vm.feature.Remove +qubes-iac.minimal.intent.notes mgmt @adminvm allow target=dom0",
      "admin.vm.feature.Remove +qubes-iac.minimal.qube.notes mgmt @adminvm allow target=dom0",
      "admin.vm.feature.Remove * mgmt notes allow target=dom0",
      "admin.vm.feature.Set +qubes-iac.minimal.adopted.notes mgmt @adminvm allow target=dom0",
      "admin.vm.feature.Set +qubes-iac.minimal.created.notes mgmt @adminvm allow target=dom0",
      "admin.vm.feature.Set +qubes-iac.minimal.intent.notes mgmt @adminvm allow target=dom0",
      "admin.vm.tag.Remove +managed-by-minimal mgmt notes allow target=dom0",
    ]);
    const inventory = readInventory("minimal", ["qubes-iac.minimal.format", "qubes-iac.minimal.created.notes"]);
    const rules = policyRules({ desired: loadDesired("test/apply/fixtures/minimal-gone.yaml"), mgmt: MGMT, apply: true, inventory });
    expect(rules.some((r) => r.service === "admin.vm.Remove" && r.target === "notes")).toBe(true);
  });
});

describe("guest agents reached over qrexec", () => {
  it("allow the agent's service in each qube that has one, not redirected to dom0, in plan and apply policies", async () => {
    const { desiredFromYaml } = await import("../plan/_helpers.js");
    const desired = desiredFromYaml(
      [
        "version: 1",
        "owner: laptop",
        "qubes:",
        "  work:",
        "    adopt: true",
        "    state: running",
        "    guest:",
        "      files: {/home/user/.motd: \"hello\\n\"}",
        "guests:",
        "  vm1:",
        "    agent: {qube: personal, qrexec: my.Agent}",
        "    files: {/etc/motd: \"hi\\n\"}",
        "  vm2:",
        "    agent: {socket: /run/vm2-qga.sock}",
        "",
      ].join("\n"),
    );
    for (const apply of [false, true]) {
      const guest = policyRules({ desired, mgmt: MGMT, apply }).filter((r) => r.purpose === "guest");
      expect(guest).toEqual([
        { service: "my.Agent", argument: "*", target: "personal", purpose: "guest" },
        { service: "qubes-iac.GuestAgent", argument: "*", target: "work", purpose: "guest" },
      ]);
    }
    const { renderPolicy } = await import("../../src/apply/policy.js");
    const text = renderPolicy(policyRules({ desired, mgmt: MGMT, apply: false }), { owner: "laptop", mgmt: MGMT, apply: false, configs: [], generator: "test" });
    expect(text).toMatch(/^qubes-iac\.GuestAgent +\* +mgmt +work +allow$/m);
    expect(text).not.toMatch(/GuestAgent.*target=dom0/);
  });
});
