// Transport from a management qube: `qrexec-client-vm <dest> <method>[+<arg>]`, payload on stdin,
// reply on stdout (qubesadmin's QubesRemote). The qrexec target is the call's destination; dom0's
// policy redirects it to qubesd with target=dom0. Exit 0 means delivered (an exception reply
// too); exit 126 is a refusal: by policy, or of a target that does not exist, which qrexec does
// not tell apart (qubes-core-qrexec agent/qrexec-client-vm.rst, EXIT STATUS).

import { spawn } from "node:child_process";
import { QubesApiError } from "./errors.js";
import { qrexecServiceRunner } from "./service-runner.js";
import { MAX_REPLY_BYTES, describeCall, readableStream, type AdminCall, type CallOptions, type RawStream, type Transport } from "./transport.js";

export const QREXEC_CLIENT_VM = "qrexec-client-vm";
const EXIT_REFUSED = 126;

const service = (c: AdminCall): string => (c.arg ? `${c.method}+${c.arg}` : c.method);

export function createQrexecTransport(opts: { timeoutMs: number; command?: string; env?: NodeJS.ProcessEnv }): Transport {
  const command = opts.command ?? QREXEC_CLIENT_VM;

  const call = (c: AdminCall, callOpts?: CallOptions): Promise<Buffer> =>
    new Promise<Buffer>((resolve, reject) => {
      const timeoutMs = callOpts?.timeoutMs ?? opts.timeoutMs;
      const child = spawn(command, [c.dest, service(c)], { stdio: ["pipe", "pipe", "pipe"], env: opts.env ?? process.env });
      const out: Buffer[] = [];
      const err: Buffer[] = [];
      let size = 0;
      let settled = false;
      let spawned = false;
      const finish = (e: QubesApiError | null, value?: Buffer): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        if (e) reject(e);
        else resolve(value ?? Buffer.alloc(0));
      };
      const timer = setTimeout(() => {
        child.kill("SIGKILL");
        finish(new QubesApiError("timeout", `no reply to ${describeCall(c)} within ${timeoutMs} ms from ${command}`, { call: describeCall(c), maybeDelivered: true }));
      }, timeoutMs);
      child.on("spawn", () => {
        spawned = true;
      });
      child.stdout.on("data", (d: Buffer) => {
        size += d.length;
        if (size > MAX_REPLY_BYTES) {
          child.kill("SIGKILL");
          finish(new QubesApiError("bad-reply", `reply to ${describeCall(c)} exceeds ${MAX_REPLY_BYTES} bytes`, { call: describeCall(c), maybeDelivered: true }));
          return;
        }
        out.push(d);
      });
      child.stderr.on("data", (d: Buffer) => {
        if (err.reduce((n, b) => n + b.length, 0) < 16384) err.push(d);
      });
      child.stdin.on("error", () => {
        // The helper may exit (e.g. refused) before reading stdin; its exit code tells what happened.
      });
      child.on("error", (e: NodeJS.ErrnoException) => {
        finish(new QubesApiError("transport", `cannot run ${command}: ${e.message}`, { call: describeCall(c), maybeDelivered: spawned }));
      });
      child.on("close", (code, signal) => {
        const stderr = Buffer.concat(err).toString("utf8").trim();
        if (code === 0) return finish(null, Buffer.concat(out));
        if (code === EXIT_REFUSED) {
          return finish(
            new QubesApiError(
              "refused",
              `${service(c)} to ${c.dest} was refused by qrexec policy (qrexec-client-vm exit 126)${stderr ? `: ${stderr}` : ""}; allow it in dom0's /etc/qubes/policy.d (see \`qubes-iac policy\`)`,
              { call: describeCall(c), maybeDelivered: false },
            ),
          );
        }
        const why = signal ? `killed by ${signal}` : `exit ${code}`;
        finish(new QubesApiError("transport", `${command} ${c.dest} ${service(c)} failed (${why})${stderr ? `: ${stderr}` : ""}`, { call: describeCall(c), maybeDelivered: true }));
      });
      child.stdin.end(c.payload ?? Buffer.alloc(0));
    });

  const stream = (c: AdminCall): RawStream => {
    const child = spawn(command, [c.dest, service(c)], { stdio: ["pipe", "pipe", "ignore"], env: opts.env ?? process.env });
    child.stdin.end();
    let failure: Error | null = null;
    child.on("error", (e) => {
      failure = new QubesApiError("transport", `cannot run ${command}: ${e.message}`, { call: describeCall(c) });
    });
    const exited = new Promise<void>((resolve) => {
      child.on("close", (code) => {
        if (code === EXIT_REFUSED) {
          failure = new QubesApiError("refused", `${service(c)} to ${c.dest} was refused by qrexec policy (qrexec-client-vm exit 126)`, { call: describeCall(c) });
        }
        resolve();
      });
    });
    return readableStream(child.stdout, () => child.kill("SIGTERM"), async () => {
      await exited;
      return failure;
    });
  };

  return { description: `qrexec (${command}) from a management qube`, source: null, visibility: "policy", call, stream, service: qrexecServiceRunner(command, { timeoutMs: opts.timeoutMs, ...(opts.env ? { env: opts.env } : {}) }), close: async () => {} };
}
