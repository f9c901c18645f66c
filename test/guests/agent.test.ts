// Plan and apply of guest files against the REAL qemu-ga in host mode (test/qga/helpers/agent.ts:
// dropped to nobody, on a temp socket, with shutdown, freezing and exec blocked), through the CLI
// in-process against the simulator. Every guest path a test names is inside that agent's own temp
// dir (guestPath() refuses anything else), so no test touches a host file outside its temp dirs.
import { appendFileSync, chownSync, mkdirSync, mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runInNewContext } from "node:vm";
import { setFlagsFromString } from "node:v8";
import { afterEach, beforeEach, describe, expect, test } from "vitest";
import { guestOpExecutor } from "../../src/apply/guest-agent.js";
import type { JsonPlan } from "../../src/plan/json.js";
import { isGuestOp } from "../../src/plan/ops.js";
import { runIn, type CliRun } from "../apply/_cli.js";
import { startSession, type SimSession } from "../plan/_helpers.js";
import { QEMU_GA, sleep, startTestAgent, type TestAgent } from "../qga/helpers/agent.js";
import { sha256Of, shown } from "./helpers.js";

const MiB = 1024 * 1024;
const MARKER = "SECRET-MARKER-c0ffee";

describe.skipIf(!QEMU_GA)("plan and apply of guest files through the real qemu-ga", () => {
  let s: SimSession;
  let agent: TestAgent;
  let cfg: string;
  const extraAgents: TestAgent[] = [];

  beforeEach(async () => {
    s = await startSession();
    agent = await startTestAgent();
    cfg = mkdtempSync(join(tmpdir(), "qiac-guest-cfg-"));
  });
  afterEach(async () => {
    await Promise.all([agent.stop(), s.stop(), ...extraAgents.splice(0).map((a) => a.stop())]);
    rmSync(cfg, { recursive: true, force: true });
  });

  /** A path in the agent's temp dir: the only place a test lets the agent write. */
  const guestPath = (a: TestAgent | string, name: string): string => {
    const dir = typeof a === "string" ? a : a.dir;
    if (!dir.startsWith(tmpdir()) || name.includes("/..") || name.startsWith("/")) throw new Error(`refusing a guest path outside the test's temp dir: ${dir} ${name}`);
    return `${dir}/${name}`;
  };

  const connect = (): string[] => ["--connect", `qubesd:${s.sim.socketPath}`];
  const cli = (command: string, args: string[] = [], o: { env?: Record<string, string> } = {}): Promise<CliRun> => runIn([command, ...connect(), ...args], { cwd: cfg, ...o });
  const plan = (...args: string[]): Promise<CliRun> => cli("plan", [...args, "qubes.yaml"]);
  const apply = (...args: string[]): Promise<CliRun> => cli("apply", ["--auto-approve", ...args]);

  /** Writes qubes.yaml (and source files) to the config dir. */
  const writeConfig = (body: string, sources: Record<string, string | Uint8Array> = {}): void => {
    for (const [name, content] of Object.entries(sources)) {
      mkdirSync(join(cfg, name, ".."), { recursive: true });
      writeFileSync(join(cfg, name), content);
    }
    writeFileSync(join(cfg, "qubes.yaml"), `version: 1\nowner: guests\n${body}`);
  };

  const hostGuest = (files: string, extra = ""): string => `guests:\n  host:\n    agent: {socket: ${agent.socket}}\n${extra}    files:\n${files}`;

  test("plan, apply, and the next plan says No changes.; the bytes in the guest are the config's", async () => {
    const motd = guestPath(agent, "motd");
    const conf = guestPath(agent, "etc/app.conf");
    mkdirSync(join(agent.dir, "etc"));
    if (process.getuid?.() === 0) chownSync(join(agent.dir, "etc"), 65534, 65534);
    writeConfig(hostGuest(`      ${motd}: |\n        hello from qubes-iac\n        ünïcode too\n      ${conf}: {source: files/app.conf}\n`), { "files/app.conf": "key = value\n" });

    const first = await plan("--detailed-exitcode");
    expect(first.code).toBe(2);
    expect(first.stdout).toContain(`   ~ guest.host\n      files.${motd}: (absent) → ${shown("hello from qubes-iac\nünïcode too\n")}\n      files.${conf}: (absent) → ${shown("key = value\n")}\n`);
    expect(first.stdout).toMatch(/# guest: .*; qemu-ga \d+\.\d+/);
    expect(first.stdout).toContain("wave 1  update:guest.host  2 calls\n            guest-file-write\n");
    expect(first.stdout).toMatch(/Plan: 0 to add, 1 to change, 0 to destroy\.\n$/);

    const applied = await apply("qubes.yaml");
    expect(applied.stderr).not.toMatch(/error/);
    expect(applied.code).toBe(0);
    expect(applied.stdout).toMatch(/update:guest\.host: done after .*\n\nApply complete: 0 added, 1 changed, 0 destroyed\.\n$/);
    expect(readFileSync(motd, "utf8")).toBe("hello from qubes-iac\nünïcode too\n");
    expect(readFileSync(conf, "utf8")).toBe("key = value\n");

    const again = await plan("--detailed-exitcode");
    expect(again).toMatchObject({ code: 0, stdout: "No changes.\n" });

    // A change of the source is a change of that file only.
    writeFileSync(join(cfg, "files/app.conf"), "key = other\n");
    const changed = await plan();
    expect(changed.stdout).toContain(`      files.${conf}: ${shown("key = value\n")} → ${shown("key = other\n")}\n`);
    expect(changed.stdout).not.toContain(`files.${motd}`);
    expect((await apply("qubes.yaml")).code).toBe(0);
    expect(readFileSync(conf, "utf8")).toBe("key = other\n");
    expect((await plan()).stdout).toBe("No changes.\n");
  });

  test("a write cut short (the file truncated behind the agent's back) shows in the next plan; apply makes it whole", async () => {
    const path = guestPath(agent, "data.bin");
    const content = "0123456789".repeat(1000);
    writeConfig(hostGuest(`      ${path}: {source: data.txt}\n`), { "data.txt": content });
    expect((await apply("qubes.yaml")).code).toBe(0);
    expect((await plan()).stdout).toBe("No changes.\n");

    truncateSync(path, 4096);
    const cut = await plan("--detailed-exitcode");
    expect(cut.code).toBe(2);
    expect(cut.stdout).toContain(`      files.${path}: ${shown(content.slice(0, 4096))} → ${shown(content)}\n`);
    expect((await apply("qubes.yaml")).code).toBe(0);
    expect(readFileSync(path, "utf8")).toBe(content);

    // Bytes added behind its back, and the file removed: both seen, both repaired.
    appendFileSync(path, "tail");
    expect((await plan()).stdout).toContain(`${shown(`${content}tail`)} → ${shown(content)}`);
    rmSync(path);
    expect((await plan()).stdout).toContain(`files.${path}: (absent) → ${shown(content)}`);
    expect((await apply("qubes.yaml")).code).toBe(0);
    expect((await plan()).stdout).toBe("No changes.\n");
  });

  test("content never appears: human and JSON plans, a saved plan, apply (human and --json), show, and a refusal", async () => {
    const a = guestPath(agent, "inline.txt");
    const b = guestPath(agent, "source.txt");
    writeConfig(hostGuest(`      ${a}: "${MARKER} inline\\n"\n      ${b}: {source: secret.txt}\n`), { "secret.txt": `${MARKER} source\n` });
    const outputs: Array<[string, string]> = [];
    const keep = (what: string, r: CliRun): CliRun => {
      outputs.push([`${what} stdout`, r.stdout], [`${what} stderr`, r.stderr]);
      return r;
    };
    keep("plan", await plan());
    keep("plan --json", await plan("--json"));
    const saved = join(cfg, "saved.plan");
    expect(keep("plan --out", await plan("--out", saved)).code).toBe(0);
    outputs.push(["saved plan", readFileSync(saved, "utf8")]);
    const savedPlan = JSON.parse(readFileSync(saved, "utf8")) as { steps: Array<{ ops: Array<{ sha256: string }> }> };
    expect(savedPlan.steps[0]!.ops.map((o) => o.sha256)).toEqual([sha256Of(`${MARKER} inline\n`), sha256Of(`${MARKER} source\n`)]);
    expect(keep("apply --json", await apply("--json", "qubes.yaml")).code).toBe(0);
    writeFileSync(a, "changed behind its back\n");
    expect(keep("apply", await apply("qubes.yaml")).code).toBe(0);
    keep("show", await cli("show", ["qubes.yaml"]));
    keep("show --json", await cli("show", ["--json", "qubes.yaml"]));
    // A refusal names the file and the hashes, not what is in it.
    writeFileSync(join(cfg, "secret.txt"), `${MARKER} edited\n`);
    writeFileSync(a, "changed again\n");
    const refused = keep("apply of a stale saved plan", await cli("apply", ["--auto-approve", saved]));
    expect(refused.code).toBe(1);
    expect(readFileSync(b, "utf8")).toBe(`${MARKER} source\n`);
    for (const [what, text] of outputs) expect({ what, leaked: text.includes("SECRET-MARKER") }).toEqual({ what, leaked: false });
    expect(outputs.find(([w]) => w === "show stdout")![1]).toMatch(new RegExp(`guest\\.host \\(.*qemu-ga .*\\)\\n    files\\.${a.replace(/\//g, "\\/")}: ${shown(`${MARKER} inline\n`)}\\n`));
  });

  test("a saved plan is applied as planned, and refused (nothing written) when the content or the guest file changed since", async () => {
    const path = guestPath(agent, "app.conf");
    writeConfig(hostGuest(`      ${path}: {source: app.conf}\n`), { "app.conf": "v1\n" });
    const saved = join(cfg, "v1.plan");
    expect((await plan("--out", saved)).code).toBe(0);

    // The source changed after the plan: the plan's content is gone, so apply refuses.
    writeFileSync(join(cfg, "app.conf"), "v2\n");
    const stale = await cli("apply", ["--auto-approve", saved]);
    expect(stale.code).toBe(1);
    expect(stale.stderr).toContain(`guest.host.files.${path}.content: error QIAC-E201: changed since the plan was made: ${shown("v1\n")}… → ${shown("v2\n")}…`);
    expect(stale.stderr).toMatch(/nothing was changed/);
    expect(() => readFileSync(path)).toThrow(/ENOENT/);

    // Back to v1, but the guest file appeared meanwhile: what the plan read no longer holds.
    writeFileSync(join(cfg, "app.conf"), "v1\n");
    writeFileSync(path, "someone else\n");
    const moved = await cli("apply", ["--auto-approve", saved]);
    expect(moved.code).toBe(1);
    expect(moved.stderr).toContain(`guest.host.files.${path}: error QIAC-E201: changed since the plan was made: absent → ${shown("someone else\n")}…`);
    expect(readFileSync(path, "utf8")).toBe("someone else\n");

    rmSync(path);
    const ok = await cli("apply", ["--auto-approve", saved]);
    expect(ok.code).toBe(0);
    expect(readFileSync(path, "utf8")).toBe("v1\n");
  });

  test("the write op itself re-reads its content and refuses, writing nothing, when it no longer hashes as planned", async () => {
    const path = guestPath(agent, "race.conf");
    writeConfig(hostGuest(`      ${path}: {source: race.conf}\n`), { "race.conf": "planned\n" });
    const saved = join(cfg, "race.plan");
    expect((await plan("--out", saved)).code).toBe(0);
    const op = (JSON.parse(readFileSync(saved, "utf8")) as JsonPlan).steps[0]!.ops[0]!;
    if (!isGuestOp(op)) throw new Error("expected a guest op");
    const executor = guestOpExecutor();

    // Changed after the plan (past any re-check apply made before starting): refused by the op.
    writeFileSync(join(cfg, "race.conf"), "not planned\n");
    const refused = await executor.run(op);
    expect(refused).toMatchObject({ kind: "failed", failure: { code: "content-changed", call: `guest-file-write ${path} → guest.host` } });
    expect(refused.kind === "failed" && refused.failure.message).toContain(`is now ${shown("not planned\n")}…, not the planned ${shown("planned\n")}…; nothing was written`);
    expect(() => readFileSync(path)).toThrow(/ENOENT/);

    writeFileSync(join(cfg, "race.conf"), "planned\n");
    expect(await executor.run(op)).toEqual({ kind: "ok" });
    expect(readFileSync(path, "utf8")).toBe("planned\n");
    // An unknown outcome is settled by reading the file back, never by writing again.
    expect(await executor.verify(op)).toEqual({ kind: "done" });
    writeFileSync(path, "plan\n");
    expect(await executor.verify(op)).toEqual({ kind: "not-done", detail: `${path} is ${shown("plan\n")}…` });
  });

  test("an agent that is not there: plan exits 1 at once with QIAC-E123 at agent:, and never hangs", async () => {
    const missing = join(cfg, "no-such.sock");
    writeConfig(`guests:\n  gone:\n    agent: {socket: ${missing}}\n    files: {${guestPath(agent, "x")}: "x"}\n`);
    const started = Date.now();
    const r = await plan("--detailed-exitcode");
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`qubes.yaml:5:12: error QIAC-E123: guest.gone: socket ${missing}: no such socket (the VM or its agent channel is not up)`);
    expect(r.stderr).toContain("hint: start the VM and its agent (docs/guests.md), or add wait: {timeout: 120s} if it is still starting");
    expect(r.stdout).toMatch(/cannot be applied/);
  });

  test("wait: a plan waits while the agent is not up yet and then reads it; at the timeout it fails saying what it saw", async () => {
    const later = mkdtempSync(join(tmpdir(), "qiac-guest-later-"));
    writeConfig(`guests:\n  late:\n    agent: {socket: ${later}/qga.sock}\n    wait: {timeout: 20s}\n    files: {${guestPath(later, "late.txt")}: "late\\n"}\n`);
    const started = Date.now();
    const planning = plan();
    await sleep(1500);
    extraAgents.push(await startTestAgent({ dir: later }));
    const r = await planning;
    expect(r.code).toBe(0);
    expect(Date.now() - started).toBeGreaterThanOrEqual(1400);
    expect(r.stdout).toContain(`files.${later}/late.txt: (absent) → ${shown("late\n")}`);

    writeConfig(`guests:\n  never:\n    agent: {socket: ${cfg}/never.sock}\n    wait: {timeout: 2s}\n`);
    const t0 = Date.now();
    const timedOut = await plan();
    const took = Date.now() - t0;
    expect(took).toBeGreaterThanOrEqual(1900);
    expect(took).toBeLessThan(6_000);
    expect(timedOut.code).toBe(1);
    expect(timedOut.stderr).toContain(`error QIAC-E123: guest.never: the guest agent (socket ${cfg}/never.sock) did not answer within 2 s; last: socket ${cfg}/never.sock: no such socket`);
  });

  test("a qube's guest: apply creates and starts the qube, then writes its files; the next plan reads them: No changes.", async () => {
    const path = guestPath(agent, "in-qube.txt");
    writeConfig(
      `qubes:\n  guesthost:\n    class: AppVM\n    template: fedora-40\n    label: green\n    state: running\n    guest:\n      agent: {socket: ${agent.socket}}\n      wait: {timeout: 10s}\n      files: {${path}: "inside the qube\\n"}\n`,
    );
    const first = await plan();
    expect(first.code).toBe(0);
    expect(first.stdout).toContain("  # qube guesthost does not exist yet: its files are written once apply has it running, without comparing\n   ~ guest.qube.guesthost\n");
    expect(first.stdout).toMatch(/update:guest\.qube\.guesthost\s+1 call\s+after create:qube\.guesthost\n/);
    expect(first.stderr).not.toMatch(/QIAC-W103/);
    const applied = await apply("qubes.yaml");
    expect(applied.code).toBe(0);
    const order = applied.stdout.split("\n").filter((l) => / done after /.test(l)).map((l) => l.split(":")[0] + ":" + l.split(":")[1]);
    expect(order).toEqual(["setup:ownership", "create:qube.guesthost", "update:guest.qube.guesthost"]);
    expect(readFileSync(path, "utf8")).toBe("inside the qube\n");
    expect(await plan()).toMatchObject({ code: 0, stdout: "No changes.\n" });

    // --target guest.qube.NAME plans that guest alone; its qube needs nothing now.
    writeFileSync(path, "edited\n");
    const targeted = await plan("--target", "guest.qube.guesthost");
    expect(targeted.stdout).toContain(`files.${path}: ${shown("edited\n")} → ${shown("inside the qube\n")}`);
    expect(targeted.stdout).toContain("Scope limited by --target guest.qube.guesthost");
  });

  test("a halted qube whose state is not managed: its guest files are QIAC-E124, and the agent is not asked", async () => {
    writeConfig(`qubes:\n  work:\n    adopt: true\n    guest:\n      agent: {socket: ${agent.socket}}\n      files: {${guestPath(agent, "w.txt")}: "w"}\n`);
    const r = await plan();
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("qubes.yaml:6:5: error QIAC-E124: qube work is halted, and its guest files are reached only while it runs");
  });

  test("state: shutdown against a host agent that blocks guest-shutdown: apply fails with the refusal, after writing the files", async () => {
    const path = guestPath(agent, "before-shutdown.txt");
    writeConfig(hostGuest(`      ${path}: "written first\\n"\n`, "    state: shutdown\n"));
    const p = await plan();
    expect(p.stdout).toContain("      state: running → shutdown\n");
    expect(p.stdout).toContain("update:guest.host  2 calls\n            guest-file-write guest-shutdown\n");
    const r = await apply("qubes.yaml");
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/update:guest\.host: failed after .*: guest\.host: guest-shutdown on socket .*: the agent reports this command disabled .*; not sent/);
    expect(readFileSync(path, "utf8")).toBe("written first\n");
    expect(agent.process.exitCode).toBeNull();
  });

  test(
    "a 40 MiB source is hashed and written streamed: live memory stays a few MiB",
    async () => {
      setFlagsFromString("--expose-gc");
      const gc = runInNewContext("gc") as () => void;
      const live = (): number => {
        gc();
        gc();
        const m = process.memoryUsage();
        return m.heapUsed + m.arrayBuffers;
      };
      const big = Buffer.alloc(40 * MiB);
      for (let i = 0; i < big.length; i += 4) big.writeUInt32LE((i * 2654435761) >>> 0, i);
      const path = guestPath(agent, "big.bin");
      writeConfig(hostGuest(`      ${path}: {source: big.bin}\n`), { "big.bin": big });
      const digest = sha256Of(big);
      const baseline = live();
      let peak = 0;
      const sampler = setInterval(() => {
        peak = Math.max(peak, live() - baseline);
      }, 500);
      let r: CliRun;
      const started = Date.now();
      try {
        r = await apply("qubes.yaml");
      } finally {
        clearInterval(sampler);
      }
      expect(r.code).toBe(0);
      expect(sha256Of(readFileSync(path))).toBe(digest);
      expect(peak).toBeGreaterThan(0);
      expect(peak).toBeLessThan(24 * MiB);
      console.log(`40 MiB guest file planned, written and verified through qemu-ga in ${((Date.now() - started) / 1000).toFixed(1)} s; peak live memory above baseline ${(peak / MiB).toFixed(1)} MiB`);
      expect((await plan()).stdout).toBe("No changes.\n");
    },
    120_000,
  );
});
