// Guest files through the agent, in bounded memory: read = chunked guest-file-read hashed as it
// streams (SHA-256 + size, the comparison the plan makes); write = truncate (mode "w"), chunked
// guest-file-write, flush, close, then read back and compare, so a write cut short is seen. The
// agent cannot set modes, rename or delete, so this manages content only. Content never appears
// in errors or progress events; handles are always closed, even on failure.

import { createHash } from "node:crypto";
import type { CallOptions, QgaClient } from "./client.js";
import { QgaError, isQgaError } from "./errors.js";

/** One file's state as the plan compares it: never its content. */
export type GuestFileState = { kind: "absent" } | { kind: "present"; size: number; sha256: string };

export type Digest = { size: number; sha256: string };

/** Bytes to write: one buffer, or chunks of any size (e.g. a file read stream). */
export type FileContent = Uint8Array | Iterable<Uint8Array> | AsyncIterable<Uint8Array>;

export type FileProgress = { phase: "read" | "write" | "verify"; path: string; bytes: number };

export type FileOptions = CallOptions & {
  /** Bytes per guest-file-read / guest-file-write. Default 1 MiB. */
  chunkBytes?: number;
  /** Called after each chunk (and once before the read-back). Never sees content. */
  onProgress?: (p: FileProgress) => void;
  /** Largest guest file read before giving up with code "too-large" (a guest may offer an endless file). Default 4 GiB. */
  maxBytes?: number;
};

export const DEFAULT_CHUNK_BYTES = 1024 * 1024;
export const DEFAULT_MAX_FILE_BYTES = 4 * 1024 * 1024 * 1024;

/** The agent's error text for a missing file: `failed to open file 'P' (mode: 'r'): No such file or directory`. */
const ENOENT_RE = /: No such file or directory$/;

/** SHA-256 and size of a guest file, or "absent" when it does not exist. */
export function readGuestFileState(client: QgaClient, path: string, opts: FileOptions = {}): Promise<GuestFileState> {
  return stateOf(client, path, opts, "read");
}

async function stateOf(client: QgaClient, path: string, opts: FileOptions, phase: FileProgress["phase"]): Promise<GuestFileState> {
  let handle: number;
  try {
    handle = await client.fileOpen(path, "r", opts);
  } catch (e) {
    if (isQgaError(e) && e.code === "agent" && ENOENT_RE.test(e.details.agentDesc ?? "")) return { kind: "absent" };
    throw e;
  }
  return { kind: "present", ...(await digestOpenFile(client, handle, path, opts, phase)) };
}

/**
 * Streams a guest file to `onChunk` in chunks of at most `chunkBytes` and returns its digest. The
 * agent's `eof` is advisory: reading stops at the first empty chunk, so a short read mid-file
 * cannot end the stream early.
 */
export async function readGuestFile(client: QgaClient, path: string, onChunk: (bytes: Buffer) => void | Promise<void>, opts: FileOptions = {}): Promise<Digest> {
  const handle = await client.fileOpen(path, "r", opts);
  return digestOpenFile(client, handle, path, opts, "read", onChunk);
}

async function digestOpenFile(
  client: QgaClient,
  handle: number,
  path: string,
  opts: FileOptions,
  phase: FileProgress["phase"],
  onChunk?: (bytes: Buffer) => void | Promise<void>,
): Promise<Digest> {
  const chunk = chunkSize(opts);
  const maxBytes = opts.maxBytes ?? DEFAULT_MAX_FILE_BYTES;
  const hash = createHash("sha256");
  let size = 0;
  return withHandle(client, handle, opts, async () => {
    for (;;) {
      const r = await client.fileRead(handle, chunk, opts);
      if (r.count === 0) break;
      if (size + r.count > maxBytes) {
        throw new QgaError("too-large", `${path} on ${client.description} is larger than ${maxBytes} bytes; not read further`, { command: "guest-file-read" });
      }
      hash.update(r.bytes);
      size += r.count;
      if (onChunk) await onChunk(r.bytes);
      opts.onProgress?.({ phase, path, bytes: size });
    }
    return { size, sha256: hash.digest("hex") };
  });
}

/**
 * Replaces a guest file's content in place: open "w" (creates or truncates), write in chunks,
 * flush, close, then read it back. Resolves with what was written; rejects with code "mismatch"
 * when the read-back differs (the write was cut short, or something else changed the file).
 */
export async function writeGuestFile(client: QgaClient, path: string, content: FileContent, opts: FileOptions = {}): Promise<Digest> {
  const chunk = chunkSize(opts);
  const hash = createHash("sha256");
  let size = 0;
  const handle = await client.fileOpen(path, "w", opts);
  await withHandle(client, handle, opts, async () => {
    for await (const piece of rechunk(content, chunk)) {
      const r = await client.fileWrite(handle, piece, opts);
      if (r.count !== piece.length) {
        throw new QgaError("agent", `guest-file-write on ${client.description}: wrote ${r.count} of ${piece.length} bytes to ${path} at offset ${size}`, {
          command: "guest-file-write",
          maybeDelivered: true,
        });
      }
      hash.update(piece);
      size += piece.length;
      opts.onProgress?.({ phase: "write", path, bytes: size });
    }
    await client.fileFlush(handle, opts);
  });
  const written = { size, sha256: hash.digest("hex") };
  opts.onProgress?.({ phase: "verify", path, bytes: 0 });
  const back = await stateOf(client, path, opts, "verify");
  if (back.kind !== "present" || back.size !== written.size || back.sha256 !== written.sha256) {
    const seen = back.kind === "present" ? `${back.size} bytes, sha256 ${back.sha256.slice(0, 12)}…` : "no file";
    throw new QgaError("mismatch", `${path} on ${client.description} reads back as ${seen} after writing ${written.size} bytes, sha256 ${written.sha256.slice(0, 12)}…`);
  }
  return written;
}

/** SHA-256 and size of local content, computed the same way, for comparing with a guest file. */
export async function digestContent(content: FileContent): Promise<Digest> {
  const hash = createHash("sha256");
  let size = 0;
  for await (const piece of asChunks(content)) {
    hash.update(piece);
    size += piece.length;
  }
  return { size, sha256: hash.digest("hex") };
}

function chunkSize(opts: FileOptions): number {
  const n = opts.chunkBytes ?? DEFAULT_CHUNK_BYTES;
  if (!Number.isSafeInteger(n) || n < 1) throw new QgaError("invalid-request", `chunk size ${n} is not a positive integer`, { maybeDelivered: false });
  return n;
}

/** Runs `body`, then closes the handle; a close failure is reported only when the body succeeded. */
async function withHandle<T>(client: QgaClient, handle: number, opts: CallOptions, body: () => Promise<T>): Promise<T> {
  let result: T;
  try {
    result = await body();
  } catch (e) {
    if (!client.closed) await client.fileClose(handle, opts).catch(() => undefined);
    throw e;
  }
  await client.fileClose(handle, opts);
  return result;
}

async function* asChunks(content: FileContent): AsyncGenerator<Uint8Array> {
  if (content instanceof Uint8Array) {
    yield content;
    return;
  }
  for await (const piece of content as AsyncIterable<Uint8Array>) {
    if (!(piece instanceof Uint8Array)) throw new TypeError("file content must yield bytes (Uint8Array), not strings");
    yield piece;
  }
}

/** Re-slices content into pieces of exactly `size` bytes (the last may be shorter), holding at most one piece. */
async function* rechunk(content: FileContent, size: number): AsyncGenerator<Uint8Array> {
  let parts: Uint8Array[] = [];
  let held = 0;
  for await (let piece of asChunks(content)) {
    while (piece.length > 0) {
      const take = Math.min(size - held, piece.length);
      parts.push(piece.subarray(0, take));
      held += take;
      piece = piece.subarray(take);
      if (held === size) {
        yield parts.length === 1 ? parts[0]! : Buffer.concat(parts, held);
        parts = [];
        held = 0;
      }
    }
  }
  if (held > 0) yield parts.length === 1 ? parts[0]! : Buffer.concat(parts, held);
}
