// Device methods of the simulated qubesd, per release (releases.ts `devices`): R4.3 and main
// serve Available/Assigned/Attached/Assign/Unassign/Set.assignment (release4.3 and main
// qubes/api/admin.py vm_device_*, qubes/devices.py DeviceCollection, qubes/device_protocol.py
// serialisation); R4.2 serves Available/List/Attach/Detach/Set.persistent with persistent
// attachments by port (release4.2 qubes/api/admin.py, qubes/devices.py). Which classes exist is
// the world's (`admin.deviceclass.List`: the recorded block and pci, plus usb from
// qubes-app-linux-usb-proxy and mic from qubes-gui-daemon in the laptop fixture); the devices
// offered are the world's `devices.exposed`, seen only while their backend runs (dom0 always).
// Live attachments (mode manual, R4.3+ Attach/Detach) are not modelled.

import { isAdminVm, method, type Call, type MethodSpec, type Shape } from "./call.js";
import { emptyReply, permissionDenied, protocolError, pyRepr, qubesError, vmNotFound, vmNotRunning } from "./errors.js";
import type { AssignmentDocument, ExposedDevice, Qube, World } from "./state.js";

/** Every class a simulated dom0 may serve; a world serves those in `devices.classes`. */
export const SIM_DEVICE_CLASSES = ["block", "mic", "pci", "usb"] as const;

const READ: Shape = { dest: "any", arg: "optional", payload: "none", mutates: false };
const WRITE_PAYLOAD: Shape = { dest: "any", arg: "required", payload: "optional", mutates: true };
const WRITE: Shape = { dest: "any", arg: "required", payload: "none", mutates: true };

/** Whether the world serves the device class a method name is about (`admin.vm.device.<class>.*`). */
export function deviceClassServed(world: World, methodName: string): boolean {
  const m = /^admin\.vm\.device\.([a-z]+)\./.exec(methodName);
  if (m === null || m[1] === "denied") return true;
  return world.devices.classes.includes(m[1] as string);
}

const quote = (v: string): string => `'${v.replace(/'/g, "\\'")}'`;
const packed = (pairs: ReadonlyArray<[string, string]>): string => pairs.map(([k, v]) => `${k}=${quote(v)}`).join(" ");

/** Devices a backend exposes now: dom0's always, a qube's only while it runs (its qubesdb is read). */
function exposedBy(world: World, backend: Qube, devclass: string): ExposedDevice[] {
  if (!isAdminVm(backend) && backend.power !== "Running") return [];
  return world.devices.exposed.filter((d) => d.backend === backend.name && d.devclass === devclass);
}

/** DeviceInfo.serialize(): VirtualDevice's four, then the device's own properties. */
const deviceInfo = (d: ExposedDevice): string =>
  packed([["device_id", d.device_id], ["port_id", d.port_id], ["devclass", d.devclass], ["backend_domain", d.backend], ...Object.entries(d.props)]);

/** DeviceAssignment.serialize(). */
const assignmentText = (a: AssignmentDocument, frontend: string): string =>
  packed([["device_id", a.device_id], ["port_id", a.port_id], ["devclass", a.devclass], ["backend_domain", a.backend], ["mode", a.mode], ["frontend_domain", frontend], ...a.options.map(([k, v]): [string, string] => [`_${k}`, v])]);

/** VirtualDevice.from_qarg: `backend+port+id...` with `_` for `*`. */
function fromQarg(world: World, arg: string): { backend: Qube; port: string; deviceId: string } {
  const plus = arg.indexOf("+");
  if (plus < 0) throw emptyReply("ValueError: not enough values to unpack");
  const name = arg.slice(0, plus);
  const backend = world.qubes.get(name);
  if (backend === undefined) throw vmNotFound(name);
  const identity = arg.slice(plus + 1).replace(/\+/g, ":");
  const colon = identity.indexOf(":");
  let port = colon < 0 ? identity : identity.slice(0, colon);
  let devid = colon < 0 ? "" : identity.slice(colon + 1);
  if (port === "_") port = "*";
  if (devid === "_") devid = "*";
  devid = devid.replace(/_______/g, "?******");
  return { backend, port, deviceId: devid === "" ? "0000:0000::?******" : devid };
}

/** qubes/api/admin.py load_device_info: the exposed device when its identity agrees, else the virtual one. */
function loadDevice(world: World, devclass: string, v: { backend: Qube; port: string; deviceId: string }): { backend: Qube; port: string; deviceId: string } {
  if (v.port === "*" || v.deviceId === "*") return v;
  const d = exposedBy(world, v.backend, devclass).find((x) => x.port_id === v.port);
  return d !== undefined && d.device_id === v.deviceId ? { ...v, deviceId: d.device_id } : v;
}

/** DeviceSerializer.unpack_properties (errors as the ProtocolError DeviceAssignment.deserialize raises). */
function unpack(text: string): { properties: Map<string, string>; options: Array<[string, string]> } {
  const properties = new Map<string, string>();
  const options: Array<[string, string]> = [];
  const s = text.trim();
  if (s === "") return { properties, options };
  const keys: string[] = [];
  const values: string[] = [];
  let i = s.indexOf("='");
  if (i < 0) throw protocolError("not enough values to unpack");
  keys.push(s.slice(0, i).trim());
  let rest = s.slice(i + 2);
  while ((i = rest.indexOf("='")) >= 0) {
    const valueKey = rest.slice(0, i);
    rest = rest.slice(i + 2);
    const cut = valueKey.lastIndexOf("' ");
    values.push(valueKey.slice(0, Math.max(cut, 0)).replace(/\\'/g, "'"));
    keys.push(valueKey.slice(cut + 2).trim());
  }
  values.push(rest.slice(0, -1).replace(/\\'/g, "'"));
  for (const [j, k] of keys.entries()) {
    if (!/^[A-Za-z0-9!#$%&()*+,\-./:;<>?@[\\\]^_{|}~]+$/.test(k)) throw protocolError(`Invalid chars in property name: ${pyRepr(k)}`);
    const v = values[j] ?? "";
    if (k.startsWith("_")) options.push([k.slice(1), v]);
    else properties.set(k, v);
  }
  return { properties, options };
}

const MODES = new Set(["manual", "ask-to-attach", "auto-attach", "required"]);

function assignedLines(call: Call, devclass: string, pick: (a: AssignmentDocument) => boolean): string {
  let list = call.dest.assignments.filter((a) => a.devclass === devclass && pick(a));
  if (call.arg !== "") {
    const plus = call.arg.indexOf("+");
    const backend = call.arg.slice(0, plus);
    const port = call.arg.slice(plus + 1);
    list = list.filter((a) => a.backend === backend && a.port_id === port);
  }
  return list
    .map((a) => `${a.backend}+${a.port_id}:${a.device_id} ${assignmentText(a, call.dest.name)}\n`)
    .sort()
    .join("");
}

/** R4.3 and main. */
function assignmentMethods(devclass: string): Record<string, MethodSpec> {
  return {
    [`admin.vm.device.${devclass}.Available`]: method(READ, (call) => {
      if (devclass === "pci" && isAdminVm(call.dest) && !call.world.devices.pciOnline) throw qubesError("QubesException", "VMM operations disabled in offline mode");
      let list = exposedBy(call.world, call.dest, devclass);
      if (call.arg !== "") list = list.filter((d) => d.port_id === call.arg);
      return list.map((d) => `${d.port_id}:${d.device_id} ${deviceInfo(d)}\n`).sort().join("");
    }),
    [`admin.vm.device.${devclass}.Assigned`]: method(READ, (call) => assignedLines(call, devclass, () => true)),
    // PCI devices of a running qube are attached at its start; other classes' live state is not modelled.
    [`admin.vm.device.${devclass}.Attached`]: method(READ, (call) =>
      devclass === "pci" && call.dest.power === "Running" ? assignedLines(call, devclass, (a) => a.mode === "required") : "",
    ),
    [`admin.vm.device.${devclass}.Assign`]: method(WRITE_PAYLOAD, (call) => {
      const dev = loadDevice(call.world, devclass, fromQarg(call.world, call.arg));
      const { properties, options } = unpack(Buffer.from(call.payload).toString("latin1"));
      // DeviceSerializer.parse_basic_device_properties: the payload must describe the argument's device.
      if ((properties.get("backend_domain") ?? dev.backend.name) !== dev.backend.name) throw protocolError(`Got device exposed by ${properties.get("backend_domain")}when expected devices from ${dev.backend.name}.`);
      if ((properties.get("port_id") ?? dev.port) !== dev.port) throw protocolError(`Got device from port: ${properties.get("port_id")} when expected port: ${dev.port}.`);
      if ((properties.get("devclass") ?? devclass) !== devclass) throw protocolError(`Got ${properties.get("devclass")} device when expected ${devclass}.`);
      const deviceId = dev.deviceId === "*" ? (properties.get("device_id") ?? "*") : dev.deviceId;
      if (dev.deviceId !== "*" && (properties.get("device_id") ?? dev.deviceId) !== dev.deviceId) throw protocolError(`Unrecognized device identity '${properties.get("device_id")}' expected '${dev.deviceId}'`);
      const mode = properties.get("mode") ?? "manual";
      if (!MODES.has(mode)) throw protocolError(`'${mode}' is not a valid AssignmentMode`);
      if (devclass === "usb" && options.length > 0) throw qubesError("QubesException", "USB device assignment does not support user options");
      if (devclass === "mic" && options.length > 0) throw qubesError("QubesException", "Microphone assignment does not support user options");
      if (call.dest.assignments.some((a) => a.devclass === devclass && a.backend === dev.backend.name && a.port_id === dev.port && a.device_id === deviceId)) {
        throw qubesError("DeviceAlreadyAssigned", `${devclass} device ${dev.backend.name}:${dev.port}:${deviceId} already assigned to ${call.dest.name}`);
      }
      if (mode === "manual") throw emptyReply("ValueError: Only auto-attachable devices can be assigned.");
      call.dest.assignments.push({ devclass, backend: dev.backend.name, port_id: dev.port, device_id: deviceId, mode, options });
      call.emit(call.dest.name, `device-assign:${devclass}`, { device: `${dev.backend.name}:${dev.port}:${deviceId}` });
      return null;
    }),
    [`admin.vm.device.${devclass}.Unassign`]: method(WRITE, (call) => {
      const dev = loadDevice(call.world, devclass, fromQarg(call.world, call.arg));
      const i = call.dest.assignments.findIndex((a) => a.devclass === devclass && a.backend === dev.backend.name && a.port_id === dev.port && a.device_id === dev.deviceId);
      if (i < 0) throw qubesError("DeviceNotAssigned", `${devclass} device ${dev.backend.name}:${dev.port}:${dev.deviceId} not assigned to ${call.dest.name}`);
      call.dest.assignments.splice(i, 1);
      call.emit(call.dest.name, `device-unassign:${devclass}`, { device: `${dev.backend.name}:${dev.port}:${dev.deviceId}` });
      return null;
    }),
    [`admin.vm.device.${devclass}.Set.assignment`]: method(WRITE_PAYLOAD, (call) => {
      const mode = Buffer.from(call.payload).toString("latin1");
      if (mode !== "required" && mode !== "ask-to-attach" && mode !== "auto-attach") throw permissionDenied("");
      const dev = fromQarg(call.world, call.arg);
      const a = call.dest.assignments.find((x) => x.devclass === devclass && x.backend === dev.backend.name && x.port_id === dev.port && x.device_id === dev.deviceId);
      if (a === undefined) throw qubesError("QubesValueError", `Device ${dev.backend.name}:${dev.port}:${dev.deviceId} not assigned to ${call.dest.name}`);
      if (a.mode !== mode) {
        a.mode = mode;
        call.emit(call.dest.name, `device-assignment-changed:${devclass}`, { device: `${dev.backend.name}:${dev.port}:${dev.deviceId}` });
      }
      return null;
    }),
  };
}

/** R4.2's backend+ident argument, the backend looked up (KeyError → QubesVMNotFoundError). */
function identArg(call: Call): { backend: Qube; ident: string } {
  const plus = call.arg.indexOf("+");
  if (plus < 0) throw emptyReply("ValueError: not enough values to unpack");
  const name = call.arg.slice(0, plus);
  const backend = call.world.qubes.get(name);
  if (backend === undefined) throw vmNotFound(name);
  return { backend, ident: call.arg.slice(plus + 1) };
}

const R42_OPTION_KEY = /^[A-Za-z0-9_.-]+$/;
const R42_OPTION_VALUE = /^[A-Za-z0-9_.,+:-]+$/;

/** R4.2. A persistent attachment is stored as an assignment of the class's default mode and any identity. */
function persistentMethods(devclass: string): Record<string, MethodSpec> {
  const defaultMode = devclass === "pci" ? "required" : "auto-attach";
  return {
    [`admin.vm.device.${devclass}.Available`]: method(READ, (call) => {
      if (devclass === "pci" && isAdminVm(call.dest) && !call.world.devices.pciOnline) throw qubesError("QubesException", "VMM operations disabled in offline mode");
      let list = exposedBy(call.world, call.dest, devclass);
      if (call.arg !== "") list = list.filter((d) => d.port_id === call.arg);
      // Properties, then the description last (the API's rule).
      const line = (d: ExposedDevice): string => {
        const description = [d.props.vendor, d.props.product].filter((x) => x !== undefined).join(" ") || "Unknown device";
        return `${d.port_id} ${Object.entries(d.props).filter(([k]) => k !== "vendor" && k !== "product").map(([k, v]) => `${k}=${v}`).concat([`description=${description}`]).join(" ")}\n`;
      };
      return list.map(line).sort().join("");
    }),
    [`admin.vm.device.${devclass}.List`]: method(READ, (call) => {
      let list = call.dest.assignments.filter((a) => a.devclass === devclass);
      if (call.arg !== "") list = list.filter((a) => `${a.backend}+${a.port_id}` === call.arg);
      return list.map((a) => `${a.backend}+${a.port_id} ${[...a.options.map(([k, v]) => `${k}=${v}`), "persistent=yes"].join(" ")}\n`).sort().join("");
    }),
    [`admin.vm.device.${devclass}.Attach`]: method(WRITE_PAYLOAD, (call) => {
      const options: Array<[string, string]> = [];
      let persistent = false;
      for (const opt of Buffer.from(call.payload).toString("latin1").split(/\s+/).filter((t) => t !== "")) {
        const eq = opt.indexOf("=");
        if (eq < 0) throw protocolError("Invalid options format");
        const k = opt.slice(0, eq);
        const v = opt.slice(eq + 1);
        if (k === "persistent") {
          const b = v.toLowerCase();
          if (!["0", "1", "no", "yes", "false", "true", "off", "on"].includes(b)) throw qubesError("QubesValueError", `Invalid literal for boolean property: ${pyRepr(v)}`);
          persistent = ["1", "yes", "true", "on"].includes(b);
        } else {
          if (!R42_OPTION_KEY.test(k)) throw protocolError("Invalid chars in option name");
          if (!R42_OPTION_VALUE.test(v)) throw protocolError("Invalid chars in option value");
          options.push([k, v]);
        }
      }
      const { backend, ident } = identArg(call);
      if (!persistent && call.dest.power === "Halted") throw vmNotRunning(call.dest.name);
      if (call.dest.assignments.some((a) => a.devclass === devclass && a.backend === backend.name && a.port_id === ident)) {
        throw qubesError("DeviceAlreadyAttached", `device ${backend.name}:${ident} of class ${devclass} already attached to ${call.dest.name}`);
      }
      if (devclass === "usb" && options.some(([k]) => k !== "identity")) throw qubesError("QubesException", "USB device attach do not support user options");
      if (devclass === "mic" && options.length > 0) throw qubesError("QubesException", "Microphone assignment does not support user options");
      if (devclass === "pci" && String(call.dest.props.get("virt_mode") ?? "") === "pvh") throw qubesError("QubesException", "Can't attach PCI device to VM in pvh mode");
      if (persistent) call.dest.assignments.push({ devclass, backend: backend.name, port_id: ident, device_id: "*", mode: defaultMode, options });
      call.emit(call.dest.name, `device-attach:${devclass}`, { device: `${backend.name}:${ident}` });
      return null;
    }),
    [`admin.vm.device.${devclass}.Detach`]: method(WRITE, (call) => {
      const { backend, ident } = identArg(call);
      const i = call.dest.assignments.findIndex((a) => a.devclass === devclass && a.backend === backend.name && a.port_id === ident);
      if (i >= 0 && call.dest.power !== "Halted") throw qubesError("QubesVMNotHaltedError", "Can not remove a persistent attachment from a non halted vm");
      if (i < 0) throw qubesError("DeviceNotAttached", `device ${ident} of class ${devclass} not attached to ${call.dest.name}`);
      call.dest.assignments.splice(i, 1);
      call.emit(call.dest.name, `device-detach:${devclass}`, { device: `${backend.name}:${ident}` });
      return null;
    }),
    [`admin.vm.device.${devclass}.Set.persistent`]: method(WRITE_PAYLOAD, (call) => {
      const payload = Buffer.from(call.payload).toString("latin1");
      if (payload !== "True" && payload !== "False") throw permissionDenied("");
      const { backend, ident } = identArg(call);
      // The device must be attached: only persistent attachments are modelled, so True changes nothing.
      const i = call.dest.assignments.findIndex((a) => a.devclass === devclass && a.backend === backend.name && a.port_id === ident);
      if (i < 0) throw permissionDenied("");
      if (payload === "False") call.dest.assignments.splice(i, 1);
      return null;
    }),
  };
}

export function deviceMethods(): Record<string, MethodSpec> {
  const methods: Record<string, MethodSpec> = {
    "admin.deviceclass.List": method({ dest: "adminvm", arg: "none", payload: "none", mutates: false }, (call) => call.world.devices.classes.map((c) => `${c}\n`).join("")),
  };
  for (const c of SIM_DEVICE_CLASSES) {
    // Both sets are registered; releases.ts takes away what a release does not serve. Available
    // is the same method on every release, with the release's reply format.
    const a = assignmentMethods(c);
    const p = persistentMethods(c);
    const available = `admin.vm.device.${c}.Available`;
    Object.assign(methods, a, p);
    methods[available] = method(READ, (call) => ((call.world.release.devices === "persistent" ? p[available] : a[available]) as MethodSpec).run(call));
  }
  return methods;
}
