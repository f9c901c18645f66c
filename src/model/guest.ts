// Guests: VMs whose insides qubes-iac reaches through the QEMU guest agent. Plain data shared by
// config, plan, apply and the agent provider: how to reach an agent (AgentSpec and its one
// conversion from what a user writes), where a managed file's content comes from, and what
// planning observed through an agent. No I/O; opening channels is src/providers/qga's job.

import { checkVmName } from "./qubes-rules.js";

export type AgentSpec =
  /** A Unix socket that is the host side of the agent's channel (libvirt or `qemu -chardev socket`). */
  | { kind: "socket"; path: string }
  /** A process speaking the protocol on stdin/stdout, e.g. `["socat", "-", "UNIX-CONNECT:/run/qga.sock"]`. */
  | { kind: "command"; argv: string[] }
  /** `qrexec-client-vm <qube> <service>`: a qrexec service in the qube connected to its local qemu-ga. */
  | { kind: "qrexec"; qube: string; service: string };

/** The service name docs/guests.md sets up in a qube. */
export const DEFAULT_QREXEC_SERVICE = "qubes-iac.GuestAgent";

/** What a user writes in a config file or on the command line. */
export type WrittenAgentSpec = { socket: string } | { command: string[] } | { qrexec?: string; qube: string };

const QREXEC_SERVICE_RE = /^[A-Za-z0-9_.+-]{1,255}$/;

/** The one place a written agent spec becomes an AgentSpec; returns the reason when it cannot. */
export function toAgentSpec(w: WrittenAgentSpec | Record<string, unknown>): AgentSpec | { error: string } {
  const keys = Object.keys(w).sort().join(",");
  const o = w as Record<string, unknown>;
  if (keys === "socket") {
    if (typeof o.socket !== "string" || o.socket === "") return { error: "agent.socket must be a non-empty path" };
    if (o.socket.includes("\0")) return { error: "agent.socket must not contain NUL" };
    return { kind: "socket", path: o.socket };
  }
  if (keys === "command") {
    const argv = o.command;
    if (!Array.isArray(argv) || argv.length === 0 || !argv.every((a): a is string => typeof a === "string" && !a.includes("\0"))) {
      return { error: "agent.command must be a non-empty list of strings (program and arguments)" };
    }
    if (argv[0] === "") return { error: "agent.command's program must not be empty" };
    return { kind: "command", argv: [...argv] };
  }
  if (keys === "qube" || keys === "qrexec,qube") {
    const service = o.qrexec === undefined ? DEFAULT_QREXEC_SERVICE : o.qrexec;
    if (typeof o.qube !== "string") return { error: "agent.qube must be a qube name" };
    const badName = checkVmName(o.qube);
    if (badName) return { error: `agent.qube ${JSON.stringify(o.qube)}: ${badName}` };
    if (typeof service !== "string" || !QREXEC_SERVICE_RE.test(service)) {
      return { error: "agent.qrexec must be a qrexec service name (letters, digits, _ . + -)" };
    }
    return { kind: "qrexec", qube: o.qube, service };
  }
  return { error: `agent must have exactly one of socket, command or qrexec (+ qube); got ${keys === "" ? "nothing" : keys}` };
}

/** Human description for messages, e.g. `socket /run/vm1/qga.sock`. */
export function describeAgent(spec: AgentSpec): string {
  switch (spec.kind) {
    case "socket":
      return `socket ${spec.path}`;
    case "command":
      return `command ${spec.argv.map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : JSON.stringify(a))).join(" ")}`;
    case "qrexec":
      return `qrexec service ${spec.service} in qube ${spec.qube}`;
    default: {
      const never: never = spec;
      throw new Error(`unknown agent spec ${JSON.stringify(never)}`);
    }
  }
}

/** Two specs reach the same agent (the agent serves one client at a time). */
/** Two specs reach the same agent exactly when their keys are equal. */
export const agentKey = (a: AgentSpec): string => JSON.stringify(a);

/** Size and SHA-256 (lowercase hex) of some bytes: how guest files are compared, never by content. */
export type Digest = { size: number; sha256: string };

/**
 * Where a managed file's content is, so that apply can read it again without the plan holding it:
 * - inline: the string at `pointer` (a JSON pointer) in the config file `file`;
 * - source: the file `path` (found next to the config that names it).
 * Paths are absolute with symlinks resolved (as the config loader's file access reported them).
 */
export type ContentRef = { kind: "inline"; file: string; pointer: string } | { kind: "source"; path: string };

/** A guest file as planning read it through the agent. */
export type ObservedFile = { kind: "absent" } | ({ kind: "present" } & Digest) | { kind: "unreadable"; reason: string };

export type GuestOs = {
  id: string | null;
  name: string | null;
  prettyName: string | null;
  version: string | null;
  versionId: string | null;
  kernelRelease: string | null;
  kernelVersion: string | null;
  machine: string | null;
};

export type GuestNetInterface = {
  name: string;
  hardwareAddress: string | null;
  addresses: Array<{ address: string; type: "ipv4" | "ipv6"; prefix: number }>;
};

/** What the agent tells about its guest; a fact the agent does not offer is null, with the reason in `missing`. */
export type GuestFacts = {
  agentVersion: string;
  os: GuestOs | null;
  hostname: string | null;
  interfaces: GuestNetInterface[] | null;
  missing: Array<{ fact: "os" | "hostname" | "interfaces"; reason: string }>;
};

/**
 * What planning found when it tried a guest's agent:
 * - answering: facts, and each managed file (by guest path);
 * - not-answering: nothing answered within the time allowed (the guest is off, or its agent not up);
 * - failed: the agent could not be used (refused, permission denied, a broken reply).
 * Every reason names the agent, never file contents.
 */
export type GuestObservation =
  | { kind: "answering"; facts: GuestFacts; files: ReadonlyMap<string, ObservedFile> }
  | { kind: "not-answering"; reason: string }
  | { kind: "failed"; reason: string };
