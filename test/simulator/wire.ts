// Raw qubesd wire access for simulator tests: build the exact request bytes, send them over a
// real Unix socket, half-close, and read the reply to EOF. Deliberately not the typed client.

import { mkdtempSync, rmSync } from "node:fs";
import { createConnection, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startSimulator, type SimCallLogEntry, type SimulatorOptions, type SimulatorServer } from "../../src/providers/qubes/simulator/index.js";

export function requestBytes(method: string, arg: string, dest: string, payload: string | Uint8Array = "", src = "dom0"): Buffer {
  const body = typeof payload === "string" ? Buffer.from(payload, "latin1") : Buffer.from(payload);
  return Buffer.concat([Buffer.from(`${method}+${arg} ${src} name ${dest}\0`, "latin1"), body]);
}

/** Sends bytes, half-closes, and resolves with everything the server wrote before closing. */
export function sendRaw(socketPath: string, bytes: Uint8Array): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const sock = createConnection(socketPath);
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      resolve(Buffer.concat(chunks));
    };
    sock.on("data", (c: Buffer) => chunks.push(c));
    sock.on("end", finish);
    sock.on("close", finish);
    sock.on("error", (e: NodeJS.ErrnoException) => {
      // The server aborting a connection is a legitimate (empty) answer.
      if (e.code === "ECONNRESET" || e.code === "EPIPE") finish();
      else reject(e);
    });
    sock.write(bytes);
    sock.end();
  });
}

export const call = (socketPath: string, method: string, arg: string, dest: string, payload: string | Uint8Array = "", src = "dom0") =>
  sendRaw(socketPath, requestBytes(method, arg, dest, payload, src));

/** The OK body as text; throws with the raw reply otherwise. */
export async function ok(socketPath: string, method: string, arg: string, dest: string, payload: string | Uint8Array = ""): Promise<string> {
  const r = await call(socketPath, method, arg, dest, payload);
  if (r[0] !== 0x30 || r[1] !== 0) throw new Error(`${method}+${arg} ${dest} failed: ${JSON.stringify(r.toString("latin1"))}`);
  return r.subarray(2).toString("utf8");
}

/** An open event stream (admin.Events / admin.vm.Stats): collects bytes until closed. */
export type Stream = { bytes(): Buffer; waitFor(n: number, timeoutMs?: number): Promise<Buffer>; close(): void };

export function openStream(socketPath: string, method: string, dest: string): Stream {
  const sock: Socket = createConnection(socketPath);
  const chunks: Buffer[] = [];
  const waiters: Array<() => void> = [];
  sock.on("data", (c: Buffer) => {
    chunks.push(c);
    for (const w of waiters.splice(0)) w();
  });
  sock.on("error", () => {});
  sock.write(requestBytes(method, "", dest));
  sock.end();
  const bytes = () => Buffer.concat(chunks);
  return {
    bytes,
    async waitFor(n, timeoutMs = 2000) {
      const deadline = Date.now() + timeoutMs;
      while (bytes().length < n && Date.now() < deadline) {
        await new Promise<void>((r) => {
          waiters.push(r);
          setTimeout(r, 20);
        });
      }
      return bytes();
    },
    close: () => sock.destroy(),
  };
}

export type TempSim = SimulatorServer & { dir: string; statePath: string; calls: SimCallLogEntry[]; restart(extra?: Partial<SimulatorOptions>): Promise<void>; stop(): Promise<void> };

/** A simulator with its socket and state file in a fresh temp dir. */
export async function tempSim(opts: Partial<SimulatorOptions> = {}): Promise<TempSim> {
  const dir = mkdtempSync(join(tmpdir(), "qiac-sim-"));
  const calls: SimCallLogEntry[] = [];
  const base: SimulatorOptions = {
    socketPath: join(dir, "qubesd.sock"),
    statePath: join(dir, "state.json"),
    ...opts,
    onCall: (e) => calls.push(e),
  };
  let server = await startSimulator(base);
  const sim: TempSim = {
    socketPath: base.socketPath,
    statePath: base.statePath ?? "",
    dir,
    calls,
    get faults() {
      return server.faults;
    },
    get release() {
      return server.release;
    },
    close: () => server.close(),
    async restart(extra = {}) {
      await server.close();
      server = await startSimulator({ ...base, ...extra });
    },
    async stop() {
      await server.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return sim;
}
