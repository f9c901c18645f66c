// Transport over qubesd's Unix socket (dom0, or a simulator's socket): one connection per call,
// request written then half-closed, reply read to EOF. The source is always dom0, as for
// qubesadmin's QubesLocal.

import { createConnection, type Socket } from "node:net";
import { encodeRequest } from "./codec.js";
import { QubesApiError } from "./errors.js";
import { MAX_REPLY_BYTES, describeCall, readableStream, type AdminCall, type CallOptions, type RawStream, type Transport } from "./transport.js";

export const DEFAULT_QUBESD_SOCKET = "/var/run/qubesd.sock";

export function createSocketTransport(socketPath: string, defaults: { timeoutMs: number; description?: string }): Transport {
  const request = (c: AdminCall): Buffer =>
    encodeRequest({ method: c.method, arg: c.arg ?? "", src: "dom0", dest: c.dest, payload: c.payload ?? new Uint8Array() });

  const call = (c: AdminCall, opts?: CallOptions): Promise<Buffer> =>
    new Promise<Buffer>((resolve, reject) => {
      const timeoutMs = opts?.timeoutMs ?? defaults.timeoutMs;
      const chunks: Buffer[] = [];
      let size = 0;
      let written = false;
      let settled = false;
      const sock: Socket = createConnection(socketPath);
      const finish = (err: QubesApiError | null, value?: Buffer): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        sock.destroy();
        if (err) reject(err);
        else resolve(value ?? Buffer.alloc(0));
      };
      const timer = setTimeout(() => {
        finish(
          new QubesApiError("timeout", `no reply to ${describeCall(c)} within ${timeoutMs} ms from ${socketPath}`, {
            call: describeCall(c),
            maybeDelivered: written,
          }),
        );
      }, timeoutMs);
      sock.on("connect", () => {
        written = true;
        sock.end(request(c));
      });
      sock.on("data", (d: Buffer) => {
        size += d.length;
        if (size > MAX_REPLY_BYTES) {
          finish(new QubesApiError("bad-reply", `reply to ${describeCall(c)} exceeds ${MAX_REPLY_BYTES} bytes`, { call: describeCall(c), maybeDelivered: true }));
          return;
        }
        chunks.push(d);
      });
      sock.on("end", () => finish(null, Buffer.concat(chunks)));
      sock.on("error", (e: NodeJS.ErrnoException) => {
        const before = !written && (e.code === "ENOENT" || e.code === "ECONNREFUSED" || e.code === "EACCES");
        const what = before ? `cannot connect to ${socketPath} (${e.code})` : `connection to ${socketPath} failed during ${describeCall(c)}: ${e.message}`;
        finish(new QubesApiError("transport", what, { call: describeCall(c), maybeDelivered: !before }));
      });
      sock.on("close", () => {
        // A reset after data and without 'end' still ends the reply: the server closed the connection.
        if (!settled) finish(null, Buffer.concat(chunks));
      });
    });

  const stream = (c: AdminCall): RawStream => {
    const sock = createConnection(socketPath);
    let failure: Error | null = null;
    sock.on("connect", () => sock.end(request(c)));
    sock.on("error", (e) => {
      failure = new QubesApiError("transport", `event stream ${describeCall(c)} on ${socketPath} failed: ${e.message}`, { call: describeCall(c) });
    });
    return readableStream(sock, () => sock.destroy(), () => failure);
  };

  return {
    description: defaults.description ?? `qubesd socket ${socketPath}`,
    source: "dom0",
    visibility: "all",
    call,
    stream,
    close: async () => {},
  };
}
