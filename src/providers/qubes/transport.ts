// The one call signature every way of reaching qubesd shares (dom0 socket, qrexec from a
// management qube, the simulator): send one request, get the raw reply bytes. Framing of the
// reply is the client's job; transports only move bytes and report transport faults as
// QubesApiError values with `maybeDelivered` set when the request may have reached qubesd.

import type { ServiceRunner } from "./service-runner.js";

export type AdminCall = {
  method: string;
  dest: string;
  /** Service argument; "" or absent when none. */
  arg?: string;
  payload?: Uint8Array;
};

export type CallOptions = { timeoutMs?: number };

/** An open event stream: raw reply chunks as they arrive, until close() or the server ends it. */
export type RawStream = AsyncIterable<Buffer> & { close(): void };

export type Transport = {
  /** Human description for the "using …" line, e.g. `qubesd socket /var/run/qubesd.sock`. */
  readonly description: string;
  /** The source qube qubesd sees (dom0 for the socket; unknown — null — over qrexec). */
  readonly source: string | null;
  /**
   * How much of Qubes this connection shows. `all`: dom0's socket, every qube. `policy`: a
   * management qube over qrexec: qubesd lists only the qubes its policy lets it call
   * admin.vm.List on (qubes-core-admin qubes/ext/admin.py, AdminExtension.admin_vm_list), and
   * qrexec refuses a call naming any other qube as it refuses one naming a qube that does not
   * exist (qubes-core-qrexec qrexec/policy/parser.py, IntendedTarget.verify: `@default`).
   */
  readonly visibility: "all" | "policy";
  call(call: AdminCall, opts?: CallOptions): Promise<Buffer>;
  /**
   * Runs one of dom0's qrexec services (policy.*) the way this connection reaches dom0
   * (service-runner.ts); absent where the connection cannot (a test's bare socket).
   */
  service?: ServiceRunner;
  stream(call: AdminCall): RawStream;
  close(): Promise<void>;
};

/** `method+arg` as qrexec and the call log write it. */
export const describeCall = (c: AdminCall): string => `${c.method}+${c.arg ?? ""} → ${c.dest}`;

/** Largest non-stream reply we accept; qubesd's largest real replies are a few hundred KiB. */
export const MAX_REPLY_BYTES = 64 * 1024 * 1024;

/** Adapts a Node readable into an async iterable with a close(), used by both stream transports. */
export function readableStream(
  source: NodeJS.ReadableStream,
  close: () => void,
  onEnd: () => Promise<Error | null> | Error | null,
): RawStream {
  const iterable = {
    close,
    async *[Symbol.asyncIterator](): AsyncGenerator<Buffer> {
      try {
        for await (const chunk of source) yield Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as string);
      } finally {
        close();
      }
      const err = await onEnd();
      if (err) throw err;
    },
  };
  return iterable;
}
