// Opens a Transport for a chosen connection. For `sim` it starts the simulator in this process
// on a private temporary socket, so the client talks to it through the same socket code it uses
// for a real dom0; closing the transport stops the server and removes the socket.

import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import type { ConnectSpec } from "./connect.js";
import { QubesApiError } from "./errors.js";
import { startSimulator } from "./simulator/index.js";
import { createQrexecTransport } from "./transport-qrexec.js";
import { createSocketTransport } from "./transport-socket.js";
import type { Transport } from "./transport.js";
import { multiplexerServiceRunner, RPC_MULTIPLEXER, simServiceRunner } from "./service-runner.js";

/**
 * `multiplexer`: dom0's qubes-rpc-multiplexer, for policy.* over the qubesd connection (default
 * RPC_MULTIPLEXER); `env`: the environment it runs in (the command's, default this process's).
 */
export async function openTransport(spec: ConnectSpec, opts: { timeoutMs: number; multiplexer?: string; env?: NodeJS.ProcessEnv }): Promise<Transport> {
  switch (spec.kind) {
    case "qubesd":
      return { ...createSocketTransport(spec.socketPath, { timeoutMs: opts.timeoutMs }), service: multiplexerServiceRunner(opts.multiplexer ?? RPC_MULTIPLEXER, { timeoutMs: opts.timeoutMs, ...(opts.env ? { env: opts.env } : {}) }) };
    case "qrexec":
      return createQrexecTransport({ timeoutMs: opts.timeoutMs, command: spec.command });
    case "sim": {
      mkdirSync(dirname(spec.statePath), { recursive: true });
      const dir = mkdtempSync(join(tmpdir(), "qubes-iac-sim-"));
      const cleanup = (): void => rmSync(dir, { recursive: true, force: true });
      try {
        const server = await startSimulator({
          socketPath: join(dir, "qubesd.sock"),
          statePath: spec.statePath,
          ...(spec.release === undefined ? {} : { release: spec.release }),
        });
        const inner = createSocketTransport(server.socketPath, {
          timeoutMs: opts.timeoutMs,
          description: `embedded simulator of Qubes ${server.release} (state ${spec.statePath})`,
        });
        return {
          ...inner,
          service: simServiceRunner(server.socketPath, { timeoutMs: opts.timeoutMs }),
          close: async () => {
            await server.close();
            cleanup();
          },
        };
      } catch (e) {
        cleanup();
        if (e instanceof QubesApiError) throw e;
        throw new QubesApiError("transport", `cannot start the embedded simulator: ${e instanceof Error ? e.message : String(e)}`);
      }
    }
    default: {
      const never: never = spec;
      throw new Error(`unknown connection ${String(never)}`);
    }
  }
}
