// A qubesd-compatible server on a Unix socket: qubesd's framing (read to the client's
// half-close, at most 65536 bytes, reply, close), the Admin API methods of dispatch.ts over a
// World kept in a state file, live admin.Events / admin.Vm.Stats streams, and a call log.
// This is the I/O shell of the simulator; it imports the codec and never the client.

import { randomInt, randomUUID } from "node:crypto";
import { appendFileSync, existsSync, unlinkSync } from "node:fs";
import { createConnection, createServer, type Server, type Socket } from "node:net";
import { performance } from "node:perf_hooks";
import { decodeRequest, encodeEvent, type QubesEvent } from "../codec.js";
import { MAX_REQUEST_BYTES } from "../../../model/qubes-rules.js";
import type { Services } from "./call.js";
import { dispatch, type DispatchOptions, type ErrorStyle, type Outcome } from "./dispatch.js";
import fixtureDefault from "./fixture-default.json" with { type: "json" };
import { APP, qubeHolder, readProp } from "./model.js";
import { worldFromDocument, type FragmentCache, type Qube, type World } from "./state.js";
import { loadStateFile, lockStateFile, saveStateFile } from "./store.js";

export type SimulatorOptions = {
  socketPath: string;
  /** State file; absent = in-memory only. Created from the fixture when missing or when reset. */
  statePath?: string;
  /** Discard existing state, reseed from the fixture. */
  reset?: boolean;
  /** The recorded conformance fixture. */
  fixture?: FixtureName;
  /** Append one JSON line per call. */
  logPath?: string;
  /** Same entry as the log line, for tests. */
  onCall?: (entry: SimCallLogEntry) => void;
  /**
   * How ProtocolError and PermissionDenied (and their subclasses) are answered: "head" names
   * them like the recordings, "r4.3" answers with the empty reply as shipped R4.3 does.
   */
  errorStyle?: ErrorStyle;
  /**
   * Release whose behaviour to imitate where it is known to differ: "head" (default), "r4.3"
   * (errorStyle "r4.3"), "r4.2" (also admin.vm.List without `uuid=`). errorStyle overrides.
   */
  release?: "head" | "r4.3" | "r4.2";
};

export type SimCallLogEntry = {
  time: string;
  src: string;
  method: string;
  dest: string;
  arg: string;
  payload_bytes: number;
  reply: "ok" | "exception" | "empty" | "event";
  exc_type?: string;
  ms: number;
};

export type SimulatorServer = { socketPath: string; statePath?: string; close(): Promise<void> };

export type FixtureName = "default";
const FIXTURES: Record<FixtureName, unknown> = { default: fixtureDefault };

type Subscriber = { socket: Socket; qube: string | null };

export async function startSimulator(opts: SimulatorOptions): Promise<SimulatorServer> {
  const startedAt = new Date();
  const fixture = FIXTURES[opts.fixture ?? "default"];
  if (!fixture) throw new Error(`unknown simulator fixture ${String(opts.fixture)}`);
  const statePath = opts.statePath;
  const release = statePath ? lockStateFile(statePath, startedAt) : () => {};
  let world: World;
  try {
    if (statePath && !opts.reset && existsSync(statePath)) {
      world = loadStateFile(statePath);
    } else {
      world = worldFromDocument(fixture);
      if (statePath) saveStateFile(statePath, world);
    }
    await claimSocketPath(opts.socketPath);
  } catch (e) {
    release();
    throw e;
  }

  const options: DispatchOptions = {
    errorStyle: opts.errorStyle ?? (opts.release === "r4.3" || opts.release === "r4.2" ? "r4.3" : "head"),
    vmListUuid: opts.release !== "r4.2",
  };
  const services: Services = { now: () => Date.now(), randomUuid: () => randomUUID(), randomInt: (max) => randomInt(max) };
  const fragments: FragmentCache = new WeakMap();
  const sockets = new Set<Socket>();
  const subscribers = new Set<Subscriber>();
  const timers = new Set<NodeJS.Timeout>();

  const log = (entry: SimCallLogEntry): void => {
    if (opts.logPath) appendFileSync(opts.logPath, JSON.stringify(entry) + "\n");
    opts.onCall?.(entry);
  };

  const publish = (events: QubesEvent[]): void => {
    for (const ev of events) {
      const bytes = encodeEvent(ev);
      for (const sub of subscribers) {
        if (sub.qube === null || sub.qube === ev.subject) writeIfOpen(sub.socket, bytes);
      }
    }
  };

  const handle = (socket: Socket, buf: Buffer): void => {
    const t0 = performance.now();
    const frame = decodeRequest(buf);
    const nul = buf.indexOf(0);
    if (!frame.ok || buf.subarray(0, nul < 0 ? buf.length : nul).some((b) => b > 0x7f)) {
      // qubesd aborts the connection on framing errors, without a reply.
      socket.destroy();
      log(entryFor(t0, { src: "", method: "", dest: "", arg: "", payload: new Uint8Array() }, "empty", "framing"));
      return;
    }
    const req = frame.request;
    let outcome: Outcome;
    try {
      outcome = dispatch(world, req, options, services);
    } catch (e) {
      // A simulator bug: answer as qubesd answers a non-Qubes exception.
      socket.end();
      log(entryFor(t0, req, "empty", e instanceof Error ? e.name : "Error"));
      return;
    }
    if (outcome.kind === "stream") {
      startStream(socket, outcome.stream, outcome.dest);
      log(entryFor(t0, req, "event"));
      return;
    }
    let bytes = outcome.bytes;
    let excType = outcome.excType;
    // A failed call changed nothing unless it fired events before failing (qubesd has no rollback).
    if (outcome.mutates && statePath && (outcome.reply === "ok" || outcome.events.length > 0)) {
      try {
        saveStateFile(statePath, world, fragments, outcome.touched);
      } catch (e) {
        bytes = Buffer.alloc(0);
        excType = e instanceof Error ? e.name : "Error";
      }
    }
    publish(outcome.events);
    socket.end(bytes);
    log(entryFor(t0, req, bytes.length === 0 ? "empty" : outcome.reply, excType));
  };

  const startStream = (socket: Socket, kind: "events" | "stats", dest: Qube): void => {
    const qube = dest.klass === "AdminVM" ? null : dest.name;
    writeIfOpen(socket, encodeEvent({ subject: null, event: "connection-established", kwargs: {} }));
    if (kind === "events") {
      const sub = { socket, qube };
      subscribers.add(sub);
      socket.once("close", () => subscribers.delete(sub));
      return;
    }
    const interval = Number(readProp(world, APP, "stats_interval"));
    const timer = setInterval(() => {
      for (const q of world.qubes.values()) {
        if ((qube === null || q.name === qube) && (q.klass === "AdminVM" || q.power === "Running")) {
          writeIfOpen(socket, encodeEvent(statsEvent(world, q, services.now())));
        }
      }
    }, Math.max(1, interval) * 1000);
    timer.unref();
    timers.add(timer);
    socket.once("close", () => {
      clearInterval(timer);
      timers.delete(timer);
    });
  };

  const server: Server = createServer({ allowHalfOpen: true }, (socket) => {
    sockets.add(socket);
    const chunks: Buffer[] = [];
    let size = 0;
    let aborted = false;
    socket.on("data", (chunk: Buffer) => {
      if (aborted) return;
      size += chunk.length;
      if (size > MAX_REQUEST_BYTES) {
        aborted = true;
        socket.destroy();
        log(entryFor(performance.now(), { src: "", method: "", dest: "", arg: "", payload: new Uint8Array() }, "empty", "request too long"));
        return;
      }
      chunks.push(chunk);
    });
    socket.on("end", () => {
      if (!aborted) handle(socket, Buffer.concat(chunks));
    });
    socket.on("error", () => socket.destroy());
    socket.on("close", () => sockets.delete(socket));
  });

  try {
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(opts.socketPath, () => {
        server.off("error", reject);
        resolve();
      });
    });
  } catch (e) {
    release();
    throw e;
  }

  let closed: Promise<void> | undefined;
  return {
    socketPath: opts.socketPath,
    ...(statePath ? { statePath } : {}),
    close() {
      closed ??= new Promise<void>((resolve) => {
        for (const t of timers) clearInterval(t);
        server.close(() => {
          if (existsSync(opts.socketPath)) unlinkSync(opts.socketPath);
          release();
          resolve();
        });
        for (const s of sockets) s.destroy();
      });
      return closed;
    },
  };
}

function entryFor(
  t0: number,
  req: { src: string; method: string; dest: string; arg: string; payload: Uint8Array },
  reply: SimCallLogEntry["reply"],
  excType?: string,
): SimCallLogEntry {
  return {
    time: new Date().toISOString(),
    src: req.src,
    method: req.method,
    dest: req.dest,
    arg: req.arg,
    payload_bytes: req.payload.length,
    reply,
    ...(excType !== undefined ? { exc_type: excType } : {}),
    ms: Math.round((performance.now() - t0) * 1000) / 1000,
  };
}

function writeIfOpen(socket: Socket, bytes: Buffer): void {
  if (!socket.destroyed && socket.writable) socket.write(bytes);
}

/** One HEAD `vm-stats` event for a running qube, with figures derived from its memory and vcpus. */
function statsEvent(world: World, q: Qube, nowMs: number): QubesEvent {
  const h = q.klass === "AdminVM" ? APP : qubeHolder(q);
  const memMiB = q.klass === "AdminVM" ? world.host.dom0MaxmemMiB : String(readProp(world, h, "memory"));
  const vcpus = q.klass === "AdminVM" ? String(world.host.cpus) : String(readProp(world, h, "vcpus"));
  const memKb = (BigInt(memMiB) * 1024n).toString();
  const seconds = q.startTime === null ? 0 : Math.max(0, nowMs / 1000 - Number(q.startTime));
  return {
    subject: q.name,
    event: "vm-stats",
    kwargs: {
      memory_kb: memKb,
      memory_assigned_total: memKb,
      memory_assigned_usable: memKb,
      memory_with_swap_used: memKb,
      cpu_time: String(Math.round(seconds * 10)),
      cpu_usage: "1",
      online_vcpus: vcpus,
    },
  };
}

/** Refuses a socket path another server listens on; removes a stale socket file left behind. */
async function claimSocketPath(path: string): Promise<void> {
  if (!existsSync(path)) return;
  const live = await new Promise<boolean>((resolve) => {
    const probe = createConnection(path);
    probe.once("connect", () => {
      probe.destroy();
      resolve(true);
    });
    probe.once("error", () => resolve(false));
  });
  if (live) throw new Error(`socket ${path} is in use by another server`);
  unlinkSync(path);
}
