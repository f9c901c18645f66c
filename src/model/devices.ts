// Device assignments: the classes, addresses, modes and options a config may give a qube, and
// the wire formats of the Admin API's device calls on each release, as pure data and functions.
// R4.3 and later (qubes-core-admin release4.3/main qubes/device_protocol.py DeviceAssignment,
// VirtualDevice, DeviceSerializer; qubes/api/admin.py vm_device_*) assign by port and device
// identity with a mode; R4.2 (release4.2 qubes/api/admin.py vm_device_attach/list) attaches
// persistently by port with `key=value` options. `usb` is served by qubes-app-linux-usb-proxy
// (qubesusbproxy/core3ext.py, setup.py entry point `qubes.devices: usb`), `mic` by
// qubes-gui-daemon (qubesguidaemon/mic.py). No I/O here; nothing is sent that was not checked.

/** Device classes a config may assign. */
export type DeviceClass = "pci" | "usb" | "block" | "mic";
export const DEVICE_CLASSES: readonly DeviceClass[] = ["pci", "usb", "block", "mic"];
export const isDeviceClass = (s: string): s is DeviceClass => (DEVICE_CLASSES as readonly string[]).includes(s);

/** Modes as written on the wire (AssignmentMode values); `manual` is a live attachment, never an assignment. */
export type AssignmentMode = "required" | "auto-attach" | "ask-to-attach";
/** Config spelling → wire value. */
export const CONFIG_MODES: Readonly<Record<string, AssignmentMode>> = { required: "required", "auto-attach": "auto-attach", ask: "ask-to-attach" };
export const configModeOf = (m: AssignmentMode): string => (m === "ask-to-attach" ? "ask" : m);

/**
 * Which device the assignment accepts at its port: the one present there when the plan runs
 * (`present`, as `qvm-device assign` does; the plan resolves it to an id), any device (`any`:
 * `device_id='*'`, a loosening), or a given identity.
 */
export type DeviceIdentity = { kind: "present" } | { kind: "any" } | { kind: "id"; id: string };

/** One assignment the config asks for. `backend:port` is its address (as `qvm-device` writes it). */
export type DesiredDevice = {
  devclass: DeviceClass;
  backend: string;
  port: string;
  mode: AssignmentMode;
  /** Option name → value as sent (`no-strict-reset` → `True`), sorted by name. */
  options: ReadonlyMap<string, string>;
  identity: DeviceIdentity;
};

/** One assignment Qubes holds (Assigned on R4.3+, the persistent lines of List on R4.2). */
export type ActualAssignment = {
  devclass: DeviceClass;
  backend: string;
  port: string;
  /** `*` for any; undefined on R4.2, which has no identity. */
  deviceId?: string;
  /** R4.2 has no modes: a persistent assignment reads as `required` for pci, `auto-attach` otherwise. */
  mode: AssignmentMode | "manual";
  options: ReadonlyMap<string, string>;
};

/** A device a backend offers (Available). */
export type ExposedDevice = { devclass: DeviceClass; backend: string; port: string; deviceId?: string; description?: string };

export const deviceAddress = (backend: string, port: string): string => `${backend}:${port}`;
/**
 * The ownership record key of an assignment (docs/ownership.md): `device.<class>.<backend>.<port>`
 * (feature names allow only letters, digits and `_.-`). It reads back unambiguously: pci and mic
 * come only from dom0, and usb and block ports hold no dot, so the backend is all before the last one.
 */
export const deviceRecordKey = (devclass: DeviceClass, backend: string, port: string): `device.${string}` => `device.${devclass}.${backend}.${port}`;

/** The assignment a record key (after `device.`) names; undefined when it names none. */
export function parseDeviceRecord(k: string): { devclass: DeviceClass; backend: string; port: string } | undefined {
  const dot = k.indexOf(".");
  const devclass = k.slice(0, dot);
  if (dot <= 0 || !isDeviceClass(devclass)) return undefined;
  const rest = k.slice(dot + 1);
  const cut = devclass === "pci" || devclass === "mic" ? (rest.startsWith("dom0.") ? 4 : -1) : rest.lastIndexOf(".");
  if (cut <= 0) return undefined;
  const backend = rest.slice(0, cut);
  const port = rest.slice(cut + 1);
  const ok = checkDeviceAddress(devclass, deviceAddress(backend, port));
  return "error" in ok ? undefined : { devclass, backend, port };
}
/** The attribute key of an assignment in a plan's before/after: `devices.pci.dom0:00_14.3`. */
export const deviceAttrKey = (devclass: DeviceClass, backend: string, port: string): string => `devices.${devclass}.${deviceAddress(backend, port)}`;

// ---------------------------------------------------------------------------------------------
// Validation

const VM_NAME_RE = /^[A-Za-z][A-Za-z0-9_.-]{0,30}$/;
// qubes/utils.py sbdf_to_path: `[segment_]bus_dev.fn`, then `-bus_dev.fn` per bridge.
const PCI_PORT_RE = /^([0-9a-f]{4}_)?[0-9a-f]{2}_[0-9a-f]{2}\.[0-9a-f](-[0-9a-f]{2}_[0-9a-f]{2}\.[0-9a-f])*$/;
// qubesusbproxy/core3ext.py usb_device_re.
const USB_PORT_RE = /^[0-9]+-[0-9]+(_[0-9]+)*$/;
// qubes/ext/block.py name_re.
const BLOCK_PORT_RE = /^[a-z0-9-]{1,12}$/;
/** Option names and values R4.2 accepts (vm_device_attach's allowed_chars_key / _value), a subset of R4.3's. */
const OPTION_NAME_RE = /^[A-Za-z0-9_.-]+$/;
const OPTION_VALUE_RE = /^[A-Za-z0-9_.,+:-]*$/;
/** A device identity that survives the qrexec argument and the serialization (`'` and spaces never). */
const DEVICE_ID_RE = /^[A-Za-z0-9_.:*?-]{1,200}$/;

/** Why `backend:port` is no address of class `devclass`; null when it is one. */
export function checkDeviceAddress(devclass: DeviceClass, address: string): { backend: string; port: string } | { error: string } {
  const colon = address.indexOf(":");
  if (colon <= 0) return { error: `'${address}' is not BACKEND:PORT (as qvm-device lists it, e.g. dom0:00_14.3 or sys-usb:2-1)` };
  const backend = address.slice(0, colon);
  const port = address.slice(colon + 1);
  if (!VM_NAME_RE.test(backend)) return { error: `'${backend}' is not a qube name` };
  switch (devclass) {
    case "pci":
      if (backend !== "dom0") return { error: "only dom0 offers PCI devices (qubes/ext/pci.py)" };
      return PCI_PORT_RE.test(port) ? { backend, port } : { error: `'${port}' is not a PCI port (BUS_DEVICE.FUNCTION in hex, e.g. 00_14.3)` };
    case "usb":
      return USB_PORT_RE.test(port) ? { backend, port } : { error: `'${port}' is not a USB port (e.g. 2-1 or 1-1_2)` };
    case "block":
      return BLOCK_PORT_RE.test(port) ? { backend, port } : { error: `'${port}' is not a block device name (a-z, 0-9 and -, at most 12)` };
    case "mic":
      if (backend !== "dom0" || port !== "mic") return { error: "the microphone is dom0:mic (qubesguidaemon/mic.py)" };
      return { backend, port };
    default: {
      const never: never = devclass;
      return never;
    }
  }
}

/** The options each class takes, with their values (the libvirt templates and extensions that read them). */
export const DEVICE_OPTIONS: Readonly<Record<DeviceClass, Readonly<Record<string, { values: readonly string[] | RegExp; doc: string }>>>> = {
  // qubes/ext/pci.py renders templates/libvirt/devices/pci.xml with `options`.
  pci: {
    "no-strict-reset": { values: ["True", "False"], doc: "allow a device that cannot be reset cleanly" },
    permissive: { values: ["True", "False"], doc: "let the qube write any PCI config register" },
  },
  // qubes/ext/block.py pre_attachment_internal.
  block: {
    "read-only": { values: ["yes", "no"], doc: "attach read-only" },
    "frontend-dev": { values: /^xvd[a-z]+$/, doc: "device name in the qube (xvdi, ...)" },
    devtype: { values: ["disk", "cdrom"], doc: "disk or cdrom" },
  },
  // qubesusbproxy/core3ext.py on_device_assign_usb and qubesguidaemon/mic.py: no user options.
  usb: {},
  mic: {},
};

export const checkDeviceOption = (devclass: DeviceClass, name: string, value: string): string | null => {
  const spec = DEVICE_OPTIONS[devclass][name];
  if (!OPTION_NAME_RE.test(name) || spec === undefined) {
    const known = Object.keys(DEVICE_OPTIONS[devclass]);
    return known.length === 0 ? `${devclass} assignments take no options` : `unknown ${devclass} option '${name}' (known: ${known.join(", ")})`;
  }
  const ok = Array.isArray(spec.values) ? spec.values.includes(value) : (spec.values as RegExp).test(value);
  if (!ok || !OPTION_VALUE_RE.test(value)) return `option ${name}: '${value}' is not ${Array.isArray(spec.values) ? spec.values.join(" or ") : "valid"}`;
  return null;
};

/**
 * The modes a class may be assigned with (qubesadmin/devices.py `assign`: PCI only required;
 * only pci and block can be required).
 */
export function checkDeviceMode(devclass: DeviceClass, mode: AssignmentMode): string | null {
  if (devclass === "pci" && mode !== "required") return "a PCI device can only be assigned as required (qubesadmin/devices.py)";
  if (mode === "required" && devclass !== "pci" && devclass !== "block") return "only pci and block devices can be required (qubesadmin/devices.py)";
  return null;
}

export const defaultDeviceMode = (devclass: DeviceClass): AssignmentMode => (devclass === "pci" ? "required" : "auto-attach");

export const isSafeDeviceId = (id: string): boolean => DEVICE_ID_RE.test(id);

// ---------------------------------------------------------------------------------------------
// R4.3 and later: qubes/device_protocol.py

/** `VirtualDevice.repr_for_qarg`: `backend+port+id` with `:` → `+`, the unknown interface and `*` → `_`. */
export function deviceQarg(backend: string, port: string, deviceId: string): string {
  return `${backend}+${port}:${deviceId}`.replace(/:/g, "+").replace(/\?\*{6}/g, "_______").replace(/\*/g, "_");
}

/** `DeviceSerializer.serialize_str`. */
const quote = (v: string): string => `'${v.replace(/'/g, "\\'")}'`;

/** `DeviceAssignment.serialize()` for an Assign payload (frontend_domain set, as qubesadmin's `_add`). */
export function assignmentPayload(d: { devclass: DeviceClass; backend: string; port: string; deviceId: string; mode: AssignmentMode; options: ReadonlyMap<string, string> }, frontend: string): string {
  const parts = [
    `device_id=${quote(d.deviceId)}`,
    `port_id=${quote(d.port)}`,
    `devclass=${quote(d.devclass)}`,
    `backend_domain=${quote(d.backend)}`,
    `mode=${quote(d.mode)}`,
    `frontend_domain=${quote(frontend)}`,
    ...[...d.options].map(([k, v]) => `_${k}=${quote(v)}`),
  ];
  return parts.join(" ");
}

/** `DeviceSerializer.unpack_properties`: `key='value' ...` (values may hold `\'`). */
export function unpackProperties(text: string): { properties: Map<string, string>; options: Map<string, string> } | { error: string } {
  const properties = new Map<string, string>();
  const options = new Map<string, string>();
  const s = text.trim();
  if (s === "") return { properties, options };
  const keys: string[] = [];
  const values: string[] = [];
  let [key, rest] = partition(s, "='");
  keys.push(key.trim());
  while (rest.includes("='")) {
    const [valueKey, after] = partition(rest, "='");
    rest = after;
    const cut = valueKey.lastIndexOf("' ");
    if (cut < 0) return { error: `malformed properties: ${JSON.stringify(text.slice(0, 80))}` };
    values.push(valueKey.slice(0, cut).replace(/\\'/g, "'"));
    keys.push(valueKey.slice(cut + 2).trim());
  }
  if (!rest.endsWith("'")) return { error: `malformed properties: ${JSON.stringify(text.slice(0, 80))}` };
  values.push(rest.slice(0, -1).replace(/\\'/g, "'"));
  for (const [i, k] of keys.entries()) {
    if (!/^[A-Za-z0-9_!#$%&()*+,./:;<>?@[\]^{|}~-]+$/.test(k)) return { error: `invalid property name ${JSON.stringify(k)}` };
    const v = values[i] ?? "";
    if (k.startsWith("_")) options.set(k.slice(1), v);
    else properties.set(k, v);
  }
  return { properties, options };
}

function partition(s: string, sep: string): [string, string] {
  const i = s.indexOf(sep);
  return i < 0 ? [s, ""] : [s.slice(0, i), s.slice(i + sep.length)];
}

const sortedOptions = (m: ReadonlyMap<string, string>): Map<string, string> => new Map([...m].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));

/** One line of `admin.vm.device.<class>.Assigned` (or Attached): `backend+port:devid key='v' ...`. */
export function parseAssignedLine(devclass: DeviceClass, line: string): ActualAssignment | { error: string } {
  const sp = line.indexOf(" ");
  const head = sp < 0 ? line : line.slice(0, sp);
  const plus = head.indexOf("+");
  if (plus <= 0) return { error: `not an assignment line: ${JSON.stringify(line.slice(0, 80))}` };
  const backend = head.slice(0, plus);
  const [port, headId] = partition(head.slice(plus + 1), ":");
  const unpacked = unpackProperties(sp < 0 ? "" : line.slice(sp + 1));
  if ("error" in unpacked) return unpacked;
  const p = unpacked.properties;
  if ((p.get("port_id") ?? port) !== port || (p.get("backend_domain") ?? backend) !== backend) return { error: `assignment line disagrees with its head: ${JSON.stringify(line.slice(0, 80))}` };
  if ((p.get("devclass") ?? devclass) !== devclass) return { error: `a ${p.get("devclass")} assignment in the ${devclass} list` };
  const mode = p.get("mode") ?? "manual";
  if (mode !== "required" && mode !== "auto-attach" && mode !== "ask-to-attach" && mode !== "manual") return { error: `unknown assignment mode ${JSON.stringify(mode)}` };
  return { devclass, backend, port, deviceId: p.get("device_id") ?? (headId === "" ? "*" : headId), mode, options: sortedOptions(unpacked.options) };
}

/** One line of `admin.vm.device.<class>.Available` on R4.3+: `port:devid key='v' ...`. */
export function parseAvailableLine(devclass: DeviceClass, backend: string, line: string): ExposedDevice | { error: string } {
  const sp = line.indexOf(" ");
  const head = sp < 0 ? line : line.slice(0, sp);
  const [port, headId] = partition(head, ":");
  const unpacked = unpackProperties(sp < 0 ? "" : line.slice(sp + 1));
  if ("error" in unpacked) return unpacked;
  const p = unpacked.properties;
  const description = [p.get("vendor"), p.get("product")].filter((x) => x !== undefined && x !== "").join(" ");
  const out: ExposedDevice = { devclass, backend, port: p.get("port_id") ?? port, deviceId: p.get("device_id") ?? headId };
  if (description !== "") out.description = description;
  return out;
}

// ---------------------------------------------------------------------------------------------
// R4.2: release4.2 qubes/api/admin.py

/** `Attach` payload of a persistent attachment: sorted `key=value` options, `persistent=True` among them (qubesadmin release4.2 devices.py `attach`). */
export function attachPayloadR42(options: ReadonlyMap<string, string>): string {
  const all = new Map(options);
  all.set("persistent", "True");
  return [...all].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([k, v]) => `${k}=${v}`).join(" ");
}

export const deviceQargR42 = (backend: string, port: string): string => `${backend}+${port}`;

/** One line of R4.2's `admin.vm.device.<class>.List`: `backend+ident k=v ... persistent=yes|no`; null for a live attachment. */
export function parseListLineR42(devclass: DeviceClass, line: string): ActualAssignment | null | { error: string } {
  const [head, ...rest] = line.split(" ").filter((t) => t !== "");
  const plus = head === undefined ? -1 : head.indexOf("+");
  if (head === undefined || plus <= 0) return { error: `not a device line: ${JSON.stringify(line.slice(0, 80))}` };
  const options = new Map<string, string>();
  let persistent = false;
  for (const t of rest) {
    const eq = t.indexOf("=");
    if (eq <= 0) return { error: `not key=value: ${JSON.stringify(t)}` };
    const k = t.slice(0, eq);
    const v = t.slice(eq + 1);
    if (k === "persistent") persistent = v === "yes";
    else options.set(k, v);
  }
  if (!persistent) return null;
  return { devclass, backend: head.slice(0, plus), port: head.slice(plus + 1), mode: defaultDeviceMode(devclass), options: sortedOptions(options) };
}

/** One line of R4.2's Available: `ident k=v ... description=...`. */
export function parseAvailableLineR42(devclass: DeviceClass, backend: string, line: string): ExposedDevice | { error: string } {
  const sp = line.indexOf(" ");
  const port = sp < 0 ? line : line.slice(0, sp);
  if (port === "") return { error: "empty device line" };
  const d = line.indexOf("description=");
  const out: ExposedDevice = { devclass, backend, port };
  if (d >= 0) out.description = line.slice(d + "description=".length);
  return out;
}
