// Least privilege, with the generated policy in force line by line: the built CLI runs from a
// management qube `mgmt` over `--connect qrexec`, and test/reliability/bin/qrexec-client-vm
// decides each call as dom0's policy daemon would — service, argument, source and target,
// @adminvm and @tag:created-by-mgmt included — refusing with exit 126. The read-only policy
// lets plan work and stops apply at its first write, naming it, before anything changes; the
// --apply policy is enough for a whole apply, qubes it creates included; without one of its
// lines the apply fails cleanly at exactly that call (every other call allowed: the rest of the
// policy is enough), and what the summary lists is all it did; a create that fails after Create is
// re-read, and removed again, within the --apply policy.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { isLockCall, isMutating } from "../helpers/sim.js";
import { cli, clientOf, startSim, type Sim } from "./_harness.js";
import { decisionsIn, viaQrexec as viaStandin } from "./_qrexec.js";

const MGMT = "mgmt";
let sim: Sim;
let dir: string;
beforeEach(async () => {
  sim = await startSim();
  dir = mkdtempSync(join(tmpdir(), "qiac-lp-"));
  const c = clientOf(sim);
  await c.vm.create({ klass: "AppVM", name: MGMT, label: "black", template: "fedora-40" });
  await c.close();
  sim.calls.length = 0;
});
afterEach(async () => {
  await sim.stop();
  rmSync(dir, { recursive: true, force: true });
});

/** The policy `qubes-iac policy` generates for the config, as a file. */
async function policy(config: string, apply: boolean, drop?: RegExp): Promise<string> {
  const r = await cli(sim, ["policy", "--mgmt", MGMT, ...(apply ? ["--apply"] : []), config]);
  expect(r.code).toBe(0);
  const lines = r.stdout.split("\n");
  const kept = drop === undefined ? lines : lines.filter((l) => !drop.test(l));
  if (drop !== undefined) expect(kept.length).toBe(lines.length - 1);
  const path = join(dir, `${apply ? "apply" : "plan"}-${Math.random().toString(36).slice(2)}.policy`);
  writeFileSync(path, kept.join("\n"));
  return path;
}

const decisions = (): Array<[string, string, string]> => decisionsIn(join(dir, "decisions.jsonl"));

const viaQrexec = (args: string[], policyFile: string) => viaStandin(args, { socketPath: sim.socketPath, src: MGMT, policy: policyFile, log: join(dir, "decisions.jsonl") });

const writes = (): string[] => sim.calls.filter((c) => isMutating(c.method)).map((c) => `${c.method}+${c.arg} → ${c.dest}`);

describe("the generated policy in force, line by line", () => {
  it("read-only: plan works, apply stops at its first write, naming it, before anything changes", async () => {
    const config = "examples/workstation.yaml";
    const readOnly = await policy(config, false);
    const plan = await viaQrexec(["plan", config], readOnly);
    expect(plan.code).toBe(0);
    expect(plan.stdout).toMatch(/Plan: 0 to add, 7 to change, 0 to destroy\.\n$/);
    expect(decisions().filter(([, , d]) => d !== "allow")).toEqual([]);

    const refused = await viaQrexec(["apply", "--auto-approve", config], readOnly);
    expect(refused.code).toBe(1);
    // The first write is the lock's claim, named by the apply's random id (docs/locking.md).
    expect(refused.stderr).toMatch(
      /\nqubes-iac: could not take the lock: admin\.label\.Create\+qubes-iac\.lock\.workstation\.[0-9a-f]{12} to dom0 was refused by qrexec policy \(qrexec-client-vm exit 126\): Request refused; allow it in dom0's \/etc\/qubes\/policy\.d \(see `qubes-iac policy`\); nothing was changed\n/,
    );
    expect(writes()).toEqual([]);
    expect(decisions().filter(([, , d]) => d !== "allow")).toEqual([["dom0", expect.stringMatching(/^admin\.label\.Create\+qubes-iac\.lock\.workstation\.[0-9a-f]{12}$/), "deny"]]);
  }, 120_000);

  it("--apply: a whole apply works; a qube the config creates is reached through @tag:created-by-mgmt, a tag only dom0 sets", async () => {
    const config = "examples/minimal.yaml";
    const full = await policy(config, true);
    expect(readFileSync(full, "utf8")).toMatch(/admin\.vm\.tag\.Set +\* +mgmt +@tag:created-by-mgmt +allow target=dom0/);
    // No write names `notes`: the qube does not exist when the policy is made.
    expect(readFileSync(full, "utf8").split("# Writes")[1]).not.toMatch(/ notes /);
    const applied = await viaQrexec(["apply", "--auto-approve", config], full);
    expect(applied.stderr).not.toMatch(/refused/);
    expect(applied.code).toBe(0);
    const c = clientOf(sim);
    expect(await c.tag.list("notes")).toContain(`created-by-${MGMT}`);
    await c.close();
    expect(decisions().some(([target, service, d]) => target === "notes" && service.startsWith("admin.vm.tag.Set") && d === "allow")).toBe(true);
    expect(decisions().filter(([, , d]) => d !== "allow")).toEqual([]);
    expect((await viaQrexec(["plan", config], await policy(config, false))).stdout).toBe("No changes.\n");
  }, 120_000);

  it("one write left out of the policy: the apply fails at exactly that call, and did exactly what its summary says", async () => {
    const config = "examples/workstation.yaml";
    const missing = await policy(config, true, /^admin\.vm\.firewall\.Set +\* +mgmt +work /);
    const r = await viaQrexec(["apply", "--auto-approve", config], missing);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(
      /\nFailed:\n {2}update:qube\.work: admin\.vm\.firewall\.Set to work was refused by qrexec policy \(qrexec-client-vm exit 126\): Request refused; allow it in dom0's \/etc\/qubes\/policy\.d \(see `qubes-iac policy`\)\n/,
    );
    expect(r.stdout).toMatch(/\nApply failed: 0 added, 6 changed, 0 destroyed\.\n/);
    // Only that call was refused: the rest of the --apply policy covers everything else.
    expect(decisions().filter(([, , d]) => d !== "allow")).toEqual([["work", "admin.vm.firewall.Set", "deny"]]);
    // Nothing but the config's qubes and the owner's dom0 records was written; the lock was given back.
    const outside = sim.calls
      .filter((c) => isMutating(c.method) && !isLockCall(c))
      .filter((c) => !["sys-net", "sys-firewall", "default-dvm", "work", "personal", "untrusted", "vault"].includes(c.dest) && !c.arg.startsWith("qubes-iac.workstation."));
    expect(outside).toEqual([]);
    expect(sim.calls.filter((c) => isLockCall(c) && isMutating(c.method)).map((c) => c.method)).toEqual(["admin.label.Create", "admin.label.Create", "admin.vm.feature.Set", "admin.vm.feature.Remove", "admin.label.Remove", "admin.label.Remove"]);
    const left = JSON.parse((await cli(sim, ["plan", "--json", config])).stdout) as { steps: Array<{ id: string }> };
    expect(left.steps.map((s) => s.id)).toEqual(["update:qube.work"]);
  }, 120_000);
});

describe("a create that fails after Create, with the generated policy in force", () => {
  it("re-reads the qube and removes it again (it was more connected than the config asks) through what the --apply policy grants", async () => {
    const config = join(dir, "qubes.yaml");
    writeFileSync(config, "version: 1\nowner: iso\nqubes:\n  offline1:\n    class: AppVM\n    template: fedora-40\n    label: black\n    properties: {netvm: null}\n    firewall:\n      - {action: drop}\n");
    const full = await policy(config, true);
    sim.faults.add({ method: "admin.vm.property.Set", arg: "netvm", dest: "offline1", calls: { from: 1, to: 1 }, action: { kind: "exception", qubesClass: "QubesException", message: "injected" } });
    const r = await viaQrexec(["apply", "--auto-approve", config], full);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain("; offline1 removed again: it was left with netvm sys-firewall, firewall accept, more connected than the config asks\n");
    expect(decisions().filter(([, , d]) => d !== "allow")).toEqual([]);
    const c = clientOf(sim);
    expect((await c.vm.list()).map((q) => q.name)).not.toContain("offline1");
    await c.close();
    expect((await viaQrexec(["apply", "--auto-approve", config], full)).code).toBe(0);
    expect((await viaQrexec(["plan", config], full)).stdout).toBe("No changes.\n");
  }, 120_000);
});
