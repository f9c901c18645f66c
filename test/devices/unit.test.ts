// Pure parts of devices: addresses and record keys read back, the wire forms of upstream
// (qubes/device_protocol.py repr_for_qarg, serialize, unpack_properties), and the copy of a clone
// source's assignments (devicesOfSource, for `clone_devices: true`).
import { describe, expect, it } from "vitest";
import {
  assignmentPayload,
  attachPayloadR42,
  checkDeviceAddress,
  deviceQarg,
  deviceRecordKey,
  parseAssignedLine,
  parseDeviceRecord,
  parseListLineR42,
  unpackProperties,
} from "../../src/model/devices.js";
import { devicesOfSource } from "../../src/plan/diff-devices.js";

describe("addresses and records", () => {
  it("checks each class's port form", () => {
    expect(checkDeviceAddress("pci", "dom0:00_14.3")).toEqual({ backend: "dom0", port: "00_14.3" });
    expect(checkDeviceAddress("pci", "dom0:0000_00_1c.0-00_00.0")).toEqual({ backend: "dom0", port: "0000_00_1c.0-00_00.0" });
    expect(checkDeviceAddress("usb", "sys-usb:1-1_2")).toEqual({ backend: "sys-usb", port: "1-1_2" });
    expect("error" in checkDeviceAddress("usb", "sys-usb:sda")).toBe(true);
    expect("error" in checkDeviceAddress("pci", "sys-net:00_14.3")).toBe(true);
    expect("error" in checkDeviceAddress("block", "sys-usb:sda1;rm")).toBe(true);
  });
  it("a record key reads back to the assignment it names, whatever dots the names hold", () => {
    for (const [c, b, p] of [["pci", "dom0", "00_14.3"], ["usb", "sys.usb", "2-1"], ["block", "my.usb-qube", "sda1"], ["mic", "dom0", "mic"]] as const) {
      expect(parseDeviceRecord(deviceRecordKey(c, b, p).slice("device.".length))).toEqual({ devclass: c, backend: b, port: p });
    }
    expect(parseDeviceRecord("pci.sys-net.00_14.3")).toBeUndefined();
    expect(parseDeviceRecord("usb.sys-usb")).toBeUndefined();
  });
});

describe("wire forms", () => {
  it("the qrexec argument: ':' as '+', '*' as '_', the unknown interface as '_______'", () => {
    expect(deviceQarg("dom0", "00_14.3", "8086:51f0::p028000")).toBe("dom0+00_14.3+8086+51f0++p028000");
    expect(deviceQarg("sys-usb", "2-1", "*")).toBe("sys-usb+2-1+_");
    expect(deviceQarg("sys-usb", "2-1", "0000:0000::?******")).toBe("sys-usb+2-1+0000+0000++_______");
  });
  it("an Assign payload parses back with upstream's algorithm", () => {
    const text = assignmentPayload({ devclass: "pci", backend: "dom0", port: "00_14.3", deviceId: "8086:51f0::p028000", mode: "required", options: new Map([["no-strict-reset", "True"]]) }, "sys-net");
    expect(text).toBe("device_id='8086:51f0::p028000' port_id='00_14.3' devclass='pci' backend_domain='dom0' mode='required' frontend_domain='sys-net' _no-strict-reset='True'");
    const u = unpackProperties(text);
    expect("error" in u ? u : [...u.properties.entries(), ...u.options.entries()]).toEqual([
      ["device_id", "8086:51f0::p028000"],
      ["port_id", "00_14.3"],
      ["devclass", "pci"],
      ["backend_domain", "dom0"],
      ["mode", "required"],
      ["frontend_domain", "sys-net"],
      ["no-strict-reset", "True"],
    ]);
    expect(unpackProperties("name='it\\'s' x='y'")).toEqual({ properties: new Map([["name", "it's"], ["x", "y"]]), options: new Map() });
  });
  it("Assigned and R4.2 List lines", () => {
    expect(parseAssignedLine("usb", "sys-usb+2-1:* device_id='*' port_id='2-1' devclass='usb' backend_domain='sys-usb' mode='ask-to-attach' frontend_domain='work'")).toEqual({
      devclass: "usb",
      backend: "sys-usb",
      port: "2-1",
      deviceId: "*",
      mode: "ask-to-attach",
      options: new Map(),
    });
    expect("error" in (parseAssignedLine("usb", "sys-usb+2-1:x devclass='pci'") as object)).toBe(true);
    expect(parseListLineR42("pci", "dom0+00_14.3 no-strict-reset=True persistent=yes")).toEqual({ devclass: "pci", backend: "dom0", port: "00_14.3", mode: "required", options: new Map([["no-strict-reset", "True"]]) });
    expect(parseListLineR42("usb", "sys-usb+2-1 persistent=no")).toBeNull();
    expect(attachPayloadR42(new Map([["read-only", "yes"]]))).toBe("persistent=True read-only=yes");
  });
});

describe("a clone source's assignments (clone_devices: true)", () => {
  it("become the clone's desired devices with the source's identity, mode and options", () => {
    const copied = devicesOfSource(
      new Map([
        ["pci", [{ devclass: "pci", backend: "dom0", port: "00_14.3", deviceId: "8086:51f0::p028000", mode: "required", options: new Map([["no-strict-reset", "True"]]) }]],
        ["usb", [{ devclass: "usb", backend: "sys-usb", port: "2-1", deviceId: "*", mode: "auto-attach", options: new Map() }]],
      ] as const),
    );
    expect([...copied]).toEqual([
      ["devices.pci.dom0:00_14.3", { devclass: "pci", backend: "dom0", port: "00_14.3", mode: "required", options: new Map([["no-strict-reset", "True"]]), identity: { kind: "id", id: "8086:51f0::p028000" } }],
      ["devices.usb.sys-usb:2-1", { devclass: "usb", backend: "sys-usb", port: "2-1", mode: "auto-attach", options: new Map(), identity: { kind: "any" } }],
    ]);
  });
});
