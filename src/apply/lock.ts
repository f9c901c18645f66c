// The apply lock: at most one apply per owner at a time, whichever management qube runs it. It
// lives in Qubes, like the ownership records: the atomic step is `admin.label.Create` of the
// label `qubes-iac.lock.<owner>` (qubesd refuses a label name that exists, and runs one call at a
// time), and who holds it is the dom0 feature `qubes-iac.<owner>.lock`, written right after.
// Released record first, then label. docs/locking.md states the guarantee and its limits. Reads
// and writes only through the LockStore capability; returns every outcome as a value.

import { randomBytes } from "node:crypto";
import type { Op } from "../plan/ops.js";
import type { AdminClient } from "../providers/qubes/client.js";
import { isQubesApiError, type QubesApiError } from "../providers/qubes/errors.js";
import { lockLabelName, ownershipNames } from "../model/ownership.js";
import { describeRecordedHolder, encodeHolder, parseHolder, UNKNOWN_HOLDER_ID, type LockHolder } from "../model/lock-record.js";
import { outcomeUnknown, runOp } from "./admin-api.js";

export { encodeHolder, parseHolder, UNKNOWN_HOLDER_ID, type LockHolder };

/** The lock label's colour. Never read back (qubesd does not tell a new label's colour); any valid one does. */
export const LOCK_COLOUR = "0x000000";

export type HeldLock = {
  kind: "held";
  /** null: the label exists without a readable record (taken a moment ago, or its holder died right after taking it). */
  holder: LockHolder | null;
};
export type LockState = { kind: "free" } | HeldLock;

export const holderId = (s: HeldLock): string => s.holder?.id ?? UNKNOWN_HOLDER_ID;

/** The lock's Admin API as a capability (tests and the policy see exactly these calls). */
export type LockStore = {
  labels(): Promise<string[]>;
  /** The holder record's value; undefined when it is not set. */
  record(name: string): Promise<string | undefined>;
  run(op: Op): Promise<void>;
};

export function lockStoreFromClient(client: AdminClient): LockStore {
  return {
    labels: () => client.label.list(),
    record: (name) => client.feature.getOptional("dom0", name),
    run: (op) => runOp(client, op),
  };
}

export const lockNames = (owner: string): { label: string; record: string } => ({ label: lockLabelName(owner), record: ownershipNames(owner).lock });

/** The four writes of a lock's life, in the order an apply makes them: take (label, record), give back (record, label). */
export function lockOps(owner: string, value = ""): { take: Op[]; release: Op[] } {
  const n = lockNames(owner);
  return {
    take: [
      { op: "label.create", name: n.label, colour: LOCK_COLOUR },
      { op: "feature.set", vm: "dom0", name: n.record, value },
    ],
    release: [
      { op: "feature.remove", vm: "dom0", name: n.record },
      { op: "label.remove", name: n.label },
    ],
  };
}

const clean = (s: string, max: number): string => s.replace(/[^A-Za-z0-9_.+-]/g, "_").slice(0, max) || "_";

/** A holder for this process. */
export function newHolder(o: { host: string; pid: number; now: Date; version: string; id?: string }): LockHolder {
  return { id: o.id ?? randomBytes(6).toString("hex"), host: clean(o.host, 64), pid: o.pid, since: o.now.toISOString(), version: clean(o.version, 32) };
}

/** `45s`, `12m05s`, `3h12m`, `2d04h`. */
export function formatAge(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
  if (s < 86400) return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
  return `${Math.floor(s / 86400)}d${String(Math.floor((s % 86400) / 3600)).padStart(2, "0")}h`;
}

/** Who holds it and since when, for a person: `apply 3f9a1c2b7d10 on mgmt (pid 4242, qubes-iac 0.1.0) since … (12m05s ago)`. */
export function describeHolder(s: HeldLock, nowMs: number): string {
  const h = s.holder;
  return h === null ? describeRecordedHolder(null) : `${describeRecordedHolder(h)} (${formatAge(nowMs - Date.parse(h.since))} ago)`;
}

/** The refusal of a second apply: who holds the lock, since when, and how to break a stale one. */
export function heldMessage(owner: string, s: HeldLock, nowMs: number, command: string): string {
  return (
    `another apply of owner ${owner} is running: the lock is held by ${describeHolder(s, nowMs)}. ` +
    `It is released when that apply ends. If it is not running any more (killed, or its qube shut down), ` +
    `break the lock: ${command} --break-lock ${holderId(s)}`
  );
}

export async function readLock(store: LockStore, owner: string): Promise<LockState> {
  const n = lockNames(owner);
  if (!(await store.labels()).includes(n.label)) return { kind: "free" };
  return { kind: "held", holder: parseHolder(await store.record(n.record)) };
}

export type Acquired = { owner: string; holder: LockHolder };

export type AcquireResult =
  | { kind: "acquired"; lock: Acquired }
  /** Someone else holds it. */
  | HeldLock
  /** Not taken: the lock is as it was. */
  | { kind: "failed"; message: string }
  /** The label was created, by this apply or by another at the same moment: nobody can tell. */
  | { kind: "unknown"; message: string };

/** No answer at all (a timeout, a failed connection): qubesd may still run the call after the re-read. */
const mayStillRun = (e: QubesApiError): boolean => e.code === "timeout" || e.code === "transport";

const apiError = (e: unknown): QubesApiError => {
  if (isQubesApiError(e)) return e;
  throw e;
};

/** What a failed write leaves: whether `exists` now holds, or a reason it could not be read. */
async function reread(check: () => Promise<boolean>): Promise<boolean | string> {
  try {
    return await check();
  } catch (e) {
    return `re-reading failed: ${apiError(e).message}`;
  }
}

export async function acquireLock(store: LockStore, owner: string, holder: LockHolder): Promise<AcquireResult> {
  const n = lockNames(owner);
  const ops = lockOps(owner, encodeHolder(holder));
  const [create, record] = ops.take as [Op, Op];
  try {
    await store.run(create);
  } catch (e) {
    const err = apiError(e);
    if (!outcomeUnknown(err)) {
      // Not created. qubesd refuses a label that exists: then someone holds it.
      if (err.code === "exception") {
        try {
          const state = await readLock(store, owner);
          if (state.kind === "held") return state;
        } catch (e2) {
          return { kind: "failed", message: `could not take the lock (${err.message}), nor read it: ${apiError(e2).message}` };
        }
      }
      return { kind: "failed", message: `could not take the lock: ${err.message}` };
    }
    const exists = await reread(async () => (await store.labels()).includes(n.label));
    // A call that got no answer may still be waiting inside qubesd: "not created" is then "not yet".
    if (exists === false && !mayStillRun(err)) return { kind: "failed", message: `could not take the lock: ${err.message}; re-reading shows the lock label was not created` };
    if (exists === true) {
      const other = await reread(async () => (await store.record(n.record)) !== undefined);
      if (other === true) {
        const state = await readLock(store, owner).catch(() => undefined);
        if (state?.kind === "held") return state;
      }
    }
    return {
      kind: "unknown",
      message:
        `could not tell whether this apply took the lock: ${err.message}${typeof exists === "string" ? `; ${exists}` : exists ? "" : "; the lock label was not there when re-read, but qubesd may still create it"}. ` +
        `The lock label ${n.label} may now exist without a holder record; if no other apply of owner ${owner} is running, ` +
        `break it with --break-lock ${UNKNOWN_HOLDER_ID}`,
    };
  }
  try {
    await store.run(record);
    return { kind: "acquired", lock: { owner, holder } };
  } catch (e) {
    const err = apiError(e);
    if (outcomeUnknown(err) && (await reread(async () => (await store.record(n.record)) === encodeHolder(holder))) === true) {
      return { kind: "acquired", lock: { owner, holder } };
    }
    // Holding a lock nobody can attribute would stop every other apply: give it back.
    const back = await removeQuietly(store, ops.release[1] as Op, async () => (await store.labels()).includes(n.label));
    return {
      kind: "failed",
      message:
        `took the lock but could not record who holds it: ${err.message}; ` +
        (back === null ? "gave the lock back" : `giving it back failed too (${back}): break it with --break-lock ${UNKNOWN_HOLDER_ID}`),
    };
  }
}

/** Runs a removal; null when the thing is gone afterwards (whatever the reply said), else why not. */
async function removeQuietly(store: LockStore, op: Op, stillThere: () => Promise<boolean>): Promise<string | null> {
  try {
    await store.run(op);
    return null;
  } catch (e) {
    const err = apiError(e);
    const there = await reread(stillThere);
    if (there === false) return null;
    return typeof there === "string" ? `${err.message}; ${there}` : err.message;
  }
}

export type ReleaseResult =
  | { kind: "released" }
  /** The lock is no longer this apply's (broken with --break-lock while it ran): nothing was removed. */
  | { kind: "lost"; now: LockState }
  | { kind: "failed"; message: string };

export async function releaseLock(store: LockStore, lock: Acquired): Promise<ReleaseResult> {
  const n = lockNames(lock.owner);
  // Give back only our own lock: it may have been broken and taken by another apply meanwhile.
  let current: LockState;
  try {
    current = await readLock(store, lock.owner);
  } catch (e) {
    return { kind: "failed", message: `could not release the lock of owner ${lock.owner}: ${apiError(e).message}` };
  }
  if (current.kind === "free" || current.holder?.id !== lock.holder.id) return { kind: "lost", now: current };
  const [record, label] = lockOps(lock.owner).release as [Op, Op];
  const recordLeft = await removeQuietly(store, record, async () => (await store.record(n.record)) !== undefined);
  if (recordLeft !== null) return { kind: "failed", message: `could not release the lock of owner ${lock.owner}: ${recordLeft}` };
  const labelLeft = await removeQuietly(store, label, async () => (await store.labels()).includes(n.label));
  if (labelLeft !== null) {
    return { kind: "failed", message: `could not release the lock of owner ${lock.owner}: ${labelLeft}; break it with --break-lock ${UNKNOWN_HOLDER_ID}` };
  }
  return { kind: "released" };
}

export type BreakResult =
  | { kind: "broken"; was: HeldLock }
  | { kind: "free" }
  /** Held by someone other than the id given: nothing was removed. */
  | { kind: "mismatch"; state: HeldLock }
  | { kind: "failed"; message: string };

/** Removes the lock only when it is the one `id` names (as shown by heldMessage). */
export async function breakLock(store: LockStore, owner: string, id: string): Promise<BreakResult> {
  const n = lockNames(owner);
  let state: LockState;
  try {
    state = await readLock(store, owner);
  } catch (e) {
    return { kind: "failed", message: `could not read the lock of owner ${owner}: ${apiError(e).message}` };
  }
  if (state.kind === "free") return { kind: "free" };
  if (holderId(state) !== id) return { kind: "mismatch", state };
  const [record, label] = lockOps(owner).release as [Op, Op];
  const left =
    (await removeQuietly(store, record, async () => (await store.record(n.record)) !== undefined)) ??
    (await removeQuietly(store, label, async () => (await store.labels()).includes(n.label)));
  if (left !== null) return { kind: "failed", message: `could not break the lock of owner ${owner}: ${left}` };
  return { kind: "broken", was: state };
}
