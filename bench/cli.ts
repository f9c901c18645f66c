// Runs commands as a user runs them — a fresh Node process per run — and measures each: wall
// time from spawn to exit in this process, and, with the probe, the child's own peak RSS.

import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const PROBE = fileURLToPath(new URL("./probe.mjs", import.meta.url));

export type Run = {
  code: number | null;
  wallMs: number;
  /** Epoch milliseconds at spawn and at exit, to set against the server's call log. */
  spawnedAt: number;
  exitedAt: number;
  /** Peak RSS of the child in KiB; only with `probe`. */
  maxRssKb?: number;
  stdout: string;
  stderr: string;
};

export type RunOptions = {
  cwd: string;
  /** Load probe.mjs into the child to read its peak RSS at exit. */
  probe?: boolean;
  timeoutMs?: number;
};

/** `node [--import probe] ...args`, waited for; never throws on a non-zero exit. */
export function runNode(args: readonly string[], o: RunOptions): Promise<Run> {
  const probeDir = o.probe ? mkdtempSync(join(tmpdir(), "qiac-probe-")) : undefined;
  const probeFile = probeDir ? join(probeDir, "usage.json") : undefined;
  const nodeArgs = probeFile ? ["--import", PROBE, ...args] : [...args];
  const env: NodeJS.ProcessEnv = { PATH: process.env.PATH, HOME: process.env.HOME, NO_COLOR: "1", ...(probeFile ? { QIAC_BENCH_PROBE: probeFile } : {}) };
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const spawnedAt = Date.now();
    const child = spawn(process.execPath, nodeArgs, { cwd: o.cwd, env, stdio: ["ignore", "pipe", "pipe"] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    const timeoutMs = o.timeoutMs ?? 300_000;
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    child.stdout.on("data", (d: Buffer) => out.push(d));
    child.stderr.on("data", (d: Buffer) => err.push(d));
    child.on("error", reject);
    child.on("exit", () => {
      // Wall time ends when the process ends, not when its pipes have been drained.
      const wallMs = performance.now() - t0;
      const exitedAt = Date.now();
      child.on("close", (code) => {
        clearTimeout(timer);
        let maxRssKb: number | undefined;
        if (probeFile && probeDir) {
          try {
            maxRssKb = (JSON.parse(readFileSync(probeFile, "utf8")) as { maxRssKb: number }).maxRssKb;
          } finally {
            rmSync(probeDir, { recursive: true, force: true });
          }
        }
        resolve({ code, wallMs, spawnedAt, exitedAt, ...(maxRssKb !== undefined ? { maxRssKb } : {}), stdout: Buffer.concat(out).toString("utf8"), stderr: Buffer.concat(err).toString("utf8") });
      });
    });
  });
}

/** A run that must succeed with one of `codes`; otherwise its output is in the error. */
export async function runNodeOk(args: readonly string[], o: RunOptions & { codes?: readonly number[] }): Promise<Run> {
  const r = await runNode(args, o);
  if (!(o.codes ?? [0]).includes(r.code ?? -1)) {
    throw new Error(`node ${args.join(" ")} exited ${String(r.code)}\n--- stdout\n${r.stdout.slice(-4000)}\n--- stderr\n${r.stderr.slice(-4000)}`);
  }
  return r;
}

export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
}
