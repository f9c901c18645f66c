// Secrets never leave their place: a qube's notes are never read, and guest file contents — the
// config's inline and `source:` content, and what the guest held before — appear in no output of
// any command (validate, plan, plan --json, a saved plan, show, show --json, apply, apply --json,
// export), neither when everything works nor when a write fails or the agent is gone. The guest
// is the real qemu-ga in host mode; the contents did reach it (read back from its disk).
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createSocketTransport } from "../../src/providers/qubes/transport-socket.js";
import { QEMU_GA, plantFile, startTestAgent, type TestAgent } from "../qga/helpers/agent.js";
import { cli, startSim, type CliRun, type Sim } from "./_harness.js";

const NOTES = "NOTES-SECRET-4c1d";
const INLINE = "INLINE-SECRET-9e2b";
const SOURCE = "SOURCE-SECRET-51aa";
const BEFORE = "BEFORE-SECRET-d07f";
const MARKERS = [NOTES, INLINE, SOURCE, BEFORE];

/** Every marker found in a run's output: none may be. */
const leaks = (...texts: string[]): string[] => MARKERS.filter((m) => texts.some((t) => t.includes(m)));
const all = (r: CliRun): string => `${r.stdout}\n${r.stderr}`;

describe.skipIf(!QEMU_GA)("secrets stay out of logs, plans and errors", () => {
  let sim: Sim;
  let agent: TestAgent;
  let dir: string;
  let config: string;
  const outputs: Array<[string, string]> = [];
  const run = async (what: string, args: string[]): Promise<CliRun> => {
    const r = await cli(sim, args);
    outputs.push([what, all(r)]);
    return r;
  };

  beforeAll(async () => {
    sim = await startSim();
    agent = await startTestAgent();
    // A qube's notes hold a secret: qubes-iac must never ask for them.
    await createSocketTransport(sim.socketPath, { timeoutMs: 5000 }).call({ method: "admin.vm.notes.Set", dest: "work", arg: "", payload: Buffer.from(`${NOTES}\n`) });
    plantFile(agent, "held.conf", `${BEFORE}\n`);
    dir = mkdtempSync(join(tmpdir(), "qiac-secrets-"));
    mkdirSync(join(dir, "files"));
    writeFileSync(join(dir, "files", "source.txt"), `${SOURCE}\n`);
    config = join(dir, "qubes.yaml");
    writeFileSync(
      config,
      [
        "version: 1",
        "owner: secrets",
        "qubes:",
        "  work: {adopt: true, tags: [x]}",
        "guests:",
        "  vm1:",
        `    agent: {socket: ${agent.socket}}`,
        "    files:",
        `      ${join(agent.dir, "held.conf")}: "${INLINE}\\n"`,
        `      ${join(agent.dir, "new.conf")}: {source: files/source.txt}`,
        "",
      ].join("\n"),
    );
  });
  afterAll(async () => {
    await sim?.stop();
    await agent?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it("every command, when everything works", async () => {
    expect((await run("validate", ["validate", config])).code).toBe(0);
    expect((await run("plan", ["plan", config])).code).toBe(0);
    expect((await run("plan --json", ["plan", "--json", config])).code).toBe(0);
    const saved = join(dir, "saved.plan");
    expect((await run("plan --out", ["plan", "--out", saved, config])).code).toBe(0);
    outputs.push(["the saved plan", readFileSync(saved, "utf8")]);
    expect((await run("show", ["show", config])).code).toBe(0);
    expect((await run("show --json", ["show", "--json", config])).code).toBe(0);
    const applied = await run("apply", ["apply", "--auto-approve", config]);
    expect(applied.code).toBe(0);
    expect((await run("apply --json", ["apply", "--auto-approve", "--json", config])).code).toBe(0);
    expect((await run("export", ["export", "--owner", "secrets"])).code).toBe(0);
    expect((await run("export --all", ["export", "--all", "--owner", "secrets"])).code).toBe(0);
    // Not vacuous: the contents reached the guest.
    expect(readFileSync(join(agent.dir, "held.conf"), "utf8")).toBe(`${INLINE}\n`);
    expect(readFileSync(join(agent.dir, "new.conf"), "utf8")).toBe(`${SOURCE}\n`);
    for (const [what, text] of outputs) expect({ what, leaks: leaks(text) }).toEqual({ what, leaks: [] });
  });

  it("a write that fails, and a guest that is gone", async () => {
    // The file changed behind qubes-iac's back, and its directory cannot be written: apply fails.
    writeFileSync(join(agent.dir, "held.conf"), `${BEFORE}\n`);
    const failing = config.replace(/\.yaml$/, "-failing.yaml");
    writeFileSync(failing, readFileSync(config, "utf8").replace(join(agent.dir, "new.conf"), join(agent.dir, "missing-dir", "new.conf")));
    const failed = await run("apply (a write fails)", ["apply", "--auto-approve", failing]);
    expect(failed.code).toBe(1);
    await agent.stop();
    const gone = await run("plan (agent gone)", ["plan", config]);
    expect(gone.code).toBe(1);
    const goneApply = await run("apply (agent gone)", ["apply", "--auto-approve", config]);
    expect(goneApply.code).toBe(1);
    for (const [what, text] of outputs) expect({ what, leaks: leaks(text) }).toEqual({ what, leaks: [] });
  });

  it("notes were never read", () => {
    expect(sim.calls.filter((c) => c.method.startsWith("admin.vm.notes.") && c.method !== "admin.vm.notes.Set")).toEqual([]);
  });
});
