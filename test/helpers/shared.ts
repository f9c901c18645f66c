// Locates ../shared (the conformance recordings) beside the repository, as CI lays it out.
import { existsSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { join } from "node:path";

export const repoRoot = fileURLToPath(new URL("../..", import.meta.url));
export const sharedDir = join(repoRoot, "..", "shared");

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

export function readJsonl<T = TranscriptRow>(relative: string): T[] {
  const path = join(sharedDir, relative);
  if (!existsSync(path)) throw new Error(`missing ${path}: the tests need ../shared beside the repository`);
  return readFileSync(path, "utf8")
    .split("\n")
    .filter((l) => l.trim() !== "")
    .map((l) => JSON.parse(l) as T);
}

export const replyBytes = (row: TranscriptRow): Buffer => Buffer.from(row.reply_b64, "base64");
