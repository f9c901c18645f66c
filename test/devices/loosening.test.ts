// The device loosening markers end to end, against the simulator's laptop fixture on the release
// under test: a qube given its first USB device is marked, an assignment that accepts any device at
// its port is marked (on R4.2 every USB assignment does: it assigns by port only), and claiming
// an assignment a qube holds already is not.
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { testRelease } from "../helpers/sim.js";
import { desiredFromYaml, errorCodes, expectValidPlanJson, planWith, startSession, type SimSession } from "../plan/_helpers.js";

const release = testRelease();
let s: SimSession;
beforeEach(async () => {
  s = await startSession({ fixture: "laptop" });
});
afterEach(async () => {
  await s.stop();
});

async function marks(yaml: string): Promise<string[]> {
  const { json } = await planWith(s, desiredFromYaml(`version: 1\nowner: lab\nqubes:\n${yaml}`));
  expectValidPlanJson(json);
  expect(errorCodes(json)).toEqual([]);
  return json.resource_changes.flatMap((c) => (c.loosens ?? []).map((l) => `${c.address} ${l.kind} ${l.attribute ?? ""}`.trim()));
}

describe(`device markers on ${release}`, () => {
  it("a USB device given to a qube that had none", async () => {
    const m = await marks("  work:\n    class: AppVM\n    template: fedora-41\n    label: blue\n    devices:\n      usb:\n        sys-usb:2-1: {}\n");
    const any = release === "r4.2" ? ["qube.work device-any devices.usb.sys-usb:2-1"] : [];
    expect(m).toEqual([...any, "qube.work device-given devices.usb.sys-usb:2-1"]);
  });

  it.skipIf(release === "r4.2")("an assignment that accepts any device at the port (R4.3+: `device: any`)", async () => {
    expect(await marks("  work:\n    class: AppVM\n    template: fedora-41\n    label: blue\n    devices:\n      usb:\n        sys-usb:2-1: {device: any}\n")).toEqual([
      "qube.work device-any devices.usb.sys-usb:2-1",
      "qube.work device-given devices.usb.sys-usb:2-1",
    ]);
  });

  it("claiming the controller a qube holds already is not a loosening", async () => {
    expect(await marks("  sys-net:\n    adopt: true\n    devices:\n      pci:\n        dom0:00_14.3: {options: [no-strict-reset]}\n")).toEqual([]);
  });
});
