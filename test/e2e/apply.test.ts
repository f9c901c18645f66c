// The built CLI applies every example against the simulator's default fixture over a real socket:
// the exact ordered mutating call log of reference.yaml with --parallelism 1; with the default
// parallelism the same calls, each step's in its order and after the steps it depends on; then
// `plan` says No changes. and a second apply makes no mutating call.
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { opCall } from "../../src/apply/admin-api.js";
import type { JsonPlan } from "../../src/plan/json.js";
import { isAdminOp } from "../../src/plan/ops.js";
import { runBuiltCli } from "../helpers/cli.js";
import { repoRoot } from "../helpers/shared.js";
import { isMutating, startTestSim, type TestSim } from "../helpers/sim.js";
import { POLICY_STANDIN_DIR } from "../reliability/_qrexec.js";
import { join } from "node:path";

let sim: TestSim;
beforeEach(async () => {
  sim = await startTestSim();
});
afterEach(async () => {
  await sim.stop();
});

// Connected as dom0 is, through qubesd's socket: policy files go through dom0's
// qubes-rpc-multiplexer, here its stand-in, which runs policy.* on the simulator's policy directory.
const cli = (args: string[]) =>
  runBuiltCli([args[0] as string, "--connect", `qubesd:${sim.socketPath}`, ...args.slice(1)], {
    cwd: repoRoot,
    env: { QUBES_IAC_RPC_MULTIPLEXER: join(POLICY_STANDIN_DIR, "qubes-rpc-multiplexer"), QIAC_STANDIN_SOCKET: sim.socketPath },
  });
/** Mutating calls as `method+arg → dest`; a qube's UUID (random for a new one) as `<uuid>`. */
const mutations = (from = 0): string[] =>
  sim.calls
    .slice(from)
    .filter((c) => isMutating(c.method))
    .map((c) => `${c.method}+${c.arg.replace(/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/, "<uuid>")} → ${c.dest}`);

/** Applies, then checks the next plan and a second apply; returns the first apply's mutating calls. */
async function applyAndConverge(example: string, extra: string[] = []): Promise<string[]> {
  const first = await cli(["apply", "--auto-approve", ...extra, example]);
  expect(first.stderr).not.toMatch(/error/);
  expect(first.code).toBe(0);
  expect(first.stdout).toMatch(/\nApply complete: \d+ added, \d+ changed, 0 destroyed\.\n$/);
  // The lock's claim label carries the apply's random id (docs/locking.md).
  const applied = mutations().map((m) => m.replace(/^(admin\.label\.(?:Create|Remove)\+qubes-iac\.lock\.[^.]+)\.[0-9a-f]{12} /, "$1.ID "));

  const plan = await cli(["plan", example]);
  expect(plan.code).toBe(0);
  expect(plan.stdout).toBe("No changes.\n");
  const before = sim.calls.length;
  const second = await cli(["apply", "--auto-approve", example]);
  expect(second.code).toBe(0);
  expect(second.stdout).toBe("No changes.\n");
  expect(mutations(before)).toEqual([]);
  return applied;
}

const REFERENCE_CALLS = [
  "admin.label.Create+qubes-iac.lock.laptop.ID → dom0",
  "admin.label.Create+qubes-iac.lock.laptop → dom0",
  "admin.vm.feature.Set+qubes-iac.laptop.lock → dom0",
  "admin.vm.feature.Set+qubes-iac.laptop.format → dom0",
  "admin.vm.feature.Set+qubes-iac.laptop.label.magenta → dom0",
  "admin.label.Create+magenta → dom0",
  "admin.vm.feature.Set+qubes-iac.laptop.pool.fast → dom0",
  "admin.pool.Add+file → dom0",
  "admin.vm.feature.Set+qubes-iac.laptop.intent.keys → dom0",
  "admin.vm.Create.AppVM+fedora-40 → dom0",
  "admin.vm.property.Set+netvm → keys",
  "admin.vm.feature.Set+qubes-iac.laptop.<uuid>.own → keys",
  "admin.vm.tag.Set+managed-by-laptop → keys",
  "admin.vm.feature.Set+qubes-iac.laptop.created.keys → dom0",
  "admin.vm.feature.Remove+qubes-iac.laptop.intent.keys → dom0",
  "admin.vm.feature.Set+qubes-iac.laptop.intent.sys-firewall → dom0",
  "admin.vm.feature.Set+qubes-iac.laptop.<uuid>.own → sys-firewall",
  "admin.vm.tag.Set+managed-by-laptop → sys-firewall",
  "admin.vm.feature.Set+qubes-iac.laptop.adopted.sys-firewall → dom0",
  "admin.vm.feature.Remove+qubes-iac.laptop.intent.sys-firewall → dom0",
  "admin.vm.property.Set+memory → sys-firewall",
  "admin.vm.feature.Set+qubes-iac.laptop.intent.sys-vpn → dom0",
  "admin.vm.Create.AppVM+fedora-40 → dom0",
  "admin.vm.property.Set+netvm → sys-vpn",
  "admin.vm.feature.Set+qubes-iac.laptop.<uuid>.own → sys-vpn",
  "admin.vm.tag.Set+managed-by-laptop → sys-vpn",
  "admin.vm.feature.Set+qubes-iac.laptop.created.sys-vpn → dom0",
  "admin.vm.feature.Remove+qubes-iac.laptop.intent.sys-vpn → dom0",
  "admin.vm.property.Set+provides_network → sys-vpn",
  "admin.vm.property.Set+memory → sys-vpn",
  "admin.vm.feature.Set+qubes-iac.laptop.<uuid>.feature.service.network-manager → sys-vpn",
  "admin.vm.feature.Set+service.network-manager → sys-vpn",
  "admin.vm.feature.Set+qubes-iac.laptop.<uuid>.tag.vpn → sys-vpn",
  "admin.vm.tag.Set+vpn → sys-vpn",
  "admin.vm.feature.Set+qubes-iac.laptop.intent.dev → dom0",
  "admin.vm.CreateInPool.AppVM+fedora-40 → dom0",
  "admin.vm.property.Set+netvm → dev",
  "admin.vm.feature.Set+qubes-iac.laptop.<uuid>.firewall → dev",
  "admin.vm.firewall.Set+ → dev",
  "admin.vm.feature.Set+qubes-iac.laptop.<uuid>.own → dev",
  "admin.vm.tag.Set+managed-by-laptop → dev",
  "admin.vm.feature.Set+qubes-iac.laptop.created.dev → dom0",
  "admin.vm.feature.Remove+qubes-iac.laptop.intent.dev → dom0",
  "admin.vm.feature.Set+qubes-iac.laptop.<uuid>.protect → dev",
  "admin.vm.property.Set+maxmem → dev",
  "admin.vm.feature.Set+qubes-iac.laptop.<uuid>.feature.service.cups → dev",
  "admin.vm.feature.Set+service.cups → dev",
  "admin.vm.feature.Set+qubes-iac.laptop.<uuid>.tag.dev → dev",
  "admin.vm.tag.Set+dev → dev",
  "admin.vm.volume.Resize+private → dev",
  "admin.vm.Start+ → dev",
  "admin.vm.feature.Remove+qubes-iac.laptop.lock → dom0",
  "admin.label.Remove+qubes-iac.lock.laptop → dom0",
  "admin.label.Remove+qubes-iac.lock.laptop.ID → dom0",
];

describe("apply of the built CLI", () => {
  it("examples/reference.yaml with --parallelism 1: the exact ordered mutating call log", async () => {
    expect(await applyAndConverge("examples/reference.yaml", ["--parallelism", "1"])).toEqual(REFERENCE_CALLS);
  });

  it("examples/reference.yaml in parallel: the same calls, each step's in order, after the steps it depends on", async () => {
    const plan = JSON.parse((await cli(["plan", "--json", "examples/reference.yaml"])).stdout) as JsonPlan;
    const applied = await applyAndConverge("examples/reference.yaml");
    expect([...applied].sort()).toEqual([...REFERENCE_CALLS].sort());
    // Where each step's calls landed in the log (Create lines repeat across steps; match in step order).
    const taken = new Set<number>();
    const positions = new Map<string, number[]>();
    for (const step of plan.steps) {
      let from = 0;
      const at: number[] = [];
      for (const op of step.ops) {
        if (!isAdminOp(op)) throw new Error(`reference.yaml has no guests, but step ${step.id} has ${op.op}`);
        const c = opCall(op);
        // The new qube's UUID is read (not a mutation); its record ops name it only once read.
        if (!isMutating(c.method)) continue;
        const arg = op.op === "record.set" || op.op === "record.remove" ? `qubes-iac.${op.owner}.<uuid>.${op.record}` : c.arg;
        const text = `${c.method}+${arg} → ${c.dest}`;
        const i = applied.findIndex((x, j) => j >= from && x === text && !taken.has(j));
        expect({ step: step.id, text, found: i >= 0 }).toEqual({ step: step.id, text, found: true });
        taken.add(i);
        at.push(i);
        from = i + 1;
      }
      positions.set(step.id, at);
    }
    for (const step of plan.steps) {
      const first = Math.min(...(positions.get(step.id) ?? []));
      for (const dep of step.depends_on) expect({ step: step.id, dep, after: Math.max(...(positions.get(dep) ?? [])) < first }).toEqual({ step: step.id, dep, after: true });
    }
  });

  for (const example of ["examples/minimal.yaml", "examples/workstation.yaml", "examples/offline-vault.yaml", "examples/vpn.yaml", "examples/split-config", "examples/templates.yaml", "examples/split-gpg.yaml"]) {
    it(`${example}: applies, then No changes. and a second apply makes no mutating call`, async () => {
      expect((await applyAndConverge(example)).length).toBeGreaterThan(0);
    });
  }
});
