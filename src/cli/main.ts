// Process entry: wires the real process into runCli and sets the exit code. It does not call
// process.exit, so piped output is always flushed; commands leave nothing running behind them.
// SIGINT/SIGTERM handlers stay installed until runCli returns: a second Ctrl-C must not kill
// the process while a command is cleaning up (e.g. thawing a frozen guest).
// `--version` alone is answered before the rest of the CLI is loaded (the same line commander
// prints): it is what scripts and package managers run to probe the tool, and it should cost
// little more than starting Node (bench/README.md, start-up).
import { packageVersion } from "./version.js";

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
