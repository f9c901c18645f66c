// Process entry: wires the real process into runCli and sets the exit code. Commands leave
// nothing running behind them, so the process ends by itself and piped output is flushed; after
// a signal it ends at once (output flushed first): a read-only command that a signal stopped may
// still have a call in flight, or a config being parsed in a worker thread, and must not wait
// for them. SIGINT/SIGTERM handlers stay installed until runCli returns: a second Ctrl-C must not
// kill the process while a command is cleaning up (e.g. thawing a frozen guest, giving back the
// apply lock); apply is told of it (interruptedAgain), a third is ignored.
// `--version` alone is answered before the rest of the CLI is loaded (the same line commander
// prints): it is what scripts and package managers run to probe the tool, and it should cost
// little more than starting Node (bench/README.md, start-up). The same file, run as a worker
// thread, loads a config for `validate` (CliIO.loadInWorker).
import { isMainThread, parentPort, Worker, workerData } from "node:worker_threads";
import { packageVersion } from "./version.js";

type LoadTask = { task: "load-config"; paths: string[]; cwd: string; options?: import("../config/index.js").LoadOptions };

// Output piped into a reader that goes away (`qubes-iac plan | head`) must not crash the
// command with a stack trace, least of all an apply in the middle of its changes: what is left
// to print is dropped and the command runs to its end and exit code.
for (const stream of [process.stdout, process.stderr]) {
  stream.on("error", (e: NodeJS.ErrnoException) => {
    if (e.code !== "EPIPE" && e.code !== "ERR_STREAM_DESTROYED") throw e;
  });
}

const argv = process.argv.slice(2);
if (!isMainThread) {
  await loadConfigTask(workerData as LoadTask);
} else if (argv.length === 1 && (argv[0] === "--version" || argv[0] === "-V")) {
  process.stdout.write(`${packageVersion()}\n`);
} else {
  await main(argv);
}

async function loadConfigTask(t: LoadTask): Promise<void> {
  const { loadConfig } = await import("../config/index.js");
  const { configIOAt } = await import("./commands/validate.js");
  const r = loadConfig(t.paths, configIOAt(t.cwd), t.options);
  parentPort?.postMessage({ diagnostics: r.diagnostics, sources: r.sources });
}

function loadInWorker(paths: string[], options?: import("../config/index.js").LoadOptions): Promise<{ diagnostics: import("../model/diagnostics.js").Diagnostic[]; sources: ReadonlyMap<string, string> }> {
  return new Promise((resolve, reject) => {
    const task: LoadTask = { task: "load-config", paths, cwd: process.cwd() };
    if (options) task.options = options;
    const w = new Worker(new URL(import.meta.url), { workerData: task });
    w.once("message", resolve);
    w.once("error", reject);
    w.once("exit", (code) => reject(new Error(`the config loader stopped (exit code ${code}) before it answered`)));
  });
}

function flush(s: NodeJS.WriteStream): Promise<void> {
  return new Promise((resolve) => s.write("", () => resolve()));
}

async function main(args: string[]): Promise<void> {
  const { runCli } = await import("./run.js");

  let signals = 0;
  let first: (sig: string) => void = () => {};
  let second: (sig: string) => void = () => {};
  const interrupted = new Promise<string>((resolve) => {
    first = resolve;
  });
  const interruptedAgain = new Promise<string>((resolve) => {
    second = resolve;
  });
  const onSignal = (sig: NodeJS.Signals): void => {
    signals++;
    (signals === 1 ? first : second)(sig);
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);

  const code = await runCli({
    argv: args,
    env: process.env,
    cwd: process.cwd(),
    stdin: process.stdin,
    stdout: process.stdout,
    stderr: process.stderr,
    interrupted,
    interruptedAgain,
    loadInWorker,
  });
  process.off("SIGINT", onSignal);
  process.off("SIGTERM", onSignal);
  process.exitCode = code;
  if (signals > 0) {
    await Promise.all([flush(process.stdout), flush(process.stderr)]);
    process.exit(code);
  }
}
