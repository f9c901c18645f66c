// Opens the byte channel to a guest agent for an AgentSpec: a Unix socket, a helper process's
// stdin/stdout, or `qrexec-client-vm <qube> <service>`. Transports only move bytes and report how
// the channel ended as a QgaError; they never parse replies and never retry. Opening has a
// deadline; a channel that ends is never reopened here (the client resyncs on a new one).

import { spawn, type ChildProcessWithoutNullStreams } from "node:child_process";
import { createConnection } from "node:net";
import { printable } from "./codec.js";
import { QgaError } from "./errors.js";
import { describeAgent, type AgentSpec } from "./spec.js";

export type Channel = {
  readonly description: string;
  /** Queues bytes for the agent; failures surface through onClose. */
  write(bytes: Uint8Array): void;
  /** Ends the channel (kills a helper process); idempotent. onClose still fires once. */
  close(): void;
};

export type ChannelEvents = {
  onData(chunk: Buffer): void;
  /** Fires exactly once: null for a clean end of stream, else what went wrong. */
  onClose(reason: QgaError | null): void;
};

export type OpenOptions = {
  timeoutMs: number;
  /** Program used for qrexec specs (tests point this at a stand-in). */
  qrexecClient?: string;
  env?: NodeJS.ProcessEnv;
};

export const QREXEC_CLIENT_VM = "qrexec-client-vm";
/** qrexec-client-vm's exit status when policy refuses the call. */
const EXIT_REFUSED = 126;
const STDERR_KEEP = 2048;
const KILL_GRACE_MS = 1000;

export function openChannel(spec: AgentSpec, events: ChannelEvents, opts: OpenOptions): Promise<Channel> {
  switch (spec.kind) {
    case "socket":
      return openSocket(spec.path, describeAgent(spec), events, opts);
    case "command":
      return openProcess(spec.argv, describeAgent(spec), events, opts, false);
    case "qrexec":
      return openProcess([opts.qrexecClient ?? QREXEC_CLIENT_VM, spec.qube, spec.service], describeAgent(spec), events, opts, true);
    default: {
      const never: never = spec;
      throw new Error(`unknown agent spec ${JSON.stringify(never)}`);
    }
  }
}

function openSocket(path: string, description: string, events: ChannelEvents, opts: OpenOptions): Promise<Channel> {
  return new Promise<Channel>((resolve, reject) => {
    const sock = createConnection(path);
    let connected = false;
    let closed = false;
    let failure: QgaError | null = null;
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new QgaError("unreachable", `cannot connect to ${description} within ${opts.timeoutMs} ms`, { maybeDelivered: false }));
    }, opts.timeoutMs);
    sock.on("connect", () => {
      connected = true;
      clearTimeout(timer);
      resolve({
        description,
        write: (bytes) => {
          if (!sock.destroyed) sock.write(bytes);
        },
        close: () => {
          sock.destroy();
        },
      });
    });
    sock.on("data", (d: Buffer) => events.onData(d));
    sock.on("error", (e: NodeJS.ErrnoException) => {
      if (!connected) {
        clearTimeout(timer);
        reject(connectError(path, description, e));
        return;
      }
      failure = new QgaError("closed", `connection to ${description} failed: ${e.code ?? e.message}`);
    });
    sock.on("close", () => {
      if (!connected || closed) return;
      closed = true;
      events.onClose(failure);
    });
  });
}

function connectError(path: string, description: string, e: NodeJS.ErrnoException): QgaError {
  switch (e.code) {
    case "ENOENT":
      return new QgaError("unreachable", `${description}: no such socket (the VM or its agent channel is not up)`, { maybeDelivered: false });
    case "ECONNREFUSED":
      return new QgaError("unreachable", `${description}: connection refused (nothing is listening)`, { maybeDelivered: false });
    case "EACCES":
    case "EPERM":
      return new QgaError("transport", `${description}: permission denied; run as the socket's owner or root`, { maybeDelivered: false });
    case "ENOTSOCK":
      return new QgaError("transport", `${path} is not a socket`, { maybeDelivered: false });
    default:
      return new QgaError("unreachable", `cannot connect to ${description}: ${e.code ?? e.message}`, { maybeDelivered: false });
  }
}

function openProcess(argv: string[], description: string, events: ChannelEvents, opts: OpenOptions, qrexec: boolean): Promise<Channel> {
  return new Promise<Channel>((resolve, reject) => {
    const [program, ...args] = argv;
    let child: ChildProcessWithoutNullStreams;
    try {
      // Own process group: a Ctrl-C at the terminal must not kill the channel before we can thaw.
      child = spawn(program!, args, { stdio: ["pipe", "pipe", "pipe"], env: opts.env ?? process.env, detached: true });
    } catch (e) {
      reject(new QgaError("transport", `cannot run ${description}: ${e instanceof Error ? e.message : String(e)}`, { maybeDelivered: false }));
      return;
    }
    let spawned = false;
    let stderr = "";
    let killTimer: NodeJS.Timeout | undefined;
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new QgaError("unreachable", `${description} did not start within ${opts.timeoutMs} ms`, { maybeDelivered: false }));
    }, opts.timeoutMs);
    child.on("spawn", () => {
      spawned = true;
      clearTimeout(timer);
      resolve({
        description,
        write: (bytes) => {
          if (child.stdin.writable) child.stdin.write(bytes);
        },
        close: () => {
          if (child.exitCode !== null || child.signalCode !== null) return;
          child.stdin.destroy();
          child.kill("SIGTERM");
          killTimer ??= setTimeout(() => child.kill("SIGKILL"), KILL_GRACE_MS);
          killTimer.unref();
        },
      });
    });
    child.on("error", (e: NodeJS.ErrnoException) => {
      if (spawned) return;
      clearTimeout(timer);
      const hint = e.code === "ENOENT" ? (qrexec ? " (not in a Qubes qube?)" : " (program not found)") : "";
      reject(new QgaError("transport", `cannot run ${description}: ${e.code ?? e.message}${hint}`, { maybeDelivered: false }));
    });
    // The helper may exit before reading its input; its exit status tells what happened.
    child.stdin.on("error", () => {});
    child.stdout.on("data", (d: Buffer) => events.onData(d));
    child.stderr.on("data", (d: Buffer) => {
      stderr = (stderr + d.toString("utf8")).slice(-STDERR_KEEP);
    });
    child.on("close", (code, signal) => {
      clearTimeout(killTimer);
      if (!spawned) return;
      const said = stderr.trim() ? `: ${printable(stderr.trim().split("\n").slice(-3).join(" / "))}` : "";
      if (qrexec && code === EXIT_REFUSED) {
        events.onClose(new QgaError("refused", `${description}: refused by qrexec policy (qrexec-client-vm exit 126)${said}; allow it in dom0's /etc/qubes/policy.d`));
        return;
      }
      if (code === 0) {
        events.onClose(null);
        return;
      }
      const why = signal ? `was killed by ${signal}` : `exited with status ${code}`;
      events.onClose(new QgaError("closed", `${description} ${why}${said}`));
    });
  });
}
