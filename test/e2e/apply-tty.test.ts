// apply on a real pseudo-terminal (util-linux `script` gives the built CLI a terminal): the
// person is asked, `y` applies; without `yes` a destroying plan is cancelled. Skipped only where
// `script` is not installed; the in-process tests cover the same rules with a stdin marked TTY.
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { ensureBuilt } from "../helpers/cli.js";
import { repoRoot } from "../helpers/shared.js";
import { isLockCall, isMutating, startTestSim, type TestSim } from "../helpers/sim.js";

const SCRIPT = ["/usr/bin/script", "/bin/script"].find((p) => existsSync(p));

let sim: TestSim;
beforeEach(async () => {
  sim = await startTestSim();
});
afterEach(async () => {
  await sim.stop();
});

/** Runs `qubes-iac ARGS` on a pseudo-terminal and types `answer` once the prompt `waitFor` shows. */
function onTerminal(args: string[], waitFor: string, answer: string): Promise<{ code: number | null; output: string }> {
  const command = [process.execPath, ensureBuilt(), ...args].map((a) => `'${a.replace(/'/g, "'\\''")}'`).join(" ");
  const child = spawn(SCRIPT as string, ["-qfec", command, "/dev/null"], { cwd: repoRoot, env: { PATH: process.env.PATH ?? "/usr/bin:/bin", NO_COLOR: "1", TERM: "dumb" } });
  let output = "";
  let answered = false;
  const onData = (d: Buffer): void => {
    output += d.toString("utf8");
    if (!answered && output.includes(waitFor)) {
      answered = true;
      child.stdin.write(answer);
    }
  };
  child.stdout.on("data", onData);
  child.stderr.on("data", onData);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`no end on the terminal; output so far:\n${output}`));
    }, 20_000);
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code, output: output.replace(/\r\n/g, "\n") });
    });
  });
}

describe.skipIf(SCRIPT === undefined)("apply on a pseudo-terminal", () => {
  const connect = (): string[] => ["--connect", `qubesd:${sim.socketPath}`];

  it("asks, and y applies", async () => {
    const r = await onTerminal(["apply", ...connect(), "examples/minimal.yaml"], "[y/N] ", "y\n");
    expect(r.output).toContain("Plan: 1 to add, 0 to change, 0 to destroy.\n\nApply these changes? [y/N] y\n");
    expect(r.output).toMatch(/Apply complete: 1 added, 0 changed, 0 destroyed\.\n/);
    expect(r.code).toBe(0);
    // minimal's seven calls, between the apply lock's three and three (docs/locking.md).
    expect(sim.calls.filter((c) => isMutating(c.method) && !isLockCall(c)).length).toBe(7);
    expect(sim.calls.filter((c) => isMutating(c.method) && isLockCall(c)).length).toBe(6);
  });

  it("a destroying plan: y is not enough", async () => {
    const created = await onTerminal(["apply", ...connect(), "examples/minimal.yaml"], "[y/N] ", "y\n");
    expect(created.code).toBe(0);
    const before = sim.calls.length;
    const r = await onTerminal(["apply", ...connect(), "test/apply/fixtures/minimal-gone.yaml"], "Type yes to confirm: ", "y\n");
    expect(r.output).toContain("This plan destroys qube.notes, with all of its data.\nApply these changes? Type yes to confirm: y\n");
    expect(r.output).toMatch(/apply cancelled \(only 'yes' approves a plan that destroys data\); nothing was changed/);
    expect(r.code).toBe(1);
    expect(sim.calls.slice(before).filter((c) => isMutating(c.method))).toEqual([]);
  });
});
