// Reading guests for a plan: through the GuestReader capability (read-only — it connects, reads
// facts and file digests, and closes; it never writes), each in-scope guest that guestReadMode
// says to read, at most `parallelism` at once, and the SHA-256 of every `source:` file those
// guests name (streamed by the capability, so any size in bounded memory).

import type { ActualState } from "../model/actual.js";
import type { DesiredState } from "../model/desired.js";
import type { AgentSpec, Digest, GuestObservation } from "../model/guest.js";
import { mapLimit } from "../util/concurrency.js";
import { guestReadMode, type GuestReadings } from "./diff-guests.js";

/** Read-only access to guests and to the local files their content comes from. */
export type GuestReader = {
  /**
   * Connects to an agent — waiting up to `waitMs` while it does not answer yet, else one bounded
   * attempt — reads its facts and the size and SHA-256 of each path, and closes. Never rejects
   * for what the guest does: that is an observation.
   */
  observe(agent: AgentSpec, paths: readonly string[], o: { waitMs?: number }): Promise<GuestObservation>;
  /** Size and SHA-256 of a local file, streamed; rejects with a message naming the file, never its content. */
  digestFile(path: string): Promise<Digest>;
};

export async function readGuests(reader: GuestReader, desired: DesiredState, actual: ActualState, o: { parallelism: number; inScope: (address: string) => boolean }): Promise<GuestReadings> {
  const guests = [...desired.guests.values()].filter((g) => o.inScope(g.address));
  const sourcePaths = [...new Set(guests.flatMap((g) => [...g.files.values()].flatMap((f) => (f.content.kind === "source" ? [f.content.path] : []))))];
  const [observed, digests] = await Promise.all([
    mapLimit(guests, o.parallelism, async (g) => {
      const mode = guestReadMode(g, actual);
      if (!mode.read) return undefined;
      const observation = await reader.observe(g.agent, [...g.files.keys()], mode.waitMs === undefined ? {} : { waitMs: mode.waitMs });
      return [g.address, observation] as const;
    }),
    mapLimit(sourcePaths, o.parallelism, async (path) => {
      try {
        return [path, await reader.digestFile(path)] as const;
      } catch (e) {
        return [path, { error: e instanceof Error ? e.message : String(e) }] as const;
      }
    }),
  ]);
  return {
    observations: new Map(observed.filter((x): x is NonNullable<typeof x> => x !== undefined)),
    sources: new Map<string, Digest | { error: string }>(digests),
  };
}
