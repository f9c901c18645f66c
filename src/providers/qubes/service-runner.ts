// How qubes-iac runs one of dom0's qrexec services (the policy admin API, policy.*), per
// connection: from a management qube `qrexec-client-vm dom0 SERVICE+ARG`; in dom0 the service
// itself through `qubes-rpc-multiplexer SERVICE+ARG dom0`, as qubes-policy does there (QubesOS/
// qubes-core-qrexec release4.2 qrexec/client.py, make_command; later releases go through
// qrexec-client -d dom0, which ends in the same multiplexer); with the simulator over its socket
// (service-frame.ts). Each returns the output, the error output and the exit status as they came.

import { spawn } from "node:child_process";
import { createConnection } from "node:net";
import { encodeRequest } from "./codec.js";
import { QubesApiError } from "./errors.js";
import { decodeServiceReply } from "./service-frame.js";
import type { ServiceReply } from "../../model/qrexec-policy-admin.js";

/** Runs `service` (`policy.Get`) with `arg` and `payload` on stdin. Rejects only when it could not be run (QubesApiError "transport"/"timeout"). */
export type ServiceRunner = (service: string, arg: string, payload: Buffer) => Promise<ServiceReply>;

/** The multiplexer dom0's qrexec runs services through (qubes-core-qrexec Makefile: /usr/lib/qubes). */
export const RPC_MULTIPLEXER = "/usr/lib/qubes/qubes-rpc-multiplexer";

const MAX_OUTPUT = 64 * 1024 * 1024;

const named = (service: string, arg: string): string => (arg === "" ? service : `${service}+${arg}`);

/** Spawns `command ...args(service)` with the payload on stdin; exit status as it is. */
export function processServiceRunner(command: string, argv: (service: string) => string[], opts: { timeoutMs: number; env?: NodeJS.ProcessEnv }): ServiceRunner {
  return (service, arg, payload) =>
    new Promise<ServiceReply>((resolve, reject) => {
      const call = `${named(service, arg)} → dom0`;
      const child = spawn(command, argv(named(service, arg)), { stdio: ["pipe", "pipe", "pipe"], env: opts.env ?? process.env });
      const out: Buffer[] = [];
      const err: Buffer[] = [];
      let size = 0;
      let settled = false;
      let spawned = false;
      const finish = (e: Error | null, value?: ServiceReply): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        if (e) reject(e);
        else resolve(value as ServiceReply);
      };
      const timer = setTimeout(() => {
        child.kill("SIGKILL");
        finish(new QubesApiError("timeout", `no reply to ${call} within ${opts.timeoutMs} ms from ${command}`, { call, maybeDelivered: true }));
      }, opts.timeoutMs);
      child.on("spawn", () => {
        spawned = true;
      });
      const collect = (into: Buffer[]) => (d: Buffer) => {
        size += d.length;
        if (size > MAX_OUTPUT) {
          child.kill("SIGKILL");
          finish(new QubesApiError("bad-reply", `reply to ${call} exceeds ${MAX_OUTPUT} bytes`, { call, maybeDelivered: true }));
          return;
        }
        into.push(d);
      };
      child.stdout.on("data", collect(out));
      child.stderr.on("data", collect(err));
      child.stdin.on("error", () => {
        // The helper may exit (refused) before reading stdin; its exit status tells what happened.
      });
      child.on("error", (e: NodeJS.ErrnoException) => finish(new QubesApiError("transport", `cannot run ${command}: ${e.message}`, { call, maybeDelivered: spawned })));
      child.on("close", (code, signal) => {
        if (code === null) return finish(new QubesApiError("transport", `${command} ${named(service, arg)} was killed by ${signal ?? "a signal"}`, { call, maybeDelivered: true }));
        finish(null, { stdout: Buffer.concat(out), stderr: Buffer.concat(err), exit: code });
      });
      child.stdin.end(payload);
    });
}

/** From a management qube: `qrexec-client-vm dom0 SERVICE+ARG` (exit 126: refused by policy). */
export const qrexecServiceRunner = (command: string, opts: { timeoutMs: number; env?: NodeJS.ProcessEnv }): ServiceRunner =>
  processServiceRunner(command, (s) => ["dom0", s], opts);

/** In dom0: the multiplexer, as root, with no policy decision (a dom0-local call). */
export const multiplexerServiceRunner = (command: string, opts: { timeoutMs: number; env?: NodeJS.ProcessEnv }): ServiceRunner =>
  processServiceRunner(command, (s) => [s, "dom0"], opts);

/** The simulator's socket, which serves policy.* with the framing of service-frame.ts. */
export function simServiceRunner(socketPath: string, opts: { timeoutMs: number }): ServiceRunner {
  return (service, arg, payload) =>
    new Promise<ServiceReply>((resolve, reject) => {
      const call = `${named(service, arg)} → dom0`;
      const chunks: Buffer[] = [];
      let settled = false;
      const sock = createConnection(socketPath);
      const finish = (e: Error | null, v?: ServiceReply): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        sock.destroy();
        if (e) reject(e);
        else resolve(v as ServiceReply);
      };
      const timer = setTimeout(() => finish(new QubesApiError("timeout", `no reply to ${call} within ${opts.timeoutMs} ms from ${socketPath}`, { call, maybeDelivered: true })), opts.timeoutMs);
      sock.on("connect", () => sock.end(encodeRequest({ method: service, arg, src: "dom0", dest: "dom0", payload })));
      sock.on("data", (d: Buffer) => chunks.push(d));
      const done = (): void => {
        const r = decodeServiceReply(Buffer.concat(chunks));
        if (r === undefined) finish(new QubesApiError("bad-reply", `the simulator's reply to ${call} is not a service reply`, { call, maybeDelivered: true }));
        else finish(null, r);
      };
      sock.on("end", done);
      sock.on("close", () => {
        if (!settled) done();
      });
      sock.on("error", (e) => finish(new QubesApiError("transport", `connection to ${socketPath} failed during ${call}: ${e.message}`, { call, maybeDelivered: true })));
    });
}
