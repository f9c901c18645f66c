// Starts the simulator on a real Unix socket in a fresh temp dir, for tests that talk to it the
// way qubes-iac talks to a real dom0.
import { copyFileSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseRelease, startSimulator, type SimCallLogEntry, type SimRelease, type SimulatorOptions, type SimulatorServer } from "../../src/providers/qubes/simulator/index.js";

/**
 * The Qubes release the simulator imitates in this run: `QIAC_TEST_RELEASE`, which the release
 * projects of vitest.config.ts set (r4.2, r4.3), or main.
 */
export function testRelease(): SimRelease {
  const text = process.env.QIAC_TEST_RELEASE;
  if (text === undefined || text === "") return "main";
  const r = parseRelease(text);
  if (!r.ok) throw new Error(`QIAC_TEST_RELEASE: ${r.error}`);
  return r.release;
}

export type TestSim = SimulatorServer & { dir: string; calls: SimCallLogEntry[]; statePath: string; stop(): Promise<void> };

/** `stateFrom`: a state file the simulator starts from, copied into its own directory. */
export async function startTestSim(opts: Partial<SimulatorOptions> = {}, o: { stateFrom?: string } = {}): Promise<TestSim> {
  const dir = mkdtempSync(join(tmpdir(), "qiac-test-"));
  const calls: SimCallLogEntry[] = [];
  const statePath = opts.statePath ?? join(dir, "state.json");
  if (o.stateFrom !== undefined) copyFileSync(o.stateFrom, statePath);
  const server = await startSimulator({
    socketPath: join(dir, "qubesd.sock"),
    statePath,
    release: testRelease(),
    ...opts,
    onCall: (e) => {
      calls.push(e);
      opts.onCall?.(e);
    },
  });
  return {
    ...server,
    dir,
    calls,
    statePath,
    stop: async () => {
      await server.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export const MUTATING = /\.(Create|CreateInPool|CreateDisposable|Remove|Set|Reset|Add|Resize|Start|Shutdown|Pause|Unpause|Kill|Suspend|Resume|Revert|Clear|Import|CloneTo|CloneFrom|Reload|Assign|Unassign|Attach|Detach)(\.|$)/;
export const isMutating = (method: string): boolean => MUTATING.test(method.replace(/^admin\./, "."));

/** A call of the apply lock (docs/locking.md): its label `qubes-iac.lock.<owner>` or its record `qubes-iac.<owner>.lock`. */
export const isLockCall = (c: { method: string; arg: string }): boolean =>
  (c.method.startsWith("admin.label.") && c.arg.startsWith("qubes-iac.lock.")) || (c.method.startsWith("admin.vm.feature.") && /^qubes-iac\.[^.]+\.lock$/.test(c.arg));
