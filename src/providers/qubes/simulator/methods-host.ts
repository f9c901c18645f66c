// Host-side methods of the simulated dom0: device classes and listings (no devices exist, and
// PCI enumeration needs the hypervisor, as in the offline recording), the per-qube list of
// denied device interfaces, and backup profiles (none are configured).

import { method, type Call, type MethodSpec, type Shape } from "./call.js";
import { isAdminVm } from "./call.js";
import { protocolError, qubesError } from "./errors.js";
import { assignProp, lookupProp, qubeHolder, readProp } from "./model.js";

const DEVICE_CLASSES = ["block", "pci"] as const;
const INTERFACE_RE = /^[bump*?][0-9a-f*]{6}$/;

const READ: Shape = { dest: "any", arg: "optional", payload: "none", mutates: false };

function deviceMethods(): Record<string, MethodSpec> {
  const methods: Record<string, MethodSpec> = {
    "admin.deviceclass.List": method({ dest: "adminvm", arg: "none", payload: "none", mutates: false }, () =>
      DEVICE_CLASSES.map((c) => `${c}\n`).join(""),
    ),
  };
  for (const cls of DEVICE_CLASSES) {
    methods[`admin.vm.device.${cls}.Available`] = method(READ, (call) => {
      if (cls === "pci" && isAdminVm(call.dest)) throw qubesError("QubesException", "VMM operations disabled in offline mode");
      return "";
    });
    methods[`admin.vm.device.${cls}.Assigned`] = method(READ, () => "");
    methods[`admin.vm.device.${cls}.Attached`] = method(READ, () => "");
    // R4.2's listing of assigned and attached devices (only R4.2 serves it: releases.ts).
    methods[`admin.vm.device.${cls}.List`] = method(READ, () => "");
  }
  return methods;
}

function deniedList(call: Call): string[] {
  const v = readProp(call.world, qubeHolder(call.dest), "devices_denied");
  const s = typeof v === "string" ? v : "";
  const out: string[] = [];
  for (let i = 0; i + 7 <= s.length; i += 7) out.push(s.slice(i, i + 7));
  return out;
}

/** Payload of denied.Add/Remove: 7-character interface codes written back to back. */
function interfaces(call: Call): string[] {
  const s = Buffer.from(call.payload).toString("latin1");
  if (s.length % 7 !== 0) throw qubesError("QubesValueError", "Invalid length of device interfaces");
  const codes: string[] = [];
  for (let i = 0; i < s.length; i += 7) {
    const code = s.slice(i, i + 7);
    if (!INTERFACE_RE.test(code)) throw qubesError("QubesValueError", `Invalid device interface: ${code}`);
    codes.push(code);
  }
  if (new Set(codes).size !== codes.length) throw protocolError("Duplicated device interfaces in payload.");
  return codes;
}

function storeDenied(call: Call, codes: string[]): void {
  const h = qubeHolder(call.dest);
  assignProp(call.world, h, lookupProp(call.world, h, "devices_denied"), codes.join(""), call.emit);
}

const deniedMethods: Record<string, MethodSpec> = {
  "admin.vm.device.denied.List": method({ dest: "any", arg: "none", payload: "none", mutates: false }, (call) =>
    deniedList(call).join("\n"),
  ),
  "admin.vm.device.denied.Add": method({ dest: "any", arg: "none", payload: "optional", mutates: true }, (call) => {
    const current = deniedList(call);
    const added = interfaces(call).filter((c) => !current.includes(c));
    if (added.length > 0) storeDenied(call, [...current, ...added]);
    return null;
  }),
  "admin.vm.device.denied.Remove": method({ dest: "any", arg: "none", payload: "optional", mutates: true }, (call) => {
    const current = deniedList(call);
    const all = Buffer.from(call.payload).toString("latin1") === "all";
    const removed = all ? current : interfaces(call);
    const kept = current.filter((c) => !removed.includes(c));
    if (kept.length !== current.length) storeDenied(call, kept);
    return null;
  }),
};

function profileArg(call: Call): string {
  if (call.arg.includes("/")) throw protocolError("Backup profile name cannot contain '/'");
  return call.arg;
}

const BACKUP: Shape = { dest: "adminvm", arg: "required", payload: "none", mutates: false };
const backupMethods: Record<string, MethodSpec> = {
  "admin.backup.Info": method(BACKUP, (call) => {
    throw qubesError("QubesBackupProfileNotFoundError", `Backup profile does not exist: ${profileArg(call)}`);
  }),
  "admin.backup.Execute": method(BACKUP, (call) => {
    throw qubesError("QubesBackupProfileNotFoundError", `Backup profile does not exist: ${profileArg(call)}`);
  }),
  "admin.backup.Cancel": method(BACKUP, (call) => {
    profileArg(call);
    throw qubesError("QubesException", "Backup operation not running");
  }),
};

export function hostMethods(): Record<string, MethodSpec> {
  return { ...deviceMethods(), ...deniedMethods, ...backupMethods };
}
