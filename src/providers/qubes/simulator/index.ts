// A qubesd-compatible server on a Unix socket: qubesd's framing (read to the client's
// half-close, at most 65536 bytes, reply, close), the Admin API methods of dispatch.ts over a
// World kept in a state file, live admin.Events / admin.Vm.Stats streams, a call log, and the
// latency model and fault injection of latency.ts and faults.ts (both in README.md).
// This is the I/O shell of the simulator; it imports the codec and never the client.

import { randomInt, randomUUID } from "node:crypto";
import { appendFileSync, existsSync, unlinkSync } from "node:fs";
import { createConnection, createServer, type Server, type Socket } from "node:net";
import { performance } from "node:perf_hooks";
import { decodeRequest, encodeEvent, encodeException, type AdminRequest, type QubesEvent } from "../codec.js";
import { MAX_REQUEST_BYTES } from "../../../model/qubes-rules.js";
import type { Services } from "./call.js";
import { dispatch, methodMutates, type Outcome } from "./dispatch.js";
import { createFaultSet, GARBAGE_REPLY, type FaultControl, type FaultRule, type FiredFault } from "./faults.js";
import { fixtureDocument, type SimFixture } from "./fixtures.js";
import { checkLatency, createPacer, createSerialQueue, type Latency } from "./latency.js";
import { APP, qubeHolder, readProp } from "./model.js";
import { worldFromDocument, type FragmentCache, type Qube, type World } from "./state.js";
import { releaseOf, type SimRelease } from "./releases.js";
import { isPolicyService, runPolicyService } from "./policy-admin.js";
import { encodeServiceReply } from "../service-frame.js";
import { loadStateFile, lockStateFile, saveStateFile, StateFileError } from "./store.js";

export {
  describeFaultRuleIssue,
  formatFaultRule,
  FaultRuleSyntaxError,
  GARBAGE_REPLY,
  parseFaultRule,
  type FaultAction,
  type FaultControl,
  type FaultKind,
  type FaultRule,
  type FaultRuleSyntaxIssue,
  type FiredFault,
} from "./faults.js";
export { generateFixtureState, GENERATED_MAX_QUBES, GENERATED_MIN_QUBES, parseFixture, type SimFixture } from "./fixtures.js";
export { parseLatency, type Latency } from "./latency.js";
export type { QubeDocument, StateDocument } from "./state.js";
export { parseRelease, SIM_RELEASES, type ReleaseParse, type SimRelease } from "./releases.js";

export type SimulatorOptions = {
  socketPath: string;
  /** State file; absent = in-memory only. Created from the fixture when missing or when reset. */
  statePath?: string;
  /** Discard existing state, reseed from the fixture. */
  reset?: boolean;
  /** What a new or reset state starts from: the recorded fixture (default) or a generated system of N qubes. */
  fixture?: SimFixture;
  /** Append one JSON line per call. */
  logPath?: string;
  /** Same entry as the log line, for tests. */
  onCall?: (entry: SimCallLogEntry) => void;
  /**
   * The Qubes release to imitate (releases.ts): "r4.2", "r4.3" or "main" (the development head).
   * A new or reset state is made for it (default main); an existing state file keeps the release
   * it was made for, and asking for another one is refused. "head" is an alias of "main".
   */
  release?: SimRelease | "head";
  /** Added to every read-only / mutating call before its reply (README.md, "Latency"). */
  latency?: Latency;
  /** Mutating calls run one at a time, each holding the queue for writeMs. Default: true when latency is set. */
  serialWrites?: boolean;
  /** Fault rules, as text (README.md, "Faults") or structured; more can be added while running. */
  faults?: ReadonlyArray<FaultRule | string>;
};

export type SimCallLogEntry = {
  time: string;
  src: string;
  method: string;
  dest: string;
  arg: string;
  payload_bytes: number;
  /** What the client got; "closed" = no byte, "garbage" / "truncated" = a fault's bytes. */
  reply: "ok" | "exception" | "empty" | "event" | "closed" | "garbage" | "truncated";
  exc_type?: string;
  /** The fault rule (text form) that fired on this call. */
  fault?: string;
  /** From the request's arrival to its reply, waits included. */
  ms: number;
};

export type SimulatorServer = {
  socketPath: string;
  /** The release imitated: the one asked for, or the state file's. */
  release: SimRelease;
  statePath?: string;
  /** Add and clear fault rules while serving; read which fired. */
  faults: FaultControl;
  close(): Promise<void>;
};

/** What one call produced, before a fault decides what the client gets. */
type Result = { bytes: Buffer; reply: "ok" | "exception" | "empty"; excType?: string; outcome: FiredFault["outcome"] };

type Subscriber = { socket: Socket; qube: string | null };

export async function startSimulator(opts: SimulatorOptions): Promise<SimulatorServer> {
  const startedAt = new Date();
  const wanted: SimRelease | undefined = opts.release === "head" ? "main" : opts.release;
  const latencyError = opts.latency ? checkLatency(opts.latency) : null;
  if (latencyError) throw new RangeError(latencyError);
  const faults = createFaultSet(opts.faults ?? []);
  const statePath = opts.statePath;
  const release = statePath ? lockStateFile(statePath, startedAt) : () => {};
  let world: World;
  try {
    if (statePath && !opts.reset && existsSync(statePath)) {
      world = loadStateFile(statePath);
      if (wanted !== undefined && wanted !== world.release.name) {
        throw new StateFileError(
          `simulator state ${statePath} imitates release ${world.release.name}, not ${wanted}: ` +
            `serve it with release ${world.release.name}, or start a new state (reset, or another state file) for ${wanted}`,
        );
      }
    } else {
      world = worldFromDocument(fixtureDocument(opts.fixture ?? "default"));
      world.release = releaseOf(wanted ?? "main");
      if (statePath) saveStateFile(statePath, world);
    }
    await claimSocketPath(opts.socketPath);
  } catch (e) {
    release();
    throw e;
  }

  const services: Services = { now: () => Date.now(), randomUuid: () => randomUUID(), randomInt: (max) => randomInt(max) };
  const fragments: FragmentCache = new WeakMap();
  const sockets = new Set<Socket>();
  const subscribers = new Set<Subscriber>();
  const timers = new Set<NodeJS.Timeout>();
  const waits = new Set<NodeJS.Timeout>();
  const latency: Latency = opts.latency ?? { readMs: 0, writeMs: 0 };
  const writeQueue = (opts.serialWrites ?? opts.latency !== undefined) ? createSerialQueue() : null;
  const pacer = createPacer();

  /** Resolves after ms; a server that closes first never resolves it (its call is abandoned). */
  const sleep = (ms: number): Promise<void> =>
    new Promise((resolve) => {
      const t = setTimeout(() => {
        waits.delete(t);
        resolve();
      }, ms);
      waits.add(t);
    });

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

  /**
   * Runs one call (or its injected exception), saves and publishes what changed, and waits out
   * the rest of its latency: the simulator's own work (saving a large state file) counts toward it.
   */
  const perform = async (socket: Socket, req: AdminRequest, fault: FiredFault | null, mutating: boolean): Promise<Result | { stream: true; run: () => void }> => {
    const began = performance.now();
    const waitOut = async (ms: number): Promise<void> => {
      const rest = ms - (performance.now() - began);
      if (rest <= 0) return;
      const ask = pacer.timerMs(rest);
      const t = performance.now();
      await sleep(ask);
      pacer.fired(ask, performance.now() - t);
    };
    let result: Result;
    if (fault?.action.kind === "exception") {
      const { qubesClass, message } = fault.action;
      const asEmpty = world.release.emptyClasses.has(qubesClass);
      result = { bytes: asEmpty ? Buffer.alloc(0) : encodeException(qubesClass, message), reply: asEmpty ? "empty" : "exception", excType: qubesClass, outcome: "not-run" };
    } else {
      let outcome: Outcome | { kind: "crash"; excType: string };
      try {
        outcome = dispatch(world, req, services);
      } catch (e) {
        // A simulator bug: answer as qubesd answers a non-Qubes exception.
        outcome = { kind: "crash", excType: e instanceof Error ? e.name : "Error" };
      }
      if (outcome.kind === "stream") {
        const { stream, dest } = outcome;
        await waitOut(latency.readMs);
        return { stream: true, run: () => startStream(socket, stream, dest) };
      }
      if (outcome.kind === "crash") {
        result = { bytes: Buffer.alloc(0), reply: "empty", excType: outcome.excType, outcome: "empty" };
      } else {
        result = { bytes: outcome.bytes, reply: outcome.reply, ...(outcome.excType !== undefined ? { excType: outcome.excType } : {}), outcome: outcome.reply };
        // A failed call changed nothing unless it fired events before failing (qubesd has no rollback).
        if (outcome.mutates && statePath && (outcome.reply === "ok" || outcome.events.length > 0)) {
          try {
            saveStateFile(statePath, world, fragments, outcome.touched);
          } catch (e) {
            result = { bytes: Buffer.alloc(0), reply: "empty", excType: e instanceof Error ? e.name : "Error", outcome: "empty" };
          }
        }
        publish(outcome.events);
      }
    }
    await waitOut(mutating ? latency.writeMs : latency.readMs);
    return result;
  };

  const handle = async (socket: Socket, buf: Buffer): Promise<void> => {
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
    if (isPolicyService(req.method)) {
      // qrexec's policy admin services (policy-admin.ts), not qubesd's: dom0 runs them as root.
      const ran = runPolicyService(world, req.method, req.arg, Buffer.from(req.payload));
      if (ran.changed && statePath) saveStateFile(statePath, world, fragments, new Set());
      endIfOpen(socket, encodeServiceReply(ran.reply));
      log({ ...entryFor(t0, req, ran.reply.exit === 0 ? "ok" : "exception"), ...(ran.reply.exit !== 0 ? { exc_type: `exit ${ran.reply.exit}` } : {}) });
      return;
    }
    const fault = faults.match({ src: req.src, method: req.method, arg: req.arg, dest: req.dest });
    const action = fault?.action;
    const logCall = (reply: SimCallLogEntry["reply"], excType?: string): void =>
      log({ ...entryFor(t0, req, reply, excType), ...(fault ? { fault: fault.rule } : {}) });

    if (action?.kind === "close-before") {
      socket.destroy();
      logCall("closed");
      return;
    }
    if (action?.kind === "delay-before") await sleep(action.ms);
    const mutating = methodMutates(req.method);
    const done = mutating && writeQueue ? await writeQueue.run(() => perform(socket, req, fault, true)) : await perform(socket, req, fault, mutating);
    if (fault) fault.outcome = "stream" in done ? "ok" : done.outcome;
    if (action?.kind === "delay") await sleep(action.ms);

    if ("stream" in done) {
      if (action?.kind === "close-after" || action?.kind === "garbage" || action?.kind === "truncate") {
        const first = encodeEvent({ subject: null, event: "connection-established", kwargs: {} });
        if (action.kind === "garbage") writeIfOpen(socket, GARBAGE_REPLY);
        if (action.kind === "truncate") writeIfOpen(socket, truncated(first, action.bytes));
        socket.destroy();
        logCall(action.kind === "close-after" ? "closed" : action.kind === "garbage" ? "garbage" : "truncated");
        return;
      }
      done.run();
      logCall("event");
      return;
    }
    switch (action?.kind) {
      case "close-after":
        socket.destroy();
        logCall("closed", done.excType);
        return;
      case "garbage":
        endIfOpen(socket, GARBAGE_REPLY);
        logCall("garbage", done.excType);
        return;
      case "truncate":
        endIfOpen(socket, truncated(done.bytes, action.bytes));
        logCall("truncated", done.excType);
        return;
      default:
        endIfOpen(socket, done.bytes);
        logCall(done.bytes.length === 0 ? "empty" : done.reply, done.excType);
    }
  };

  const startStream = (socket: Socket, kind: "events" | "stats", dest: Qube): void => {
    // The client may have gone while the call waited out its latency.
    if (socket.destroyed) return;
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
      if (aborted) return;
      handle(socket, Buffer.concat(chunks)).catch((e: unknown) => {
        socket.destroy();
        log(entryFor(performance.now(), { src: "", method: "", dest: "", arg: "", payload: new Uint8Array() }, "closed", e instanceof Error ? e.name : "Error"));
      });
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
    release: world.release.name,
    ...(statePath ? { statePath } : {}),
    faults: { add: faults.add, clear: faults.clear, rules: faults.rules, fired: faults.fired },
    close() {
      closed ??= new Promise<void>((resolve) => {
        for (const t of timers) clearInterval(t);
        for (const t of waits) clearTimeout(t);
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

/** Sends the last bytes and half-closes, unless the client has gone (e.g. it timed out). */
function endIfOpen(socket: Socket, bytes: Buffer): void {
  if (socket.destroyed) return;
  socket.end(bytes);
}

/** The first `keep` bytes; by default half the reply, at least one byte when there are two or more. */
function truncated(bytes: Buffer, keep?: number): Buffer {
  const n = keep ?? (bytes.length < 2 ? 0 : Math.max(1, Math.floor(bytes.length / 2)));
  return bytes.subarray(0, Math.min(n, bytes.length));
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
