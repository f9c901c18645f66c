// Guest files through the REAL qemu-ga: content compared by SHA-256 and size, written in place in
// bounded memory (a 100 MiB file with a few MiB live), verified by reading back; a write cut short
// or a file changed behind our back is caught; handles are closed on every path.
import { createHash } from "node:crypto";
import { appendFileSync, createReadStream, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { connectAgent, type QgaClient } from "../../src/providers/qga/client.js";
import { digestContent, readGuestFile, readGuestFileState, writeGuestFile, type FileProgress } from "../../src/providers/qga/files.js";
import { QEMU_GA, plantFile, startTestAgent, type TestAgent, rejection } from "./helpers/agent.js";

const MiB = 1024 * 1024;
const sha256 = (b: Uint8Array): string => createHash("sha256").update(b).digest("hex");

/** Deterministic content of `size` bytes in `piece`-sized chunks, generated as it is consumed. */
async function* generated(size: number, piece = 64 * 1024, failAfter = Infinity): AsyncGenerator<Uint8Array> {
  let sent = 0;
  for (let i = 0; sent < size; i++) {
    if (sent >= failAfter) throw new Error("source read error (simulated disk failure)");
    const n = Math.min(piece, size - sent);
    const b = Buffer.alloc(n, i % 251);
    b.writeUInt32BE(i >>> 0, 0);
    sent += n;
    yield b;
  }
}

async function hostFileDigest(path: string): Promise<{ size: number; sha256: string }> {
  const h = createHash("sha256");
  let size = 0;
  for await (const c of createReadStream(path)) {
    h.update(c as Buffer);
    size += (c as Buffer).length;
  }
  return { size, sha256: h.digest("hex") };
}

describe.skipIf(!QEMU_GA)("guest files through real qemu-ga", () => {
  let agent: TestAgent;
  let client: QgaClient;
  const openFds = (): number => readdirSync(`/proc/${agent.process.pid}/fd`).length;
  beforeAll(async () => {
    agent = await startTestAgent();
    client = await connectAgent(agent.spec, { timeoutMs: 3000, callTimeoutMs: 30_000 });
  });
  afterAll(async () => {
    await client?.close();
    await agent?.stop();
  });

  test("a missing file is absent; a written file reads back as its SHA-256 and size", async () => {
    const path = join(agent.dir, "motd");
    expect(await readGuestFileState(client, path)).toEqual({ kind: "absent" });
    const content = Buffer.from("Welcome to the guest.\n");
    const written = await writeGuestFile(client, path, content);
    expect(written).toEqual({ size: content.length, sha256: sha256(content) });
    expect(readFileSync(path)).toEqual(content);
    expect(await readGuestFileState(client, path)).toEqual({ kind: "present", ...written });
  });

  test("overwriting truncates first: shorter content leaves no tail", async () => {
    const path = plantFile(agent, "shrinks", "a much longer previous content that must disappear entirely\n");
    const written = await writeGuestFile(client, path, Buffer.from("short\n"));
    expect(readFileSync(path, "utf8")).toBe("short\n");
    expect(written.size).toBe(6);
  });

  test("empty content makes an empty file", async () => {
    const path = plantFile(agent, "empty", "not empty yet");
    expect(await writeGuestFile(client, path, [])).toEqual({ size: 0, sha256: sha256(Buffer.alloc(0)) });
    expect(readFileSync(path).length).toBe(0);
  });

  test("content in odd-sized pieces is re-chunked exactly; reads stream in chunks of at most chunkBytes", async () => {
    const path = join(agent.dir, "chunked.bin");
    const pieces = [Buffer.alloc(1), Buffer.alloc(2999, 7), Buffer.alloc(0), Buffer.alloc(5000, 9), Buffer.from([0xff, 0, 0xfe])];
    const all = Buffer.concat(pieces);
    const progress: FileProgress[] = [];
    const written = await writeGuestFile(client, path, pieces, { chunkBytes: 1000, onProgress: (p) => progress.push(p) });
    expect(written).toEqual({ size: all.length, sha256: sha256(all) });
    expect(progress.filter((p) => p.phase === "write").map((p) => p.bytes)).toEqual([1000, 2000, 3000, 4000, 5000, 6000, 7000, 8000, 8003]);
    expect(progress.filter((p) => p.phase === "verify").at(-1)?.bytes).toBe(8003);
    expect(readFileSync(path)).toEqual(all);

    const chunks: Buffer[] = [];
    const digest = await readGuestFile(client, path, (b) => void chunks.push(b), { chunkBytes: 3000 });
    expect(chunks.map((c) => c.length)).toEqual([3000, 3000, 2003]);
    expect(Buffer.concat(chunks)).toEqual(all);
    expect(digest).toEqual(written);
    expect(await digestContent(pieces)).toEqual(written);
  });

  test(
    "a 100 MiB file is written and verified with only a few MiB live, and matches on disk",
    async () => {
      // A precise live-memory probe: collect (twice: buffers are released by the second pass) before each sample.
      setFlagsFromString("--expose-gc");
      const gc = runInNewContext("gc") as () => void;
      const live = (): number => {
        gc();
        gc();
        const m = process.memoryUsage();
        return m.heapUsed + m.arrayBuffers;
      };
      const size = 100 * MiB;
      const path = join(agent.dir, "big.bin");
      const baseline = live();
      let peak = 0;
      const started = Date.now();
      const written = await writeGuestFile(client, path, generated(size), {
        onProgress: (p) => {
          if (p.bytes % (10 * MiB) === 0) peak = Math.max(peak, live() - baseline);
        },
      });
      const seconds = (Date.now() - started) / 1000;
      expect(written).toEqual(await digestContent(generated(size)));
      expect(await hostFileDigest(path)).toEqual(written);
      expect(peak).toBeGreaterThan(0);
      expect(peak).toBeLessThan(16 * MiB);
      console.log(`100 MiB written and read back through qemu-ga in ${seconds.toFixed(1)} s; peak live memory above baseline ${(peak / MiB).toFixed(1)} MiB`);
    },
    180_000,
  );

  test("a write cut short (the source fails mid-way) rejects, leaves the handle closed, and the truncated file's hash shows it", async () => {
    const path = join(agent.dir, "cut-short.bin");
    const fds = openFds();
    const expected = await digestContent(generated(4 * MiB));
    await expect(writeGuestFile(client, path, generated(4 * MiB, 64 * 1024, 2 * MiB))).rejects.toThrow("simulated disk failure");
    expect(openFds()).toBe(fds);
    const state = await readGuestFileState(client, path);
    expect(state.kind).toBe("present");
    if (state.kind === "present") {
      expect(state.size).toBe(2 * MiB);
      expect(state.sha256).not.toBe(expected.sha256);
    }
  });

  test("a file changed behind our back before the read-back fails verification with code mismatch, without content", async () => {
    const path = join(agent.dir, "tampered.txt");
    const content = Buffer.from("SECRET-CONTENT-MARKER line\n");
    const e = await rejection(
      writeGuestFile(client, path, content, {
        onProgress: (p) => {
          if (p.phase === "verify" && p.bytes === 0) appendFileSync(path, "injected\n");
        },
      }),
    );
    expect(e.code).toBe("mismatch");
    expect(e.message).toMatch(/reads back as 36 bytes, sha256 [0-9a-f]{12}… after writing 27 bytes, sha256 [0-9a-f]{12}…/);
    expect(e.message).not.toContain("SECRET");
  });

  test("errors never carry content; a failed open leaks no handle", async () => {
    const fds = openFds();
    const e = await rejection(writeGuestFile(client, join(agent.dir, "no-such-dir", "f"), Buffer.from("SECRET-CONTENT-MARKER")));
    expect(e.code).toBe("agent");
    expect(e.message).not.toContain("SECRET");
    expect(openFds()).toBe(fds);
  });

  test("a guest file larger than maxBytes is refused (a guest may offer an endless file)", async () => {
    const path = plantFile(agent, "large-ish", Buffer.alloc(10_000));
    const fds = openFds();
    const e = await rejection(readGuestFileState(client, path, { chunkBytes: 4096, maxBytes: 5000 }));
    expect(e.code).toBe("too-large");
    expect(openFds()).toBe(fds);
  });
});
