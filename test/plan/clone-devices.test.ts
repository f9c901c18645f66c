// `clone_devices` against the simulator's laptop fixture over its socket: a copy of sys-net takes
// its Wi-Fi controller (with no-strict-reset) only when the config says `clone_devices: true`,
// assigned by the release's call at the copy's create and not managed afterwards (no record, as
// every copied attribute), shown as coming from the source; without it the copy holds no device, and its own `devices:` win.
// sys-net runs in a file pool, serving sys-firewall: both are shut down first, as a file pool
// copies only a halted volume and qubesd refuses to stop a netvm others are connected to.
import { afterEach, beforeEach, expect, it } from "vitest";
import type { JsonPlan } from "../../src/plan/json.js";
import { renderHumanPlan } from "../../src/plan/render.js";
import { testRelease } from "../helpers/sim.js";
import { desiredFromYaml, errorCodes, expectValidPlanJson, planOps, planWith, runOps, startSession, type SimSession } from "./_helpers.js";

const yaml = (extra: string): string =>
  `version: 1\nowner: o\nqubes:\n  sys-net2:\n    class: AppVM\n    template: fedora-41\n    label: red\n    clone: sys-net\n    properties: {netvm: null, provides_network: true}\n${extra}`;
const NIC = "devices.pci.dom0:00_14.3";

let s: SimSession;
beforeEach(async () => {
  s = await startSession({ fixture: "laptop" });
  for (const vm of ["sys-firewall", "sys-net"]) await s.client.vm.shutdown(vm, { wait: true });
});
afterEach(async () => {
  await s.stop();
});

async function plan(text: string): Promise<JsonPlan> {
  const { json } = await planWith(s, desiredFromYaml(text), { allowRestart: false, targets: [], excludes: [] });
  expectValidPlanJson(json);
  return json;
}
const deviceOps = (j: JsonPlan) => j.steps.flatMap((st) => st.ops).filter((o) => o.op.startsWith("device."));

it("without clone_devices a copy of sys-net claims no device", async () => {
  const j = await plan(yaml(""));
  expect(errorCodes(j)).toEqual([]);
  expect(deviceOps(j)).toEqual([]);
  expect(Object.keys(j.resource_changes.find((c) => c.address === "qube.sys-net2")?.after ?? {}).filter((k) => k.startsWith("devices."))).toEqual([]);
});

it("with clone_devices: true the copy takes the source's controller with its options, from the source, and converges", async () => {
  const j = await plan(yaml("    clone_devices: true\n"));
  expect(errorCodes(j)).toEqual([]);
  const change = j.resource_changes.find((c) => c.address === "qube.sys-net2");
  expect(change?.from_source?.attributes).toContain(NIC);
  expect(String(change?.after?.[NIC])).toMatch(/no-strict-reset/);
  const ops = deviceOps(j);
  expect(ops).toHaveLength(1);
  expect(ops[0]).toMatchObject({ op: testRelease() === "r4.2" ? "device.attach" : "device.assign", vm: "sys-net2", devclass: "pci", backend: "dom0", port: "00_14.3" });
  // Like every copied attribute it is not managed afterwards: no ownership record, so a later plan
  // neither keeps it nor detaches it (the config does not list it).
  const create = j.steps.find((st) => st.id === "create:qube.sys-net2")?.ops ?? [];
  expect(create.some((o) => o.op === "device.assign" || o.op === "device.attach")).toBe(true);
  expect(create.some((o) => o.op === "record.set" && o.record.startsWith("device."))).toBe(false);
  expect(renderHumanPlan(j, { color: false })).toMatch(/devices\.pci\.dom0:00_14\.3: .*\(from sys-net\)/);

  await runOps(s.client, planOps(j));
  const again = await plan(yaml("    clone_devices: true\n"));
  expect(errorCodes(again)).toEqual([]);
  expect(again.steps.map((st) => [st.id, st.ops])).toEqual([]);
  // Without clone_devices in the config later, the copy keeps the controller it was given (not ours to detach).
  const later = await plan(yaml(""));
  expect(deviceOps(later)).toEqual([]);
});

it("the copy's own devices: win over the source's at the same port", async () => {
  const j = await plan(yaml("    clone_devices: true\n    devices:\n      pci:\n        dom0:00_14.3: {}\n"));
  expect(errorCodes(j)).toEqual([]);
  const after = String(j.resource_changes.find((c) => c.address === "qube.sys-net2")?.after?.[NIC]);
  expect(after).not.toMatch(/no-strict-reset/);
  expect(j.resource_changes.find((c) => c.address === "qube.sys-net2")?.from_source?.attributes).not.toContain(NIC);
});
