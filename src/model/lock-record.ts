// Who holds an apply lock, as written in its dom0 feature `qubes-iac.<owner>.lock`
// (docs/locking.md): the record's format, read by apply (to refuse a second apply, to break a
// stale lock) and by plan (to say an apply is running). Pure.

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
  if (id === undefined || !/^[0-9a-f]{1,32}$/.test(id) || !Number.isSafeInteger(pid) || Number.isNaN(Date.parse(since))) return null;
  return { id, host: fields.get("host") ?? "?", pid, since, version: fields.get("version") ?? "?" };
}

/** `apply 3f9a1c2b7d10 on mgmt (pid 4242, qubes-iac 0.1.0) since 2025-06-01T10:00:00.000Z`. */
export function describeRecordedHolder(h: LockHolder | null): string {
  if (h === null) return "an apply that has not recorded who it is (it took the lock a moment ago, or was killed right after taking it)";
  return `apply ${h.id} on ${h.host} (pid ${h.pid}, qubes-iac ${h.version}) since ${h.since}`;
}
