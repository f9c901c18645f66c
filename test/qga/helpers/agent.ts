// Runs the REAL qemu-ga in host mode (`-m unix-listen`) on a socket in a fresh temp dir, with a
// block list that keeps it from freezing, shutting down or suspending the host, and (as root)
// dropped to nobody:nogroup so its file commands cannot touch root-owned files. Tests keep every
// guest path under `dir`. Missing qemu-ga skips the tests, except under CI=true where it fails.
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { chownSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createConnection } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { AgentSpec } from "../../../src/providers/qga/spec.js";
import { QgaError } from "../../../src/providers/qga/errors.js";

/** The reference's host-mode block list: nothing that freezes, stops, suspends or reconfigures the host. */
export const HOST_BLOCK_LIST = [
  "guest-set-time",
  "guest-shutdown",
  "guest-fsfreeze-freeze",
  "guest-fsfreeze-freeze-list",
  "guest-fsfreeze-thaw",
  "guest-fstrim",
  "guest-suspend-disk",
  "guest-suspend-ram",
  "guest-suspend-hybrid",
  "guest-set-vcpus",
  "guest-set-user-password",
  "guest-set-memory-blocks",
  "guest-exec",
  "guest-exec-status",
  "guest-ssh-add-authorized-keys",
  "guest-ssh-remove-authorized-keys",
];

export const QEMU_GA_CANDIDATES = ["/usr/sbin/qemu-ga", "/usr/bin/qemu-ga"];

export function findProgram(candidates: string[], name: string): string | null {
  for (const c of candidates) if (existsSync(c)) return c;
  const which = spawnSync("sh", ["-c", `command -v ${name}`], { encoding: "utf8" });
  return which.status === 0 && which.stdout.trim() ? which.stdout.trim() : null;
}

export const inCi = process.env.CI === "true";

/**
 * The program path, or null to skip. Under CI=true a missing program is an error, not a skip:
 * the tests that need it must run there.
 */
export function requireProgram(candidates: string[], name: string, pkg: string): string | null {
  const found = findProgram(candidates, name);
  if (found) return found;
  if (inCi) throw new Error(`${name} is not installed but CI=true: these tests must run in CI (apt-get install -y ${pkg})`);
  return null;
}

export const QEMU_GA = requireProgram(QEMU_GA_CANDIDATES, "qemu-ga", "qemu-guest-agent");

const isRoot = process.getuid?.() === 0;

export type TestAgent = {
  /** Temp dir, owned by the agent's user; the only place tests let the agent touch. */
  dir: string;
  socket: string;
  spec: AgentSpec;
  process: ChildProcess;
  /**
   * With `verbose`: every byte the agent has read so far, from its own debug log (`-v -l`), as
   * latin1 text (0xFF stays one char). The agent's view of what we sent: the call log of a test.
   */
  received(): string;
  stop(): Promise<void>;
};

/** Creates a file in the agent's temp dir owned by the agent's user, as if the guest had it already. */
export function plantFile(agent: TestAgent, name: string, content: string | Uint8Array): string {
  const path = join(agent.dir, name);
  writeFileSync(path, content);
  if (isRoot) chownSync(path, 65534, 65534);
  return path;
}

/** The commands in a stretch of received bytes, in order, e.g. ["guest-sync-delimited", "guest-info"]. */
export const commandsIn = (received: string): string[] => [...received.matchAll(/"execute":"([a-z0-9-]+)"/g)].map((m) => m[1]!);

/** `dir`: an empty temp dir to use (so a test can know the socket path before the agent starts). */
export async function startTestAgent(opts: { block?: string[]; verbose?: boolean; dir?: string } = {}): Promise<TestAgent> {
  if (!QEMU_GA) throw new Error("qemu-ga is not installed");
  const dir = opts.dir ?? mkdtempSync(join(tmpdir(), "qiac-qga-"));
  const state = join(dir, "state");
  mkdirSync(state);
  const socket = join(dir, "qga.sock");
  const log = join(dir, "agent.log");
  const args = ["-m", "unix-listen", "-p", socket, "-t", state, "-b", (opts.block ?? HOST_BLOCK_LIST).join(","), ...(opts.verbose ? ["-v", "-l", log] : [])];
  let child: ChildProcess;
  if (isRoot) {
    chownSync(dir, 65534, 65534);
    chownSync(state, 65534, 65534);
    child = spawn("setpriv", ["--reuid=nobody", "--regid=nogroup", "--clear-groups", QEMU_GA, ...args], { stdio: ["ignore", "ignore", "pipe"], env: { PATH: "/usr/sbin:/usr/bin:/sbin:/bin" } });
  } else {
    child = spawn(QEMU_GA, args, { stdio: ["ignore", "ignore", "pipe"], env: { PATH: "/usr/sbin:/usr/bin:/sbin:/bin" } });
  }
  let stderr = "";
  child.stderr?.on("data", (d: Buffer) => {
    stderr = (stderr + d.toString()).slice(-4000);
  });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill("SIGTERM");
      const killed = await Promise.race([exited.then(() => true), sleep(2000).then(() => false)]);
      if (!killed) {
        child.kill("SIGKILL");
        await exited;
      }
    }
    rmSync(dir, { recursive: true, force: true });
  };
  const deadline = Date.now() + 5000;
  for (;;) {
    if (child.exitCode !== null) {
      await stop();
      throw new Error(`qemu-ga exited with status ${child.exitCode} before listening: ${stderr}`);
    }
    if (await canConnect(socket)) break;
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`qemu-ga did not listen on ${socket} within 5 s: ${stderr}`);
    }
    await sleep(5);
  }
  const received = (): string => {
    if (!opts.verbose) throw new Error("received() needs startTestAgent({ verbose: true })");
    const text = existsSync(log) ? readFileSync(log, "latin1") : "";
    return [...text.matchAll(/debug: read data, count: (\d+), data: /g)]
      .map((m) => text.substr(m.index + m[0].length, Number(m[1])))
      .join("");
  };
  return { dir, socket, spec: { kind: "socket", path: socket }, process: child, received, stop };
}

/** Connects and disconnects at once, sending nothing (the agent's parser is untouched). */
function canConnect(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createConnection(path);
    s.once("connect", () => {
      s.destroy();
      resolve(true);
    });
    s.once("error", () => resolve(false));
  });
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** A raw socket to the agent for wire-level tests: write bytes, read until a predicate holds (or `ms` pass). */
export async function rawConnection(path: string): Promise<{ write(b: Uint8Array | string): void; readUntil(done: (all: Buffer) => boolean, ms: number): Promise<Buffer>; close(): void }> {
  const s = createConnection(path);
  await new Promise<void>((resolve, reject) => {
    s.once("connect", resolve);
    s.once("error", reject);
  });
  let buf = Buffer.alloc(0);
  const listeners: Array<() => void> = [];
  s.on("data", (d: Buffer) => {
    buf = Buffer.concat([buf, d]);
    for (const l of listeners) l();
  });
  return {
    // Strings are latin1, so "\xff" is the single byte 0xFF.
    write: (b) => s.write(typeof b === "string" ? Buffer.from(b, "latin1") : b),
    readUntil: (done, ms) =>
      new Promise<Buffer>((resolve) => {
        const check = (): void => {
          if (done(buf)) finish();
        };
        const finish = (): void => {
          clearTimeout(t);
          listeners.splice(listeners.indexOf(check), 1);
          resolve(buf);
        };
        const t = setTimeout(finish, ms);
        listeners.push(check);
        check();
      }),
    close: () => s.destroy(),
  };
}

/** The QgaError a promise rejects with; fails the test when it resolves or rejects otherwise. */
export const rejection = async (p: Promise<unknown>): Promise<QgaError> => {
  const e = await p.then(
    () => null,
    (err: unknown) => err,
  );
  if (!(e instanceof QgaError)) throw new Error(`expected a QgaError, got ${e === null ? "success" : String(e)}`);
  return e;
};
