// The generated policy in force, as far as a test can put it in force: the stand-in
// qrexec-client-vm (test/fixtures/bin) refuses every method the policy does not allow (the
// complement of its allowed set), like qrexec would. With the plan-only policy the built CLI plans
// over `--connect qrexec`, and apply fails cleanly at its first write, naming the refused call;
// with the --apply policy apply succeeds and the next plan says No changes.
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { opMethod, type Op } from "../../src/plan/ops.js";
import { READER_CALLS, READER_FALLBACK_METHODS } from "../../src/apply/admin-api.js";
import { runBuiltCli } from "../helpers/cli.js";
import { repoRoot } from "../helpers/shared.js";
import { isMutating, startTestSim, type TestSim } from "../helpers/sim.js";

const CONFIG = "examples/minimal.yaml";

let sim: TestSim;
beforeEach(async () => {
  sim = await startTestSim();
});
afterEach(async () => {
  await sim.stop();
});

/** Every Admin API method qubes-iac can call: the reader's (with the GetAll fallback) and every op's. */
function everyMethod(): string[] {
  const ops: Op[] = [
    ...["AppVM", "TemplateVM", "StandaloneVM", "DispVM"].flatMap((c): Op[] => [
      { op: "vm.create", class: c, name: "x", label: "red" },
      { op: "vm.create", class: c, name: "x", label: "red", pool: "p" },
    ]),
    { op: "vm.remove", vm: "x" },
    { op: "vm.start", vm: "x" },
    { op: "vm.shutdown", vm: "x" },
    { op: "vm.pause", vm: "x" },
    { op: "vm.unpause", vm: "x" },
    { op: "property.set", holder: { vm: "x" }, name: "n", value: "" },
    { op: "property.set", holder: "global", name: "n", value: "" },
    { op: "property.reset", holder: { vm: "x" }, name: "n" },
    { op: "property.reset", holder: "global", name: "n" },
    { op: "feature.set", vm: "x", name: "n", value: "" },
    { op: "feature.remove", vm: "x", name: "n" },
    { op: "tag.set", vm: "x", name: "n" },
    { op: "tag.remove", vm: "x", name: "n" },
    { op: "firewall.set", vm: "x", rules: [] },
    { op: "label.create", name: "n", colour: "0x000000" },
    { op: "label.remove", name: "n" },
    { op: "pool.add", driver: "file", name: "n", params: {} },
    { op: "pool.remove", name: "n" },
    { op: "volume.resize", vm: "x", volume: "private", size: "1" },
  ];
  return [...new Set([...Object.values(READER_CALLS).flatMap((u) => u.map((x) => x.method)), ...READER_FALLBACK_METHODS, ...ops.map(opMethod)])].sort();
}

/** The services a generated policy allows (its non-comment lines' first field). */
async function allowedBy(args: string[]): Promise<Set<string>> {
  const r = await runBuiltCli(["policy", "--mgmt", "mgmt", ...args, CONFIG], { cwd: repoRoot });
  expect(r.code).toBe(0);
  return new Set(r.stdout.split("\n").filter((l) => l !== "" && !l.startsWith("#")).map((l) => l.split(/\s+/)[0] as string));
}

function viaQrexec(args: string[], deny: readonly string[]) {
  return runBuiltCli([args[0] as string, "--connect", "qrexec", ...args.slice(1)], {
    cwd: repoRoot,
    env: {
      PATH: `${join(repoRoot, "test", "fixtures", "bin")}:${process.env.PATH ?? "/usr/bin:/bin"}`,
      QIAC_STANDIN_SOCKET: sim.socketPath,
      QIAC_STANDIN_DENY: deny.join(","),
    },
    timeoutMs: 60_000,
  });
}

describe("the generated policy through the stand-in qrexec-client-vm", () => {
  it("plan-only policy: plan works, apply stops at its first write naming the refused call; --apply policy: apply works", async () => {
    const readOnly = await allowedBy([]);
    expect([...readOnly].filter(isMutating)).toEqual([]);
    const denyWrites = everyMethod().filter((m) => !readOnly.has(m));
    expect(denyWrites).toContain("admin.vm.feature.Set");
    expect(denyWrites).not.toContain("admin.vm.property.GetAll");

    const plan = await viaQrexec(["plan", CONFIG], denyWrites);
    expect(plan.stderr).toMatch(/^qubes-iac: using qrexec-client-vm/);
    expect(plan.code).toBe(0);
    expect(plan.stdout).toMatch(/Plan: 1 to add, 0 to change, 0 to destroy\.\n$/);

    const refused = await viaQrexec(["apply", "--auto-approve", CONFIG], denyWrites);
    expect(refused.code).toBe(1);
    // The first write is the apply lock's (docs/locking.md): refused, nothing else is tried.
    expect(refused.stdout).toMatch(/Plan: 1 to add, 0 to change, 0 to destroy\.\n$/);
    // Its claim label, named by the apply's random id (docs/locking.md).
    expect(refused.stderr).toMatch(
      /\nqubes-iac: could not take the lock: admin\.label\.Create\+qubes-iac\.lock\.minimal\.[0-9a-f]{12} to dom0 was refused by qrexec policy \(qrexec-client-vm exit 126\): Request refused; allow it in dom0's \/etc\/qubes\/policy\.d \(see `qubes-iac policy`\); nothing was changed\n/,
    );
    expect(sim.calls.filter((c) => isMutating(c.method))).toEqual([]);

    const full = await allowedBy(["--apply"]);
    const deny = everyMethod().filter((m) => !full.has(m));
    expect(deny).toEqual(expect.arrayContaining(["admin.pool.Add", "admin.property.Set", "admin.vm.Create.TemplateVM"]));
    const applied = await viaQrexec(["apply", "--auto-approve", CONFIG], deny);
    expect(applied.stderr).not.toMatch(/refused/);
    expect(applied.code).toBe(0);
    expect((await viaQrexec(["plan", CONFIG], denyWrites)).stdout).toBe("No changes.\n");
  });
});
