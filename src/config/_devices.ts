// A qube's `devices:` as written → the assignments of the desired state (src/model/devices.ts):
// addresses, modes, options and identities checked against what upstream accepts, each error
// located at its entry. The release does not matter here (the plan refuses what the detected
// release cannot do); the qube's own virt_mode does (a PCI device needs HVM: qubes/ext/pci.py).

import {
  CONFIG_MODES,
  checkDeviceAddress,
  checkDeviceMode,
  checkDeviceOption,
  defaultDeviceMode,
  deviceAttrKey,
  isDeviceClass,
  isSafeDeviceId,
  type DesiredDevice,
  type DeviceIdentity,
} from "../model/devices.js";
import type { PropertyValue } from "../model/desired.js";
import type { ConfigCode } from "./codes.js";
import { childPointer } from "./_paths.js";

type Report = (code: ConfigCode, message: string, ptr: string, hint?: string, key?: boolean) => void;

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);

/** The assignments by attribute key with the pointer of each; undefined when `raw` is not a mapping. */
export function normalizeDevices(
  qube: string,
  raw: unknown,
  ptr: string,
  virtMode: PropertyValue | undefined,
  report: Report,
): { devices: Map<string, DesiredDevice>; pointers: Map<string, string> } | undefined {
  if (!isRecord(raw)) return undefined;
  const devices = new Map<string, DesiredDevice>();
  const pointers = new Map<string, string>();
  for (const [devclass, entries] of Object.entries(raw)) {
    if (!isDeviceClass(devclass) || !isRecord(entries)) continue; // the schema reports it
    const cptr = childPointer(ptr, devclass);
    for (const [address, body] of Object.entries(entries)) {
      const eptr = childPointer(cptr, address);
      const parsed = checkDeviceAddress(devclass, address);
      if ("error" in parsed) {
        report("QIAC-E085", `${devclass} device '${address}' of qube '${qube}': ${parsed.error}`, eptr, "write BACKEND:PORT as `qvm-device " + devclass + " list` shows it", true);
        continue;
      }
      if (parsed.backend === qube) {
        report("QIAC-E085", `${devclass} device '${address}' of qube '${qube}': a qube cannot be given its own device`, eptr, undefined, true);
        continue;
      }
      const b = isRecord(body) ? body : {};
      let mode = defaultDeviceMode(devclass);
      if (typeof b.mode === "string") {
        const m = CONFIG_MODES[b.mode];
        if (m === undefined) continue; // the schema's enum reports it
        const bad = checkDeviceMode(devclass, m);
        if (bad) {
          report("QIAC-E086", `${devclass} device '${address}' of qube '${qube}': mode ${b.mode}: ${bad}`, childPointer(eptr, "mode"), devclass === "pci" ? "drop `mode` (pci is required)" : "use auto-attach or ask");
          continue;
        }
        mode = m;
      }
      const options = new Map<string, string>();
      let optionsOk = true;
      const optionEntries: Array<[string, unknown, string]> = Array.isArray(b.options)
        ? b.options.map((n, i) => [String(n), true, childPointer(childPointer(eptr, "options"), i)])
        : isRecord(b.options)
          ? Object.entries(b.options).map(([n, v]) => [n, v, childPointer(childPointer(eptr, "options"), n)])
          : [];
      for (const [name, value, optr] of optionEntries) {
        const text = value === true ? "True" : value === false ? "False" : typeof value === "string" ? value : undefined;
        if (text === undefined) continue;
        const bad = checkDeviceOption(devclass, name, text);
        if (bad || options.has(name)) {
          report("QIAC-E087", `${devclass} device '${address}' of qube '${qube}': ${bad ?? `option ${name} given twice`}`, optr);
          optionsOk = false;
          continue;
        }
        options.set(name, text);
      }
      if (!optionsOk) continue;
      let identity: DeviceIdentity = { kind: "present" };
      if (typeof b.device === "string") {
        if (b.device === "any") identity = { kind: "any" };
        else if (isSafeDeviceId(b.device) && !b.device.includes("*")) identity = { kind: "id", id: b.device };
        else {
          report("QIAC-E088", `${devclass} device '${address}' of qube '${qube}': '${b.device}' is not a device identity`, childPointer(eptr, "device"), "write `any`, or the identity `qvm-device " + devclass + " list` prints (VENDOR:PRODUCT:SERIAL:INTERFACES)");
          continue;
        }
      }
      if (devclass === "pci" && virtMode?.kind === "str" && virtMode.value === "pvh") {
        report("QIAC-E089", `qube '${qube}' has virt_mode pvh, and a PCI device needs hvm (qubes/ext/pci.py refuses PCI in pvh mode)`, eptr, "set `virt_mode: hvm` (or leave it to its default, which is hvm for a qube with a PCI device)", true);
        continue;
      }
      const key = deviceAttrKey(devclass, parsed.backend, parsed.port);
      devices.set(key, { devclass, backend: parsed.backend, port: parsed.port, mode, options: new Map([...options].sort(([x], [y]) => (x < y ? -1 : 1))), identity });
      pointers.set(key, eptr);
    }
  }
  return { devices, pointers };
}
