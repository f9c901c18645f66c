// `qubes-iac policy` for a config with devices: the device calls of both APIs (R4.3+ Assigned /
// Assign / Unassign / Set.assignment, R4.2 List / Attach / Detach), for the classes and qubes the
// config names only, and Available of each backend at the port the config names.
import { expect, it } from "vitest";
import { policyRules } from "../../src/apply/policy.js";
import { desiredFromYaml } from "../plan/_helpers.js";

const desired = desiredFromYaml(`
version: 1
owner: lab
qubes:
  sys-net:
    adopt: true
    devices:
      pci:
        dom0:00_14.3: {options: [no-strict-reset]}
  work:
    class: AppVM
    template: fedora-41
    label: blue
    devices:
      usb:
        sys-usb:2-1:
`);

const lines = (apply: boolean): string[] =>
  policyRules({ desired, mgmt: "mgmt", apply })
    .filter((r) => r.service.includes("device"))
    .map((r) => `${r.purpose} ${r.service} ${r.argument} ${r.target}`);

it("plan: the device reads of the config's classes and qubes, per release", () => {
  expect(lines(false)).toEqual([
    "read admin.deviceclass.List * @adminvm",
    "read admin.vm.device.pci.Assigned * sys-net",
    "read admin.vm.device.pci.Available +00_14.3 @adminvm",
    "read admin.vm.device.pci.List * sys-net",
    "read admin.vm.device.usb.Assigned * work",
    "read admin.vm.device.usb.Available +2-1 sys-usb",
    "read admin.vm.device.usb.List * work",
  ]);
});

it("apply: writes to the qube by name when adopted, by the created-by tag when created", () => {
  const writes = lines(true).filter((l) => l.startsWith("write"));
  expect(writes).toEqual([
    "write admin.vm.device.pci.Assign * sys-net",
    "write admin.vm.device.pci.Attach +dom0+00_14.3 sys-net",
    "write admin.vm.device.pci.Detach +dom0+00_14.3 sys-net",
    "write admin.vm.device.pci.Set.assignment * sys-net",
    "write admin.vm.device.pci.Unassign * sys-net",
    "write admin.vm.device.usb.Assign * @tag:created-by-mgmt",
    "write admin.vm.device.usb.Attach +sys-usb+2-1 @tag:created-by-mgmt",
    "write admin.vm.device.usb.Detach +sys-usb+2-1 @tag:created-by-mgmt",
    "write admin.vm.device.usb.Set.assignment * @tag:created-by-mgmt",
    "write admin.vm.device.usb.Unassign * @tag:created-by-mgmt",
  ]);
});

it("a config without devices is granted no device call", () => {
  const plain = desiredFromYaml("version: 1\nowner: lab\nqubes:\n  work:\n    adopt: true\n");
  expect(policyRules({ desired: plain, mgmt: "mgmt", apply: true }).filter((r) => r.service.includes("device"))).toEqual([]);
});
