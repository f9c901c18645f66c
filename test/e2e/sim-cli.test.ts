// The built CLI as users run it: `sim serve` processes on real sockets, `sim call` through
// --connect and QUBES_IAC_CONNECT, the embedded default, and connection errors.
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ensureBuilt, runBuiltCli } from "../helpers/cli.js";

let dir: string;
const servers: ChildProcess[] = [];

async function serve(name: string, extra: string[] = []): Promise<{ socket: string; state: string; proc: ChildProcess }> {
  const socket = join(dir, `${name}.sock`);
  const state = join(dir, `${name}.json`);
  const proc = spawn(process.execPath, [ensureBuilt(), "sim", "serve", "--socket", socket, "--state", state, ...extra], { stdio: ["ignore", "ignore", "pipe"] });
  servers.push(proc);
  const deadline = Date.now() + 10_000;
  while (!existsSync(socket)) {
    if (Date.now() > deadline || proc.exitCode !== null) throw new Error(`sim serve ${name} did not start`);
    await new Promise((r) => setTimeout(r, 20));
  }
  return { socket, state, proc };
}

async function stop(proc: ChildProcess): Promise<number | null> {
  if (proc.exitCode !== null) return proc.exitCode;
  const done = new Promise<number | null>((r) => proc.once("exit", (code) => r(code)));
  proc.kill("SIGTERM");
  return done;
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "qiac-e2e-"));
});
afterAll(async () => {
  await Promise.all(servers.map(stop));
  rmSync(dir, { recursive: true, force: true });
});

describe("qubes-iac sim serve / sim call", () => {
  it("serves two simulators side by side, each with its own state, surviving a restart", async () => {
    const a = await serve("a");
    const b = await serve("b");
    const set = await runBuiltCli(["sim", "call", "--connect", `qubesd:${a.socket}`, "admin.vm.property.Set", "work", "memory"], { cwd: dir, input: "800" });
    expect(set.stderr).toContain(`using the qubesd socket ${a.socket} (--connect)`);
    expect(set.stdout.trim()).toBe("0\\x00");
    expect(set.code).toBe(0);
    const getA = await runBuiltCli(["sim", "call", "admin.vm.property.Get", "work", "memory"], { cwd: dir, env: { QUBES_IAC_CONNECT: `qubesd:${a.socket}` } });
    expect(getA.stdout.trim()).toBe("0\\x00default=False type=int 800");
    const getB = await runBuiltCli(["sim", "call", "--connect", `qubesd:${b.socket}`, "admin.vm.property.Get", "work", "memory"], { cwd: dir });
    expect(getB.stdout.trim()).toBe("0\\x00default=True type=int 400");

    expect(await stop(a.proc)).toBe(0);
    const again = await serve("a");
    const raw = await runBuiltCli(["sim", "call", "--raw", "--connect", `qubesd:${again.socket}`, "admin.vm.property.Get", "work", "memory"], { cwd: dir });
    expect(raw.stdout).toBe("0\0default=False type=int 800");
  });

  it("prints exceptions and exits 1, and refuses a second server on the same state file", async () => {
    const c = await serve("c");
    const r = await runBuiltCli(["sim", "call", "--connect", `qubesd:${c.socket}`, "admin.vm.property.Get", "no-such-vm", "netvm"], { cwd: dir });
    expect(r.code).toBe(1);
    expect(r.stdout.trim()).toBe("2\\x00QubesVMNotFoundError\\x00\\x00No such domain: 'no-such-vm'\\x00");
    const clash = await runBuiltCli(["sim", "serve", "--socket", join(dir, "c2.sock"), "--state", c.state], { cwd: dir, timeoutMs: 10_000 });
    expect(clash.code).toBe(1);
    expect(clash.stderr).toMatch(/cannot start the simulator: .*(lock|in use|held)/i);
  });

  it("refuses arguments outside the qrexec charset before connecting", async () => {
    const r = await runBuiltCli(["sim", "call", "--connect", "qubesd:/nonexistent.sock", "admin.vm.feature.Get", "work", "a/b"], { cwd: dir });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/outside the qrexec set/);
  });

  it("reports an unreachable socket clearly and never falls back", async () => {
    const r = await runBuiltCli(["sim", "call", "--connect", `qubesd:${join(dir, "absent.sock")}`, "admin.vm.List"], { cwd: dir });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/cannot connect to .*absent\.sock \(ENOENT\)/);
  });

  it("uses the embedded simulator on a machine without Qubes, and says so", async () => {
    const work = mkdtempSync(join(dir, "embedded-"));
    const r = await runBuiltCli(["sim", "call", "admin.vm.List", "work"], { cwd: work });
    expect(r.code).toBe(0);
    expect(r.stderr).toContain("using the embedded simulator, state in .qubes-iac/sim-state.json (no Qubes OS detected)");
    expect(r.stdout).toContain("work class=AppVM state=Halted");
    expect(existsSync(join(work, ".qubes-iac", "sim-state.json"))).toBe(true);
  });

  it("rejects an unknown connection kind", async () => {
    const r = await runBuiltCli(["sim", "call", "admin.vm.List"], { cwd: dir, env: { QUBES_IAC_CONNECT: "ssh:host" } });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/QUBES_IAC_CONNECT: unknown connection 'ssh:host'/);
  });
});

describe("qubes-iac validate and --version", () => {
  it("exits 0 on a valid config, 1 with located diagnostics on an invalid one", async () => {
    writeFileSync(join(dir, "ok.yaml"), "version: 1\nowner: laptop\nqubes:\n  notes:\n    class: AppVM\n    template: fedora-40\n    label: yellow\n");
    writeFileSync(join(dir, "bad.yaml"), "version: 1\nowner: laptop\nqubes:\n  notes:\n    class: AppVM\n    template: fedora-40\n    label: yellow\n    tags: [bad tag]\n");
    const ok = await runBuiltCli(["validate", "ok.yaml"], { cwd: dir });
    expect(ok.code).toBe(0);
    const bad = await runBuiltCli(["validate", "bad.yaml"], { cwd: dir });
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/^bad\.yaml:8:\d+: error QIAC-E034/m);
    const json = await runBuiltCli(["validate", "--json", "bad.yaml"], { cwd: dir });
    expect(JSON.parse(json.stdout)).toMatchObject({ valid: false, diagnostics: [{ code: "QIAC-E034", location: { file: "bad.yaml", line: 8 } }] });
  });

  it("prints the package version", async () => {
    const r = await runBuiltCli(["--version"], { cwd: dir });
    expect(r.code).toBe(0);
    expect(r.stdout.trim()).toMatch(/^\d+\.\d+\.\d+$/);
  });
});
