// Process entry: wires the real process into runCli and sets the exit code. It does not call
// process.exit, so piped output is always flushed; commands leave nothing running behind them.
// SIGINT/SIGTERM handlers stay installed until runCli returns: a second Ctrl-C must not kill
// the process while a command is cleaning up (e.g. thawing a frozen guest).
import { runCli } from "./run.js";

let onSignal: (sig: NodeJS.Signals) => void = () => {};
const interrupted = new Promise<string>((resolve) => {
  onSignal = (sig) => resolve(sig);
});
process.on("SIGINT", onSignal);
process.on("SIGTERM", onSignal);

process.exitCode = await runCli({
  argv: process.argv.slice(2),
  env: process.env,
  cwd: process.cwd(),
  stdin: process.stdin,
  stdout: process.stdout,
  stderr: process.stderr,
  interrupted,
});
process.off("SIGINT", onSignal);
process.off("SIGTERM", onSignal);
