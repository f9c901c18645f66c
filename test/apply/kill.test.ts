// The connection dropped at each mutating call of an apply in turn (the simulator's fault rules):
// `close-after` (the change was made, no answer) and `close-before` (no change, no answer) look
// the same to the client — zero bytes — and apply settles each by re-reading, never by sending
// the call again. Each time, a second apply converges (the next plan says No changes) and no
// qube outside the config, and no dom0 feature outside the owner's records, is ever changed.
import { describe, expect, it } from "vitest";
import { loadDesired } from "../plan/_helpers.js";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startSimulator, type SimCallLogEntry, type SimulatorServer } from "../../src/providers/qubes/simulator/index.js";
import { isLockCall, isMutating } from "../helpers/sim.js";
import { runIn } from "./_cli.js";

type Case = { example: string; owner: string; variants: ReadonlyArray<"close-after" | "close-before"> };

const CASES: Case[] = [
  { example: "examples/minimal.yaml", owner: "minimal", variants: ["close-after", "close-before"] },
  { example: "examples/reference.yaml", owner: "laptop", variants: ["close-after", "close-before"] },
  { example: "examples/workstation.yaml", owner: "workstation", variants: ["close-after", "close-before"] },
];

type TestSim = SimulatorServer & { calls: SimCallLogEntry[]; stop(): Promise<void> };

/** A simulator with its state in memory only (no state file): hundreds of short runs stay fast. */
async function startTestSim(o: { faults?: string[] } = {}): Promise<TestSim> {
  const dir = mkdtempSync(join(tmpdir(), "qiac-kill-"));
  const calls: SimCallLogEntry[] = [];
  const server = await startSimulator({ socketPath: join(dir, "qubesd.sock"), faults: o.faults ?? [], onCall: (e) => calls.push(e) });
  return {
    ...server,
    calls,
    stop: async () => {
      await server.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

const run = (sim: TestSim, args: string[]) => runIn([args[0] as string, "--connect", `qubesd:${sim.socketPath}`, "--parallelism", "1", ...args.slice(1)]);

/** Every mutating call stays within the config's qubes and, on dom0, within what the config manages (and the apply lock). */
function expectOnlyOurs(sim: TestSim, example: string, owner: string): void {
  const desired = loadDesired(example);
  const ours = new Set(desired.qubes.keys());
  const strays = sim.calls
    .filter((c) => isMutating(c.method) && !isLockCall(c))
    .filter((c) => {
      if (c.dest !== "dom0") return !ours.has(c.dest);
      if (c.method.startsWith("admin.vm.feature.")) return !c.arg.startsWith(`qubes-iac.${owner}.`);
      if (c.method.startsWith("admin.vm.Create")) return false;
      if (c.method.startsWith("admin.property.")) return !desired.properties.has(c.arg);
      if (c.method.startsWith("admin.label.")) return !desired.labels.has(c.arg);
      if (c.method === "admin.pool.Add") return false;
      if (c.method === "admin.pool.Remove") return !desired.pools.has(c.arg);
      return true;
    });
  expect(strays).toEqual([]);
}

/** The mutating calls of a clean apply, in order; whether each is one of the apply lock's. */
async function mutatingCalls(example: string): Promise<boolean[]> {
  const sim = await startTestSim();
  try {
    expect((await run(sim, ["apply", "--auto-approve", example])).code).toBe(0);
    return sim.calls.filter((c) => isMutating(c.method)).map(isLockCall);
  } finally {
    await sim.stop();
  }
}

describe("the connection dropped at each mutating call in turn", () => {
  for (const { example, owner, variants } of CASES) {
    for (const variant of variants) {
      it(`${example}, ${variant}`, async () => {
        const lockCalls = await mutatingCalls(example);
        const total = lockCalls.length;
        expect(total).toBeGreaterThan(0);
        for (let n = 1; n <= total; n++) {
          // The lock's own calls under faults: test/reliability/lock.test.ts and apply-lock.test.ts.
          if (lockCalls[n - 1] === true) continue;
          const sim = await startTestSim({ faults: [`write@${n}=${variant}`] });
          try {
            const first = await run(sim, ["apply", "--auto-approve", example]);
            const fired = sim.faults.fired();
            expect({ n, fired: fired.length }).toEqual({ n, fired: 1 });
            if (variant === "close-after") {
              // The change was made: re-reading finds it done and apply goes on to the end.
              expect({ n, code: first.code, settled: /re-reading to see whether it happened\n.*: it happened; going on\n/.test(first.stdout) }).toEqual({ n, code: 0, settled: true });
            } else {
              // Not made: the step fails cleanly, naming the call; nothing is sent twice.
              const call = `${fired[0]?.call.method}+${fired[0]?.call.arg} → ${fired[0]?.call.dest}`;
              expect({ n, code: first.code }).toEqual({ n, code: 1 });
              expect(first.stdout).toContain(`: it did not happen: `);
              expect(first.stdout).toContain(`qubesd gave an empty reply to ${call}`);
              expect(first.stdout).toMatch(/\nFailed:\n/);
            }
            const second = await run(sim, ["apply", "--auto-approve", example]);
            expect({ n, code: second.code }).toEqual({ n, code: 0 });
            const after = await run(sim, ["plan", example]);
            expect({ n, plan: after.stdout }).toEqual({ n, plan: "No changes.\n" });
            expectOnlyOurs(sim, example, owner);
          } finally {
            await sim.stop();
          }
        }
      });
    }
  }

  it("when re-reading fails too, the step fails as unknown and the next apply finishes the work", async () => {
    // The plan makes the 1st List, the prior-state re-check under the apply lock the 2nd, the re-read the 3rd.
    const sim = await startTestSim({ faults: ["admin.vm.Create.AppVM@1=close-after", "admin.vm.List@3=close-before"] });
    try {
      const first = await run(sim, ["apply", "--auto-approve", "examples/minimal.yaml"]);
      expect(first.code).toBe(1);
      expect(first.stdout).toContain(
        "create:qube.notes: failed after 0.0s: outcome unknown, run plan again: qubesd gave an empty reply to admin.vm.Create.AppVM+fedora-40 → dom0",
      );
      const left = await run(sim, ["plan", "examples/minimal.yaml"]);
      expect(left.stdout).toContain("# finish an interrupted create: record ownership");
      expect((await run(sim, ["apply", "--auto-approve", "examples/minimal.yaml"])).code).toBe(0);
      expect((await run(sim, ["plan", "examples/minimal.yaml"])).stdout).toBe("No changes.\n");
      // The Create was sent once, never repeated.
      expect(sim.calls.filter((c) => c.method === "admin.vm.Create.AppVM").length).toBe(1);
    } finally {
      await sim.stop();
    }
  });
});
