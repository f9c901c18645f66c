// `qubes-iac plan` as a command, in-process with captured streams against the simulator's socket:
// exit codes (Terraform's), --json, --out and the recognition of a saved plan, colour rules.
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { recognizeSavedPlan } from "../../src/plan/json.js";
import { runCliInProcess } from "./_cli.js";
import { converge, expectValidPlanJson, loadDesired, startSession, type SimSession } from "./_helpers.js";

let s: SimSession;
let dir: string;
beforeEach(async () => {
  s = await startSession();
  dir = mkdtempSync(join(tmpdir(), "qiac-plan-cli-"));
});
afterEach(async () => {
  await s.stop();
  rmSync(dir, { recursive: true, force: true });
});

const plan = (args: string[], o: { env?: Record<string, string>; tty?: boolean } = {}) =>
  runCliInProcess(["plan", "--connect", `qubesd:${s.sim.socketPath}`, ...args], o);

describe("exit codes", () => {
  it("changes: 0, or 2 with --detailed-exitcode; no changes: 0 either way", async () => {
    expect((await plan(["examples/minimal.yaml"])).code).toBe(0);
    expect((await plan(["--detailed-exitcode", "examples/minimal.yaml"])).code).toBe(2);
    await converge(s, loadDesired("examples/minimal.yaml"));
    const none = await plan(["--detailed-exitcode", "examples/minimal.yaml"]);
    expect(none.code).toBe(0);
    expect(none.stdout).toBe("No changes.\n");
    expect((await plan(["examples/minimal.yaml"])).code).toBe(0);
  });

  it("a plan with errors exits 1 and is still printed in full", async () => {
    const r = await plan(["--detailed-exitcode", "test/plan/fixtures/not-ours.yaml"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/error QIAC-E101: qube work exists and is not managed by intruder/);
    expect(r.stdout).toMatch(/\+ qube.extra/);
    expect(r.stdout).toMatch(/cannot be applied/);
  });

  it("an invalid config exits 1 without connecting", async () => {
    const r = await plan(["test/plan/fixtures/does-not-exist.yaml"]);
    expect(r.code).toBe(1);
    expect(s.sim.calls).toEqual([]);
  });

  it("a bad --target exits 1 with a message", async () => {
    const r = await plan(["--target", "vm.work", "examples/minimal.yaml"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/--target: 'vm.work' is not an address/);
  });
});

describe("--json and --out", () => {
  it("--json prints the JSON plan only, valid against the schema", async () => {
    const r = await plan(["--json", "examples/reference.yaml"]);
    expect(r.code).toBe(0);
    const json = JSON.parse(r.stdout) as unknown;
    expectValidPlanJson(json);
    expect(recognizeSavedPlan(r.stdout).kind).toBe("plan");
  });

  it("--out saves the plan (recognised by its content), and refuses to save an errored plan", async () => {
    const out = join(dir, "anything.bin");
    const r = await plan(["--out", out, "examples/minimal.yaml"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/Saved the plan to .*anything\.bin\. To make exactly these changes, run: qubes-iac apply /);
    const saved = recognizeSavedPlan(readFileSync(out, "utf8"));
    expect(saved.kind).toBe("plan");
    expectValidPlanJson(saved.kind === "plan" ? saved.plan : undefined);

    const bad = join(dir, "bad.plan");
    const e = await plan(["--out", bad, "test/plan/fixtures/not-ours.yaml"]);
    expect(e.code).toBe(1);
    expect(existsSync(bad)).toBe(false);
    expect(e.stderr).toMatch(/not saved/);
  });
});

describe("colour", () => {
  const colourful = /\x1b\[/;
  it("only on a terminal, never with NO_COLOR or --no-color", async () => {
    expect((await plan(["examples/minimal.yaml"], { tty: true })).stdout).toMatch(colourful);
    expect((await plan(["examples/minimal.yaml"], { tty: false })).stdout).not.toMatch(colourful);
    expect((await plan(["examples/minimal.yaml"], { tty: true, env: { NO_COLOR: "1" } })).stdout).not.toMatch(colourful);
    expect((await plan(["--no-color", "examples/minimal.yaml"], { tty: true })).stdout).not.toMatch(colourful);
  });
});

describe("the built CLI", () => {
  it("plans an example against the embedded simulator and exits 2 with --detailed-exitcode", async () => {
    const { runBuiltCli } = await import("../helpers/cli.js");
    const { repoRoot } = await import("../helpers/shared.js");
    const r = await runBuiltCli(["plan", "--connect", `sim:${join(dir, "state.json")}`, "--detailed-exitcode", join(repoRoot, "examples", "vpn.yaml")], { cwd: dir });
    expect(r.stderr).toMatch(/using the embedded simulator/);
    expect(r.stdout).toMatch(/\+ qube\.sys-vpn/);
    expect(r.stdout).toMatch(/Plan: 1 to add, 1 to change, 0 to destroy\./);
    expect(r.code).toBe(2);
  });
});
