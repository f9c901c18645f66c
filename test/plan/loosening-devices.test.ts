// The device kinds of the loosening analysis over a qube change's before/after, in the attribute
// form the device diff writes (`devices.<class>.<backend>:<port>`: `mode=… device=…|any …`).
// Pure: the simulator's devices come with the devices branch; these tests pin the rules.
import { describe, expect, it } from "vitest";
import type { ActualState } from "../../src/model/actual.js";
import { newResourceChange, type Attributes } from "../../src/plan/changes.js";
import { deviceLoosening } from "../../src/plan/loosening-devices.js";
import { planLoosening } from "../../src/plan/loosening.js";

const kinds = (before: Attributes | null, after: Attributes | null, held?: ReadonlyMap<string, readonly unknown[]>): string[] => deviceLoosening(before, after, held).map((l) => `${l.kind} ${l.attribute}`);
const PCI = "devices.pci.dom0:00_14.3";
const PCI2 = "devices.pci.dom0:00_1f.6";
const USB = "devices.usb.sys-usb:2-1";

describe("device-given: a PCI or USB device given to a qube that had none", () => {
  it("the first device of a class is marked, once per class", () => {
    expect(kinds({ [PCI]: null, [PCI2]: null }, { [PCI]: "mode=required device=8086:a0f0", [PCI2]: "mode=required device=8086:15fc" })).toEqual([`device-given ${PCI}`]);
    expect(kinds({ [USB]: null }, { [USB]: "mode=auto-attach device=0781:5581" })).toEqual([`device-given ${USB}`]);
  });
  it("not when the qube has a device of that class already (in the plan, or read from Qubes), nor for a mode change or a removal", () => {
    expect(kinds({ [PCI]: "mode=required device=8086:a0f0", [PCI2]: null }, { [PCI]: "mode=required device=8086:a0f0", [PCI2]: "mode=required device=8086:15fc" })).toEqual([]);
    expect(kinds({ [PCI2]: null }, { [PCI2]: "mode=required device=8086:15fc" }, new Map([["pci", [{}]]]))).toEqual([]);
    expect(kinds({ [USB]: "mode=ask device=0781:5581" }, { [USB]: "mode=auto-attach device=0781:5581" })).toEqual([]);
    expect(kinds({ [USB]: "mode=ask device=0781:5581" }, { [USB]: null })).toEqual([]);
  });
  it("block and mic assignments are not PCI/USB devices", () => {
    expect(kinds({ "devices.block.sys-usb:sda": null }, { "devices.block.sys-usb:sda": "mode=auto-attach device=x" })).toEqual([]);
  });
});

describe("device-any: an assignment that accepts any device at its port", () => {
  it("a new `device: any`, or one that accepted one device before, is marked; keeping it is not", () => {
    expect(kinds({ [USB]: null }, { [USB]: "mode=auto-attach device=any" }, new Map([["usb", [{}]]]))).toEqual([`device-any ${USB}`]);
    expect(kinds({ [USB]: "mode=auto-attach device=0781:5581" }, { [USB]: "mode=auto-attach device=any" })).toEqual([`device-any ${USB}`]);
    expect(kinds({ [USB]: "mode=auto-attach device=any" }, { [USB]: "mode=ask device=any" })).toEqual([]);
    expect(kinds({ [USB]: "mode=auto-attach device=any" }, { [USB]: "mode=auto-attach device=0781:5581" })).toEqual([]);
  });
  it("R4.2 assigns by port only (the value names no device): a new USB or block assignment accepts anything there; a PCI slot does not", () => {
    expect(kinds({ [USB]: null }, { [USB]: "mode=auto-attach" }, new Map([["usb", [{}]]]))).toEqual([`device-any ${USB}`]);
    expect(kinds({ [PCI2]: null }, { [PCI2]: "mode=required" }, new Map([["pci", [{}]]]))).toEqual([]);
  });
});

describe("through the plan's analysis", () => {
  const actual: ActualState = { listing: new Map(), qubes: new Map(), scanned: false, dom0FeatureNames: new Set(), dom0Features: new Map(), pools: new Map() };
  it("a qube the plan creates with a USB device that accepts anything: both kinds, strongest first", () => {
    const c = newResourceChange("qube", "sys-usb-client", "qube.sys-usb-client", "create");
    c.after = { class: "AppVM", [USB]: "mode=auto-attach device=any" };
    expect(planLoosening([c], actual).get("qube.sys-usb-client")?.map((l) => l.kind)).toEqual(["device-any", "device-given"]);
  });
});
