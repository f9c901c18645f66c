// How to reach one guest's agent: the host side of a virtio-serial socket, a process whose
// stdin/stdout carry the protocol, or a qrexec service in a qube that bridges to its local qemu-ga.
// Pure data and its one conversion from what a user writes (`{socket: …}`, `{command: […]}`,
// `{qrexec: …, qube: …}`); opening a channel is transport.ts's job.

import { checkVmName } from "../../model/qubes-rules.js";

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
export type WrittenAgentSpec =
  | { socket: string }
  | { command: string[] }
  | { qrexec?: string; qube: string };

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

/**
 * A command-line target: `socket:PATH`, `qrexec:QUBE[:SERVICE]`, or a path containing `/`
 * (a socket). Commands (argv) have no text form here; they come from config files.
 */
export function parseAgentTarget(text: string): AgentSpec | { error: string } {
  if (text.startsWith("socket:")) return toAgentSpec({ socket: text.slice("socket:".length) });
  if (text.startsWith("qrexec:")) {
    const [qube = "", service, ...rest] = text.slice("qrexec:".length).split(":");
    if (rest.length > 0) return { error: `${JSON.stringify(text)}: expected qrexec:QUBE[:SERVICE]` };
    return toAgentSpec(service === undefined ? { qube } : { qube, qrexec: service });
  }
  if (text.includes("/")) return toAgentSpec({ socket: text });
  return { error: `${JSON.stringify(text)} is not an agent target: use socket:PATH, qrexec:QUBE[:SERVICE], or a socket path` };
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
