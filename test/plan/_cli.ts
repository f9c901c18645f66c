// Runs the CLI in-process with captured streams, as a user would call it, without touching the
// real process (argv, environment, terminal).
import { Readable, Writable } from "node:stream";
import { runCli } from "../../src/cli/run.js";
import { repoRoot } from "../helpers/shared.js";

export type CliRun = { code: number; stdout: string; stderr: string };

/** A writable that keeps what is written, marked as a terminal or not. */
export function capture(isTTY: boolean): Writable & { isTTY: boolean; text(): string } {
  const chunks: Buffer[] = [];
  const w = new Writable({
    write(chunk: Buffer | string, _enc, cb) {
      chunks.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk));
      cb();
    },
  });
  return Object.assign(w, { isTTY, text: () => Buffer.concat(chunks).toString("utf8") });
}

export async function runCliInProcess(argv: string[], o: { env?: Record<string, string>; tty?: boolean; cwd?: string } = {}): Promise<CliRun> {
  const stdout = capture(o.tty ?? false);
  const stderr = capture(false);
  const code = await runCli({
    argv,
    env: o.env ?? {},
    cwd: o.cwd ?? repoRoot,
    stdin: Object.assign(Readable.from([]), { isTTY: true }),
    stdout,
    stderr,
    interrupted: new Promise<string>(() => {}),
  });
  return { code, stdout: stdout.text(), stderr: stderr.text() };
}
