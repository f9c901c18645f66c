// The CLI's window on the world, injected so tests run commands in-process without touching
// process.argv, the real terminal, the environment or the clock.

import { printable } from "../util/printable.js";
import type { Readable, Writable } from "node:stream";

export type CliIO = {
  argv: string[];
  env: Record<string, string | undefined>;
  cwd: string;
  stdin: Readable & { isTTY?: boolean };
  stdout: Writable & { isTTY?: boolean };
  stderr: Writable & { isTTY?: boolean };
  /** Resolves when the user asks to stop (SIGINT/SIGTERM); long-running commands wait on it. */
  interrupted: Promise<string>;
};

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
