// Runs the built single-file CLI (what users run) as a child process.
import { spawn } from "node:child_process";
import { join } from "node:path";
import { inject } from "vitest";
import { repoRoot } from "./shared.js";

export const bundlePath = join(repoRoot, "dist", "qubes-iac.mjs");

/** The bundle built by the global setup; throws the build's error when it failed. */
export function ensureBuilt(): string {
  const error = inject("cliBuildError");
  if (error) throw new Error(`the CLI bundle did not build:\n${error}`);
  return bundlePath;
}

export type CliResult = { code: number | null; stdout: string; stderr: string };

export function runBuiltCli(args: string[], opts: { cwd: string; env?: Record<string, string>; input?: string | Buffer; timeoutMs?: number }): Promise<CliResult> {
  const bundle = ensureBuilt();
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [bundle, ...args], {
      cwd: opts.cwd,
      env: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: process.env.HOME ?? "/tmp", NO_COLOR: "1", ...opts.env },
      stdio: ["pipe", "pipe", "pipe"],
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`qubes-iac ${args.join(" ")} did not finish within ${opts.timeoutMs ?? 30_000} ms`));
    }, opts.timeoutMs ?? 30_000);
    child.stdout.on("data", (d: Buffer) => out.push(d));
    child.stderr.on("data", (d: Buffer) => err.push(d));
    child.on("error", reject);
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout: Buffer.concat(out).toString("utf8"), stderr: Buffer.concat(err).toString("utf8") });
    });
    child.stdin.end(opts.input ?? "");
  });
}
