// The simulator's latency model (README.md, "Latency"): a fixed cost per read-only and per
// mutating call, and the one-at-a-time queue that mutating calls wait in, as qubesd serves one
// mutation (and its qubes.xml rewrite) at a time. Also the `--latency-ms` text form.
// Owns no timer: the server passes its own sleep, so closing the server cancels every wait.

export type Latency = {
  /** Added to every read-only call (a qrexec round trip). */
  readMs: number;
  /** Added to every mutating call (round trip plus qubesd's qubes.xml rewrite). */
  writeMs: number;
};

export type LatencyParse = { ok: true; latency: Latency } | { ok: false; error: string };

/** `N` (both) or `READ,WRITE`, milliseconds as non-negative integers. */
export function parseLatency(text: string): LatencyParse {
  const m = /^([0-9]+)(?:,([0-9]+))?$/.exec(text.trim());
  if (!m) return { ok: false, error: `'${text}' is not a latency: use N or READ,WRITE (milliseconds, e.g. 5 or 2,40)` };
  const readMs = Number(m[1]);
  const writeMs = m[2] === undefined ? readMs : Number(m[2]);
  if (!Number.isSafeInteger(readMs) || !Number.isSafeInteger(writeMs)) return { ok: false, error: `latency '${text}' is too large` };
  return { ok: true, latency: { readMs, writeMs } };
}

/** Rejects what startSimulator cannot use; returns the reason or null. */
export function checkLatency(l: Latency): string | null {
  for (const [name, v] of [["readMs", l.readMs], ["writeMs", l.writeMs]] as const) {
    if (!Number.isFinite(v) || v < 0) return `latency ${name} must be a non-negative number of milliseconds, not ${String(v)}`;
  }
  return null;
}

/**
 * Runs tasks one at a time in arrival order. A task that throws does not stop the queue; the
 * caller of `run` sees its failure.
 */
export type SerialQueue = { run<T>(task: () => Promise<T>): Promise<T> };

export function createSerialQueue(): SerialQueue {
  let tail: Promise<unknown> = Promise.resolve();
  return {
    run<T>(task: () => Promise<T>): Promise<T> {
      const result = tail.then(task);
      tail = result.catch(() => undefined);
      return result;
    },
  };
}

/**
 * Paces the waits that make up a call's latency so that, on average, they last what was asked.
 * Node's timers fire on whole milliseconds and late: asked for 15 ms, one fires after 15.5 ms on
 * average here, so every call would be half a millisecond slower than its latency says (3 % at
 * 15 ms, which a benchmark's lower bound would charge to the client). The pacer learns how late
 * its timers fire (a running average of what it observes), asks for that much less, and carries
 * the fraction of a millisecond it could not ask for over to the next wait. A wait is never
 * asked for less than one millisecond below what is left, so no call is answered more than a
 * millisecond early.
 */
export type Pacer = {
  /** The whole milliseconds to set a timer for, to wait `wantMs` from now. */
  timerMs(wantMs: number): number;
  /** What such a timer really took, to learn from. */
  fired(askedMs: number, tookMs: number): void;
};

export function createPacer(): Pacer {
  let late = 0.5;
  let carry = 0;
  const clamp = (v: number, lo: number, hi: number): number => Math.min(hi, Math.max(lo, v));
  return {
    timerMs(wantMs) {
      if (!(wantMs > 0)) return 0;
      const want = wantMs - late + carry;
      const ask = clamp(Math.floor(want), Math.ceil(wantMs) - 1, Math.ceil(wantMs));
      carry = clamp(want - ask, -1, 1);
      return ask;
    },
    fired(askedMs, tookMs) {
      late = clamp(0.95 * late + 0.05 * (tookMs - askedMs), 0, 1);
    },
  };
}
