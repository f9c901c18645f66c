// The single-file build: dist/qubes-iac.mjs imports nothing but Node built-ins, and a copy of it
// alone in an empty directory (no node_modules beside or above it) runs every kind of command:
// --version, validate (ajv, yaml), plan against the embedded simulator (commander, the client,
// the simulator).
import { chmodSync, copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { builtinModules } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { bundleImports } from "../../bench/scenarios.js";
import { ensureBuilt, runBuiltCli } from "../helpers/cli.js";
import { repoRoot } from "../helpers/shared.js";

let alone = "";
let copy = "";

beforeAll(() => {
  alone = mkdtempSync(join(tmpdir(), "qiac-alone-"));
  copy = join(alone, "qubes-iac.mjs");
  copyFileSync(ensureBuilt(), copy);
  copyFileSync(join(repoRoot, "examples", "reference.yaml"), join(alone, "qubes.yaml"));
});
afterAll(() => rmSync(alone, { recursive: true, force: true }));

/** Runs the copied bundle with the same clean environment as the end-to-end tests. */
async function runCopy(args: string[]) {
  const { spawn } = await import("node:child_process");
  return new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve, reject) => {
    const child = spawn(process.execPath, [copy, ...args], {
      cwd: alone,
      env: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: alone, NO_COLOR: "1" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stdout, stderr }));
  });
}

describe("single-file build", () => {
  it("imports only Node built-ins", async () => {
    const builtins = new Set(builtinModules);
    const specifiers = await bundleImports(ensureBuilt());
    expect(specifiers).toContain("node:fs");
    expect(specifiers.filter((s) => !s.startsWith("node:") && !builtins.has(s))).toEqual([]);
  });

  it("has no node_modules anywhere above the copy", () => {
    for (let d = alone; ; d = dirname(d)) {
      expect(existsSync(join(d, "node_modules")), d).toBe(false);
      if (dirname(d) === d) break;
    }
  });

  it("runs --version, validate and plan from the copy alone", async () => {
    const version = await runCopy(["--version"]);
    expect(version.code).toBe(0);
    expect(version.stdout.trim()).toMatch(/^\d+\.\d+\.\d+/);
    const expected = await runBuiltCli(["--version"], { cwd: repoRoot });
    expect(version.stdout).toBe(expected.stdout);

    const validate = await runCopy(["validate", "qubes.yaml"]);
    expect(validate.stderr).toBe("");
    expect(validate.code).toBe(0);

    const plan = await runCopy(["plan", "--connect", "sim:state.json", "--detailed-exitcode", "qubes.yaml"]);
    expect(plan.stderr).toContain("embedded simulator");
    expect(plan.code).toBe(2);
    expect(plan.stdout).toMatch(/Plan: \d+ to add/);
  });

  it("runs as ./qubes-iac.mjs: a shebang first and the executable bit", async () => {
    expect(readFileSync(ensureBuilt(), "utf8").startsWith("#!/usr/bin/env node\n")).toBe(true);
    expect(statSync(ensureBuilt()).mode & 0o111).toBe(0o111);
    chmodSync(copy, 0o755);
    const { execFileSync } = await import("node:child_process");
    const env = { PATH: `${dirname(process.execPath)}:/usr/bin:/bin`, HOME: alone, NO_COLOR: "1" };
    expect(execFileSync("./qubes-iac.mjs", ["--version"], { cwd: alone, env, encoding: "utf8" })).toBe((await runCopy(["--version"])).stdout);
  });
});
