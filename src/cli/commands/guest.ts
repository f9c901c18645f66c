// `qubes-iac guest fsfreeze GUEST -- COMMAND…`: freezes the guest's filesystems through its agent,
// runs COMMAND on the host (a backup, a snapshot), and always thaws — after success, failure, or
// SIGINT/SIGTERM (forwarded to COMMAND first). Status lines with the agent's counts go to stderr;
// stdout is COMMAND's. The exit status is COMMAND's, or 1 when the thaw failed.
// `qubes-iac guest thaw GUEST` is the way out when a freeze was left behind.

import { spawn } from "node:child_process";
import { constants } from "node:os";
import { connectAgent, type QgaClient } from "../../providers/qga/client.js";
import { isQgaError } from "../../providers/qga/errors.js";
import { withFrozenFilesystems } from "../../providers/qga/fsfreeze.js";
import { describeAgent, type AgentSpec } from "../../providers/qga/spec.js";
import { CliError, tell, write, type CliIO } from "../io.js";

export type GuestFsfreezeOptions = {
  /** Deadline for reaching the agent and for each agent call. Default 30 s. */
  timeoutMs?: number;
  /** Deadline of guest-fsfreeze-freeze itself (it syncs the guest's dirty data first). Default 120 s. */
  freezeTimeoutMs?: number;
  /** Program for qrexec targets (default qrexec-client-vm). */
  qrexecClient?: string;
};

type CommandResult = { kind: "exited"; code: number } | { kind: "not-started"; reason: string } | { kind: "skipped"; signal: string };

const plural = (n: number, word: string): string => `${n} ${word}${n === 1 ? "" : "s"}`;
const signalExit = (signal: string): number => 128 + (constants.signals[signal as NodeJS.Signals] ?? 15);

export async function guestFsfreeze(io: CliIO, target: AgentSpec, command: string[], opts: GuestFsfreezeOptions = {}): Promise<number> {
  const [program, ...args] = command;
  if (program === undefined || program === "") throw new CliError("guest fsfreeze needs a command to run after `--`");
  const where = describeAgent(target);
  const timeoutMs = opts.timeoutMs ?? 30_000;
  const env = io.env as NodeJS.ProcessEnv;
  const connect = (): Promise<QgaClient> =>
    connectAgent(target, { timeoutMs, callTimeoutMs: timeoutMs, resyncEveryMs: 1000, env, ...(opts.qrexecClient ? { qrexecClient: opts.qrexecClient } : {}) });

  let client: QgaClient;
  try {
    client = await connect();
  } catch (e) {
    throw new CliError(`cannot reach the guest agent (${where}): ${e instanceof Error ? e.message : String(e)}; nothing was frozen`);
  }

  try {
    if ((await client.fsfreezeStatus()) === "frozen") {
      throw new CliError(
        `the filesystems in ${where} are already frozen (another backup is running, or an earlier run was killed); not freezing again. ` +
          `If nothing else holds the freeze, run \`qubes-iac guest thaw\` on this guest`,
      );
    }
  } catch (e) {
    await client.close();
    if (e instanceof CliError) throw e;
    throw new CliError(`cannot read the freeze state of ${where}: ${e instanceof Error ? e.message : String(e)}; nothing was frozen`);
  }

  let interrupted: string | null = null;
  let forward: ((signal: string) => void) | null = null;
  void io.interrupted.then((signal) => {
    interrupted = signal;
    forward?.(signal);
  });

  const run = (): Promise<CommandResult> =>
    new Promise<CommandResult>((resolve) => {
      if (interrupted) return resolve({ kind: "skipped", signal: interrupted });
      const child = spawn(program, args, { cwd: io.cwd, env, stdio: ["ignore", "pipe", "pipe"] });
      child.stdout.on("data", (d: Buffer) => io.stdout.write(d));
      child.stderr.on("data", (d: Buffer) => io.stderr.write(d));
      forward = (signal) => {
        if (child.exitCode === null && child.signalCode === null) child.kill(signal as NodeJS.Signals);
      };
      child.on("error", (e: NodeJS.ErrnoException) => resolve({ kind: "not-started", reason: e.code === "ENOENT" ? `${program}: command not found` : `${program}: ${e.message}` }));
      child.on("close", (code, signal) => resolve({ kind: "exited", code: code ?? signalExit(signal ?? "SIGTERM") }));
    });

  try {
    let outcome;
    try {
      outcome = await withFrozenFilesystems(client, run, {
        timeoutMs: opts.freezeTimeoutMs ?? 120_000,
        onFrozen: (n) => tell(io.stderr, `qubes-iac: froze ${plural(n, "filesystem")} in ${where}`),
        reconnect: connect,
      });
    } catch (e) {
      const message = e instanceof Error ? e.message : String(e);
      if (isQgaError(e) && e.details.command === "guest-fsfreeze-thaw") {
        tell(io.stderr, `qubes-iac: ${message}`);
        return 1;
      }
      throw new CliError(`cannot freeze the filesystems in ${where}: ${message}; the command was not run`);
    }
    tell(io.stderr, `qubes-iac: thawed ${plural(outcome.thawed, "filesystem")} in ${where}`);
    if (outcome.thawed !== outcome.frozen) {
      tell(io.stderr, `qubes-iac: warning: froze ${outcome.frozen} but thawed ${outcome.thawed}: something else thawed filesystems meanwhile, so the copy may not be consistent`);
    }
    if (!outcome.ok) throw outcome.error;
    const result = outcome.value;
    switch (result.kind) {
      case "exited":
        return interrupted ? signalExit(interrupted) : result.code;
      case "skipped":
        tell(io.stderr, `qubes-iac: ${result.signal} before the command started; it was not run`);
        return signalExit(result.signal);
      case "not-started":
        tell(io.stderr, `qubes-iac: ${result.reason}`);
        return 127;
      default: {
        const never: never = result;
        throw new Error(`unknown command result ${JSON.stringify(never)}`);
      }
    }
  } finally {
    await client.close();
  }
}

/** `qubes-iac guest thaw GUEST`: thaws whatever is frozen and reports the count (0 when nothing was). */
export async function guestThaw(io: CliIO, target: AgentSpec, opts: GuestFsfreezeOptions = {}): Promise<number> {
  const where = describeAgent(target);
  const timeoutMs = opts.timeoutMs ?? 30_000;
  let client: QgaClient;
  try {
    client = await connectAgent(target, {
      timeoutMs,
      callTimeoutMs: timeoutMs,
      resyncEveryMs: 1000,
      env: io.env as NodeJS.ProcessEnv,
      ...(opts.qrexecClient ? { qrexecClient: opts.qrexecClient } : {}),
    });
  } catch (e) {
    throw new CliError(`cannot reach the guest agent (${where}): ${e instanceof Error ? e.message : String(e)}`);
  }
  try {
    const thawed = await client.fsfreezeThaw();
    tell(io.stderr, `qubes-iac: thawed ${plural(thawed, "filesystem")} in ${where}`);
    return 0;
  } catch (e) {
    throw new CliError(e instanceof Error ? e.message : String(e));
  } finally {
    await client.close();
  }
}
