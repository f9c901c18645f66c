// The simulator as the benchmark runs it: in this process, on a socket in a temporary directory,
// with its call log kept in memory so that every measurement counts the calls the server really
// answered. Latency is the simulator's own (server-side), as a qrexec round trip would add it.

import { join } from "node:path";
import { startSimulator, type Latency, type SimCallLogEntry, type SimFixture, type SimulatorServer } from "../src/providers/qubes/simulator/index.js";

export type BenchSim = {
  socketPath: string;
  server: SimulatorServer;
  /** Calls answered since the last `takeCalls()`, then forgets them. */
  takeCalls(): SimCallLogEntry[];
  close(): Promise<void>;
};

export type BenchSimOptions = {
  dir: string;
  /** State file; reused as it is unless `generated` or `fixture` is given (then the system starts afresh from it). */
  statePath: string;
  generated?: number;
  /** A named fixture of the simulator (`laptop`), started afresh. */
  fixture?: Exclude<SimFixture, { generated: number }>;
  latency?: Latency;
  /** Faults from the start (README of the simulator), e.g. GetAll refused. */
  faults?: string[];
};

let serial = 0;

export async function startBenchSim(o: BenchSimOptions): Promise<BenchSim> {
  let calls: SimCallLogEntry[] = [];
  const socketPath = join(o.dir, `sim-${++serial}.sock`);
  const server = await startSimulator({
    socketPath,
    statePath: o.statePath,
    ...(o.generated !== undefined ? { fixture: { generated: o.generated }, reset: true } : o.fixture !== undefined ? { fixture: o.fixture, reset: true } : {}),
    ...(o.latency ? { latency: o.latency } : {}),
    ...(o.faults ? { faults: o.faults } : {}),
    onCall: (entry) => calls.push(entry),
  });
  return {
    socketPath,
    server,
    takeCalls: () => {
      const taken = calls;
      calls = [];
      return taken;
    },
    close: () => server.close(),
  };
}

/** Calls per method, most frequent first. */
export function countByMethod(calls: readonly SimCallLogEntry[]): Record<string, number> {
  const counts = new Map<string, number>();
  for (const c of calls) counts.set(c.method, (counts.get(c.method) ?? 0) + 1);
  return Object.fromEntries([...counts].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0])));
}

/** The same call (method, destination, argument) made more than once. */
export function repeatedCalls(calls: readonly SimCallLogEntry[]): string[] {
  const seen = new Map<string, number>();
  for (const c of calls) {
    const key = `${c.method}+${c.arg} → ${c.dest}`;
    seen.set(key, (seen.get(key) ?? 0) + 1);
  }
  return [...seen].filter(([, n]) => n > 1).map(([k, n]) => `${k} ×${n}`);
}
