// Turns --connect / QUBES_IAC_CONNECT / detection into an open AdminClient, saying on stderr
// which connection was chosen (never silently: a plan against the simulator must not be
// mistaken for a plan against dom0).

import { existsSync, statSync } from "node:fs";
import { createAdminClient, type AdminClient } from "../providers/qubes/client.js";
import { chooseConnection, describeChoice, type HostProbe } from "../providers/qubes/connect.js";
import { QubesApiError } from "../providers/qubes/errors.js";
import { openTransport } from "../providers/qubes/open.js";
import { CliError, tell, write, type CliIO } from "./io.js";

export type ConnectionOptions = { connect?: string; timeout?: string; parallelism?: string };

export const nodeProbe = (io: CliIO): HostProbe => ({
  env: io.env,
  cwd: io.cwd,
  exists: (p) => existsSync(p),
  isSocket: (p) => {
    try {
      return statSync(p).isSocket();
    } catch {
      return false;
    }
  },
});

export function parsePositiveInt(text: string | undefined, flag: string, fallback: number): number {
  if (text === undefined) return fallback;
  if (!/^[1-9][0-9]*$/.test(text)) throw new CliError(`${flag} must be a positive integer, not '${text}'`);
  return Number(text);
}

/** Connects, runs `use` with the client, and closes the client whatever `use` does. */
export async function withClient<T>(io: CliIO, o: ConnectionOptions, use: (client: AdminClient) => Promise<T>): Promise<T> {
  const client = await connectClient(io, o);
  try {
    return await use(client);
  } finally {
    await client.close();
  }
}

export async function connectClient(io: CliIO, o: ConnectionOptions): Promise<AdminClient> {
  const chosen = chooseConnection(o.connect, nodeProbe(io));
  if (!chosen.ok) throw new CliError(chosen.error);
  tell(io.stderr, `qubes-iac: ${describeChoice(chosen.choice, io.cwd)}`);
  const timeoutMs = parsePositiveInt(o.timeout, "--timeout", 60) * 1000;
  try {
    // QUBES_IAC_RPC_MULTIPLEXER: where dom0's qubes-rpc-multiplexer is, when not in /usr/lib/qubes (tests' stand-in).
    const multiplexer = io.env.QUBES_IAC_RPC_MULTIPLEXER;
    const transport = await openTransport(chosen.choice.spec, { timeoutMs, ...(multiplexer ? { multiplexer, env: { ...process.env, ...io.env } } : {}) });
    return createAdminClient(transport, { timeoutMs, parallelism: parsePositiveInt(o.parallelism, "--parallelism", 8) });
  } catch (e) {
    if (e instanceof QubesApiError) throw new CliError(e.message);
    throw e;
  }
}
