// The typed guest-agent client: one channel, one request in flight (the agent answers in order),
// a resync (0xFF + guest-sync-delimited with a fresh random id, discarding everything before the
// matching sentinel reply) on connect and after anything that may have left replies unread.
// Commands guest-info reports disabled or absent fail before sending. Every wait has a deadline.
// It never logs, and never puts reply bytes or file contents into errors.

import { randomBytes as nodeRandomBytes } from "node:crypto";
import { checkRequest, createFramer, decodeReply, encodeRequest, encodeSyncDelimited, printable, syncIdFrom, type Frame, type Reply } from "./codec.js";
import { QgaError } from "./errors.js";
import { DEFAULT_JSON_LIMITS, type JsonObject, type JsonValue } from "./json.js";
import {
  decodeCount,
  decodeEmpty,
  decodeFileRead,
  decodeFileSeek,
  decodeFileWrite,
  decodeFsfreezeStatus,
  decodeHostName,
  decodeInfo,
  decodeInterfaces,
  decodeOsInfo,
  int64,
  safeInt,
  type AgentInfo,
  type FileReadResult,
  type FileSeekResult,
  type FileWriteResult,
  type FsfreezeStatus,
  type GuestInterface,
  type GuestOsInfo,
} from "./replies.js";
import { describeAgent, type AgentSpec } from "./spec.js";
import { openChannel, type Channel } from "./transport.js";

export type CallOptions = { timeoutMs?: number };

export type ConnectOptions = {
  /** Deadline for opening the channel and getting the first sync answered. */
  timeoutMs: number;
  /** While the agent stays silent, resend 0xFF + guest-sync-delimited (fresh id) this often. */
  resyncEveryMs?: number;
  /** Deadline of each later call unless the call gives its own. Default 30 s. */
  callTimeoutMs?: number;
  /** Longest reply line held in memory; longer is a bad reply. Default 8 MiB. */
  maxReplyBytes?: number;
  /** Program for qrexec specs (default qrexec-client-vm). */
  qrexecClient?: string;
  env?: NodeJS.ProcessEnv;
  randomBytes?: (n: number) => Uint8Array;
};

export type FileOpenMode = "r" | "r+" | "w" | "w+" | "a" | "a+" | "rb" | "r+b" | "rb+" | "wb" | "w+b" | "wb+" | "ab" | "a+b" | "ab+";
export type SeekWhence = "set" | "cur" | "end";
export type SuspendKind = "disk" | "ram" | "hybrid";
/** A suspend request has no success reply: either nothing came back within the window, or the channel closed. */
export type SuspendOutcome = { kind: "no-reply" } | { kind: "channel-closed" };

export type ShutdownOptions = CallOptions & {
  /** Also counts as "powered off", for channels that outlive the VM (e.g. the VM process's exit). */
  stopped?: Promise<unknown>;
};

export type QgaClient = {
  readonly description: string;
  /** True once the channel has ended; every later call fails with code "closed". */
  readonly closed: boolean;
  /** A raw command, checked against guest-info first unless `unchecked` (for diagnostics). */
  execute(command: string, args?: JsonObject, opts?: CallOptions & { unchecked?: boolean }): Promise<JsonValue>;
  /** guest-sync-delimited with a fresh random id: discards stale replies and partial input. */
  resync(opts?: CallOptions): Promise<void>;
  /** guest-sync: echoes an int64 id exactly (returns what the agent echoed). */
  syncPlain(id: bigint, opts?: CallOptions): Promise<bigint>;
  ping(opts?: CallOptions): Promise<void>;
  /** guest-info, fetched afresh (also refreshes the enabled-command cache). */
  info(opts?: CallOptions): Promise<AgentInfo>;
  fileOpen(path: string, mode?: FileOpenMode, opts?: CallOptions): Promise<number>;
  fileClose(handle: number, opts?: CallOptions): Promise<void>;
  fileRead(handle: number, count: number, opts?: CallOptions): Promise<FileReadResult>;
  fileWrite(handle: number, bytes: Uint8Array, opts?: CallOptions): Promise<FileWriteResult>;
  fileSeek(handle: number, offset: number, whence: SeekWhence, opts?: CallOptions): Promise<FileSeekResult>;
  fileFlush(handle: number, opts?: CallOptions): Promise<void>;
  fsfreezeStatus(opts?: CallOptions): Promise<FsfreezeStatus>;
  /** Returns how many filesystems are now frozen. On an agent error the agent has thawed them all. */
  fsfreezeFreeze(opts?: CallOptions): Promise<number>;
  /** Returns how many filesystems this call thawed. */
  fsfreezeThaw(opts?: CallOptions): Promise<number>;
  /** guest-shutdown (powerdown): resolves when the channel closes (or `stopped` settles); an error reply rejects. */
  shutdown(opts?: ShutdownOptions): Promise<void>;
  /** guest-suspend-*: an error reply rejects; `timeoutMs` is how long to wait for one (default 5 s). */
  suspend(kind: SuspendKind, opts?: CallOptions): Promise<SuspendOutcome>;
  networkGetInterfaces(opts?: CallOptions): Promise<GuestInterface[]>;
  getOsInfo(opts?: CallOptions): Promise<GuestOsInfo>;
  getHostName(opts?: CallOptions): Promise<string>;
  /** Ends the channel; waits for it (bounded). */
  close(): Promise<void>;
};

/** The agent's own cap on one guest-file-read (QGA_READ_COUNT_MAX). */
export const MAX_READ_COUNT = 48 * 1024 * 1024;
/** Our cap on one guest-file-write's decoded bytes; the agent's token limit is 64 MiB of base64. */
export const MAX_WRITE_COUNT = 32 * 1024 * 1024;
export const DEFAULT_CALL_TIMEOUT_MS = 30_000;
export const DEFAULT_MAX_REPLY_BYTES = 8 * 1024 * 1024;
const DEFAULT_SUSPEND_WINDOW_MS = 5_000;
const CLOSE_WAIT_MS = 2_000;
/** Reply bytes around a guest-file-read's base64 payload. */
const READ_REPLY_OVERHEAD = 256;

const SYNC_COMMANDS = new Set(["guest-sync-delimited", "guest-sync", "guest-info"]);
const OPEN_MODE_RE = /^[rwa](\+b?|b\+?)?$/;

type Waiter =
  | { kind: "sync"; ids: bigint[]; armed: boolean; settle(e: QgaError | null): void }
  | { kind: "reply"; command: string; settle(r: Reply | QgaError): void }
  | { kind: "no-success-reply"; command: string; settle(r: Reply | QgaError | "closed"): void };

/** Opens a channel to the agent and syncs; fails with "unreachable" if the agent does not answer in time. */
export async function connectAgent(spec: AgentSpec, opts: ConnectOptions): Promise<QgaClient> {
  const description = describeAgent(spec);
  const started = Date.now();
  const callTimeoutMs = opts.callTimeoutMs ?? DEFAULT_CALL_TIMEOUT_MS;
  const maxReplyBytes = opts.maxReplyBytes ?? DEFAULT_MAX_REPLY_BYTES;
  const random = opts.randomBytes ?? ((n: number) => nodeRandomBytes(n));
  const jsonLimits = { ...DEFAULT_JSON_LIMITS, maxStringBytes: maxReplyBytes };
  const framer = createFramer(maxReplyBytes);

  let waiter: Waiter | null = null;
  let dirty = true;
  let synced = false;
  let closed = false;
  let closeReason: QgaError | null = null;
  let infoCache: AgentInfo | null = null;
  let tail: Promise<unknown> = Promise.resolve();
  const closeListeners: Array<() => void> = [];

  const prefix = (command: string): string => `${command} on ${description}`;

  const closedError = (command: string): QgaError => {
    if (!synced) {
      if (closeReason?.code === "refused" || closeReason?.code === "transport") return closeReason;
      return new QgaError("unreachable", `${description} closed before the agent answered${closeReason ? `: ${closeReason.message}` : ""}`, {
        command,
        maybeDelivered: false,
      });
    }
    return new QgaError("closed", `${prefix(command)}: the channel closed${closeReason ? ` (${closeReason.message})` : ""}`, { command, maybeDelivered: true });
  };

  const agentError = (command: string, errorClass: string, desc: string): QgaError => {
    const details = { command, agentClass: errorClass, agentDesc: desc, maybeDelivered: true };
    const text = `${prefix(command)}: ${printable(desc)}`;
    if (errorClass === "CommandNotFound") {
      if (/has been disabled/.test(desc)) {
        infoCache = null;
        return new QgaError("disabled", text, details);
      }
      return new QgaError("unsupported", text, details);
    }
    return new QgaError("agent", text, details);
  };

  const onFrame = (f: Frame): void => {
    const w = waiter;
    if (!w) {
      // Nothing asked for this: a late reply to a timed-out call, or noise. Resync before the next call.
      dirty = true;
      return;
    }
    if (w.kind === "sync") {
      if (f.kind === "sentinel") {
        w.armed = true;
        return;
      }
      if (f.kind === "line" && w.armed) {
        const r = decodeReply(f.bytes, jsonLimits);
        const v = r.kind === "return" ? r.value : null;
        const id = typeof v === "bigint" ? v : typeof v === "number" && Number.isSafeInteger(v) ? BigInt(v) : null;
        const at = id === null ? -1 : w.ids.indexOf(id);
        if (at >= 0) {
          // Replies to the later resends of this sync are still on their way.
          if (at < w.ids.length - 1) dirty = true;
          w.settle(null);
          return;
        }
      }
      w.armed = false;
      return;
    }
    if (f.kind === "line") {
      const r = decodeReply(f.bytes, jsonLimits);
      if (r.kind === "malformed") {
        dirty = true;
        w.settle(new QgaError("bad-reply", `${prefix(w.command)}: malformed reply (${r.reason})`, { command: w.command, maybeDelivered: true }));
        return;
      }
      w.settle(r);
      return;
    }
    dirty = true;
    const what = f.kind === "sentinel" ? "an unexpected 0xFF sentinel" : `a reply line longer than ${f.limit} bytes`;
    w.settle(new QgaError("bad-reply", `${prefix(w.command)}: ${what}`, { command: w.command, maybeDelivered: true }));
  };

  const onClose = (reason: QgaError | null): void => {
    if (closed) return;
    closed = true;
    closeReason = reason;
    const w = waiter;
    waiter = null;
    if (w?.kind === "no-success-reply") w.settle("closed");
    else if (w?.kind === "sync") w.settle(closedError("guest-sync-delimited"));
    else if (w) w.settle(closedError(w.command));
    for (const l of closeListeners.splice(0)) l();
  };

  const channel: Channel = await openChannel(
    spec,
    {
      onData: (chunk) => {
        for (const f of framer.push(chunk)) onFrame(f);
      },
      onClose,
    },
    { timeoutMs: opts.timeoutMs, ...(opts.qrexecClient ? { qrexecClient: opts.qrexecClient } : {}), ...(opts.env ? { env: opts.env } : {}) },
  );

  const exclusive = <T>(fn: () => Promise<T>): Promise<T> => {
    const run = tail.then(fn, fn);
    tail = run.catch(() => undefined);
    return run;
  };

  const remaining = (deadline: number): number => Math.max(0, deadline - Date.now());

  /** Sends 0xFF + guest-sync-delimited and waits for the sentinel + matching id. */
  const syncNow = (timeoutMs: number, resendEveryMs?: number): Promise<void> =>
    new Promise<void>((resolve, reject) => {
      if (closed) return reject(closedError("guest-sync-delimited"));
      const w: Waiter = {
        kind: "sync",
        ids: [],
        armed: false,
        settle: (e) => {
          clearTimeout(timer);
          clearInterval(every);
          if (waiter === w) waiter = null;
          if (e) return reject(e);
          synced = true;
          resolve();
        },
      };
      const send = (): void => {
        const id = syncIdFrom(random(8));
        w.ids.push(id);
        channel.write(encodeSyncDelimited(id));
      };
      waiter = w;
      dirty = false;
      send();
      const timer = setTimeout(() => {
        dirty = true;
        w.settle(
          new QgaError("timeout", `${prefix("guest-sync-delimited")}: no sync reply within ${timeoutMs} ms${synced ? "" : " (agent not running, still starting, or serving another client)"}`, {
            command: "guest-sync-delimited",
            maybeDelivered: true,
          }),
        );
      }, timeoutMs);
      const every = resendEveryMs && resendEveryMs < timeoutMs ? setInterval(send, resendEveryMs) : undefined;
    });

  /** One request and its one reply line. */
  const roundTrip = (command: string, args: JsonObject | undefined, timeoutMs: number): Promise<Reply> =>
    new Promise<Reply>((resolve, reject) => {
      if (closed) return reject(closedError(command));
      const w: Waiter = {
        kind: "reply",
        command,
        settle: (r) => {
          clearTimeout(timer);
          if (waiter === w) waiter = null;
          if (r instanceof QgaError) reject(r);
          else resolve(r);
        },
      };
      waiter = w;
      channel.write(encodeRequest(args === undefined ? { execute: command } : { execute: command, arguments: args }));
      const timer = setTimeout(() => {
        dirty = true;
        w.settle(new QgaError("timeout", `${prefix(command)}: no reply within ${timeoutMs} ms`, { command, maybeDelivered: true }));
      }, timeoutMs);
    });

  const refreshInfo = async (deadline: number): Promise<AgentInfo> => {
    const r = await roundTrip("guest-info", undefined, remaining(deadline));
    if (r.kind === "error") throw agentError("guest-info", r.errorClass, r.desc);
    if (r.kind === "malformed") throw new QgaError("bad-reply", `${prefix("guest-info")}: ${r.reason}`, { command: "guest-info" });
    infoCache = decodeInfo(r.value);
    return infoCache;
  };

  const checkEnabled = async (command: string, deadline: number): Promise<{ successResponse: boolean }> => {
    if (SYNC_COMMANDS.has(command)) return { successResponse: true };
    const info = infoCache ?? (await refreshInfo(deadline));
    const entry = info.commands.find((c) => c.name === command);
    if (!entry) {
      throw new QgaError("unsupported", `${prefix(command)}: the agent (qemu-ga ${printable(info.version, 40)}) does not offer this command; not sent`, {
        command,
        maybeDelivered: false,
      });
    }
    if (!entry.enabled) {
      throw new QgaError("disabled", `${prefix(command)}: the agent reports this command disabled (qemu-ga --block-rpcs, or filesystems frozen); not sent`, {
        command,
        maybeDelivered: false,
      });
    }
    return { successResponse: entry.successResponse };
  };

  const prepare = async (command: string, args: JsonObject | undefined, deadline: number, unchecked: boolean): Promise<{ successResponse: boolean }> => {
    const invalid = checkRequest(args === undefined ? { execute: command } : { execute: command, arguments: args });
    if (invalid) throw new QgaError("invalid-request", `${prefix(command)}: ${invalid}; not sent`, { command, maybeDelivered: false });
    if (closed) throw closedError(command);
    if (dirty) await syncNow(remaining(deadline));
    return unchecked ? { successResponse: true } : checkEnabled(command, deadline);
  };

  const call = (command: string, args: JsonObject | undefined, opts: CallOptions & { unchecked?: boolean } = {}): Promise<JsonValue> =>
    exclusive(async () => {
      const deadline = Date.now() + (opts.timeoutMs ?? callTimeoutMs);
      const { successResponse } = await prepare(command, args, deadline, opts.unchecked === true);
      if (!successResponse) {
        throw new QgaError("invalid-request", `${prefix(command)}: the agent never answers this command on success; use shutdown() or suspend()`, {
          command,
          maybeDelivered: false,
        });
      }
      const r = await roundTrip(command, args, remaining(deadline));
      if (command === "guest-fsfreeze-freeze" || command === "guest-fsfreeze-thaw") infoCache = null;
      if (r.kind === "error") throw agentError(command, r.errorClass, r.desc);
      if (r.kind === "malformed") throw new QgaError("bad-reply", `${prefix(command)}: ${r.reason}`, { command });
      return r.value;
    });

  /** A command with success-response=false: success shows as silence or the channel closing. */
  const callWithoutSuccessReply = (
    command: string,
    args: JsonObject | undefined,
    timeoutMs: number,
    onSilence: "resolve" | "timeout",
    stopped?: Promise<unknown>,
  ): Promise<"closed" | "silent" | "stopped"> =>
    exclusive(async () => {
      const deadline = Date.now() + timeoutMs;
      await prepare(command, args, deadline, false);
      return new Promise<"closed" | "silent" | "stopped">((resolve, reject) => {
        if (closed) return reject(closedError(command));
        const w: Waiter = {
          kind: "no-success-reply",
          command,
          settle: (r) => {
            if (r instanceof QgaError) return finish(r);
            if (r === "closed") return finish("closed");
            if (r.kind === "error") return finish(agentError(command, r.errorClass, r.desc));
            if (r.kind === "malformed") return finish(new QgaError("bad-reply", `${prefix(command)}: ${r.reason}`, { command }));
            // A success reply the schema says never comes: note it and keep waiting for the outcome.
            dirty = true;
          },
        };
        const finish = (outcome: QgaError | "closed" | "silent" | "stopped"): void => {
          clearTimeout(timer);
          if (waiter === w) waiter = null;
          if (outcome instanceof QgaError) reject(outcome);
          else resolve(outcome);
        };
        waiter = w;
        channel.write(encodeRequest(args === undefined ? { execute: command } : { execute: command, arguments: args }));
        // Whatever the guest does next (sleep, power off), the stream is not known clean.
        dirty = true;
        const timer = setTimeout(() => {
          if (onSilence === "resolve") return finish("silent");
          finish(
            new QgaError("timeout", `${prefix(command)}: the agent accepted the request but the channel did not close within ${timeoutMs} ms`, {
              command,
              maybeDelivered: true,
            }),
          );
        }, remaining(deadline));
        stopped?.then(
          () => finish("stopped"),
          () => finish("stopped"),
        );
      });
    });

  const closeChannel = (): Promise<void> =>
    new Promise<void>((resolve) => {
      if (closed) return resolve();
      const timer = setTimeout(() => {
        // The channel did not report its end in time; treat it as ended all the same.
        onClose(null);
        resolve();
      }, CLOSE_WAIT_MS);
      closeListeners.push(() => {
        clearTimeout(timer);
        resolve();
      });
      channel.close();
    });

  const decodeWith = async <T>(p: Promise<JsonValue>, decode: (v: JsonValue) => T): Promise<T> => decode(await p);

  const checkHandle = (command: string, handle: number): void => {
    if (!Number.isSafeInteger(handle) || handle < 0) {
      throw new QgaError("invalid-request", `${prefix(command)}: handle ${handle} is not a non-negative integer; not sent`, { command, maybeDelivered: false });
    }
  };

  const client: QgaClient = {
    description,
    get closed() {
      return closed;
    },
    execute: (command, args, o) => call(command, args, o),
    resync: (o = {}) => exclusive(() => syncNow(o.timeoutMs ?? callTimeoutMs)),
    syncPlain: (id, o) => decodeWith(call("guest-sync", { id }, o), (v) => int64("guest-sync", v, "return")),
    ping: (o) => decodeWith(call("guest-ping", undefined, o), (v) => decodeEmpty("guest-ping", v)),
    info: (o = {}) =>
      exclusive(async () => {
        const deadline = Date.now() + (o.timeoutMs ?? callTimeoutMs);
        if (closed) throw closedError("guest-info");
        if (dirty) await syncNow(remaining(deadline));
        return refreshInfo(deadline);
      }),
    fileOpen: (path, mode = "r", o) => {
      if (!path.startsWith("/")) {
        return Promise.reject(new QgaError("invalid-request", `${prefix("guest-file-open")}: path ${JSON.stringify(path)} is not absolute; not sent`, { command: "guest-file-open", maybeDelivered: false }));
      }
      if (!OPEN_MODE_RE.test(mode)) {
        return Promise.reject(new QgaError("invalid-request", `${prefix("guest-file-open")}: ${JSON.stringify(mode)} is not an fopen mode; not sent`, { command: "guest-file-open", maybeDelivered: false }));
      }
      return decodeWith(call("guest-file-open", { path, mode }, o), (v) => {
        const h = safeInt("guest-file-open", v, "return");
        if (h < 0) throw new QgaError("bad-reply", `${prefix("guest-file-open")}: negative handle`, { command: "guest-file-open" });
        return h;
      });
    },
    fileClose: async (handle, o) => {
      checkHandle("guest-file-close", handle);
      decodeEmpty("guest-file-close", await call("guest-file-close", { handle }, o));
    },
    fileRead: async (handle, count, o) => {
      checkHandle("guest-file-read", handle);
      if (!Number.isSafeInteger(count) || count < 0 || count > MAX_READ_COUNT) {
        throw new QgaError("invalid-request", `${prefix("guest-file-read")}: count ${count} is outside 0..${MAX_READ_COUNT}; not sent`, { command: "guest-file-read", maybeDelivered: false });
      }
      if (Math.ceil(count / 3) * 4 + READ_REPLY_OVERHEAD > maxReplyBytes) {
        throw new QgaError("invalid-request", `${prefix("guest-file-read")}: a reply to count ${count} would exceed the ${maxReplyBytes}-byte reply limit; not sent`, {
          command: "guest-file-read",
          maybeDelivered: false,
        });
      }
      return decodeFileRead(await call("guest-file-read", { handle, count }, o), count);
    },
    fileWrite: async (handle, bytes, o) => {
      checkHandle("guest-file-write", handle);
      if (bytes.length > MAX_WRITE_COUNT) {
        throw new QgaError("invalid-request", `${prefix("guest-file-write")}: ${bytes.length} bytes in one write exceeds ${MAX_WRITE_COUNT}; not sent`, { command: "guest-file-write", maybeDelivered: false });
      }
      const b64 = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("base64");
      const r = decodeFileWrite(await call("guest-file-write", { handle, "buf-b64": b64 }, o));
      if (r.count > bytes.length) throw new QgaError("bad-reply", `${prefix("guest-file-write")}: wrote ${r.count} of ${bytes.length} bytes`, { command: "guest-file-write" });
      return r;
    },
    fileSeek: async (handle, offset, whence, o) => {
      checkHandle("guest-file-seek", handle);
      if (!Number.isSafeInteger(offset)) {
        throw new QgaError("invalid-request", `${prefix("guest-file-seek")}: offset ${offset} is not an integer; not sent`, { command: "guest-file-seek", maybeDelivered: false });
      }
      // Integers 0/1/2 (SEEK_SET/CUR/END): what the original schema takes and what 7.2 still accepts.
      const w = whence === "set" ? 0 : whence === "cur" ? 1 : 2;
      return decodeFileSeek(await call("guest-file-seek", { handle, offset, whence: w }, o));
    },
    fileFlush: async (handle, o) => {
      checkHandle("guest-file-flush", handle);
      decodeEmpty("guest-file-flush", await call("guest-file-flush", { handle }, o));
    },
    fsfreezeStatus: (o) => decodeWith(call("guest-fsfreeze-status", undefined, o), decodeFsfreezeStatus),
    fsfreezeFreeze: (o) => decodeWith(call("guest-fsfreeze-freeze", undefined, o), (v) => decodeCount("guest-fsfreeze-freeze", v)),
    fsfreezeThaw: (o) => decodeWith(call("guest-fsfreeze-thaw", undefined, o), (v) => decodeCount("guest-fsfreeze-thaw", v)),
    shutdown: async (o = {}) => {
      await callWithoutSuccessReply("guest-shutdown", undefined, o.timeoutMs ?? callTimeoutMs, "timeout", o.stopped);
      await closeChannel();
    },
    suspend: async (kind, o = {}) => {
      const outcome = await callWithoutSuccessReply(`guest-suspend-${kind}`, undefined, o.timeoutMs ?? DEFAULT_SUSPEND_WINDOW_MS, "resolve");
      return outcome === "closed" ? { kind: "channel-closed" } : { kind: "no-reply" };
    },
    networkGetInterfaces: (o) => decodeWith(call("guest-network-get-interfaces", undefined, o), decodeInterfaces),
    getOsInfo: (o) => decodeWith(call("guest-get-osinfo", undefined, o), decodeOsInfo),
    getHostName: (o) => decodeWith(call("guest-get-host-name", undefined, o), decodeHostName),
    close: () => closeChannel(),
  };

  try {
    await syncNow(Math.max(1, opts.timeoutMs - (Date.now() - started)), opts.resyncEveryMs);
  } catch (e) {
    await client.close();
    throw e;
  }
  return client;
}
