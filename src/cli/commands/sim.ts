// `qubes-iac sim serve` runs the simulator on a socket until interrupted; `qubes-iac sim call`
// sends one raw Admin API call through the chosen connection and prints the reply, for
// debugging a target by hand.

import { resolve } from "node:path";
import { checkRequest, decodeReply } from "../../providers/qubes/codec.js";
import { QubesApiError } from "../../providers/qubes/errors.js";
import {
  describeFaultRuleIssue,
  parseFaultRule,
  parseFixture,
  parseLatency,
  parseRelease,
  startSimulator,
  type FaultRule,
  type SimulatorOptions,
} from "../../providers/qubes/simulator/index.js";
import { withClient, type ConnectionOptions } from "../connection.js";
import { CliError, readAll, tell, write, type CliIO } from "../io.js";

export type ServeOptions = {
  socket: string;
  state?: string;
  reset?: boolean;
  log?: string;
  fixture?: string;
  release?: string;
  latencyMs?: string;
  serialWrites?: boolean;
  fault?: string[];
};

/** The simulator options the text flags stand for; every bad flag is reported at once. */
function serveTuning(o: ServeOptions): Pick<SimulatorOptions, "fixture" | "release" | "latency" | "serialWrites" | "faults"> {
  const errors: string[] = [];
  const fixture = parseFixture(o.fixture ?? "default");
  if (!fixture.ok) errors.push(`--fixture: ${fixture.error}`);
  const release = o.release === undefined ? undefined : parseRelease(o.release);
  if (release && !release.ok) errors.push(`--release: ${release.error}`);
  const latency = o.latencyMs === undefined ? undefined : parseLatency(o.latencyMs);
  if (latency && !latency.ok) errors.push(`--latency-ms: ${latency.error}`);
  const faults: FaultRule[] = [];
  for (const text of o.fault ?? []) {
    const parsed = parseFaultRule(text);
    if (parsed.ok) faults.push(parsed.rule);
    else errors.push(`--fault: ${describeFaultRuleIssue(parsed.issue)}`);
  }
  if (errors.length > 0) throw new CliError(errors.join("\n"));
  return {
    ...(fixture.ok ? { fixture: fixture.fixture } : {}),
    ...(release?.ok ? { release: release.release } : {}),
    ...(latency?.ok ? { latency: latency.latency } : {}),
    ...(o.serialWrites === false ? { serialWrites: false } : {}),
    faults,
  };
}

export async function simServe(io: CliIO, o: ServeOptions): Promise<number> {
  const tuning = serveTuning(o);
  let server;
  try {
    server = await startSimulator({
      socketPath: resolve(io.cwd, o.socket),
      ...(o.state !== undefined ? { statePath: resolve(io.cwd, o.state) } : {}),
      ...(o.log !== undefined ? { logPath: resolve(io.cwd, o.log) } : {}),
      reset: o.reset === true,
      ...tuning,
    });
  } catch (e) {
    throw new CliError(`cannot start the simulator: ${e instanceof Error ? e.message : String(e)}`);
  }
  tell(io.stderr, `qubes-iac: simulator of Qubes ${server.release} listening on ${server.socketPath}${o.state ? `, state in ${o.state}` : " (state in memory only)"}`);
  const signal = await io.interrupted;
  await server.close();
  tell(io.stderr, `qubes-iac: simulator stopped (${signal})`);
  return 0;
}

/** Python-bytes-like rendering of a reply, so NULs and non-printables are visible. */
export function showBytes(b: Uint8Array): string {
  let s = "";
  for (const c of b) {
    if (c === 0x5c) s += "\\\\";
    else if (c === 0x0a) s += "\\n";
    else if (c >= 0x20 && c < 0x7f) s += String.fromCharCode(c);
    else s += `\\x${c.toString(16).padStart(2, "0")}`;
  }
  return s;
}

export type CallOptions = ConnectionOptions & { raw?: boolean };

export async function simCall(io: CliIO, method: string, dest: string, arg: string, o: CallOptions): Promise<number> {
  // The payload comes from stdin when it is piped; a terminal is never waited on.
  const payload = io.stdin.isTTY ? new Uint8Array() : await readAll(io.stdin);
  const invalid = checkRequest({ method, arg, src: "dom0", dest, payload });
  if (invalid) throw new CliError(invalid);
  return withClient(io, o, async (client) => {
    try {
      const raw = await client.transport.call({ method, dest, arg, payload });
      if (o.raw) {
        io.stdout.write(raw);
      } else {
        write(io.stdout, showBytes(raw));
      }
      return decodeReply(raw).kind === "ok" ? 0 : 1;
    } catch (e) {
      if (e instanceof QubesApiError) throw new CliError(e.message);
      throw e;
    }
  });
}
