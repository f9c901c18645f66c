// The prior-state re-check against the simulator: right after planning every check holds; after
// changes made behind the plan's back, each changed value is named with its address, the value
// the plan relied on and the value now.
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { readerFromClient, runOp } from "../../src/apply/admin-api.js";
import { checkPriorState } from "../../src/apply/prior-state.js";
import { converge, loadDesired, planWith, startSession, type SimSession } from "../plan/_helpers.js";

let s: SimSession;
beforeEach(async () => {
  s = await startSession();
});
afterEach(async () => {
  await s.stop();
});

const recheck = async (checks: Parameters<typeof checkPriorState>[1]) => checkPriorState(readerFromClient(s.client), checks, { parallelism: 4 });

describe("prior state of a plan that creates and adopts", () => {
  it("holds right after planning, and names every value changed since", async () => {
    const { json } = await planWith(s, loadDesired("examples/reference.yaml"));
    expect(await recheck(json.prior_state)).toEqual([]);

    await runOp(s.client, { op: "label.create", name: "magenta", colour: "0xFF00FF" });
    await runOp(s.client, { op: "property.set", holder: { vm: "sys-firewall" }, name: "memory", value: "700" });
    await runOp(s.client, { op: "vm.create", class: "AppVM", name: "keys", label: "red", template: "fedora-40" });
    await runOp(s.client, { op: "tag.set", vm: "sys-firewall", name: "managed-by-laptop" });
    await runOp(s.client, { op: "vm.start", vm: "sys-firewall" });
    await runOp(s.client, { op: "feature.set", vm: "dom0", name: "qubes-iac.laptop.format", value: "1" });

    const changes = await recheck(json.prior_state);
    expect(changes.sort((a, b) => (a.address < b.address ? -1 : 1))).toEqual([
      { address: "dom0.features.qubes-iac.laptop.format", expected: "absent", actual: "present" },
      { address: "label.magenta", expected: "absent", actual: "present" },
      { address: "qube.keys", expected: "absent", actual: "exists (AppVM)" },
      { address: "qube.sys-firewall", expected: "AppVM, Halted", actual: "AppVM, Running" },
      { address: "qube.sys-firewall.properties.memory", expected: '"400" (default)', actual: '"700"' },
      { address: "qube.sys-firewall.tags.managed-by-laptop", expected: "absent", actual: "present" },
    ]);
  });
});

describe("prior state of a plan on managed qubes", () => {
  it("names changed firewall, feature, volume size, power, and a qube that disappeared", async () => {
    const desired = loadDesired("examples/reference.yaml");
    await converge(s, desired);
    const { json } = await planWith(s, loadDesired("test/apply/fixtures/reference-v2.yaml"));
    expect(json.steps.length).toBeGreaterThan(0);
    expect(await recheck(json.prior_state)).toEqual([]);

    await runOp(s.client, { op: "firewall.set", vm: "dev", rules: ["action=drop"] });
    await runOp(s.client, { op: "feature.remove", vm: "dev", name: "service.cups" });
    await runOp(s.client, { op: "volume.resize", vm: "dev", volume: "private", size: String(30 * 1024 ** 3) });
    await runOp(s.client, { op: "vm.remove", vm: "keys" });
    await runOp(s.client, { op: "vm.shutdown", vm: "dev" });

    const changes = await recheck(json.prior_state);
    expect(changes.sort((a, b) => (a.address < b.address ? -1 : 1))).toEqual([
      { address: "qube.dev", expected: "AppVM, Running", actual: "AppVM, Halted" },
      { address: "qube.dev.features.service.cups", expected: '"1"', actual: "absent" },
      { address: "qube.dev.firewall", expected: "rules with sha256 930eb54bd930…", actual: "1 rule with sha256 29492d0ee47b…" },
      { address: "qube.dev.volumes.private.size", expected: "21474836480 bytes", actual: "32212254720 bytes" },
      { address: "qube.keys", expected: "AppVM, Halted", actual: "absent" },
    ]);
  });
});
