// The real frames the fuzzers start from, read from ../shared/conformance: every qubesd reply of
// the three recordings (with the kind qubesd gave it) and every byte stream the real qemu-ga sent.

import { readJsonl, type TranscriptRow } from "../helpers/shared.js";

export type QubesdSeed = {
  method: string;
  bytes: Buffer;
  /** ok / exception / events / empty, as recorded; from the first byte where the file does not say. */
  kind: string;
  /** The exception class qubesd named, for exception replies. */
  excType: string | null;
  file: string;
};

const QUBESD_FILES = ["transcripts.jsonl", "fixture-state.jsonl", "classes.jsonl"] as const;

const kindOf = (b: Buffer): string => (b.length === 0 ? "empty" : b[0] === 0x30 ? "ok" : b[0] === 0x31 ? "events" : b[0] === 0x32 ? "exception" : "unknown");

export function loadQubesdSeeds(): QubesdSeed[] {
  return QUBESD_FILES.flatMap((file) =>
    readJsonl<TranscriptRow>(`conformance/qubesd/${file}`).map((row) => {
      const bytes = Buffer.from(row.reply_b64, "base64");
      const exc = /^2\0([^\0]*)\0/.exec(bytes.toString("latin1"));
      return { method: row.method, bytes, kind: row.kind ?? kindOf(bytes), excType: row.exc_type ?? exc?.[1] ?? null, file };
    }),
  );
}

type QgaStep = { dir: string; b64?: string };
type QgaTranscript = { id: string; steps: QgaStep[] };

export type QgaSeed = {
  /** Transcript id, e.g. `info`, `file-read-count`. */
  id: string;
  /** Everything the agent sent on that connection, concatenated. */
  stream: Buffer;
};

export function loadQgaSeeds(): QgaSeed[] {
  return readJsonl<QgaTranscript>("conformance/qga/transcripts.jsonl")
    .map((t) => ({
      id: t.id,
      stream: Buffer.concat(t.steps.filter((s) => s.dir === "recv" && s.b64).map((s) => Buffer.from(s.b64 ?? "", "base64"))),
    }))
    .filter((s) => s.stream.length > 0);
}

/** The lines of an agent stream: split at `\n` and 0xFF, empty pieces dropped. */
export function qgaLines(stream: Buffer): Buffer[] {
  const out: Buffer[] = [];
  let start = 0;
  for (let i = 0; i <= stream.length; i++) {
    if (i === stream.length || stream[i] === 0x0a || stream[i] === 0xff) {
      if (i > start) out.push(stream.subarray(start, i));
      start = i + 1;
    }
  }
  return out;
}

/** OK bodies of the replies the property parsers read, keyed by the parser that reads them. */
export type PropertySeeds = { get: Buffer[]; getAll: Buffer[]; getDefault: Buffer[]; vmList: Buffer[] };

export function propertySeeds(seeds: readonly QubesdSeed[]): PropertySeeds {
  const out: PropertySeeds = { get: [], getAll: [], getDefault: [], vmList: [] };
  for (const s of seeds) {
    if (s.kind !== "ok") continue;
    const body = s.bytes.subarray(2);
    if (/^admin\.(vm\.)?property\.Get$/.test(s.method)) out.get.push(body);
    else if (/^admin\.(vm\.)?property\.GetAll$/.test(s.method)) out.getAll.push(body);
    else if (/^admin\.(vm\.)?property\.GetDefault$/.test(s.method)) out.getDefault.push(body);
    else if (s.method === "admin.vm.List") out.vmList.push(body);
  }
  return out;
}
