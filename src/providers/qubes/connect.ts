// Chooses how to reach Qubes: `--connect qubesd[:PATH] | qrexec | sim[:STATEFILE][?release=R]`, else
// QUBES_IAC_CONNECT, else detection — the qubesd socket if it exists, else qrexec-client-vm if
// on PATH, else the embedded simulator, but only on a machine with no sign of Qubes. On a Qubes
// machine whose socket is unreachable it fails: it never falls back to the simulator.

import { delimiter, join, resolve } from "node:path";
import { DEFAULT_QUBESD_SOCKET } from "./transport-socket.js";
import { QREXEC_CLIENT_VM } from "./transport-qrexec.js";
import { parseRelease, type SimRelease } from "./simulator/releases.js";

export type ConnectSpec =
  | { kind: "qubesd"; socketPath: string }
  | { kind: "qrexec"; command: string }
  /** `release` absent: the state file's, main for a new one. */
  | { kind: "sim"; statePath: string; release?: SimRelease };

export type ConnectChoice = { spec: ConnectSpec; reason: string };

export type HostProbe = {
  env: Record<string, string | undefined>;
  cwd: string;
  exists(path: string): boolean;
  /** Whether a path is a Unix socket (or at least exists and is not a regular file). */
  isSocket(path: string): boolean;
};

export const DEFAULT_SIM_STATE = join(".qubes-iac", "sim-state.json");
const QUBES_RELEASE = "/etc/qubes-release";

export type ParseResult = { ok: true; spec: ConnectSpec } | { ok: false; error: string };

/** The `?release=R` of a sim spec (the only option it takes). */
function simOptions(query: string | undefined): { ok: true; release?: SimRelease } | { ok: false; error: string } {
  if (query === undefined) return { ok: true };
  const m = /^release=(.*)$/.exec(query);
  if (!m) return { ok: false, error: `'sim' takes ?release=r4.2|r4.3|main, not '?${query}'` };
  const parsed = parseRelease(m[1] ?? "");
  return parsed.ok ? { ok: true, release: parsed.release } : { ok: false, error: parsed.error };
}

export function parseConnectSpec(text: string, cwd: string): ParseResult {
  if (text.startsWith("sim?")) return parseConnectSpec(`sim:${text.slice(3)}`, cwd);
  const colon = text.indexOf(":");
  const kind = colon < 0 ? text : text.slice(0, colon);
  const rest = colon < 0 ? undefined : text.slice(colon + 1);
  switch (kind) {
    case "qubesd":
      return { ok: true, spec: { kind: "qubesd", socketPath: rest ? resolve(cwd, rest) : DEFAULT_QUBESD_SOCKET } };
    case "qrexec":
      if (rest !== undefined) return { ok: false, error: `'qrexec' takes no argument (got '${text}')` };
      return { ok: true, spec: { kind: "qrexec", command: QREXEC_CLIENT_VM } };
    case "sim": {
      const q = rest === undefined ? -1 : rest.indexOf("?");
      const path = q < 0 ? rest : rest?.slice(0, q);
      const options = simOptions(q < 0 ? undefined : rest?.slice(q + 1));
      if (!options.ok) return options;
      const spec = { kind: "sim" as const, statePath: resolve(cwd, path || DEFAULT_SIM_STATE) };
      return { ok: true, spec: options.release === undefined ? spec : { ...spec, release: options.release } };
    }
    default:
      return { ok: false, error: `unknown connection '${text}': use qubesd[:PATH], qrexec or sim[:STATEFILE][?release=R]` };
  }
}

function onPath(probe: HostProbe, command: string): string | undefined {
  for (const dir of (probe.env.PATH ?? "").split(delimiter)) {
    if (dir === "") continue;
    const candidate = join(dir, command);
    if (probe.exists(candidate)) return candidate;
  }
  return undefined;
}

export type ChooseResult = { ok: true; choice: ConnectChoice } | { ok: false; error: string };

export function chooseConnection(flag: string | undefined, probe: HostProbe): ChooseResult {
  const explicit = flag ?? probe.env.QUBES_IAC_CONNECT;
  if (explicit !== undefined && explicit !== "") {
    const parsed = parseConnectSpec(explicit, probe.cwd);
    if (!parsed.ok) return { ok: false, error: `${flag !== undefined ? "--connect" : "QUBES_IAC_CONNECT"}: ${parsed.error}` };
    return { ok: true, choice: { spec: parsed.spec, reason: flag !== undefined ? "--connect" : "QUBES_IAC_CONNECT" } };
  }
  if (probe.isSocket(DEFAULT_QUBESD_SOCKET)) {
    return { ok: true, choice: { spec: { kind: "qubesd", socketPath: DEFAULT_QUBESD_SOCKET }, reason: "qubesd socket found" } };
  }
  const qrexec = onPath(probe, QREXEC_CLIENT_VM);
  if (qrexec) return { ok: true, choice: { spec: { kind: "qrexec", command: QREXEC_CLIENT_VM }, reason: `${qrexec} found` } };
  if (probe.exists(QUBES_RELEASE)) {
    return {
      ok: false,
      error:
        `this is a Qubes OS machine (${QUBES_RELEASE} exists) but ${DEFAULT_QUBESD_SOCKET} is not reachable and ` +
        `${QREXEC_CLIENT_VM} is not on PATH; refusing to fall back to the simulator. Run in dom0 (is qubesd running?) ` +
        `or from a management qube, or choose explicitly with --connect.`,
    };
  }
  return {
    ok: true,
    choice: { spec: { kind: "sim", statePath: resolve(probe.cwd, DEFAULT_SIM_STATE) }, reason: "no Qubes OS detected" },
  };
}

export function describeChoice(c: ConnectChoice, cwd: string): string {
  switch (c.spec.kind) {
    case "qubesd":
      return `using the qubesd socket ${c.spec.socketPath} (${c.reason})`;
    case "qrexec":
      return `using ${c.spec.command} from this management qube (${c.reason})`;
    case "sim": {
      const rel = c.spec.statePath.startsWith(cwd + "/") ? c.spec.statePath.slice(cwd.length + 1) : c.spec.statePath;
      const release = c.spec.release === undefined ? "" : ` of Qubes ${c.spec.release}`;
      return `using the embedded simulator${release}, state in ${rel} (${c.reason})`;
    }
    default: {
      const never: never = c.spec;
      return String(never);
    }
  }
}
