// Output piped into a reader that goes away (`qubes-iac plan | head`): the built CLI drops what
// is left to print and ends as it would have, with its own exit code, and no stack trace; an
// apply in that situation still makes all its changes.
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import { ensureBuilt, runBuiltCli } from "../helpers/cli.js";
import { repoRoot } from "../helpers/shared.js";

let dir = "";
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "qiac-pipe-"));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Runs the built CLI with its stdout closed by the reader before the command writes. */
function runWithClosedStdout(args: string[]): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [ensureBuilt(), ...args], { cwd: repoRoot, env: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: dir, NO_COLOR: "1" }, stdio: ["ignore", "pipe", "pipe"] });
    child.stdout.destroy();
    let stderr = "";
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stderr }));
  });
}

it("validate --json into a closed pipe exits with validate's own code", async () => {
  const valid = await runWithClosedStdout(["validate", "--json", "examples/reference.yaml"]);
  expect(valid.stderr).toBe("");
  expect(valid.code).toBe(0);
  const invalid = await runWithClosedStdout(["validate", "--json", "test/config/invalid/43-ten-mistakes.yaml"]);
  expect(invalid.stderr).toBe("");
  expect(invalid.code).toBe(1);
});

it("an apply whose output reader is gone still makes every change", async () => {
  const state = join(dir, "state.json");
  const applied = await runWithClosedStdout(["apply", "--connect", `sim:${state}`, "--auto-approve", "examples/reference.yaml"]);
  expect(applied.stderr).not.toMatch(/EPIPE|at .*\.mjs:\d+/);
  expect(applied.code).toBe(0);
  const after = await runBuiltCli(["plan", "--connect", `sim:${state}`, "--detailed-exitcode", "examples/reference.yaml"], { cwd: repoRoot });
  expect(after.stdout).toContain("No changes.");
  expect(after.code).toBe(0);
});
