// Facts about a guest for `show` and the JSON plan: agent version, OS, hostname, network
// addresses, as plain JSON-ready data. A fact whose command the agent disabled or lacks is null,
// with the reason listed; other failures reject (the agent is not healthy).

import type { CallOptions, QgaClient } from "./client.js";
import { isQgaError } from "./errors.js";
import type { GuestInterface, GuestOsInfo } from "./replies.js";

export type GuestFacts = {
  agentVersion: string;
  os: GuestOsInfo | null;
  hostname: string | null;
  interfaces: GuestInterface[] | null;
  /** Facts left null and why; for display only. */
  missing: Array<{ fact: "os" | "hostname" | "interfaces"; reason: string }>;
};

export async function readGuestFacts(client: QgaClient, opts: CallOptions = {}): Promise<GuestFacts> {
  const info = await client.info(opts);
  const missing: GuestFacts["missing"] = [];
  const optional = async <T>(fact: GuestFacts["missing"][number]["fact"], read: () => Promise<T>): Promise<T | null> => {
    try {
      return await read();
    } catch (e) {
      if (isQgaError(e) && (e.code === "disabled" || e.code === "unsupported")) {
        missing.push({ fact, reason: e.code === "disabled" ? "disabled in the agent" : "not offered by this agent" });
        return null;
      }
      throw e;
    }
  };
  const os = await optional("os", () => client.getOsInfo(opts));
  const hostname = await optional("hostname", () => client.getHostName(opts));
  const interfaces = await optional("interfaces", () => client.networkGetInterfaces(opts));
  return { agentVersion: info.version, os, hostname, interfaces, missing };
}
