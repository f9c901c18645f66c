// The `laptop` fixture: a small system with the hardware of a laptop, to build a whole layout on
// (`sim serve --fixture laptop`). dom0 offers the PCI Wi-Fi controller 00_14.3, the USB
// controller 00_14.0 and the audio controller 00_1f.3, and the microphone (qubes-gui-daemon's
// mic class); sys-net holds 00_14.3 with no-strict-reset, sys-usb the USB controller and, while it
// runs, offers a USB stick at 2-1 and its partition sda1 (qubes-app-linux-usb-proxy's usb class,
// qubes/ext/block.py). Identities follow each class's device_id: PCI and USB
// `vendor:product:serial:interfaces`, block `<parent's identity>:<partition>`. Built from the
// generated base system (fixtures.ts), pure and deterministic.

import type { AssignmentDocument, DevicesDocument, StateDocument } from "./state.js";

const KEEP = new Set(["dom0", "fedora-41", "debian-12", "sys-net", "sys-firewall", "sys-usb", "default-dvm", "default-mgmt-dvm"]);

export const LAPTOP_DEVICES: DevicesDocument = {
  classes: ["block", "mic", "pci", "usb"],
  pci_online: true,
  exposed: [
    { backend: "dom0", devclass: "pci", port_id: "00_14.0", device_id: "8086:51ed::p0c0330", props: { vendor: "Intel Corporation", product: "Alder Lake PCH USB 3.2 xHCI Host Controller", interfaces: "p0c0330", _sbdf: "0000:00:14.0" } },
    { backend: "dom0", devclass: "pci", port_id: "00_14.3", device_id: "8086:51f0::p028000", props: { vendor: "Intel Corporation", product: "Alder Lake-P PCH CNVi WiFi", interfaces: "p028000", _sbdf: "0000:00:14.3" } },
    { backend: "dom0", devclass: "pci", port_id: "00_1f.3", device_id: "8086:51c8::p040300", props: { vendor: "Intel Corporation", product: "Alder Lake PCH-P High Definition Audio Controller", interfaces: "p040300", _sbdf: "0000:00:1f.3" } },
    { backend: "dom0", devclass: "mic", port_id: "mic", device_id: "dom0:mic::m000000", props: { manufacturer: "default", product: "microphone", interfaces: "m000000" } },
    { backend: "sys-usb", devclass: "usb", port_id: "2-1", device_id: "0781:5581:4C530001230517117153:u080650", props: { vendor: "SanDisk Corp.", product: "Ultra", serial: "4C530001230517117153", interfaces: "u080650" } },
    {
      backend: "sys-usb",
      devclass: "block",
      port_id: "sda1",
      device_id: "0781:5581:4C530001230517117153:u080650:1",
      props: { name: "Ultra", serial: "4C530001230517117153", interfaces: "b******", parent_port_id: "2-1", parent_devclass: "usb", _mode: "w", _size: "30752636928" },
    },
  ],
};

const pci = (port: string, id: string, options: Array<[string, string]> = []): AssignmentDocument => ({ devclass: "pci", backend: "dom0", port_id: port, device_id: id, mode: "required", options });

export function laptopFixture(base: StateDocument): StateDocument {
  const qubes = base.qubes
    .filter((q) => KEEP.has(q.name))
    .map((q) => {
      if (q.name === "sys-net") return { ...q, assignments: [pci("00_14.3", "8086:51f0::p028000", [["no-strict-reset", "True"]])] };
      if (q.name === "sys-usb") return { ...q, assignments: [pci("00_14.0", "8086:51ed::p0c0330")] };
      return q;
    });
  return { ...base, devices: LAPTOP_DEVICES, qubes };
}
