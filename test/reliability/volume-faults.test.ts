// A fault at each volume and notes call of an apply (admin.vm.volume.Resize,
// Set.revisions_to_keep, Set.ephemeral, admin.vm.notes.Set, on an adopted qube and on one it
// creates): the reply lost after the call ran is settled by re-reading as done (exit 0); the
// connection closed before it ran, or a Qubes exception, fails that step (exit 1). Either way the
// next apply finishes what is left and the plan after it says `No changes.`
import { afterEach, describe, expect, it } from "vitest";
import { applyIn, cli, events, startSim, type Sim } from "./_harness.js";
import type { FaultAction } from "../../src/providers/qubes/simulator/faults.js";

const FIXTURE = "test/plan/fixtures/volumes-notes.yaml";

const CALLS: Array<{ method: string; arg: string; dest: string }> = [
  { method: "admin.vm.volume.Resize", arg: "private", dest: "work" },
  { method: "admin.vm.volume.Set.revisions_to_keep", arg: "private", dest: "work" },
  { method: "admin.vm.volume.Set.ephemeral", arg: "volatile", dest: "work" },
  { method: "admin.vm.notes.Set", arg: "", dest: "work" },
  { method: "admin.vm.volume.Resize", arg: "private", dest: "store" },
  { method: "admin.vm.volume.Set.revisions_to_keep", arg: "private", dest: "store" },
  { method: "admin.vm.notes.Set", arg: "", dest: "store" },
];

const KINDS: Array<[string, FaultAction, "done" | "failed"]> = [
  ["close-after", { kind: "close-after" }, "done"],
  ["close-before", { kind: "close-before" }, "failed"],
  ["exception", { kind: "exception", qubesClass: "QubesException", message: "injected" }, "failed"],
];

let sim: Sim | undefined;
afterEach(async () => {
  await sim?.stop();
  sim = undefined;
});

describe("a fault at a volume or notes call", () => {
  for (const c of CALLS) {
    for (const [name, action, outcome] of KINDS) {
      it(`${name} at ${c.method}+${c.arg} → ${c.dest}`, async () => {
        // The notes are R4.3 and later: this runs on the development head.
        sim = await startSim({ release: "main" });
        sim.faults.add({ ...c, calls: { from: 1, to: 1 }, action });
        const first = await applyIn(sim, [FIXTURE], { autoApprove: true, json: true });
        expect(sim.faults.fired().length).toBe(1);
        const summary = events(first.stdout).find((e) => e.type === "apply_complete") as { failed: Array<{ call: string }> } | undefined;
        const key = `${c.method}+${c.arg} → ${c.dest}`;
        if (outcome === "done") {
          expect(first.code).toBe(0);
          expect(summary?.failed).toEqual([]);
        } else {
          expect(first.code).toBe(1);
          expect(summary?.failed.map((f) => f.call)).toEqual([key]);
        }
        const second = await applyIn(sim, [FIXTURE], { autoApprove: true, json: true });
        expect(second.code).toBe(0);
        const plan = await cli(sim, ["plan", FIXTURE]);
        expect(plan.stdout).toBe("No changes.\n");
      });
    }
  }
});
