// Access to the recorded qubesd replies (recordings/, the project's copy of ../shared/conformance),
// and the one normaliser for values that depend on the recording host or on randomness: exactly
// the ones the recordings' READMEs list, nothing else.

import { readJsonl, replyBytes, type TranscriptRow } from "../helpers/shared.js";

export type Row = TranscriptRow & { kind?: "ok" | "exception" | "events" | "empty" };

export const readRows = (file: "transcripts.jsonl" | "fixture-state.jsonl" | "classes.jsonl"): Row[] =>
  readJsonl<Row>(`conformance/qubesd/${file}`);

export const replyOf: (row: Row) => Buffer = replyBytes;

/** Payloads are recorded as text; code points below 256 are the bytes sent. */
export const payloadOf = (row: Row): Buffer => Buffer.from(row.payload, "latin1");

/** UUIDs of the fixture's qubes: fixed, so compared exactly. */
export function fixtureUuids(): Set<string> {
  const list = readRows("fixture-state.jsonl").find((r) => r.method === "admin.vm.List" && r.dest === "dom0");
  if (!list) throw new Error("fixture dump has no admin.vm.List");
  return new Set([...replyOf(list).toString("latin1").matchAll(/uuid=([0-9a-f-]{36})/g)].map((m) => m[1] ?? ""));
}

const UUID_RE = /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/g;

/**
 * Host- and chance-dependent values compared by shape: UUIDs of qubes created during the run,
 * `disp<N>` names, dispid and the 10.138.x.y addresses derived from it, pool size/usage, and
 * the directory prefix of volume paths.
 */
export function normalise(method: string, reply: Buffer, knownUuids: ReadonlySet<string>): string {
  // The 2-byte reply header stays out of the line-anchored patterns below.
  const header = reply.subarray(0, 2).toString("latin1");
  let s = reply.subarray(2).toString("latin1");
  s = s.replace(UUID_RE, (u) => (knownUuids.has(u) ? u : "<uuid>"));
  s = s.replace(/\bdisp[0-9]+\b/g, "disp<N>");
  s = s.replace(/^(dispid default=False type=int )[0-9]+$/gm, "$1<N>");
  s = s.replace(/\b10\.138\.[0-9]+\.[0-9]+\b/g, "10.138.<x>.<y>");
  if (method === "admin.pool.Info" || method === "admin.pool.UsageDetails") {
    s = s.replace(/^((?:data_)?(?:size|usage))=[0-9]+$/gm, "$1=<n>");
  }
  s = s.replace(/^path=\/.*\/(appvms|vm-templates|vm-kernels)\//gm, "path=<dir>/$1/");
  return header + s;
}
