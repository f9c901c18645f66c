// The simulator's device methods against upstream's formats (qubes-core-admin release4.3/main
// qubes/api/admin.py vm_device_*, qubes/device_protocol.py serialize; release4.2 vm_device_list /
// attach / detach), on the laptop fixture, and the default fixture's recorded behaviour: only
// block and pci, no device offered, dom0's PCI list offline.
import { afterEach, describe, expect, it } from "vitest";
import type { SimRelease } from "../../src/providers/qubes/simulator/index.js";
import { sendRaw, requestBytes, ok, tempSim, type TempSim } from "./wire.js";

const sims: TempSim[] = [];
afterEach(async () => {
  for (const s of sims.splice(0)) await s.stop();
});
async function sim(release: SimRelease, fixture: "default" | "laptop" = "laptop"): Promise<TempSim> {
  const s = await tempSim({ release, fixture });
  sims.push(s);
  return s;
}
const raw = async (s: TempSim, method: string, arg: string, dest: string, payload = ""): Promise<string> => (await sendRaw(s.socketPath, requestBytes(method, arg, dest, payload))).toString("latin1");

describe("default fixture", () => {
  it("serves the recorded classes only: usb is no method, dom0's PCI list is offline", async () => {
    const s = await sim("main", "default");
    expect(await ok(s.socketPath, "admin.deviceclass.List", "", "dom0")).toBe("block\npci\n");
    expect(await raw(s, "admin.vm.device.usb.Assigned", "", "work")).toBe("2\0ProtocolError\0\0no such method: 'admin.vm.device.usb.Assigned'\0");
    expect(await raw(s, "admin.vm.device.pci.Available", "", "dom0")).toBe("2\0QubesException\0\0VMM operations disabled in offline mode\0");
  });
});

describe("laptop fixture, R4.3 and main", () => {
  for (const release of ["r4.3", "main"] as const) {
    it(`${release}: Available and Assigned print port:id and the serialized properties`, async () => {
      const s = await sim(release);
      expect(await ok(s.socketPath, "admin.deviceclass.List", "", "dom0")).toBe("block\nmic\npci\nusb\n");
      expect(await ok(s.socketPath, "admin.vm.device.pci.Available", "00_14.3", "dom0")).toBe(
        "00_14.3:8086:51f0::p028000 device_id='8086:51f0::p028000' port_id='00_14.3' devclass='pci' backend_domain='dom0' vendor='Intel Corporation' product='Alder Lake-P PCH CNVi WiFi' interfaces='p028000' _sbdf='0000:00:14.3'\n",
      );
      expect(await ok(s.socketPath, "admin.vm.device.pci.Assigned", "", "sys-net")).toBe(
        "dom0+00_14.3:8086:51f0::p028000 device_id='8086:51f0::p028000' port_id='00_14.3' devclass='pci' backend_domain='dom0' mode='required' frontend_domain='sys-net' _no-strict-reset='True'\n",
      );
      expect(await ok(s.socketPath, "admin.vm.device.usb.Available", "", "sys-usb")).toMatch(/^2-1:0781:5581:4C530001230517117153:u080650 /);
    });
    it(`${release}: Assign checks the payload against the argument, Set.assignment changes the mode, Unassign removes`, async () => {
      const s = await sim(release);
      const arg = "sys-usb+2-1+0781+5581+4C530001230517117153+u080650";
      const payload = "device_id='0781:5581:4C530001230517117153:u080650' port_id='2-1' devclass='usb' backend_domain='sys-usb' mode='auto-attach' frontend_domain='default-dvm'";
      expect(await raw(s, "admin.vm.device.usb.Assign", arg, "default-dvm", payload.replace("port_id='2-1'", "port_id='2-2'"))).toMatch(/ProtocolError|^$/);
      expect(await ok(s.socketPath, "admin.vm.device.usb.Assign", arg, "default-dvm", payload)).toBe("");
      expect(await raw(s, "admin.vm.device.usb.Assign", arg, "default-dvm", payload)).toMatch(/DeviceAlreadyAssigned|^$/);
      expect(await ok(s.socketPath, "admin.vm.device.usb.Set.assignment", arg, "default-dvm", "ask-to-attach")).toBe("");
      expect(await ok(s.socketPath, "admin.vm.device.usb.Assigned", "", "default-dvm")).toContain("mode='ask-to-attach'");
      expect(await ok(s.socketPath, "admin.vm.device.usb.Unassign", arg, "default-dvm")).toBe("");
      expect(await ok(s.socketPath, "admin.vm.device.usb.Assigned", "", "default-dvm")).toBe("");
      // USB takes no options (qubesusbproxy/core3ext.py on_device_assign_usb).
      expect(await raw(s, "admin.vm.device.usb.Assign", arg, "default-dvm", `${payload} _x='1'`)).toMatch(/USB device assignment does not support user options|^$/);
    });
  }
});

describe("laptop fixture, R4.2", () => {
  it("List shows persistent attachments by port; Attach and Detach (halted only) change them", async () => {
    const s = await sim("r4.2");
    expect(await ok(s.socketPath, "admin.vm.device.pci.List", "", "sys-net")).toBe("dom0+00_14.3 no-strict-reset=True persistent=yes\n");
    expect(await ok(s.socketPath, "admin.vm.device.pci.Available", "00_14.3", "dom0")).toBe("00_14.3 interfaces=p028000 _sbdf=0000:00:14.3 description=Intel Corporation Alder Lake-P PCH CNVi WiFi\n");
    // No Assigned on R4.2: a ProtocolError, which R4.2's qubesd answers by closing without a byte.
    expect(await raw(s, "admin.vm.device.pci.Assigned", "", "sys-net")).toBe("");
    expect(await ok(s.socketPath, "admin.vm.device.usb.Attach", "sys-usb+2-1", "default-dvm", "persistent=True")).toBe("");
    expect(await ok(s.socketPath, "admin.vm.device.usb.List", "", "default-dvm")).toBe("sys-usb+2-1 persistent=yes\n");
    // sys-net runs: R4.2 removes a persistent attachment only from a halted qube (devices.py detach).
    expect(await raw(s, "admin.vm.device.pci.Detach", "dom0+00_14.3", "sys-net")).toBe("2\0QubesVMNotHaltedError\0\0Can not remove a persistent attachment from a non halted vm\0");
    expect(await ok(s.socketPath, "admin.vm.device.usb.Detach", "sys-usb+2-1", "default-dvm")).toBe("");
  });
});
