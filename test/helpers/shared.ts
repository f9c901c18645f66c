// The repository root, and the real-system recordings the tests read: the copy in
// test/conformance/recordings/ (byte-identical to ../shared/conformance/, kept so by
// scripts/recordings.mjs and test/conformance/recordings-copy.test.ts), so a clone without
// ../shared runs every test.
import { existsSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { join } from "node:path";

export const repoRoot = fileURLToPath(new URL("../..", import.meta.url));
/** ../shared beside the repository, as CI lays it out; tests must not need it (see recordingsDir). */
export const sharedDir = join(repoRoot, "..", "shared");
/** The project's copy of ../shared/conformance. */
export const recordingsDir = join(repoRoot, "test", "conformance", "recordings");

export type TranscriptRow = {
  phase?: number;
  src?: string;
  method: string;
  dest: string;
  arg: string;
  payload: string;
  reply_b64: string;
  kind?: string;
  exc_type?: string | null;
  note?: string;
};

/** A JSON-lines recording, `relative` as under ../shared (`conformance/qubesd/transcripts.jsonl`), read from the copy. */
export function readJsonl<T = TranscriptRow>(relative: string): T[] {
  if (!relative.startsWith("conformance/")) throw new Error(`readJsonl reads recordings only (conformance/…), not ${relative}`);
  const path = join(recordingsDir, relative.slice("conformance/".length));
  if (!existsSync(path)) throw new Error(`missing ${path}: copy it with \`node scripts/recordings.mjs sync\``);
  return readFileSync(path, "utf8")
    .split("\n")
    .filter((l) => l.trim() !== "")
    .map((l) => JSON.parse(l) as T);
}

export const replyBytes = (row: TranscriptRow): Buffer => Buffer.from(row.reply_b64, "base64");
