// How to reach one guest's agent: the host side of a virtio-serial socket, a process whose
// stdin/stdout carry the protocol, or a qrexec service in a qube that bridges to its local qemu-ga.
// The spec and its one conversion from what a user writes live in model/guest.ts (config and plan
// use them too) and are re-exported here; this adds the command-line form. Opening a channel is
// transport.ts's job.

import { toAgentSpec, type AgentSpec } from "../../model/guest.js";

export type { AgentSpec, WrittenAgentSpec } from "../../model/guest.js";
export { DEFAULT_QREXEC_SERVICE, describeAgent, toAgentSpec } from "../../model/guest.js";

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
