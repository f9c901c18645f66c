// The apply lock: at most one apply per owner at a time, whichever management qube runs it. It
// lives in Qubes, like the ownership records: the atomic step is `admin.label.Create` of the
// label `qubes-iac.lock.<owner>` (qubesd refuses a label name that exists, and runs one call at a
// time), and who holds it is the dom0 feature `qubes-iac.<owner>.lock`, written right after.
// Before the create, an apply makes its claim label `qubes-iac.lock.<owner>.<id>`, so that when
// the create gets no answer it can still prove from one label list whether the lock is its own.
// Given back record, label, claim. docs/locking.md states the guarantee and its limits. Reads and
// writes only through the LockStore capability; returns every outcome as a value.

import { randomBytes } from "node:crypto";
import type { Op } from "../plan/ops.js";
import type { AdminClient } from "../providers/qubes/client.js";
import { isQubesApiError, type QubesApiError } from "../providers/qubes/errors.js";
import { lockLabelName, ownershipNames } from "../model/ownership.js";
import { claimLabelName, describeRecordedHolder, encodeHolder, parseHolder, readClaims, UNKNOWN_HOLDER_ID, type LockHolder } from "../model/lock-record.js";
import { outcomeUnknown, runOp } from "./admin-api.js";

export { encodeHolder, parseHolder, UNKNOWN_HOLDER_ID, type LockHolder };

/** The colour of the lock's labels. Never read back (qubesd does not tell a new label's colour on every release); any valid one does. */
export const LOCK_COLOUR = "0x000000";

export type HeldLock = {
  kind: "held";
  /** null: the label exists without a readable record (taken a moment ago, or its holder died right after taking it). */
  holder: LockHolder | null;
  /** Without a record: the id of the one live claim beside the label, whose apply took it (or is taking it). */
  claim?: string;
};
export type LockState =
  | { kind: "free" }
  | HeldLock
  /**
   * The label exists, but no record and no live claim explain it: a create whose apply had ended
   * by the time it was made (it got no answer in time). Nobody holds it; the next apply takes it over.
   */
  | { kind: "abandoned" };

export const holderId = (s: HeldLock): string => s.holder?.id ?? s.claim ?? UNKNOWN_HOLDER_ID;

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

/** The name that stands for "any name" in the policy: a claim's name carries a random id. */
const ANY_NAME = "*";

/**
 * The six writes of a lock's life, in the order an apply makes them: take (claim, label, record),
 * give back (record, label, claim). Without a holder, the claim ops name no claim in particular
 * (`*`): what the qrexec policy must grant (src/apply/policy.ts).
 */
export function lockOps(owner: string, holder?: LockHolder): { take: Op[]; release: Op[] } {
  const n = lockNames(owner);
  const claim = holder === undefined ? ANY_NAME : claimLabelName(owner, holder.id);
  return {
    take: [
      { op: "label.create", name: claim, colour: LOCK_COLOUR },
      { op: "label.create", name: n.label, colour: LOCK_COLOUR },
      { op: "feature.set", vm: "dom0", name: n.record, value: holder === undefined ? "" : encodeHolder(holder) },
    ],
    release: [
      { op: "feature.remove", vm: "dom0", name: n.record },
      { op: "label.remove", name: n.label },
      { op: "label.remove", name: claim },
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
  return h === null ? describeRecordedHolder(null, s.claim) : `${describeRecordedHolder(h)} (${formatAge(nowMs - Date.parse(h.since))} ago)`;
}

/** The refusal of a second apply: who holds the lock, since when, and how to break a stale one. */
export function heldMessage(owner: string, s: HeldLock, nowMs: number, command: string): string {
  return (
    `another apply of owner ${owner} is running: the lock is held by ${describeHolder(s, nowMs)}. ` +
    `It is released when that apply ends. If it is not running any more (killed, or its qube shut down), ` +
    `break the lock: ${command} --break-lock ${holderId(s)}`
  );
}

/** The lock as one label list (and the record, when the label exists) shows it. */
async function lockFrom(store: LockStore, owner: string, labels: readonly string[], self?: string): Promise<LockState> {
  const n = lockNames(owner);
  if (!labels.includes(n.label)) return { kind: "free" };
  const text = await store.record(n.record);
  if (text !== undefined) return { kind: "held", holder: parseHolder(text) };
  const others = readClaims(owner, labels).live.filter((id) => id !== self);
  if (others.length === 0) return { kind: "abandoned" };
  return others.length === 1 ? { kind: "held", holder: null, claim: others[0] as string } : { kind: "held", holder: null };
}

export async function readLock(store: LockStore, owner: string): Promise<LockState> {
  return lockFrom(store, owner, await store.labels());
}

export type Acquired = { owner: string; holder: LockHolder };

export type AcquireResult =
  | { kind: "acquired"; lock: Acquired }
  /** Someone else holds it. */
  | HeldLock
  /** Not taken: the lock is as it was. */
  | { kind: "failed"; message: string }
  /** Another apply was taking the lock while this one's create got no answer: nobody can tell whose it is. */
  | { kind: "unknown"; message: string };

/** No answer at all (a timeout, a failed connection): qubesd may still run the call after the re-read. */
const mayStillRun = (e: QubesApiError): boolean => e.code === "timeout" || e.code === "transport";

const apiError = (e: unknown): QubesApiError => {
  if (isQubesApiError(e)) return e;
  throw e;
};

/** Runs `op`; the error when it failed (a QubesApiError), null when it succeeded. */
async function attempt(store: LockStore, op: Op): Promise<QubesApiError | null> {
  try {
    await store.run(op);
    return null;
  } catch (e) {
    return apiError(e);
  }
}

/** What a failed write leaves: whether `exists` now holds, or a reason it could not be read. */
async function reread(check: () => Promise<boolean>): Promise<boolean | string> {
  try {
    return await check();
  } catch (e) {
    return `re-reading failed: ${apiError(e).message}`;
  }
}

/** How many times the lock label's create is sent: once more when the first got no answer and the label is not there. */
const CREATE_ATTEMPTS = 2;

/**
 * Takes the lock: claim, label, record. The claim's name is this apply's alone and nobody else
 * makes it, so a claim whose create got no answer is settled by looking. When the label's create
 * gets no answer, one label list settles it: while the label exists, so does the claim of whoever
 * made it (made before, removed after); so a label with no record and no live claim but this
 * apply's is this apply's to hold, whoever made it (this apply, or a create of an apply that has
 * ended since). Another live claim beside it: nobody can tell, and this apply stands back.
 */
export async function acquireLock(store: LockStore, owner: string, holder: LockHolder): Promise<AcquireResult> {
  const n = lockNames(owner);
  const claim = claimLabelName(owner, holder.id);
  const [makeClaim, makeLabel, writeRecord] = lockOps(owner, holder).take as [Op, Op, Op];
  const claimed = await makeOwn(store, makeClaim, claim, holder.id);
  if (claimed !== null) return { kind: "failed", message: `could not take the lock: ${claimed}` };

  /** Not taken: the claim goes (a claim that stays holds nothing, and says so). */
  const withdraw = async (r: Exclude<AcquireResult, { kind: "acquired" }>): Promise<AcquireResult> => {
    const left = await removeQuietly(store, { op: "label.remove", name: claim }, async () => (await store.labels()).includes(claim));
    if (left === null || r.kind === "held") return r;
    return { ...r, message: `${r.message}; its claim label ${claim} is left (${left}): it holds nothing, and --break-lock ${holder.id} removes it` };
  };

  let last: QubesApiError | null = null;
  let mine = false;
  for (let i = 0; i < CREATE_ATTEMPTS && !mine; i++) {
    last = await attempt(store, makeLabel);
    if (last === null) {
      mine = true;
      break;
    }
    let labels: string[];
    try {
      labels = await store.labels();
    } catch (e) {
      return withdraw({ kind: "failed", message: `could not take the lock: ${last.message}; re-reading failed: ${apiError(e).message}` });
    }
    if (!labels.includes(n.label)) {
      // Not made (yet): a refusal is final; a create that got no answer is sent again, and a late
      // one is then refused, or makes a label that the next apply takes over.
      if (!outcomeUnknown(last) && !mayStillRun(last)) return withdraw({ kind: "failed", message: `could not take the lock: ${last.message}` });
      continue;
    }
    let state: LockState;
    try {
      state = await lockFrom(store, owner, labels, holder.id);
    } catch (e) {
      return withdraw({ kind: "failed", message: `could not take the lock: ${last.message}; re-reading failed: ${apiError(e).message}` });
    }
    switch (state.kind) {
      case "free":
        continue;
      case "abandoned":
        mine = true;
        break;
      case "held":
        if (state.holder !== null || !outcomeUnknown(last)) return withdraw(state);
        return withdraw({
          kind: "unknown",
          message:
            `could not tell whether this apply took the lock: ${last.message}, and another apply of owner ${owner} is taking it at the same moment. ` +
            `This apply stands back; the other holds the lock, or, if it stands back too, the next apply takes it over`,
        });
      default: {
        const never: never = state;
        throw new Error(`unhandled lock state ${String(never)}`);
      }
    }
  }
  if (!mine) {
    return withdraw({
      kind: "failed",
      message: `could not take the lock: ${last?.message ?? "no answer"}; the lock label was not there when re-read. If a late create makes it, the next apply takes it over`,
    });
  }

  const err = await attempt(store, writeRecord);
  if (err === null || (outcomeUnknown(err) && (await reread(async () => (await store.record(n.record)) === encodeHolder(holder))) === true)) {
    return { kind: "acquired", lock: { owner, holder } };
  }
  // Holding a lock nobody can attribute would stop every other apply: give it back.
  const back = await removeQuietly(store, { op: "label.remove", name: n.label }, async () => (await store.labels()).includes(n.label));
  const failed = `took the lock but could not record who holds it: ${err.message}; `;
  // A label left behind keeps its claim: a lock label beside a live claim is held, never taken over.
  if (back !== null) return { kind: "failed", message: `${failed}giving it back failed too (${back}): break it with --break-lock ${holder.id}` };
  return withdraw({ kind: "failed", message: `${failed}gave the lock back` });
}

/** Creates a label only this apply (`id`) ever creates; null once it exists, else why not. */
async function makeOwn(store: LockStore, op: Op, name: string, id: string): Promise<string | null> {
  let err: QubesApiError | null = null;
  for (let i = 0; i < 2; i++) {
    err = await attempt(store, op);
    if (err === null) return null;
    const there = await reread(async () => (await store.labels()).includes(name));
    if (there === true) return null;
    if (typeof there === "string") return `${err.message}; ${there}`;
    if (!outcomeUnknown(err) && !mayStillRun(err)) return err.message;
  }
  return `${err?.message ?? "no answer"}; the claim label ${name} was not there when re-read (if a late create makes it, it holds nothing, and --break-lock ${id} removes it)`;
}

/** Runs a removal, once more when it did not happen; null when the thing is gone afterwards (whatever the replies said), else why not. */
async function removeQuietly(store: LockStore, op: Op, stillThere: () => Promise<boolean>): Promise<string | null> {
  let why = "";
  for (let i = 0; i < 2; i++) {
    const err = await attempt(store, op);
    if (err === null) return null;
    const there = await reread(stillThere);
    if (there === false) return null;
    why = typeof there === "string" ? `${err.message}; ${there}` : err.message;
  }
  return why;
}

export type ReleaseResult =
  | { kind: "released" }
  /** The lock is no longer this apply's (broken with --break-lock while it ran): nothing was removed but its own claim. */
  | { kind: "lost"; now: LockState }
  | { kind: "failed"; message: string };

export async function releaseLock(store: LockStore, lock: Acquired): Promise<ReleaseResult> {
  const n = lockNames(lock.owner);
  const claim = claimLabelName(lock.owner, lock.holder.id);
  const labelsHave = (name: string) => async (): Promise<boolean> => (await store.labels()).includes(name);
  // Give back only our own lock: it may have been broken and taken by another apply meanwhile.
  let current: LockState;
  try {
    current = await readLock(store, lock.owner);
  } catch (e) {
    return { kind: "failed", message: `could not release the lock of owner ${lock.owner}: ${apiError(e).message}` };
  }
  const [record, label, claimOp] = lockOps(lock.owner, lock.holder).release as [Op, Op, Op];
  if (current.kind !== "held" || current.holder?.id !== lock.holder.id) {
    await removeQuietly(store, claimOp, labelsHave(claim));
    return { kind: "lost", now: current };
  }
  const recordLeft = await removeQuietly(store, record, async () => (await store.record(n.record)) !== undefined);
  if (recordLeft !== null) return { kind: "failed", message: `could not release the lock of owner ${lock.owner}: ${recordLeft}; break it with --break-lock ${lock.holder.id}` };
  const labelLeft = await removeQuietly(store, label, labelsHave(n.label));
  if (labelLeft !== null) {
    // The claim stays with the label: a lock label with a live claim is held, never taken over.
    return { kind: "failed", message: `could not release the lock of owner ${lock.owner}: ${labelLeft}; break it with --break-lock ${lock.holder.id}` };
  }
  const claimLeft = await removeQuietly(store, claimOp, labelsHave(claim));
  if (claimLeft !== null) return { kind: "failed", message: `released the lock of owner ${lock.owner}, but its claim label ${claim} is left (${claimLeft}): it holds nothing; --break-lock ${lock.holder.id} removes it` };
  return { kind: "released" };
}

export type BreakResult =
  | { kind: "broken"; was: HeldLock }
  /** Nothing held; `removedClaim`: the claim label of that id, left alone by its apply, was removed. */
  | { kind: "free"; removedClaim?: string }
  /** Held by someone other than the id given: nothing was removed. */
  | { kind: "mismatch"; state: HeldLock }
  | { kind: "failed"; message: string };

/**
 * Removes the lock only when it is the one `id` names (as shown by heldMessage), with the claim
 * label of that id; a claim label left alone (its apply gone) is removed the same way.
 */
export async function breakLock(store: LockStore, owner: string, id: string): Promise<BreakResult> {
  const n = lockNames(owner);
  let state: LockState;
  let labels: string[];
  try {
    labels = await store.labels();
    state = await lockFrom(store, owner, labels);
  } catch (e) {
    return { kind: "failed", message: `could not read the lock of owner ${owner}: ${apiError(e).message}` };
  }
  const claim = id === UNKNOWN_HOLDER_ID ? undefined : claimLabelName(owner, id);
  const claimed = claim !== undefined && labels.includes(claim);
  const removeClaim = async (): Promise<string | null> =>
    claim === undefined || !claimed ? null : removeQuietly(store, { op: "label.remove", name: claim }, async () => (await store.labels()).includes(claim));
  if (state.kind === "free" || (state.kind === "abandoned" && claim !== undefined)) {
    const left = await removeClaim();
    if (left !== null) return { kind: "failed", message: `could not remove the claim label ${claim ?? ""}: ${left}` };
    return claimed ? { kind: "free", removedClaim: claim } : { kind: "free" };
  }
  const held: HeldLock = state.kind === "held" ? state : { kind: "held", holder: null };
  if (holderId(held) !== id) return { kind: "mismatch", state: held };
  const [record, label] = lockOps(owner).release as [Op, Op];
  const left =
    (await removeQuietly(store, record, async () => (await store.record(n.record)) !== undefined)) ??
    (await removeQuietly(store, label, async () => (await store.labels()).includes(n.label))) ??
    (await removeClaim());
  if (left !== null) return { kind: "failed", message: `could not break the lock of owner ${owner}: ${left}` };
  return { kind: "broken", was: held };
}
