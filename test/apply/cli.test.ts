// `qubes-iac apply` in-process against the simulator's socket: approval on a terminal and
// without one, destroying plans, progress lines and the JSON events with a fixed clock, a failed
// step (what is skipped, what goes on, the summary, and what plan and apply do next), and saved
// plans (applied exactly, refused when what they rely on changed, or when not a valid plan).
import { readFileSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { runOp } from "../../src/apply/admin-api.js";
import type { JsonPlan } from "../../src/plan/json.js";
import { applyEvents } from "../helpers/apply-events.js";
import { isLockCall, isMutating, testRelease } from "../helpers/sim.js";
import { planOps, startSession, type SimSession } from "../plan/_helpers.js";
import { applyWithClock, mutations, runIn, type RunOptions } from "./_cli.js";

/** How the messages name each release (src/model/release.ts). */
const RELEASE_NAMES = { "r4.2": "R4.2", "r4.3": "R4.3", main: "main (the development head)" } as const;

let s: SimSession;
let dir: string;
beforeEach(async () => {
  s = await startSession();
  dir = mkdtempSync(join(tmpdir(), "qiac-apply-cli-"));
});
afterEach(async () => {
  await s.stop();
  rmSync(dir, { recursive: true, force: true });
});

const connect = (): string[] => ["--connect", `qubesd:${s.sim.socketPath}`];
const apply = (args: string[], o: RunOptions = {}) => runIn(["apply", ...connect(), ...args], o);
const plan = (args: string[]) => runIn(["plan", ...connect(), ...args]);
/** The mutating calls, but the apply lock's (test/reliability/apply-lock.test.ts covers those). */
const mutated = (): string[] => mutations(s.sim.calls.filter((c) => !isLockCall(c)), isMutating);
/** stdout after the plan, from the first progress line on. */
/** What apply printed after the plan (its summary line and the closing line of what loosens isolation). */
const progress = (stdout: string): string => stdout.slice(stdout.indexOf("\n", stdout.lastIndexOf("Plan: ")) + 1).replace(/^[0-9]+ changes? loosens? isolation: .*\n/, "");

describe("approval", () => {
  it("without a terminal: refuses unless --auto-approve, and changes nothing", async () => {
    const r = await apply(["examples/minimal.yaml"]);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/Plan: 1 to add, 0 to change, 0 to destroy\.\n$/);
    expect(r.stderr).toMatch(/qubes-iac: no terminal to ask for approval: run with --auto-approve\n$/);
    expect(mutated()).toEqual([]);
  });

  it("on a terminal: asks, and `y` applies", async () => {
    const r = await apply(["examples/minimal.yaml"], { tty: true, input: "y\n", env: { NO_COLOR: "1" } });
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("Plan: 1 to add, 0 to change, 0 to destroy.\n\nApply these changes? [y/N] \n");
    expect(r.stdout).toMatch(/Apply complete: 1 added, 0 changed, 0 destroyed\.\n$/);
    expect(mutated().length).toBe(7);
  });

  for (const [answer, why] of [
    ["n\n", "no"],
    ["\n", "an empty answer"],
    ["", "end of input"],
  ] as const) {
    it(`on a terminal: ${why} cancels, and changes nothing`, async () => {
      const r = await apply(["examples/minimal.yaml"], { tty: true, input: answer });
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/qubes-iac: apply cancelled; nothing was changed\n$/);
      expect(mutated()).toEqual([]);
    });
  }

  it("an interruption while asking cancels", async () => {
    // The user presses Ctrl-C once apply waits for the answer.
    let interrupt: (sig: string) => void = () => {};
    const interrupted = new Promise<string>((resolve) => {
      interrupt = resolve;
    });
    const input = new Readable({ read: () => interrupt("SIGINT") });
    const r = await runIn(["apply", ...connect(), "examples/minimal.yaml"], { tty: true, input, interrupted });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/apply cancelled/);
    expect(mutated()).toEqual([]);
  });

  describe("a plan that destroys a qube", () => {
    beforeEach(async () => {
      expect((await apply(["--auto-approve", "examples/minimal.yaml"])).code).toBe(0);
      s.sim.calls.length = 0;
    });

    it("on a terminal: only the whole word yes applies it", async () => {
      const y = await apply(["test/apply/fixtures/minimal-gone.yaml"], { tty: true, input: "y\n" });
      expect(y.code).toBe(1);
      expect(y.stdout).toContain("This plan destroys qube.notes, with all of its data.\nApply these changes? Type yes to confirm: ");
      expect(y.stderr).toMatch(/apply cancelled \(only 'yes' approves a plan that destroys data\); nothing was changed/);
      expect(mutated()).toEqual([]);
      const yes = await apply(["test/apply/fixtures/minimal-gone.yaml"], { tty: true, input: "yes\n" });
      expect(yes.code).toBe(0);
      expect(mutated()).toEqual(["admin.vm.Remove+ → notes", "admin.vm.feature.Remove+qubes-iac.minimal.created.notes → dom0"]);
    });

    it("with --auto-approve: refused without --allow-destroy", async () => {
      const r = await apply(["--auto-approve", "test/apply/fixtures/minimal-gone.yaml"]);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/the plan destroys qube.notes and all of its data; --auto-approve alone never destroys data: add --allow-destroy/);
      expect(mutated()).toEqual([]);
      const ok = await apply(["--auto-approve", "--allow-destroy", "test/apply/fixtures/minimal-gone.yaml"]);
      expect(ok.code).toBe(0);
      expect(ok.stdout).toMatch(/Apply complete: 0 added, 0 changed, 1 destroyed\.\n$/);
    });

    it("without a terminal the refusal names --allow-destroy too", async () => {
      const r = await apply(["test/apply/fixtures/minimal-gone.yaml"]);
      expect(r.stderr).toMatch(/no terminal to ask for approval: run with --auto-approve --allow-destroy \(the plan destroys qube.notes\)/);
    });
  });

  it("--json needs --auto-approve", async () => {
    const r = await apply(["--json", "examples/minimal.yaml"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/--json needs --auto-approve/);
    expect(s.sim.calls).toEqual([]);
  });

  it("an invalid config exits 1 without connecting", async () => {
    const r = await apply(["--auto-approve", "test/plan/fixtures/does-not-exist.yaml"]);
    expect(r.code).toBe(1);
    expect(s.sim.calls).toEqual([]);
  });

  it("a plan holding errors changes nothing", async () => {
    const r = await apply(["--auto-approve", "test/plan/fixtures/not-ours.yaml"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/error QIAC-E101/);
    expect(r.stderr).toMatch(/qubes-iac: the plan holds errors; nothing was changed/);
    expect(mutated()).toEqual([]);
  });
});

describe("progress", () => {
  it("one line per step as it starts and ends, then the summary (fixed clock)", async () => {
    const r = await applyWithClock(["examples/minimal.yaml"], { ...{ connect: `qubesd:${s.sim.socketPath}` }, autoApprove: true, parallelism: "1" });
    expect(r.code).toBe(0);
    expect(progress(r.stdout)).toBe(
      [
        "",
        "setup:ownership: started (1 call)",
        "setup:ownership: done after 0.1s",
        "create:qube.notes: started (7 calls)",
        "create:qube.notes: done after 0.1s",
        "",
        "Apply complete: 1 added, 0 changed, 0 destroyed.",
        "",
      ].join("\n"),
    );
  });

  it("--json: the plan, then one event per line, each with type and format_version", async () => {
    const r = await applyWithClock(["examples/minimal.yaml"], { connect: `qubesd:${s.sim.socketPath}`, autoApprove: true, json: true, parallelism: "1" });
    expect(r.code).toBe(0);
    const events = applyEvents(r.stdout);
    expect(events.every((e) => e.format_version === 1)).toBe(true);
    expect(events[0]).toMatchObject({ type: "plan", saved: false, plan: { format: "qubes-iac-plan", summary: { add: 1 } } });
    expect(events.slice(1)).toEqual([
      { type: "apply_start", format_version: 1, owner: "minimal", steps: 2, parallelism: 1, saved: false },
      { type: "step_start", format_version: 1, step: "setup:ownership", address: "ownership", kind: "setup", wave: 1, ops: 1 },
      { type: "step_done", format_version: 1, step: "setup:ownership", elapsed_ms: 100 },
      { type: "step_start", format_version: 1, step: "create:qube.notes", address: "qube.notes", kind: "create", wave: 2, ops: 7 },
      { type: "step_done", format_version: 1, step: "create:qube.notes", elapsed_ms: 100 },
      { type: "apply_complete", format_version: 1, ok: true, added: 1, changed: 0, destroyed: 0, forgotten: 0, released: 0, applied: ["setup:ownership", "create:qube.notes"], failed: [], skipped: [] },
    ]);
  });

  it("--json with nothing to do: the plan and an empty apply_complete", async () => {
    expect((await apply(["--auto-approve", "examples/minimal.yaml"])).code).toBe(0);
    const r = await apply(["--auto-approve", "--json", "examples/minimal.yaml"]);
    const events = applyEvents(r.stdout);
    expect(events.map((e) => e.type)).toEqual(["plan", "apply_complete"]);
    expect(events[1]).toMatchObject({ ok: true, added: 0, applied: [] });
  });
});

describe("--json and --target", () => {
  it("an unknown outcome shows as op_unknown then op_resolved; the apply goes on", async () => {
    s.sim.faults.add("admin.vm.feature.Set+qubes-iac.minimal.intent.notes/dom0@1=close-after");
    const r = await applyWithClock(["examples/minimal.yaml"], { connect: `qubesd:${s.sim.socketPath}`, autoApprove: true, json: true, parallelism: "1" });
    expect(r.code).toBe(0);
    const events = applyEvents(r.stdout);
    expect(events.filter((e) => e.type === "op_unknown" || e.type === "op_resolved")).toEqual([
      {
        type: "op_unknown",
        format_version: 1,
        step: "create:qube.notes",
        op_index: 0,
        call: "admin.vm.feature.Set+qubes-iac.minimal.intent.notes → dom0",
        error: {
          code: "empty-reply",
          // The simulator answers as the head, which names its refusals: an empty reply is a failure.
          message:
            testRelease() === "main"
              ? "qubesd gave an empty reply to admin.vm.feature.Set+qubes-iac.minimal.intent.notes → dom0: main (the development head) names the calls it refuses, so this one failed with an error it does not report (or the connection was cut); the reason is only in dom0's journal (journalctl -u qubesd)"
              : `qubesd gave an empty reply to admin.vm.feature.Set+qubes-iac.minimal.intent.notes → dom0: ${RELEASE_NAMES[testRelease()]} answers so when it refuses a call (a ProtocolError or PermissionDenied: a request, argument or value it does not accept, or a method it lacks) and when the call fails; the reason is only in dom0's journal (journalctl -u qubesd)`,
        },
      },
      { type: "op_resolved", format_version: 1, step: "create:qube.notes", op_index: 0, outcome: "done" },
    ]);
    // The call was made once, never sent again.
    expect(mutated().filter((c) => c === "admin.vm.feature.Set+qubes-iac.minimal.intent.notes → dom0")).toHaveLength(1);
  });

  it("--target applies only that resource and what it depends on", async () => {
    const r = await apply(["--auto-approve", "--target", "qube.keys", "examples/reference.yaml"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/Apply complete: 1 added, 0 changed, 0 destroyed\.\n$/);
    expect(new Set(mutated().map((c) => c.split(" → ")[1]))).toEqual(new Set(["dom0", "keys"]));
  });
});

describe("a failed step", () => {
  const failSysVpn = "admin.vm.property.Set+provides_network/sys-vpn@1=exception:QubesValueError:provides_network refused";

  it("skips what depends on it, goes on with the rest, lists applied, failed and skipped; plan shows what is left; apply again finishes", async () => {
    s.sim.faults.add(failSysVpn);
    const r = await applyWithClock(["examples/reference.yaml"], { connect: `qubesd:${s.sim.socketPath}`, autoApprove: true, parallelism: "1" });
    expect(r.code).toBe(1);
    expect(progress(r.stdout)).toBe(
      [
        "",
        "setup:ownership: started (1 call)",
        "setup:ownership: done after 0.1s",
        "create:label.magenta: started (2 calls)",
        "create:label.magenta: done after 0.1s",
        "create:pool.fast: started (2 calls)",
        "create:pool.fast: done after 0.1s",
        "create:qube.keys: started (8 calls)",
        "create:qube.keys: done after 0.1s",
        "update:qube.sys-firewall: started (6 calls)",
        "update:qube.sys-firewall: done after 0.1s",
        "create:qube.sys-vpn: started (14 calls)",
        "create:qube.sys-vpn: failed after 0.1s: QubesValueError: provides_network refused (admin.vm.property.Set+provides_network → sys-vpn); sys-vpn left with netvm sys-firewall, firewall accept",
        "create:qube.dev: skipped: needs create:qube.sys-vpn, which did not complete",
        "",
        "Apply failed: 3 added, 1 changed, 0 destroyed.",
        "Applied:",
        "  setup:ownership",
        "  create:label.magenta",
        "  create:pool.fast",
        "  create:qube.keys",
        "  update:qube.sys-firewall",
        "Failed:",
        "  create:qube.sys-vpn: QubesValueError: provides_network refused (admin.vm.property.Set+provides_network → sys-vpn); sys-vpn left with netvm sys-firewall, firewall accept",
        "Skipped:",
        "  create:qube.dev: needs create:qube.sys-vpn, which did not complete",
        "Run `qubes-iac plan` to see what is left; running apply again finishes it.",
        "",
      ].join("\n"),
    );
    expect(r.stderr).toMatch(/qubes-iac: apply did not complete: 1 step failed, 1 skipped\n$/);

    const left = await runIn(["plan", ...connect(), "--json", "examples/reference.yaml"]);
    const json = JSON.parse(left.stdout) as JsonPlan;
    expect(json.steps.map((x) => x.id)).toEqual(["update:qube.sys-vpn", "create:qube.dev"]);
    expect(json.summary).toEqual({ add: 1, change: 1, destroy: 0, forget: 0, release: 0 });

    const again = await apply(["--auto-approve", "examples/reference.yaml"]);
    expect(again.code).toBe(0);
    expect(again.stdout).toMatch(/Apply complete: 1 added, 1 changed, 0 destroyed\.\n$/);
    expect((await plan(["examples/reference.yaml"])).stdout).toBe("No changes.\n");
  });

  it("--json: step_failed and step_skipped events, and the failure in apply_complete", async () => {
    s.sim.faults.add(failSysVpn);
    const r = await applyWithClock(["examples/reference.yaml"], { connect: `qubesd:${s.sim.socketPath}`, autoApprove: true, json: true, parallelism: "1" });
    expect(r.code).toBe(1);
    const events = applyEvents(r.stdout);
    const error = { code: "exception", class: "QubesValueError", message: "QubesValueError: provides_network refused" };
    // Its netvm is its first write after Create: the re-read after the failure shows it set.
    const left = { qube: "sys-vpn", state: "left", netvm: "sys-firewall", netvm_default: false, firewall: ["action=accept"], text: "sys-vpn left with netvm sys-firewall, firewall accept" };
    expect(events.filter((e) => e.type === "step_failed" || e.type === "step_skipped")).toEqual([
      { type: "step_failed", format_version: 1, step: "create:qube.sys-vpn", elapsed_ms: 100, op_index: 8, call: "admin.vm.property.Set+provides_network → sys-vpn", error, left },
      { type: "step_skipped", format_version: 1, step: "create:qube.dev", reason: "dependency", blocked_by: ["create:qube.sys-vpn"] },
    ]);
    expect(events.at(-1)).toMatchObject({
      type: "apply_complete",
      ok: false,
      failed: [{ step: "create:qube.sys-vpn", op_index: 8, call: "admin.vm.property.Set+provides_network → sys-vpn", error, left }],
      skipped: [{ step: "create:qube.dev", reason: "dependency", blocked_by: ["create:qube.sys-vpn"] }],
    });
  });

  it("a pool still in use is refused by the plan, naming what it holds; once it is freed apply finishes", async () => {
    const dev = "test/apply/fixtures/pool-a.yaml";
    expect((await apply(["--auto-approve", dev])).code).toBe(0);
    // A qube made by hand in the pool: the pool cannot go.
    await runOp(s.client, { op: "vm.create", class: "AppVM", name: "by-hand", label: "red", template: "fedora-40", pool: "fast" });
    const refused = JSON.parse((await plan(["--json", "test/apply/fixtures/pool-b.yaml"])).stdout) as JsonPlan;
    expect(refused.diagnostics.filter((d) => d.severity === "error").map((d) => [d.code, d.address])).toEqual([["QIAC-E127", "pool.fast"]]);
    expect(refused.diagnostics.find((d) => d.code === "QIAC-E127")?.message).toMatch(/^pool fast is to be removed but holds volumes that stay: \S*by-hand\S*(, \S*by-hand\S*)*; qubesd refuses/);
    s.sim.calls.length = 0;
    const r = await apply(["--auto-approve", "--allow-destroy", "test/apply/fixtures/pool-b.yaml"]);
    expect(r.code).toBe(1);
    expect(mutated()).toEqual([]);
    await runOp(s.client, { op: "vm.remove", vm: "by-hand" });
    // Only the qube that goes with it (a) was in the pool: removed first, then the pool.
    expect((await apply(["--auto-approve", "--allow-destroy", "test/apply/fixtures/pool-b.yaml"])).code).toBe(0);
    expect((await plan(["test/apply/fixtures/pool-b.yaml"])).stdout).toBe("No changes.\n");
  });

  it("a pool put in use after the plan was saved: the re-check refuses the apply, naming what it holds", async () => {
    const dev = "test/apply/fixtures/pool-a.yaml";
    expect((await apply(["--auto-approve", dev])).code).toBe(0);
    const saved = join(dir, "pool-b.plan");
    expect((await plan(["--out", saved, "test/apply/fixtures/pool-b.yaml"])).code).toBe(0);
    const check = (JSON.parse(readFileSync(saved, "utf8")) as JsonPlan).prior_state.find((c) => c.check === "pool-volumes");
    expect(check).toEqual({ check: "pool-volumes", name: "fast", expect: { value: "appvms/a/private\nappvms/a/volatile" } });
    // Between the plan and its apply, a qube made by hand in the pool.
    await runOp(s.client, { op: "vm.create", class: "AppVM", name: "by-hand", label: "red", template: "fedora-40", pool: "fast" });
    s.sim.calls.length = 0;
    const r = await apply(["--auto-approve", "--allow-destroy", saved]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(
      "pool.fast.volumes: error QIAC-E201: changed since the plan was made: appvms/a/private, appvms/a/volatile → appvms/a/private, appvms/a/volatile, appvms/by-hand/private, appvms/by-hand/volatile",
    );
    expect(mutated()).toEqual([]);
    // Once the pool holds what the plan saw, the saved plan applies as it was made.
    await runOp(s.client, { op: "vm.remove", vm: "by-hand" });
    expect((await apply(["--auto-approve", "--allow-destroy", saved])).code).toBe(0);
    expect((await plan(["test/apply/fixtures/pool-b.yaml"])).stdout).toBe("No changes.\n");
  });
});

describe("a saved plan", () => {
  const save = async (config: string, name = "tomorrow.plan"): Promise<string> => {
    const file = join(dir, name);
    expect((await plan(["--out", file, config])).code).toBe(0);
    return file;
  };

  it("is recognised by its content and applied exactly: the calls are the plan's ops, after the re-check", async () => {
    const file = await save("examples/workstation.yaml", "no-extension");
    const saved = JSON.parse(readFileSync(file, "utf8")) as JsonPlan;
    s.sim.calls.length = 0;
    const r = await apply(["--auto-approve", "--parallelism", "1", file]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^Saved plan .*no-extension, made by qubes-iac 0\.1\.0 for workstation:\n/);
    expect(s.sim.calls.filter((c) => !isMutating(c.method)).length).toBeGreaterThan(0);
    const { opCall } = await import("../../src/apply/admin-api.js");
    expect(mutated()).toEqual(planOps(saved).map((o) => { const c = opCall(o); return `${c.method}+${c.arg} → ${c.dest}`; }));
    expect((await plan(["examples/workstation.yaml"])).stdout).toBe("No changes.\n");
  });

  it("made on another Qubes release is refused before any change (what it decided by release would not hold)", async () => {
    const file = await save("examples/minimal.yaml");
    const saved = JSON.parse(readFileSync(file, "utf8")) as JsonPlan;
    const here = testRelease();
    expect(saved.qubes_release?.detected).toBe(here);
    const other = here === "r4.2" ? "main" : "r4.2";
    writeFileSync(file, JSON.stringify({ ...saved, qubes_release: { detected: other, candidates: [other], evidence: ["forged"] } }));
    s.sim.calls.length = 0;
    const r = await apply(["--auto-approve", file]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`qubes-iac: the plan was made on Qubes ${RELEASE_NAMES[other]}; this system answers as ${RELEASE_NAMES[here]}; nothing was changed. Run \`qubes-iac plan\` again`);
    expect(mutated()).toEqual([]);
  });

  it("is refused, naming every value that changed (address, old → new), and nothing is changed", async () => {
    const file = await save("examples/reference.yaml");
    await runOp(s.client, { op: "property.set", holder: { vm: "sys-firewall" }, name: "memory", value: "700" });
    await runOp(s.client, { op: "label.create", name: "magenta", colour: "0xff00ff" });
    s.sim.calls.length = 0;
    const r = await apply(["--auto-approve", file]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('qube.sys-firewall.properties.memory: error QIAC-E201: changed since the plan was made: "400" (default) → "700"');
    expect(r.stderr).toContain("label.magenta: error QIAC-E201: changed since the plan was made: absent → present");
    expect(r.stderr).toMatch(/the system changed since the plan was made \(2 values above\); nothing was changed/);
    expect(mutated()).toEqual([]);
  });

  it("--json: the changed values as a prior_state_changed event", async () => {
    const file = await save("examples/minimal.yaml");
    await runOp(s.client, { op: "vm.create", class: "AppVM", name: "notes", label: "red", template: "fedora-40" });
    const r = await apply(["--auto-approve", "--json", file]);
    expect(r.code).toBe(1);
    const events = applyEvents(r.stdout);
    expect(events.map((e) => e.type)).toEqual(["plan", "prior_state_changed"]);
    expect(events[1]).toEqual({ type: "prior_state_changed", format_version: 1, changes: [{ address: "qube.notes", expected: "absent", actual: "exists (AppVM)" }] });
  });

  it("a person's approval of a fresh plan is followed by the same re-check", async () => {
    // The person answers only after someone made the qube by hand: the plan no longer holds.
    let sent = false;
    const input = new Readable({
      read() {
        if (sent) return;
        sent = true;
        void runOp(s.client, { op: "vm.create", class: "AppVM", name: "notes", label: "red", template: "fedora-40" }).then(() => this.push("y\n"));
      },
    });
    const r = await apply(["examples/minimal.yaml"], { tty: true, input });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("qube.notes: error QIAC-E201: changed since the plan was made: absent → exists (AppVM)");
    expect(mutated()).toEqual(["admin.vm.Create.AppVM+fedora-40 → dom0"]);
  });

  it("with nothing to do exits 0", async () => {
    expect((await apply(["--auto-approve", "examples/minimal.yaml"])).code).toBe(0);
    const r = await apply(["--auto-approve", await save("examples/minimal.yaml")]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/No changes\.\n$/);
  });

  it("is refused when newer, not valid, holding errors, or given with config files or scope options", async () => {
    const file = await save("examples/minimal.yaml");
    const good = JSON.parse(readFileSync(file, "utf8")) as Record<string, unknown>;
    const variant = (name: string, change: (p: Record<string, unknown>) => void): string => {
      const p = structuredClone(good);
      change(p);
      const f = join(dir, name);
      writeFileSync(f, JSON.stringify(p));
      return f;
    };
    const newer = await apply(["--auto-approve", variant("newer", (p) => (p.format_version = 2))]);
    expect(newer.stderr).toMatch(/error QIAC-E203: .*newer is a plan of format_version 2; this qubes-iac reads format_version 1/);
    const invalid = await apply(["--auto-approve", variant("invalid", (p) => (p.steps = [{ id: "x" }]))]);
    expect(invalid.stderr).toMatch(/error QIAC-E202: .*invalid is not a valid plan: \/steps\/0 must have required property 'address'/);
    const order = await apply(["--auto-approve", variant("order", (p) => (p.steps as Array<{ depends_on: string[] }>)[0]?.depends_on.push("create:qube.notes"))]);
    expect(order.stderr).toMatch(/error QIAC-E202: .*step setup:ownership depends on create:qube.notes, which is not an earlier step/);
    const errored = await apply(["--auto-approve", variant("errored", (p) => ((p.errored = true), (p.applyable = false)))]);
    expect(errored.stderr).toMatch(/error QIAC-E204: .*errored holds errors and cannot be applied/);
    const mixed = await apply(["--auto-approve", file, "examples/minimal.yaml"]);
    expect(mixed.stderr).toMatch(/is a saved plan: a saved plan is applied alone, without config files/);
    const scoped = await apply(["--auto-approve", "--target", "qube.notes", file]);
    expect(scoped.stderr).toMatch(/--allow-restart, --target and --exclude are fixed when a plan is saved/);
    for (const r of [newer, invalid, order, errored, mixed, scoped]) expect(r.code).toBe(1);
    expect(mutated()).toEqual([]);
  });
});
