// Who holds an apply lock, as written in its dom0 feature `qubes-iac.<owner>.lock`
// (docs/locking.md): the record's format, read by apply (to refuse a second apply, to break a
// stale lock) and by plan (to say an apply is running); and the names of the claim labels
// through which an apply proves that the lock label is its own. Pure.

import { lockLabelName } from "./ownership.js";

/** Who holds a lock, as recorded in `qubes-iac.<owner>.lock`. */
export type LockHolder = {
  /** Random; names this one apply. `--break-lock` takes it, so only the lock a person saw is broken. */
  id: string;
  /** The machine it runs on: in Qubes, the management qube (its hostname). */
  host: string;
  pid: number;
  /** When the lock was taken (ISO 8601, UTC, the holder's clock). */
  since: string;
  /** The qubes-iac version of the holder. */
  version: string;
};

const ID_RE = /^[0-9a-f]{1,32}$/;

/** The id `--break-lock` takes for a lock whose holder is not recorded. */
export const UNKNOWN_HOLDER_ID = "unknown";

/** The record's value: printable ASCII, one line (a feature value). */
export const encodeHolder = (h: LockHolder): string => `id=${h.id} host=${h.host} pid=${h.pid} since=${h.since} version=${h.version}`;

/** The holder a record names; null when there is no record or it is not one qubes-iac wrote. */
export function parseHolder(text: string | undefined): LockHolder | null {
  if (text === undefined) return null;
  const fields = new Map(text.split(" ").map((kv) => [kv.slice(0, kv.indexOf("=")), kv.slice(kv.indexOf("=") + 1)] as const));
  const id = fields.get("id");
  const pid = Number(fields.get("pid"));
  const since = fields.get("since") ?? "";
  if (id === undefined || !ID_RE.test(id) || !Number.isSafeInteger(pid) || Number.isNaN(Date.parse(since))) return null;
  return { id, host: fields.get("host") ?? "?", pid, since, version: fields.get("version") ?? "?" };
}

/** `apply 3f9a1c2b7d10 on mgmt (pid 4242, qubes-iac 0.1.0) since 2025-06-01T10:00:00.000Z`. */
export function describeRecordedHolder(h: LockHolder | null, claim?: string): string {
  if (h === null) return `an apply that has not recorded who it is${claim === undefined ? "" : ` (claim ${claim})`} (it took the lock a moment ago, or was killed right after taking it)`;
  return `apply ${h.id} on ${h.host} (pid ${h.pid}, qubes-iac ${h.version}) since ${h.since}`;
}


/**
 * An apply's claim on the lock of `owner`, made before it creates the lock label and kept until
 * that label is gone: label `qubes-iac.lock.<owner>.<id>`. `late` is what it leaves when a
 * create of the lock label it sent got no answer and may still be made after it ended:
 * `qubes-iac.lock.<owner>.<id>.late`.
 */
export const claimLabelName = (owner: string, id: string, late = false): string => `${lockLabelName(owner)}.${id}${late ? ".late" : ""}`;

export type Claims = {
  /** Applies taking or holding the lock now (or that could not tell whether they took it). */
  live: string[];
  /** Applies that ended while a create of the lock label they sent may still be made. */
  late: string[];
};

/** The claims on the lock of `owner` among the labels qubesd lists; names that are not ours to read are ignored. */
export function readClaims(owner: string, labels: readonly string[]): Claims {
  const prefix = `${lockLabelName(owner)}.`;
  const live: string[] = [];
  const late: string[] = [];
  for (const l of labels) {
    if (!l.startsWith(prefix)) continue;
    const rest = l.slice(prefix.length);
    const id = rest.endsWith(".late") ? rest.slice(0, -".late".length) : rest;
    if (!ID_RE.test(id)) continue;
    (id === rest ? live : late).push(id);
  }
  return { live, late };
}
