// Process entry: wires the real process into runCli and sets the exit code. It does not call
// process.exit, so piped output is always flushed; commands leave nothing running behind them.
// SIGINT/SIGTERM handlers stay installed until runCli returns: a second Ctrl-C must not kill
// the process while a command is cleaning up (e.g. thawing a frozen guest).
// `--version` alone is answered before the rest of the CLI is loaded (the same line commander
// prints): it is what scripts and package managers run to probe the tool, and it should cost
// little more than starting Node (bench/README.md, start-up).
import { packageVersion } from "./version.js";

// Output piped into a reader that goes away (`qubes-iac plan | head`) must not crash the
// command with a stack trace, least of all an apply in the middle of its changes: what is left
// to print is dropped and the command runs to its end and exit code.
for (const stream of [process.stdout, process.stderr]) {
  stream.on("error", (e: NodeJS.ErrnoException) => {
    if (e.code !== "EPIPE" && e.code !== "ERR_STREAM_DESTROYED") throw e;
  });
}

const argv = process.argv.slice(2);
if (argv.length === 1 && (argv[0] === "--version" || argv[0] === "-V")) {
  process.stdout.write(`${packageVersion()}\n`);
} else {
  await main(argv);
}

async function main(args: string[]): Promise<void> {
  const { runCli } = await import("./run.js");

  let onSignal: (sig: NodeJS.Signals) => void = () => {};
  const interrupted = new Promise<string>((resolve) => {
    onSignal = (sig) => resolve(sig);
  });
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);

  process.exitCode = await runCli({
    argv: args,
    env: process.env,
    cwd: process.cwd(),
    stdin: process.stdin,
    stdout: process.stdout,
    stderr: process.stderr,
    interrupted,
  });
  process.off("SIGINT", onSignal);
  process.off("SIGTERM", onSignal);
}
