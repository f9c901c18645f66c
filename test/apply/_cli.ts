// Runs CLI commands in-process against a simulator, with captured streams, a chosen stdin (a
// terminal or not, with the answer a person would type) and, for exact progress lines, a fixed
// clock through the apply command's own entry.
import { Readable } from "node:stream";
import { applyCommand, type ApplyCommandOptions } from "../../src/cli/commands/apply.js";
import type { CliIO } from "../../src/cli/io.js";
import { runCli } from "../../src/cli/run.js";
import { repoRoot } from "../helpers/shared.js";
import { capture } from "../plan/_cli.js";

export type CliRun = { code: number; stdout: string; stderr: string };


export type RunOptions = { input?: string | Readable; tty?: boolean; cwd?: string; env?: Record<string, string>; interrupted?: Promise<string> };

function makeIO(argv: string[], o: RunOptions): { io: CliIO; stdout: ReturnType<typeof capture>; stderr: ReturnType<typeof capture> } {
  const stdout = capture(o.tty ?? false);
  const stderr = capture(false);
  const source = typeof o.input === "string" ? Readable.from([Buffer.from(o.input)]) : (o.input ?? Readable.from([]));
  const stdin = Object.assign(source, { isTTY: o.tty ?? false });
  const io: CliIO = { argv, env: o.env ?? {}, cwd: o.cwd ?? repoRoot, stdin, stdout, stderr, interrupted: o.interrupted ?? new Promise<string>(() => {}) };
  return { io, stdout, stderr };
}

export async function runIn(argv: string[], o: RunOptions = {}): Promise<CliRun> {
  const { io, stdout, stderr } = makeIO(argv, o);
  const code = await runCli(io);
  return { code, stdout: stdout.text(), stderr: stderr.text() };
}

/** `apply` through its command entry with a clock that advances `stepMs` per reading. */
export async function applyWithClock(args: string[], opts: ApplyCommandOptions, o: RunOptions & { stepMs?: number } = {}): Promise<CliRun> {
  const { io, stdout, stderr } = makeIO(["apply", ...args], o);
  let t = 0;
  const code = await applyCommand(io, args, opts, {
    now: () => {
      t += o.stepMs ?? 100;
      return t;
    },
  });
  return { code, stdout: stdout.text(), stderr: stderr.text() };
}

/** The simulator's mutating calls as `method+arg → dest`, in order. */
export const mutations = (calls: ReadonlyArray<{ method: string; arg: string; dest: string }>, isMutating: (m: string) => boolean): string[] =>
  calls.filter((c) => isMutating(c.method)).map((c) => `${c.method}+${c.arg} → ${c.dest}`);
