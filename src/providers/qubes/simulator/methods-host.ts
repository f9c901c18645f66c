// Host-side methods of the simulated dom0: device classes and assignments (methods-devices.ts),
// the per-qube list of denied device interfaces, and backup profiles (none are configured).

import { method, type Call, type MethodSpec, type Shape } from "./call.js";
import { deviceMethods } from "./methods-devices.js";
import { protocolError, qubesError } from "./errors.js";
import { assignProp, lookupProp, qubeHolder, readProp } from "./model.js";

const INTERFACE_RE = /^[bump*][0-9a-f*]{6}$/;

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
