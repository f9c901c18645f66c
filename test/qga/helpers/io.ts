// An in-process CliIO for running CLI commands in tests: captured stdout/stderr and an
// interruption (SIGINT/SIGTERM) the test triggers.
import { PassThrough } from "node:stream";
import type { CliIO } from "../../../src/cli/io.js";

/** A CliIO with captured output and an interruption the test triggers. */
export function testIO(cwd: string): { io: CliIO; stdout: () => string; stderr: () => string; interrupt: (signal: string) => void } {
  const out = new PassThrough();
  const err = new PassThrough();
  const o: Buffer[] = [];
  const e: Buffer[] = [];
  out.on("data", (d: Buffer) => o.push(d));
  err.on("data", (d: Buffer) => e.push(d));
  let interrupt: (signal: string) => void = () => {};
  const interrupted = new Promise<string>((resolve) => {
    interrupt = resolve;
  });
  return {
    io: { argv: [], env: { PATH: process.env.PATH ?? "/usr/bin:/bin" }, cwd, stdin: new PassThrough(), stdout: out, stderr: err, interrupted },
    stdout: () => Buffer.concat(o).toString("utf8"),
    stderr: () => Buffer.concat(e).toString("utf8"),
    interrupt: (s) => interrupt(s),
  };
}
