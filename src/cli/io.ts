// The CLI's window on the world, injected so tests run commands in-process without touching
// process.argv, the real terminal, the environment or the clock.

import { linkSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { printable } from "../util/printable.js";
import type { Readable, Writable } from "node:stream";
import type { Diagnostic } from "../model/diagnostics.js";
import type { LoadOptions } from "../config/index.js";

export type CliIO = {
  argv: string[];
  env: Record<string, string | undefined>;
  cwd: string;
  stdin: Readable & { isTTY?: boolean };
  stdout: Writable & { isTTY?: boolean };
  stderr: Writable & { isTTY?: boolean };
  /** Resolves when the user asks to stop (SIGINT/SIGTERM); long-running commands wait on it. */
  interrupted: Promise<string>;
  /** Resolves when the user asks again (apply: stop after the calls in flight). Absent: never. */
  interruptedAgain?: Promise<string>;
  /**
   * Loads and checks a config off the main thread, so that a signal ends the command while a
   * large config is parsed (loading is synchronous). Absent (in-process runs): loaded in place.
   */
  loadInWorker?: (paths: string[], options?: LoadOptions) => Promise<{ diagnostics: Diagnostic[]; sources: ReadonlyMap<string, string> }>;
};

/** The exit code of a command a signal ended, as a shell reports a process that signal killed: 128 + its number. */
export const SIGNAL_EXIT_CODES: Readonly<Record<string, number>> = { SIGINT: 130, SIGTERM: 143 };
export const signalExitCode = (signal: string): number => SIGNAL_EXIT_CODES[signal] ?? 130;

/** Whether (and by which signal) the user has asked to stop, readable at once: checked before anything is written. */
export function interruptFlag(io: CliIO): () => string | undefined {
  let signal: string | undefined;
  void io.interrupted.then((s) => {
    signal = s;
  });
  return () => signal;
}

/**
 * Runs a command that only reads (and prints, or writes one file at its very end) until it ends
 * or the user interrupts it, whichever comes first: a signal ends it at once, without waiting for
 * a call in flight, with exit code 130 (SIGINT) or 143 (SIGTERM). What the command still does in
 * the background is cut short by the process's exit; it checks interruptFlag before it writes.
 */
export async function untilInterrupted(io: CliIO, command: () => Promise<number>): Promise<number> {
  const stopped = io.interrupted.then((signal) => ({ signal }));
  const r = await Promise.race([command().then((code) => ({ code })), stopped]);
  if ("code" in r) return r.code;
  write(io.stderr, `qubes-iac: interrupted (${r.signal}); nothing was written`);
  return signalExitCode(r.signal);
}

/** A failure the user caused or can fix: printed as `qubes-iac: <message>` with exit code 1. */
export class CliError extends Error {
  override readonly name = "CliError";
  constructor(
    message: string,
    readonly exitCode = 1,
  ) {
    super(message);
  }
}

export const write = (stream: Writable, text: string): void => {
  stream.write(text.endsWith("\n") || text === "" ? text : `${text}\n`);
};

/** A message for a person (not JSON, not the plan): each line's control characters escaped, since it may quote qubesd or a file. */
export const tell = (stream: Writable, text: string): void => write(stream, text.split("\n").map(printable).join("\n"));

export async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(Buffer.isBuffer(c) ? c : Buffer.from(c as string));
  return Buffer.concat(chunks);
}

/**
 * Writes a whole file or nothing: the text goes to a temporary file beside it, which then takes
 * the name in one step (`exclusive`: only when the name is free, as export never overwrites). A
 * process killed mid-write leaves at most the temporary file, never a partial one under the name.
 */
export function writeFileWhole(path: string, text: string, o: { mode?: number; exclusive?: boolean } = {}): void {
  const temp = join(dirname(path), `.${basename(path)}.${process.pid}.tmp`);
  writeFileSync(temp, text, { mode: o.mode ?? 0o666, flag: "wx" });
  try {
    if (o.exclusive) linkSync(temp, path);
    else renameSync(temp, path);
  } finally {
    rmSync(temp, { force: true });
  }
}
