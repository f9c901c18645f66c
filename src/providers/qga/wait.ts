// Readiness: connect and sync until the agent answers or the deadline passes. "Not answering yet"
// (no socket, connection refused, helper exits, no sync reply) is pending; anything else (qrexec
// refusal, permission denied, a broken reply) fails at once. Never hangs: each attempt gets the
// time left, and the loop ends at the deadline with a message that says what was last seen.

import { connectAgent, type ConnectOptions, type QgaClient } from "./client.js";
import { QgaError, isNotAnsweringYet } from "./errors.js";
import { describeAgent, type AgentSpec } from "./spec.js";

export type WaitOptions = Omit<ConnectOptions, "resyncEveryMs"> & {
  /** How long one sync attempt waits before resending 0xFF + guest-sync-delimited. Default 1 s. */
  attemptMs?: number;
  /** Pause after a failed connection before the next. Default 200 ms. */
  retryDelayMs?: number;
  /** Progress for a view: called after each attempt that found the agent not answering yet. */
  onPending?: (reason: string, elapsedMs: number) => void;
};

export async function waitForAgent(spec: AgentSpec, opts: WaitOptions): Promise<QgaClient> {
  const started = Date.now();
  const deadline = started + opts.timeoutMs;
  const { attemptMs = 1000, retryDelayMs = 200, onPending, ...connect } = opts;
  let last = NO_ATTEMPT;
  for (;;) {
    const left = deadline - Date.now();
    if (left <= 0) break;
    try {
      return await connectAgent(spec, { ...connect, timeoutMs: left, resyncEveryMs: attemptMs });
    } catch (e) {
      if (!isNotAnsweringYet(e)) throw e;
      const reason = (e as QgaError).message;
      // A last attempt cut short by the deadline says less than the one before it.
      const cutShort = (e as QgaError).code === "timeout" && left < attemptMs && last !== NO_ATTEMPT;
      if (!cutShort) last = reason;
      onPending?.(reason, Date.now() - started);
    }
    const pause = Math.min(retryDelayMs, deadline - Date.now());
    if (pause > 0) await new Promise((r) => setTimeout(r, pause));
  }
  throw new QgaError("not-ready", `the guest agent (${describeAgent(spec)}) did not answer within ${formatSeconds(opts.timeoutMs)}; last: ${last}`, {
    maybeDelivered: false,
  });
}

const NO_ATTEMPT = "no attempt finished";
const formatSeconds = (ms: number): string => (ms % 1000 === 0 ? `${ms / 1000} s` : `${(ms / 1000).toFixed(1)} s`);
