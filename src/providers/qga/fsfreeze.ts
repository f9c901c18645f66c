// Freeze a guest's filesystems around a piece of host work (a backup, a snapshot) and ALWAYS
// thaw afterwards: after success, failure, or an interruption the caller turns into a rejection.
// The thaw is retried (the client resyncs first) and, when the channel died, tried on a fresh one.
// A freeze that failed with an agent error needs no thaw: the agent has thawed everything itself.

import type { CallOptions, QgaClient } from "./client.js";
import { QgaError, isQgaError } from "./errors.js";

export type FreezeReport = {
  /** Filesystems guest-fsfreeze-freeze reported frozen. */
  frozen: number;
  /** Filesystems guest-fsfreeze-thaw reported thawed (differs from `frozen` if something else thawed some). */
  thawed: number;
};

export type FreezeOptions = CallOptions & {
  /** Called once the filesystems are frozen, before the body runs. */
  onFrozen?: (count: number) => void;
  /** Thaw attempts before giving up. Default 3. */
  thawAttempts?: number;
  /** A fresh client for the thaw when the original channel has closed. */
  reconnect?: () => Promise<QgaClient>;
};

export type FreezeOutcome<T> = FreezeReport & ({ ok: true; value: T } | { ok: false; error: unknown });

/**
 * Runs `body` while the guest's filesystems are frozen. Resolves with the counts and the body's
 * outcome (a body failure does not reject: the thaw result matters as much). Rejects when the
 * freeze fails (the body did not run) or the thaw fails (the message says the guest may still be
 * frozen).
 */
export async function withFrozenFilesystems<T>(client: QgaClient, body: (frozen: number) => Promise<T>, opts: FreezeOptions = {}): Promise<FreezeOutcome<T>> {
  let frozen: number;
  try {
    frozen = await client.fsfreezeFreeze(opts);
  } catch (e) {
    // Refused outright: nothing is frozen. Anything else (timeout, lost channel) may have frozen.
    if (isQgaError(e) && (e.code === "agent" || e.code === "disabled" || e.code === "unsupported" || e.code === "invalid-request")) throw e;
    // A thaw failure here is the worse news ("may still be frozen") and replaces the freeze error.
    await thaw(client, opts);
    throw e;
  }
  opts.onFrozen?.(frozen);
  let outcome: { ok: true; value: T } | { ok: false; error: unknown };
  try {
    outcome = { ok: true, value: await body(frozen) };
  } catch (error) {
    outcome = { ok: false, error };
  }
  const thawed = await thaw(client, opts);
  return { frozen, thawed, ...outcome };
}

async function thaw(client: QgaClient, opts: FreezeOptions): Promise<number> {
  const attempts = opts.thawAttempts ?? 3;
  let current = client;
  let last: unknown = null;
  for (let i = 0; i < attempts; i++) {
    try {
      if (current.closed && opts.reconnect) current = await opts.reconnect();
      return await current.fsfreezeThaw(opts);
    } catch (e) {
      last = e;
      // An agent error is the agent's final word (e.g. nothing is frozen any more).
      if (isQgaError(e) && e.code === "agent") break;
    }
  }
  const why = last instanceof Error ? last.message : String(last);
  throw new QgaError(isQgaError(last) ? last.code : "transport", `guest-fsfreeze-thaw on ${client.description} failed; the guest's filesystems may still be frozen (${why})`, {
    command: "guest-fsfreeze-thaw",
  });
}
