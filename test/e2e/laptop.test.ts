// The whole-system example (examples/laptop.yaml) through the built CLI against the simulator's
// laptop fixture over a real socket, on the release of this test project (main, and R4.3/R4.2 in
// the release projects of vitest.config.ts): apply makes exactly the calls that build it — the
// clones by CloneFrom/CloneTo with a token of qubesd's shape, the audio controller by the
// release's device call, nothing for the controllers sys-net and sys-usb hold as written — then
// `plan` says No changes., a second apply makes no mutating call, and `export` of the owner's
// qubes gives a config that plans No changes. too.
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, beforeEach, expect, it } from "vitest";
import { runBuiltCli } from "../helpers/cli.js";
import { repoRoot } from "../helpers/shared.js";
import { isMutating, startTestSim, testRelease, type TestSim } from "../helpers/sim.js";

const EXAMPLE = "examples/laptop.yaml";
let sim: TestSim;
beforeEach(async () => {
  sim = await startTestSim({ fixture: "laptop" });
});
afterEach(async () => {
  await sim.stop();
});

const cli = (args: string[]) => runBuiltCli([args[0] as string, "--connect", `qubesd:${sim.socketPath}`, ...args.slice(1)], { cwd: repoRoot });
const mutating = (from = 0) => sim.calls.slice(from).filter((c) => isMutating(c.method));

it(`builds the laptop system from the laptop fixture and converges (${testRelease()})`, async () => {
  const first = await cli(["apply", "--auto-approve", EXAMPLE]);
  expect(first.stderr).not.toMatch(/error/);
  expect(first.code).toBe(0);
  expect(first.stdout).toMatch(/\nApply complete: 4 added, 2 changed, 0 destroyed\.\n$/);
  // Each copied volume is shown with its size and time.
  expect(first.stdout).toMatch(/create:qube\.fedora-work: copied root of fedora-41 \(10\.0 GiB\) in \d+\.\ds/);
  expect(first.stdout).toMatch(/create:qube\.devbox: copied root of fedora-work \(10\.0 GiB\) in \d+\.\ds/);

  const calls = mutating();
  // The clones: CloneFrom on the source answers a token, CloneTo on the copy sends it (qubesd's
  // token: 32 letters and digits, the shape of the recorded exchange; test/conformance/clone-exchange.test.ts).
  const copies = calls.filter((c) => c.method === "admin.vm.volume.CloneFrom" || c.method === "admin.vm.volume.CloneTo").map((c) => `${c.method}+${c.arg} → ${c.dest}`);
  expect(copies).toEqual([
    "admin.vm.volume.CloneFrom+root → fedora-41",
    "admin.vm.volume.CloneTo+root → fedora-work",
    "admin.vm.volume.CloneFrom+private → fedora-41",
    "admin.vm.volume.CloneTo+private → fedora-work",
    "admin.vm.volume.CloneFrom+root → fedora-work",
    "admin.vm.volume.CloneTo+root → devbox",
  ]);
  for (const c of calls.filter((x) => x.method === "admin.vm.volume.CloneTo")) expect([c.reply, c.payload_bytes]).toEqual(["ok", 32]);

  // Devices: the audio controller to sys-audio by the release's call; sys-net's and sys-usb's
  // controllers are held as written, so no device call names them.
  const deviceCalls = calls.filter((c) => c.method.startsWith("admin.vm.device."));
  expect(deviceCalls.map((c) => `${c.method} → ${c.dest}`)).toEqual([testRelease() === "r4.2" ? "admin.vm.device.pci.Attach → sys-audio" : "admin.vm.device.pci.Assign → sys-audio"]);
  expect(deviceCalls[0]?.arg).toMatch(/^dom0\+00_1f\.3/);

  // Converged: the plan has nothing to do (the clones' sources are not copied again: one note each).
  const plan = await cli(["plan", EXAMPLE]);
  expect(plan.code).toBe(0);
  expect(plan.stdout).toBe("No changes.\n");
  expect(plan.stderr.match(/QIAC-W160/g)?.length).toBe(2);
  const before = sim.calls.length;
  const second = await cli(["apply", "--auto-approve", EXAMPLE]);
  expect(second.code).toBe(0);
  expect(second.stdout).toBe("No changes.\n");
  expect(mutating(before)).toEqual([]);

  // Export → plan: the exported config (no clone:, the devices as held) asks for nothing.
  const exported = await cli(["export", "--owner", "laptop"]);
  expect(exported.code).toBe(0);
  expect(exported.stdout).not.toMatch(/\bclone:/);
  expect(exported.stdout).toMatch(/dom0:00_1f\.3/);
  const path = join(sim.dir, "exported.yaml");
  writeFileSync(path, exported.stdout);
  const again = await cli(["plan", "--detailed-exitcode", path]);
  expect(again.stdout).toBe("No changes.\n");
  expect(again.code).toBe(0);
});
