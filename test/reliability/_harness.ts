// Reliability test support: a starting system that holds things no config of ours may touch
// (foreign qubes, another owner's records, a hand-added owner tag, a custom label and pool),
// built once through the Admin API and copied per run; a byte-for-byte snapshot of everything
// outside a config, read through the Admin API; and in-process CLI runs with captured output.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable, Writable } from "node:stream";
import { createAdminClient, type AdminClient } from "../../src/providers/qubes/client.js";
import { createSocketTransport } from "../../src/providers/qubes/transport-socket.js";
import { startSimulator, type SimFixture, type SimulatorOptions } from "../../src/providers/qubes/simulator/index.js";
import { applyEvents } from "../helpers/apply-events.js";
import { startTestSim, testRelease, type TestSim } from "../helpers/sim.js";
import { applyCommand, type ApplyCommandOptions, type ApplyDeps } from "../../src/cli/commands/apply.js";
import { CliError, type CliIO } from "../../src/cli/io.js";
import { runCli } from "../../src/cli/run.js";
import { repoRoot } from "../helpers/shared.js";

export type Sim = TestSim;

/** A simulator whose state starts as a copy of `template` (a state file), or from the default fixture. */
export async function startSim(o: { template?: string; faults?: string[] } & Partial<SimulatorOptions> = {}): Promise<Sim> {
  const { template, ...rest } = o;
  return startTestSim({ ...rest, faults: o.faults ?? [] }, template === undefined ? {} : { stateFrom: template });
}

export const clientOf = (sim: { socketPath: string }, timeoutMs = 10_000): AdminClient =>
  createAdminClient(createSocketTransport(sim.socketPath, { timeoutMs }), { timeoutMs, slowTimeoutMs: timeoutMs });

/**
 * Adds to a fixture (`default`, or `o.fixture`) what a careless apply could damage: `foreign` (another owner's
 * qube, its records and tag, a netvm that is one of our qubes, firewall rules), `impostor` (a
 * hand-added `managed-by-<owner>` tag and a fake per-qube record of that owner: neither makes it
 * ours), `bystander` (running, with notes), another owner's dom0 inventory including one whose
 * name extends ours (`<owner>-old`), a dom0 GUI feature, two custom labels and a pool. The foreign
 * qubes are AppVMs on `o.template` (default fedora-40, which the laptop fixture lacks).
 */
export async function buildForeignState(path: string, owner: string, o: { fixture?: SimFixture; template?: string } = {}): Promise<void> {
  /** The foreign qubes' template, one the fixture has. */
  const template = o.template ?? "fedora-40";
  const dir = mkdtempSync(join(tmpdir(), "qiac-rel-build-"));
  const sim = await startSimulator({ socketPath: join(dir, "qubesd.sock"), statePath: path, reset: true, release: testRelease(), ...(o.fixture === undefined ? {} : { fixture: o.fixture }) });
  const c = clientOf(sim);
  try {
    await c.label.create("foreign-label", "0x123456");
    await c.label.create("spare-label", "0x654321");
    await c.pool.add("file", "foreign-pool", { dir_path: "/var/lib/qubes/foreign-pool" });
    for (const [name, label] of [
      ["foreign", "purple"],
      ["impostor", "orange"],
      ["bystander", "green"],
    ] as const) {
      await c.vm.create({ klass: "AppVM", name, label, template });
    }
    await c.property.set({ vm: "foreign" }, "netvm", "sys-firewall");
    await c.property.set({ vm: "foreign" }, "memory", "555");
    await c.property.set({ vm: "foreign" }, "label", "foreign-label");
    await c.feature.set("foreign", "service.crond", "1");
    await c.feature.set("foreign", "qubes-iac.other.feature.service.crond", "1");
    await c.tag.set("foreign", "managed-by-other");
    await c.tag.set("foreign", "custom");
    await c.firewall.set("foreign", ["action=accept dsthost=example.org proto=tcp dstports=443-443", "action=drop"]);
    await c.tag.set("impostor", `managed-by-${owner}`);
    await c.feature.set("impostor", `qubes-iac.${owner}.protect`, "1");
    await c.feature.set("impostor", `qubes-iac.${owner}.feature.service.cups`, "1");
    await c.feature.set("impostor", "service.cups", "1");
    await c.property.set({ vm: "bystander" }, "netvm", "");
    await c.vm.start("bystander");
    await c.feature.set("dom0", "qubes-iac.other.format", "1");
    await c.feature.set("dom0", "qubes-iac.other.qube.foreign", "own");
    await c.feature.set("dom0", `qubes-iac.${owner}-old.format`, "1");
    await c.feature.set("dom0", `qubes-iac.${owner}-old.qube.bystander`, "own");
    await c.feature.set("dom0", "gui-default-trayicon-mode", "border1");
  } finally {
    await c.close();
    await sim.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

type RawReader = (method: string, dest: string, arg?: string) => Promise<Buffer>;

const lines = (b: Buffer): string[] => {
  const body = b.subarray(2).toString("utf8");
  return body === "" ? [] : body.replace(/\n$/, "").split("\n");
};

export type Ours = { qubes: ReadonlySet<string>; globals: ReadonlySet<string>; labels: ReadonlySet<string>; pools: ReadonlySet<string>; ownerPrefix: string };

/**
 * Everything outside what `ours` names, as raw reply bytes: for every other qube its List line,
 * properties (GetAll), tags, features one by one, firewall and notes; dom0's features outside
 * `ownerPrefix`, the global properties the config does not set, every label but the config's, and
 * every pool but the config's. Two snapshots are equal exactly when none of that changed.
 *
 * `explicitOnly` leaves out property values at their default: those are derived (a qube's default
 * netvm is the global default_netvm, its gateway its netvm's address), so a config that changes a
 * global or one of its own qubes changes them in other qubes by design, without touching them.
 * `power: false` leaves out power states: apply starts a netvm that a qube it starts needs.
 */
export async function snapshotForeign(sim: { socketPath: string }, ours: Ours, o: { explicitOnly?: boolean; power?: boolean } = {}): Promise<Record<string, string>> {
  const t = createSocketTransport(sim.socketPath, { timeoutMs: 10_000 });
  const raw: RawReader = (method, dest, arg = "") => t.call({ method, dest, arg });
  const out: Record<string, string> = {};
  const put = (k: string, b: Buffer | string): void => {
    out[k] = typeof b === "string" ? b : b.toString("latin1");
  };
  const list = lines(await raw("admin.vm.List", "dom0"));
  for (const line of list) {
    const name = line.split(" ")[0] as string;
    if (ours.qubes.has(name)) continue;
    put(`qube ${name}`, o.power === false ? line.replace(/ state=\S+/, "") : line);
    if (name !== "dom0") {
      const props = await raw("admin.vm.property.GetAll", name);
      put(`${name} properties`, o.explicitOnly ? lines(props).filter((l) => !/^\S+ default=True /.test(l)).join("\n") : props);
      put(`${name} firewall`, await raw("admin.vm.firewall.Get", name));
      put(`${name} notes`, await raw("admin.vm.notes.Get", name));
    }
    put(`${name} tags`, await raw("admin.vm.tag.List", name));
    for (const f of lines(await raw("admin.vm.feature.List", name))) {
      if (name === "dom0" && f.startsWith(ours.ownerPrefix)) continue;
      put(`${name} feature ${f}`, await raw("admin.vm.feature.Get", name, f));
    }
  }
  for (const g of lines(await raw("admin.property.GetAll", "dom0"))) {
    const key = g.split(" ")[0] as string;
    if (!ours.globals.has(key) && !(o.explicitOnly && / default=True /.test(g))) put(`global ${key}`, g);
  }
  for (const l of lines(await raw("admin.label.List", "dom0"))) if (!ours.labels.has(l)) put(`label ${l}`, await raw("admin.label.Index", "dom0", l));
  for (const p of lines(await raw("admin.pool.List", "dom0"))) if (!ours.pools.has(p)) put(`pool ${p}`, await raw("admin.pool.Info", "dom0", p));
  return out;
}

/** Property-test settings: a fixed seed in CI; QIAC_PROPERTY_SEED and QIAC_PROPERTY_RUNS widen a run by hand. */
export const propertySettings = (runs: number): { seed: number; numRuns: number } => ({
  seed: Number(process.env.QIAC_PROPERTY_SEED ?? 0x5eed),
  numRuns: Math.max(runs, Number(process.env.QIAC_PROPERTY_RUNS ?? 0)),
});

export type CliRun = { code: number; stdout: string; stderr: string };

function capture(): Writable & { text(): string } {
  const chunks: Buffer[] = [];
  const w = new Writable({
    write(chunk: Buffer | string, _enc, cb) {
      chunks.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk));
      cb();
    },
  });
  return Object.assign(w, { text: () => Buffer.concat(chunks).toString("utf8") });
}

export function makeIO(argv: string[], o: { env?: Record<string, string>; interrupted?: Promise<string> } = {}): { io: CliIO; out(): CliRun["stdout"]; err(): string } {
  const stdout = capture();
  const stderr = capture();
  const stdin = Object.assign(Readable.from([]), { isTTY: false });
  const io: CliIO = { argv, env: o.env ?? {}, cwd: repoRoot, stdin, stdout, stderr, interrupted: o.interrupted ?? new Promise<string>(() => {}) };
  return { io, out: () => stdout.text(), err: () => stderr.text() };
}

/** A command through the CLI's own entry, in-process, against `sim` (validate reaches nothing). */
export async function cli(sim: { socketPath: string }, args: string[], o: { env?: Record<string, string> } = {}): Promise<CliRun> {
  const connect = args[0] === "validate" ? [] : ["--connect", `qubesd:${sim.socketPath}`];
  const { io, out, err } = makeIO([args[0] as string, ...connect, ...args.slice(1)], o);
  const code = await runCli(io);
  return { code, stdout: out(), stderr: err() };
}

/** The JSON lines of `apply --json`, parsed and checked against the events' schema. */
export const events = applyEvents;

/** `apply` through its command entry, with injected dependencies (client, lock holder, clocks) and an interrupt. */
export async function applyIn(
  sim: { socketPath: string },
  paths: string[],
  opts: Omit<ApplyCommandOptions, "connect">,
  deps: Partial<ApplyDeps> = {},
  o: { interrupted?: Promise<string> } = {},
): Promise<CliRun> {
  const { io, out, err } = makeIO(["apply", ...paths], o);
  let t = 0;
  const code = await applyCommand(io, paths, { connect: `qubesd:${sim.socketPath}`, ...opts }, { now: () => (t += 100), ...deps }).catch((e: unknown) => {
    // As runCli reports a CliError: on stderr, exit 1.
    if (e instanceof CliError) {
      io.stderr.write(`qubes-iac: ${e.message}\n`);
      return e.exitCode;
    }
    throw e;
  });
  return { code, stdout: out(), stderr: err() };
}
