// apply and a shutdown qubesd does not finish or refuses: a timeout (qubes/vm/qubesvm.py
// shutdown, `wait` → QubesVMShutdownTimeoutError: R4.2 :1370, R4.3 :1683, main :1731) is a clear
// error naming the qube, and admin.vm.Kill follows it only with --kill-after-timeout; a refusal
// for running clients is told per kind and release; Shutdown is never sent with `force`.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { executorFromClient, opCall } from "../../src/apply/admin-api.js";
import { applyEvents } from "../helpers/apply-events.js";
import { isLockCall, isMutating } from "../helpers/sim.js";
import { startSession, type SimSession } from "../plan/_helpers.js";
import { mutations, runIn } from "./_cli.js";

let s: SimSession;
let dir: string;
beforeEach(async () => {
  s = await startSession();
  dir = mkdtempSync(join(tmpdir(), "qiac-apply-shutdown-"));
});
afterEach(async () => {
  await s.stop();
  rmSync(dir, { recursive: true, force: true });
});

const TIMEOUT = "admin.vm.Shutdown+wait/vault@1=exception:QubesVMShutdownTimeoutError:Domain shutdown timed out: 'vault'";
const power = async (vm: string) => (await s.client.vm.list()).find((q) => q.name === vm)?.state;
const powerCalls = (vm: string) => s.sim.calls.filter((c) => !isLockCall(c) && isMutating(c.method) && c.dest === vm).map((c) => `${c.method}+${c.arg}`);
async function applyHalted(extra: string[]) {
  const config = join(dir, "qubes.yaml");
  writeFileSync(config, "version: 1\nowner: o\nqubes:\n  vault: {adopt: true, state: halted}\n");
  return runIn(["apply", "--connect", `qubesd:${s.sim.socketPath}`, "--auto-approve", ...extra, config]);
}

describe("a shutdown that times out", () => {
  it("fails the step with a message naming the qube, and kills nothing", async () => {
    await s.client.vm.start("vault");
    s.sim.faults.add(TIMEOUT);
    const r = await applyHalted([]);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain("qube vault did not halt within its shutdown_timeout (QubesVMShutdownTimeoutError)");
    expect(r.stdout).toContain("--kill-after-timeout");
    expect(powerCalls("vault").filter((c) => c.startsWith("admin.vm.Shutdown") || c.startsWith("admin.vm.Kill"))).toEqual(["admin.vm.Shutdown+wait"]);
    expect(await power("vault")).toBe("Running");
  });

  it("with --kill-after-timeout: admin.vm.Kill only after the timed-out Shutdown+wait, and the apply goes on", async () => {
    await s.client.vm.start("vault");
    s.sim.faults.add(TIMEOUT);
    const r = await applyHalted(["--kill-after-timeout", "--json"]);
    expect(r.code).toBe(0);
    expect(powerCalls("vault").filter((c) => c.startsWith("admin.vm.Shutdown") || c.startsWith("admin.vm.Kill"))).toEqual(["admin.vm.Shutdown+wait", "admin.vm.Kill+"]);
    expect(await power("vault")).toBe("Halted");
    expect(applyEvents(r.stdout).filter((e) => e.type === "op_note")).toEqual([
      expect.objectContaining({ step: "update:qube.vault", note: "qube vault did not halt within its shutdown_timeout (QubesVMShutdownTimeoutError): killed (admin.vm.Kill, --kill-after-timeout)" }),
    ]);
  });

  it("without a timeout --kill-after-timeout never kills", async () => {
    await s.client.vm.start("vault");
    const r = await applyHalted(["--kill-after-timeout"]);
    expect(r.code).toBe(0);
    expect(mutations(s.sim.calls, isMutating).filter((c) => c.startsWith("admin.vm.Kill"))).toEqual([]);
  });
});

describe("a shutdown refused for running clients", () => {
  it.each([
    // R4.2 qubes/ext/audio.py:69-79 (QubesVMError); R4.3 and main :69-82 (QubesVMInUseError)
    ["QubesVMError", "There are running VMs using this VM as AudioVM: personal", "audiovm"],
    ["QubesVMInUseError", "There are running VMs using this VM as AudioVM: personal", "audiovm"],
    // qubes/ext/gui.py: QubesVMError on every release
    ["QubesVMError", "There are running VMs using this VM as GuiVM: personal", "guivm"],
  ])("%s %s: told as the %s it is, naming the qube", async (cls, message, kind) => {
    const run = executorFromClient(s.client).run;
    s.sim.faults.add(`admin.vm.Shutdown/vault@1=exception:${cls}:${message}`);
    await s.client.vm.start("vault");
    const out = await run({ op: "vm.shutdown", vm: "vault" });
    expect(out.kind).toBe("failed");
    expect(out.kind === "failed" ? out.failure.message : "").toBe(
      `qube vault cannot be shut down: running qubes use it as their ${kind}: personal (${cls}; qubesd refuses with ${kind === "guivm" ? "QubesVMError on every release" : "QubesVMInUseError on R4.3 and later, QubesVMError on R4.2"}). Shut them down first, or point them at another qube`,
    );
  });

  it("is never answered with a kill, --kill-after-timeout or not", async () => {
    s.sim.faults.add("admin.vm.Shutdown/vault@1=exception:QubesVMInUseError:There are other VMs connected to this VM: work");
    await s.client.vm.start("vault");
    const out = await executorFromClient(s.client, { killAfterTimeout: true }).run({ op: "vm.shutdown", vm: "vault" });
    expect(out.kind).toBe("failed");
    expect(s.sim.calls.filter((c) => c.method === "admin.vm.Kill")).toEqual([]);
    expect(await power("vault")).toBe("Running");
  });

  it("a guivm message under another class is not taken for a refusal", async () => {
    s.sim.faults.add("admin.vm.Shutdown/vault@1=exception:QubesVMInUseError:There are running VMs using this VM as GuiVM: personal");
    await s.client.vm.start("vault");
    const out = await executorFromClient(s.client).run({ op: "vm.shutdown", vm: "vault" });
    expect(out.kind === "failed" ? out.failure.message : "").toBe("QubesVMInUseError: There are running VMs using this VM as GuiVM: personal");
  });
});

it("Shutdown is sent with `wait` and never `force` (force means: ignore the running clients)", async () => {
  expect(opCall({ op: "vm.shutdown", vm: "work" })).toEqual({ method: "admin.vm.Shutdown", dest: "work", arg: "wait" });
  // The client has no way to ask for it: an option smuggled in is not sent.
  await s.client.vm.start("vault");
  await s.client.vm.shutdown("vault", { wait: true, force: true } as { wait: boolean });
  expect(s.sim.calls.filter((c) => c.method === "admin.vm.Shutdown").map((c) => c.arg)).toEqual(["wait"]);
});
