// Ctrl-C and SIGTERM with the built CLI (what users run), against a simulator that holds one call
// for a minute: plan, show, export and policy end at once with 130 (SIGINT) or 143 (SIGTERM),
// without waiting for that call, and leave no file half-written; validate ends so while a large
// config is being parsed. apply's first interrupt starts no new step and says what is still
// running; its second stops after the calls in flight and says what it left; Ctrl-C while one of
// the lock's six writes is in flight gives the lock back; the next apply finishes the work either
// way. Exit codes only: no timing is asserted.
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { open } from "node:fs/promises";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { ensureBuilt } from "../helpers/cli.js";
import { repoRoot } from "../helpers/shared.js";
import { isMutating, startTestSim, type TestSim } from "../helpers/sim.js";
import { runIn } from "../apply/_cli.js";
import { WORKER_LOAD_BYTES } from "../../src/cli/commands/validate.js";
import { clientOf } from "../reliability/_harness.js";
import { writeFileWhole } from "../../src/cli/io.js";

const EXAMPLE = join(repoRoot, "examples/workstation.yaml");
const MINUTE = 60_000;

type Ended = { code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string };
type Running = { child: ChildProcess; ended: Promise<Ended>; stderr(): string };

function start(args: string[], cwd: string): Running {
  const child = spawn(process.execPath, [ensureBuilt(), ...args], {
    cwd,
    env: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: process.env.HOME ?? "/tmp", NO_COLOR: "1" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  child.stdout?.on("data", (d: Buffer) => out.push(d));
  child.stderr?.on("data", (d: Buffer) => err.push(d));
  const text = (b: Buffer[]): string => Buffer.concat(b).toString("utf8");
  const ended = new Promise<Ended>((resolve) => child.on("close", (code, signal) => resolve({ code, signal, stdout: text(out), stderr: text(err) })));
  return { child, ended, stderr: () => text(err) };
}

async function until(what: string, done: () => boolean, ms = 30_000): Promise<void> {
  const end = Date.now() + ms;
  while (!done()) {
    if (Date.now() > end) throw new Error(`timed out waiting until ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Ends the run if a test fails before it ended by itself. */
const running: Running[] = [];
let sim: TestSim;
let dir: string;
beforeEach(async () => {
  sim = await startTestSim();
  dir = mkdtempSync(join(tmpdir(), "qiac-signals-"));
});
afterEach(async () => {
  for (const r of running.splice(0)) if (r.child.exitCode === null && r.child.signalCode === null) r.child.kill("SIGKILL");
  await sim.stop();
  rmSync(dir, { recursive: true, force: true });
});

const connect = (): string[] => ["--connect", `qubesd:${sim.socketPath}`];

/** Runs a command whose third read the simulator holds for a minute, and signals it while the call waits. */
async function interruptHeldRead(args: string[], signal: "SIGINT" | "SIGTERM", which = 3): Promise<Ended> {
  sim.faults.add(`read@${which}=delay-before:${MINUTE}`);
  const r = start(args, dir);
  running.push(r);
  await until("the held call is waiting in the simulator", () => sim.faults.fired().length === 1);
  r.child.kill(signal);
  return r.ended;
}

describe("a signal ends a command that only reads, without waiting for the call in flight", () => {
  it("plan --out: Ctrl-C exits 130 and no plan file (nor a temporary one) is left", async () => {
    const r = await interruptHeldRead(["plan", ...connect(), "--out", "saved.plan", EXAMPLE], "SIGINT");
    expect({ code: r.code, signal: r.signal }).toEqual({ code: 130, signal: null });
    expect(r.stderr).toContain("qubes-iac: interrupted (SIGINT); nothing was written\n");
    expect(r.stdout).toBe("");
    expect(readdirSync(dir)).toEqual([]);
  });

  it("plan: SIGTERM exits 143", async () => {
    const r = await interruptHeldRead(["plan", ...connect(), EXAMPLE], "SIGTERM");
    expect({ code: r.code, signal: r.signal }).toEqual({ code: 143, signal: null });
    expect(r.stderr).toContain("qubes-iac: interrupted (SIGTERM)");
  });

  it("show: Ctrl-C exits 130", async () => {
    const r = await interruptHeldRead(["show", ...connect(), EXAMPLE], "SIGINT");
    expect({ code: r.code, signal: r.signal, stdout: r.stdout }).toEqual({ code: 130, signal: null, stdout: "" });
  });

  it("export -o FILE: SIGTERM exits 143 and writes no file", async () => {
    const r = await interruptHeldRead(["export", ...connect(), "--all", "--owner", "someone", "-o", "exported.yaml"], "SIGTERM");
    expect({ code: r.code, signal: r.signal }).toEqual({ code: 143, signal: null });
    expect(readdirSync(dir)).toEqual([]);
  });

  it("policy --connect: Ctrl-C exits 130 and prints no policy", async () => {
    const r = await interruptHeldRead(["policy", ...connect(), "--mgmt", "mgmt", "--apply", EXAMPLE], "SIGINT", 1);
    expect({ code: r.code, signal: r.signal, stdout: r.stdout }).toEqual({ code: 130, signal: null, stdout: "" });
  });

  it("validate: Ctrl-C while a config is being loaded exits 130", async () => {
    // A config that never ends (a FIFO kept open): loading is synchronous and would wait for it forever.
    const fifo = join(dir, "slow.yaml");
    execFileSync("mkfifo", [fifo]);
    const r = start(["validate", "slow.yaml"], dir);
    running.push(r);
    // Opening the FIFO for writing returns once qubes-iac has opened it to read: it is loading.
    const w = await open(fifo, "w");
    try {
      await w.write("version: 1\nowner: slow\nqubes:\n");
      r.child.kill("SIGINT");
      // Answered while the load still waits for the rest of the file.
      await until("qubes-iac says it was interrupted", () => r.stderr().includes("interrupted"));
    } finally {
      await w.close();
    }
    const e = await r.ended;
    expect({ code: e.code, signal: e.signal, stdout: e.stdout }).toEqual({ code: 130, signal: null, stdout: "" });
    expect(e.stderr).toBe("qubes-iac: interrupted (SIGINT); nothing was written\n");
  });
});

describe("validate of a large config, loaded in a worker thread", () => {
  it("reports exactly what the in-place load reports, with locations and source lines", async () => {
    const lines = ["version: 1", "owner: big", "qubes:"];
    for (let i = 0; i < 4000; i++) lines.push(`  q${i}:`, "    class: StandaloneVM", "    label: green", "    properties:", `      memory: ${i === 3999 ? "lots" : "400"}`);
    lines.push("  q-extra:", "    class: StandaloneVM", "    label: green", "    colour: red");
    const text = `${lines.join("\n")}\n`;
    expect(Buffer.byteLength(text)).toBeGreaterThanOrEqual(WORKER_LOAD_BYTES);
    writeFileSync(join(dir, "big.yaml"), text);
    const built = await start(["validate", "big.yaml"], dir).ended;
    const inPlace = await runIn(["validate", "big.yaml"], { cwd: dir });
    expect(built.stderr).toMatch(/big\.yaml:\d+:5: error QIAC-E010: unknown key 'colour' in qube 'q-extra'\n/);
    expect({ code: built.code, stdout: built.stdout, stderr: built.stderr }).toEqual({ code: inPlace.code, stdout: inPlace.stdout, stderr: inPlace.stderr });
  }, 60_000);
});

describe("apply and Ctrl-C", () => {
  it("while it plans: exits 130 at once, nothing changed", async () => {
    const r = await interruptHeldRead(["apply", ...connect(), "--auto-approve", EXAMPLE], "SIGINT");
    expect({ code: r.code, signal: r.signal }).toEqual({ code: 130, signal: null });
    expect(r.stderr).toContain("qubes-iac: interrupted (SIGINT); nothing was changed\n");
    expect(sim.calls.filter((c) => isMutating(c.method))).toEqual([]);
  });

  const lockLeft = async (): Promise<string[]> => {
    const c = clientOf(sim);
    try {
      return [...(await c.label.list()).filter((l) => l.startsWith("qubes-iac.")), ...(await c.feature.list("dom0")).filter((f) => f === "qubes-iac.workstation.lock")];
    } finally {
      await c.close();
    }
  };

  it("the first stops new steps at once and says so; the running step ends, the lock is given back, the next apply finishes", async () => {
    sim.faults.add("admin.vm.tag.Set+managed-by-workstation@1=delay-before:2500");
    const r = start(["apply", ...connect(), "--auto-approve", "--parallelism", "1", EXAMPLE], dir);
    running.push(r);
    await until("the tag call is held in the simulator", () => sim.faults.fired().length === 1);
    r.child.kill("SIGINT");
    const e = await r.ended;
    expect(e.stderr).toMatch(/\ninterrupt: finishing 1 running step, \d+ not started; interrupt again to stop after the calls in flight\n/);
    expect(e.stdout).toMatch(/\nApply interrupted: /);
    // The held step ran to its end.
    expect(e.stdout).toMatch(/\nupdate:qube\.default-dvm: done after/);
    expect(e.code).toBe(1);
    expect(await lockLeft()).toEqual([]);
    const again = start(["apply", ...connect(), "--auto-approve", EXAMPLE], dir);
    expect((await again.ended).code).toBe(0);
  }, 60_000);

  it("the second stops after the calls in flight and names the step it left unfinished; the next apply finishes it", async () => {
    sim.faults.add("admin.vm.tag.Set+managed-by-workstation@1=delay-before:3000");
    const r = start(["apply", ...connect(), "--auto-approve", "--parallelism", "1", EXAMPLE], dir);
    running.push(r);
    await until("the tag call is held in the simulator", () => sim.faults.fired().length === 1);
    r.child.kill("SIGINT");
    await until("apply says what it is finishing", () => r.stderr().includes("interrupt: finishing"));
    r.child.kill("SIGINT");
    const e = await r.ended;
    const left = /\ninterrupt: stopping after 1 call in flight; left unfinished: (update:qube\.default-dvm) \(2 of 6 calls made\)\n/.exec(e.stderr);
    expect(left, e.stderr).not.toBeNull();
    expect(e.stdout).toContain(`${left?.[1] ?? ""}: failed`);
    expect(e.stdout).toContain("not made: apply was interrupted a second time");
    expect(e.code).toBe(1);
    expect(await lockLeft()).toEqual([]);
    const again = start(["apply", ...connect(), "--auto-approve", EXAMPLE], dir);
    expect((await again.ended).code).toBe(0);
    const plan = start(["plan", ...connect(), EXAMPLE], dir);
    expect((await plan.ended).stdout).toBe("No changes.\n");
  }, 60_000);
});

describe("Ctrl-C at each of the apply lock's writes", () => {
  const WRITES = [
    ["its claim", "admin.label.Create@1"],
    ["its label", "admin.label.Create+qubes-iac.lock.workstation@1"],
    ["its record", "admin.vm.feature.Set+qubes-iac.workstation.lock@1"],
    ["the record's removal", "admin.vm.feature.Remove+qubes-iac.workstation.lock@1"],
    ["the label's removal", "admin.label.Remove+qubes-iac.lock.workstation@1"],
    ["the claim's removal", "admin.label.Remove@2"],
  ] as const;
  for (const [what, call] of WRITES) {
    it(`at ${what}: the call ends, the lock is given back, and a plain apply converges`, async () => {
      sim.faults.add(`${call}=delay-before:1500`);
      const taking = WRITES.findIndex(([w]) => w === what) < 3;
      const r = start(["apply", ...connect(), "--auto-approve", EXAMPLE], dir);
      running.push(r);
      await until("the lock's call is held in the simulator", () => sim.faults.fired().length === 1);
      r.child.kill("SIGINT");
      const e = await r.ended;
      // Taking it: no step ran. Giving it back: every step had applied.
      expect({ code: e.code, said: e.stderr.includes("interrupted (SIGINT) before any step; nothing was changed") }).toEqual(taking ? { code: 130, said: true } : { code: 0, said: false });
      const c = clientOf(sim);
      expect((await c.label.list()).filter((l) => l.startsWith("qubes-iac."))).toEqual([]);
      expect(await c.feature.list("dom0")).not.toContain("qubes-iac.workstation.lock");
      await c.close();
      const again = await start(["apply", ...connect(), "--auto-approve", EXAMPLE], dir).ended;
      expect({ code: again.code, stderr: again.stderr }).toEqual({ code: 0, stderr: expect.not.stringContaining("lock") });
      expect((await start(["plan", ...connect(), EXAMPLE], dir).ended).stdout).toBe("No changes.\n");
    }, 60_000);
  }
});

describe("a file written whole", () => {
  it("takes its name in one step from a temporary file beside it; exclusive, it never replaces a file", () => {
    const path = join(dir, "out.txt");
    writeFileWhole(path, "one\n");
    writeFileWhole(path, "two\n");
    expect(readFileSync(path, "utf8")).toBe("two\n");
    expect(() => writeFileWhole(path, "three\n", { exclusive: true })).toThrow(/EEXIST/);
    expect(readFileSync(path, "utf8")).toBe("two\n");
    expect(readdirSync(dir)).toEqual(["out.txt"]);
  });
});
