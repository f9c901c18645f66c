// Process entry: wires the real process into runCli and sets the exit code. It does not call
// process.exit, so piped output is always flushed; commands leave nothing running behind them.
import { runCli } from "./run.js";

const onSignal = new Map<NodeJS.Signals, () => void>();
const interrupted = new Promise<string>((resolve) => {
  for (const sig of ["SIGINT", "SIGTERM"] as const) {
    const handler = (): void => resolve(sig);
    onSignal.set(sig, handler);
    process.once(sig, handler);
  }
});

process.exitCode = await runCli({
  argv: process.argv.slice(2),
  env: process.env,
  cwd: process.cwd(),
  stdin: process.stdin,
  stdout: process.stdout,
  stderr: process.stderr,
  interrupted,
});
for (const [sig, handler] of onSignal) process.off(sig, handler);
