// The property model of qubesd as data: for every VM class and for the global (Qubes) object,
// which properties exist, their wire type, load stage (which fixes List/GetAll order), how the
// default is derived (from the template, a global, the netvm...), and what the setter refuses.
// Derived from the recordings (fixture-state.jsonl, classes.jsonl); resolution lives in model.ts.

import { emptyReply, pyRepr, qubesError, vmNotHalted, type SimError } from "./errors.js";
import { parseIPv6 } from "./ip.js";
import type { PropOwner, Release } from "./releases.js";
import type { PropValue, Qube, VmClass, World } from "./state.js";

export const NO_VALUE = Symbol("no value");
/** A property's current value; NO_VALUE when unset without a default (qubesd's AttributeError). */
export type Value = PropValue | typeof NO_VALUE;

export type WireType = "str" | "int" | "bool" | "vm" | "label";
/** How Set's payload is parsed (property.sanitize): the wire type, or a stricter Python type. */
export type ParseAs = WireType | "ipv4" | "ipv6" | "uuid";

export type Holder = { kind: "qube"; qube: Qube } | { kind: "app" };

/** What defaults and setters may read. Implemented by model.ts. */
export type PropCtx = {
  world: World;
  holder: Holder;
  get(name: string): Value;
  /** A property of another qube; NO_VALUE when its class has no such property. */
  of(q: Qube, name: string): Value;
  global(name: string): Value;
  qube(name: Value): Qube | undefined;
};

export type PropDef = {
  name: string;
  wire: WireType;
  parseAs: ParseAs;
  /** qubesd's load_stage; List and GetAll sort by (stage, name). */
  stage: number;
  /** read-only: setter `forbidden`; write-once: set at creation, Set/Reset fail with an empty reply. */
  access: "rw" | "read-only" | "write-once";
  default?: (c: PropCtx) => Value;
  /** Checks and normalises a sanitised value, as the property's setter does; throws SimError. */
  setter?: (c: PropCtx, value: PropValue) => PropValue;
  /** VM properties: whether an empty payload (None) is accepted, and the class a target must have. */
  allowNone?: boolean;
  vmClass?: VmClass;
  help: string;
};

// ---------------------------------------------------------------------------------------------
// Building blocks

const selfQube = (c: PropCtx): Qube => {
  if (c.holder.kind !== "qube") throw new Error("qube property read on the app object");
  return c.holder.qube;
};
const holderName = (c: PropCtx): string => (c.holder.kind === "qube" ? c.holder.qube.name : "Qubes");
const klassOf = (c: PropCtx): VmClass | "Qubes" => (c.holder.kind === "qube" ? c.holder.qube.klass : "Qubes");

const invalidValue = (c: PropCtx, prop: string, message: string): SimError =>
  qubesError("QubesPropertyValueError", message || `Invalid value for property ${pyRepr(prop)} of ${holderName(c)}`);

const constant =
  (v: PropValue) =>
  (): Value =>
    v;
const fromGlobal =
  (name: string) =>
  (c: PropCtx): Value =>
    c.global(name);

/** The template's value when the qube has a template with that property, else `fallback`. */
function fromTemplate(name: string, fallback: (c: PropCtx) => Value): (c: PropCtx) => Value {
  return (c) => {
    const tpl = c.qube(c.get("template"));
    if (tpl) {
      const v = c.of(tpl, name);
      if (v !== NO_VALUE) return v;
    }
    return fallback(c);
  };
}

const isOn = (v: Value): boolean => v === true;

/** Qubes whose netvm is `q`. */
export function connectedVms(c: PropCtx, q: Qube): Qube[] {
  return [...c.world.qubes.values()].filter((o) => o !== q && c.of(o, "netvm") === q.name);
}

/** netvm name → the qubes connected to it, built in one pass so graph walks stay linear. */
type NetvmIndex = ReadonlyMap<string, readonly Qube[]>;
function netvmIndex(c: PropCtx): NetvmIndex {
  const index = new Map<string, Qube[]>();
  for (const q of c.world.qubes.values()) {
    const netvm = c.of(q, "netvm");
    if (typeof netvm !== "string" || netvm === q.name) continue;
    const list = index.get(netvm);
    if (list) list.push(q);
    else index.set(netvm, [q]);
  }
  return index;
}

/** Every qube that reaches the network through `q`, directly or not. */
function vmsConnectedTo(c: PropCtx, q: Qube, index: NetvmIndex = netvmIndex(c)): Set<Qube> {
  const found = new Set<Qube>();
  const todo = [q];
  for (let cur = todo.pop(); cur; cur = todo.pop()) {
    for (const vm of index.get(cur.name) ?? []) {
      if (found.has(vm)) continue;
      found.add(vm);
      todo.push(vm);
    }
  }
  return found;
}

/** Features looked up on the qube, then along its template chain (features.check_with_template). */
export function featureWithTemplate(c: PropCtx, q: Qube, name: string): string | undefined {
  for (let cur: Qube | undefined = q, hops = 0; cur && hops < 16; hops++) {
    const v = cur.features.get(name);
    if (v !== undefined) return v;
    cur = c.qube(c.of(cur, "template"));
  }
  return undefined;
}

/** Features looked up on the qube, then along its netvm chain (features.check_with_netvm). */
export function featureWithNetvm(c: PropCtx, q: Qube, name: string): string | undefined {
  for (let cur: Qube | undefined = q, hops = 0; cur && hops < 64; hops++) {
    const v = cur.features.get(name);
    if (v !== undefined) return v;
    cur = c.qube(c.of(cur, "netvm"));
  }
  return undefined;
}

// ---------------------------------------------------------------------------------------------
// Network (qubes/vm/mix/net.py)

const IPV6_PREFIX = "fd09:24ef:4179:0000";

function isNetworked(c: PropCtx, q: Qube): boolean {
  return isOn(c.of(q, "provides_network")) || c.qube(c.of(q, "netvm")) !== undefined;
}
const ipv6Enabled = (c: PropCtx, q: Qube): boolean => {
  const v = featureWithNetvm(c, q, "ipv6");
  return v !== undefined && v !== "";
};

function ipFor(c: PropCtx, q: Qube): string {
  const dispid = q.klass === "DispVM" ? Number(c.of(q, "dispid")) : undefined;
  if (dispid !== undefined && Number.isInteger(dispid)) return `10.138.${(dispid >> 8) & 0xff}.${dispid & 0xff}`;
  const qid = Number(c.of(q, "qid"));
  return `10.137.${(qid >> 8) & 0xff}.${qid & 0xff}`;
}

function ip6For(c: PropCtx, q: Qube): string {
  const id = q.klass === "DispVM" ? Number(c.of(q, "dispid")) : Number(c.of(q, "qid"));
  const addr = `${IPV6_PREFIX}::${q.klass === "DispVM" ? "a8a" : "a89"}:${id.toString(16)}`;
  return parseIPv6(addr) ?? addr;
}

const ipDefault = (c: PropCtx): Value => {
  const q = selfQube(c);
  if (!isNetworked(c, q)) return null;
  return ipFor(c, q);
};
const ip6Default = (c: PropCtx): Value => {
  const q = selfQube(c);
  if (!isNetworked(c, q) || !ipv6Enabled(c, q)) return null;
  return ip6For(c, q);
};
const visibleIp = (c: PropCtx, q: Qube): Value => featureWithTemplate(c, q, "net.fake-ip") || c.of(q, "ip");
const gatewayOf = (c: PropCtx, q: Qube): Value => (isOn(c.of(q, "provides_network")) ? visibleIp(c, q) : null);
const gateway6Of = (c: PropCtx, q: Qube): Value =>
  ipv6Enabled(c, q) && isOn(c.of(q, "provides_network")) ? c.of(q, "ip6") : null;
const netmaskOf = (c: PropCtx, q: Qube): Value => (isNetworked(c, q) ? "255.255.255.255" : null);

// ---------------------------------------------------------------------------------------------
// Setters (messages are qubesd's)

const MAC_RE = /^([0-9a-f][0-9a-f]:){5}[0-9a-f][0-9a-f]$/;
const USER_CHARS_RE = /^[A-Za-z0-9_+,.-]*$/;

function positiveInt(name: string) {
  return (c: PropCtx, v: PropValue): PropValue => {
    if (BigInt(String(v)) <= 0n) throw invalidValue(c, name, `${name} must be positive`);
    return v;
  };
}

function nonNegativeInt(name: string) {
  return (c: PropCtx, v: PropValue): PropValue => {
    if (BigInt(String(v)) < 0n) throw invalidValue(c, name, `${name} must be positive or zero`);
    return v;
  };
}

function kernelSetter(c: PropCtx, v: PropValue): PropValue {
  const k = String(v ?? "");
  if (k === "") return "";
  if (k.includes("/")) throw invalidValue(c, "kernel", "Kernel name cannot contain '/'");
  if (!c.world.host.kernels.includes(k)) throw invalidValue(c, "kernel", `Kernel ${pyRepr(k)} not installed`);
  return k;
}

function kernelOptsSetter(c: PropCtx, v: PropValue): PropValue {
  const s = String(v ?? "");
  if (s.length > 512) throw invalidValue(c, "kernelopts", "Kernelopts value too long (512 chars max)");
  return s;
}

function defaultUserSetter(c: PropCtx, v: PropValue): PropValue {
  if (!USER_CHARS_RE.test(String(v))) {
    throw invalidValue(
      c,
      "default_user",
      "Username can contain only those characters: abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-+,.",
    );
  }
  return v;
}

function virtModeSetter(c: PropCtx, v: PropValue): PropValue {
  const mode = String(v).toLowerCase();
  if (mode !== "hvm" && mode !== "pv" && mode !== "pvh") {
    throw invalidValue(c, "virt_mode", "Invalid virtualization mode, supported values: hvm, pv, pvh");
  }
  return mode;
}

function keyboardLayoutSetter(c: PropCtx, v: PropValue): PropValue {
  const s = String(v);
  const parts = s.split("+");
  if (parts.length !== 3) throw invalidValue(c, "keyboard_layout", "invalid number of keyboard layout parameters");
  const [layout = "", variant = "", options = ""] = parts;
  if (!/^[A-Za-z]+$/.test(layout)) throw invalidValue(c, "keyboard_layout", "Invalid keyboard layout provided");
  if (!/^[A-Za-z0-9_-]*$/.test(variant)) throw invalidValue(c, "keyboard_layout", "Invalid layout variant provided");
  if (!/^[A-Za-z0-9_:,-]*$/.test(options)) throw invalidValue(c, "keyboard_layout", "Invalid layout options provided");
  return s;
}

function macSetter(_c: PropCtx, v: PropValue): PropValue {
  const mac = String(v).toLowerCase();
  // qubesd raises a bare ValueError here, which the caller sees as an empty reply.
  if (!MAC_RE.test(mac)) throw emptyReply("Invalid MAC address value");
  return mac;
}

// release4.3 qubes/vm/qubesvm.py _setter_denied_list: length a multiple of 7 (from_str_bulk),
// duplicates dropped and the codes sorted, then the class letter b/u/m/p/* and hex or * only.
function devicesDeniedSetter(c: PropCtx, v: PropValue): PropValue {
  const s = String(v ?? "");
  if (s === "") return "";
  if (s.length % 7 !== 0) throw qubesError("QubesValueError", `Invalid length of interfaces='${s}' (is ${s.length}, expected multiple of 7)`);
  const codes = new Set<string>();
  for (let i = 0; i < s.length; i += 7) codes.add(s.slice(i, i + 7));
  const sorted = [...codes].sort().join("");
  if (!/^([bump*][0-9a-f*]{6})*$/.test(sorted)) {
    throw invalidValue(c, "devices_denied", "Invalid list of denied device interfaces");
  }
  return sorted;
}

function netvmSetter(c: PropCtx, v: PropValue): PropValue {
  if (v === null) return null;
  const self = selfQube(c);
  const target = c.qube(v);
  if (!target) return v;
  const provides = c.of(target, "provides_network");
  // AdminVM has no provides_network attribute: an AttributeError inside qubesd.
  if (provides === NO_VALUE) throw emptyReply(`${target.name} has no provides_network`);
  if (!isOn(provides)) throw qubesError("QubesValueError", `The ${target.name} qube does not provide network`);
  if (target === self || vmsConnectedTo(c, self).has(target)) {
    throw qubesError("QubesValueError", "Loops in network are unsupported");
  }
  return v;
}

function providesNetworkSetter(c: PropCtx, v: PropValue): PropValue {
  if (v === false && connectedVms(c, selfQube(c)).length > 0) {
    throw qubesError("QubesValueError", "The qube is still used by other qubes, change theirs 'netvm' first");
  }
  return v;
}

/**
 * default_dispvm / management_dispvm: on main the target must be a disposable template
 * (qubes/vm/__init__.py validate_disposable_template); R4.2/R4.3 have no such setter.
 */
function dispvmTemplateSetter(name: string) {
  return (c: PropCtx, v: PropValue): PropValue => {
    if (v === null || !c.world.release.checksDispvmProperties) return v;
    const target = c.qube(v);
    if (target && !isOn(c.of(target, "template_for_dispvms"))) {
      const on = c.holder.kind === "app" ? "system" : `qube ${pyRepr(c.holder.qube.name)}`;
      throw invalidValue(c, name, `Cannot set invalid property to ${on}, ${name} ${pyRepr(target.name)} has template_for_dispvms set to False`);
    }
    return v;
  };
}

function appvmTemplateSetter(c: PropCtx, v: PropValue): PropValue {
  const self = selfQube(c);
  if (self.power !== "Halted") throw qubesError("QubesVMNotHaltedError", "Cannot change template while qube is running");
  return v;
}

function dispvmOwnTemplateSetter(c: PropCtx, v: PropValue): PropValue {
  const self = selfQube(c);
  const target = c.qube(v);
  if (target && !isOn(c.of(target, "template_for_dispvms"))) {
    throw invalidValue(c, "template", "template for disposable must have template_for_dispvms=True");
  }
  if (self.power !== "Halted") throw vmNotHalted(self.name);
  return v;
}

/** The release's rule for disabling template_for_dispvms (releases.ts, dispTemplateInUse). */
function templateForDispvmsSetter(c: PropCtx, v: PropValue): PropValue {
  if (v !== false) return v;
  const self = selfQube(c);
  const rule = c.world.release.dispTemplateInUse;
  const qubes = [...c.world.qubes.values()].filter((q) => q !== self);
  switch (rule.kind) {
    case "dispvms":
      if (qubes.some((q) => q.klass === "DispVM" && c.of(q, "template") === self.name)) throw qubesError("QubesVMInUseError", rule.message);
      return v;
    case "prop-deps": {
      // get_qube_prop_deps: a global VM property naming it (whether set or default), then an explicitly set one of a qube.
      if (["default_dispvm", "management_dispvm"].some((p) => c.global(p) === self.name)) throw qubesError("QubesVMInUseError", rule.system);
      if (qubes.some((q) => ["default_dispvm", "management_dispvm", "template"].some((p) => q.props.get(p) === self.name))) {
        throw qubesError("QubesVMInUseError", rule.qube);
      }
      return v;
    }
  }
}

function poolSetter(name: string) {
  return (c: PropCtx, v: PropValue): PropValue => {
    if (!c.world.pools.has(String(v))) throw invalidValue(c, name, "No such storage pool");
    return v;
  };
}

function defaultNetvmSetter(c: PropCtx, v: PropValue): PropValue {
  const target = c.qube(v);
  if (!target) return v;
  const byQid = [...c.world.qubes.values()].sort((a, b) => Number(c.of(a, "qid")) - Number(c.of(b, "qid")));
  // `target` is connected to a qube exactly when that qube is on target's own netvm chain.
  const upstream = new Set<Qube>();
  for (let cur = c.qube(c.of(target, "netvm")), hops = 0; cur && hops < 64; cur = c.qube(c.of(cur, "netvm")), hops++) upstream.add(cur);
  for (const vm of byQid) {
    if (c.of(vm, "netvm") === NO_VALUE || vm.props.has("netvm")) continue;
    if (target === vm || upstream.has(vm)) {
      throw invalidValue(c, "default_netvm", `Network loop on ${pyRepr(vm.name)}`);
    }
  }
  return v;
}

/** Properties that never hold a value of their own (stateless properties of qubesd). */
const computed = (name: string, wire: WireType, fn: (c: PropCtx) => Value, help: string, stage = 2): PropDef => ({
  name,
  wire,
  parseAs: wire,
  stage,
  access: "read-only",
  default: fn,
  help,
});

type Opts = Partial<Omit<PropDef, "name" | "wire">>;
const prop = (name: string, wire: WireType, help: string, o: Opts = {}): PropDef => ({
  name,
  wire,
  parseAs: o.parseAs ?? wire,
  stage: o.stage ?? 2,
  access: o.access ?? "rw",
  help,
  ...o,
});

// ---------------------------------------------------------------------------------------------
// Icons (the `icon` property): kind of qube + label name

function iconOf(c: PropCtx): Value {
  const q = selfQube(c);
  const label = c.get("label");
  if (typeof label !== "string") return NO_VALUE;
  if (q.klass === "AdminVM") return `adminvm-${label}`;
  if (q.klass === "TemplateVM" || isOn(c.get("template_for_dispvms"))) return `templatevm-${label}`;
  if (q.features.get("servicevm")) return `servicevm-${label}`;
  if (q.klass === "DispVM") return `dispvm-${label}`;
  if (q.klass === "StandaloneVM") return `standalonevm-${label}`;
  if (q.klass === "RemoteVM") return `remotevm-${label}`;
  return `appvm-${label}`;
}

function maxmemDefault(c: PropCtx): Value {
  const q = selfQube(c);
  if (c.get("virt_mode") === "hvm" && !featureWithTemplate(c, q, "qrexec")) return "0";
  const memory = c.get("memory");
  let mib = q.features.get("os") === "Linux" && typeof memory === "string" ? BigInt(memory) * 10n : 4000n;
  const half = BigInt(c.world.host.memoryMiB) / 2n;
  if (mib > half) mib = half;
  return fromTemplate("maxmem", () => mib.toString())(c);
}

function kerneloptsDefault(c: PropCtx): Value {
  const kernel = c.get("kernel");
  if (kernel === NO_VALUE || !kernel) return "";
  return fromTemplate("kernelopts", () => "swiotlb=2048")(c);
}

// ---------------------------------------------------------------------------------------------
// Tables

const NETVM_HELP =
  "VM that provides network connection to this domain. When None, machine is disconnected. When absent, domain uses default NetVM.";

/** Properties of every QubesVM-derived class (AppVM, TemplateVM, StandaloneVM, DispVM). */
const QUBESVM: PropDef[] = [
  prop("autostart", "bool", "Setting this to True means that VM should be autostarted on dom0 boot.", { default: constant(false) }),
  prop("backup_timestamp", "int", "Time of last backup of the qube, in seconds since unix epoch", { default: constant(null) }),
  prop("debug", "bool", "Turns on debugging features.", { default: constant(false) }),
  prop("default_user", "str", "Default user to start applications as. TemplateBasedVMs use its template's value by default.", {
    default: fromTemplate("default_user", constant("user")),
    setter: defaultUserSetter,
  }),
  prop("devices_denied", "str", "List of device interfaces that are denied for this qube.", {
    default: constant(""),
    setter: devicesDeniedSetter,
  }),
  computed("dns", "str", (c) => (isNetworked(c, selfQube(c)) ? "10.139.1.1 10.139.1.2" : null), "DNS servers set up for this domain."),
  computed("gateway", "str", (c) => gatewayOf(c, selfQube(c)), "Gateway for other domains that use this domain as netvm."),
  computed("gateway6", "str", (c) => gateway6Of(c, selfQube(c)), "Gateway (IPv6) for other domains that use this domain as netvm."),
  computed("icon", "str", iconOf, "freedesktop icon name, suitable for use in QIcon.fromTheme()"),
  prop("include_in_backups", "bool", "If this domain is to be included in default backup.", { default: constant(true) }),
  prop("installed_by_rpm", "bool", "If this domain's image was installed from package tracked by package manager.", {
    default: constant(false),
  }),
  prop("ip", "str", "IP address of this domain.", { parseAs: "ipv4", default: ipDefault }),
  prop("ip6", "str", "IPv6 address of this domain.", { parseAs: "ipv6", default: ip6Default }),
  prop("kernel", "str", "Kernel used by this domain. TemplateBasedVMs use its template's value by default.", {
    default: fromTemplate("kernel", fromGlobal("default_kernel")),
    setter: kernelSetter,
  }),
  prop("keyboard_layout", "str", "Keyboard layout for this VM", {
    default: (c) => {
      const guivm = c.qube(c.get("guivm"));
      const v = guivm ? c.of(guivm, "keyboard_layout") : NO_VALUE;
      return v === NO_VALUE ? "us++" : v;
    },
    setter: keyboardLayoutSetter,
  }),
  computed("klass", "str", (c) => klassOf(c), "Domain class name"),
  prop("label", "label", "Colourful label assigned to VM. This is where the colour of the padlock is set."),
  prop("mac", "str", "MAC address of the NIC emulated inside VM", { default: constant("00:16:3e:5e:6c:00"), setter: macSetter }),
  prop(
    "maxmem",
    "int",
    "Maximum amount of memory available for this VM (for the purpose of the memory balancer). Set to 0 to disable memory balancing for this qube. TemplateBasedVMs use its template's value by default (unless memory balancing not supported for this qube).",
    { default: maxmemDefault, setter: nonNegativeInt("maxmem") },
  ),
  prop("memory", "int", "Memory currently available for this VM. TemplateBasedVMs use its template's value by default.", {
    default: fromTemplate("memory", constant("400")),
    setter: positiveInt("memory"),
  }),
  prop("name", "str", "User-specified name of the domain.", { access: "write-once" }),
  prop("provides_network", "bool", "If this domain can act as network provider (formerly known as NetVM or ProxyVM)", {
    default: constant(false),
    setter: providesNetworkSetter,
  }),
  prop("qid", "int", "Internal, persistent identificator of particular domain. Note this is different from Xen domid.", {
    access: "write-once",
  }),
  prop(
    "qrexec_timeout",
    "int",
    "Time in seconds after which qrexec connection attempt is deemed failed. Operating system inside VM should be able to boot in this time.",
    { default: fromTemplate("qrexec_timeout", fromGlobal("default_qrexec_timeout")), setter: positiveInt("qrexec_timeout") },
  ),
  prop(
    "shutdown_timeout",
    "int",
    "Time in seconds for shutdown of the VM, after which VM may be forcefully powered off. Operating system inside VM should be able to fully shutdown in this time.",
    { default: fromTemplate("shutdown_timeout", fromGlobal("default_shutdown_timeout")), setter: positiveInt("shutdown_timeout") },
  ),
  computed("start_time", "str", (c) => selfQube(c).startTime, "Tell when machine was started."),
  prop("stubdom_mem", "int", "Memory amount allocated for the stubdom", { default: constant(null), setter: positiveInt("stubdom_mem") }),
  computed("stubdom_uuid", "str", constant(null), "Stub domain UUID."),
  computed("stubdom_xid", "int", constant("-1"), "Stub domain Xen ID."),
  computed(
    "updateable",
    "bool",
    (c) => c.holder.kind === "qube" && ["TemplateVM", "StandaloneVM", "AdminVM"].includes(c.holder.qube.klass),
    "True if this machine may be updated on its own.",
  ),
  prop("uuid", "str", "UUID from libvirt.", { parseAs: "uuid", access: "write-once" }),
  prop("vcpus", "int", "Number of virtual CPUs for a qube. TemplateBasedVMs use its template's value by default.", {
    default: fromTemplate("vcpus", constant("2")),
    setter: positiveInt("vcpus"),
  }),
  prop(
    "virt_mode",
    "str",
    'Virtualisation mode: full virtualisation ("HVM"), or paravirtualisation ("PV"), or hybrid ("PVH"). TemplateBasedVMs use its template\'s value by default.',
    { default: fromTemplate("virt_mode", constant("pvh")), setter: virtModeSetter },
  ),
  computed(
    "visible_gateway",
    "str",
    (c) => {
      const q = selfQube(c);
      const netvm = c.qube(c.get("netvm"));
      return featureWithTemplate(c, q, "net.fake-gateway") || (netvm ? gatewayOf(c, netvm) : null);
    },
    "Default gateway of this domain as seen by the domain.",
  ),
  computed(
    "visible_gateway6",
    "str",
    (c) => {
      const q = selfQube(c);
      const netvm = c.qube(c.get("netvm"));
      return ipv6Enabled(c, q) && netvm ? gateway6Of(c, netvm) : null;
    },
    "Default (IPv6) gateway of this domain as seen by the domain.",
  ),
  computed("visible_ip", "str", (c) => visibleIp(c, selfQube(c)), "IP address of this domain as seen by the domain."),
  computed("visible_ip6", "str", (c) => c.get("ip6"), "IPv6 address of this domain as seen by the domain."),
  computed(
    "visible_netmask",
    "str",
    (c) => {
      const q = selfQube(c);
      const netvm = c.qube(c.get("netvm"));
      return featureWithTemplate(c, q, "net.fake-netmask") || (netvm ? netmaskOf(c, netvm) : null);
    },
    "Netmask as seen by the domain.",
  ),
  computed("xid", "int", (c) => String(selfQube(c).xid), "Xen ID. Or not Xen, but ID."),
  prop("audiovm", "vm", "VM used for Audio", { stage: 4, allowNone: true, default: fromGlobal("default_audiovm") }),
  prop("bootmode", "str", "Boot mode of this qube (selects extra kernel options from features boot-mode.kernelopts.*).", {
    stage: 4,
    default: (c) => {
      const tpl = c.qube(c.get("template"));
      const v = tpl ? c.of(tpl, "appvm_default_bootmode") : NO_VALUE;
      return v === NO_VALUE ? "default" : v;
    },
  }),
  prop("default_dispvm", "vm", "Default VM to be used as Disposable VM for service calls.", {
    stage: 4,
    allowNone: true,
    default: fromGlobal("default_dispvm"),
    setter: dispvmTemplateSetter("default_dispvm"),
  }),
  prop("guivm", "vm", "VM used for Gui", { stage: 4, allowNone: true, default: fromGlobal("default_guivm") }),
  prop("kernelopts", "str", "Kernel command line passed to domain. TemplateBasedVMs use its template's value by default.", {
    stage: 4,
    default: kerneloptsDefault,
    setter: kernelOptsSetter,
  }),
  prop("management_dispvm", "vm", "Default DVM template for Disposable VM for managing this VM.", {
    stage: 4,
    allowNone: true,
    default: fromTemplate("management_dispvm", fromGlobal("management_dispvm")),
    setter: dispvmTemplateSetter("management_dispvm"),
  }),
  prop("netvm", "vm", NETVM_HELP, { stage: 4, allowNone: true, default: fromGlobal("default_netvm"), setter: netvmSetter }),
];

const TEMPLATE_FOR_DISPVMS = prop("template_for_dispvms", "bool", "Should this VM be allowed to start as Disposable VM", {
  default: constant(false),
  setter: templateForDispvmsSetter,
});

function override(base: PropDef[], changes: Record<string, Opts>, extra: PropDef[] = []): PropDef[] {
  return [...base.map((d) => (changes[d.name] ? { ...d, ...changes[d.name] } : d)), ...extra];
}

const APPVM = override(QUBESVM, {}, [
  TEMPLATE_FOR_DISPVMS,
  prop("template", "vm", "Template, on which this AppVM is based.", { stage: 4, vmClass: "TemplateVM", setter: appvmTemplateSetter }),
]);

const TEMPLATEVM = override(QUBESVM, { netvm: { default: constant(null) } }, [
  prop("appvm_default_bootmode", "str", "Default boot mode for qubes based on this template.", { stage: 4, default: constant("default") }),
]);

const STANDALONEVM = override(QUBESVM, {}, [TEMPLATE_FOR_DISPVMS]);

const DISPVM = override(
  QUBESVM,
  {
    include_in_backups: { default: (c) => !isOn(c.get("auto_cleanup")) },
    default_dispvm: { default: (c) => c.get("template") },
  },
  [
    prop("auto_cleanup", "bool", "automatically remove this qube upon shutdown", { default: constant(false) }),
    prop("dispid", "int", "Internal, persistent identifier of particular disposable.", { access: "write-once" }),
    computed("is_preload", "bool", constant(false), "Whether this disposable is preloaded and not yet used."),
    prop("template", "vm", "AppVM, on which this disposable is based.", { stage: 4, setter: dispvmOwnTemplateSetter }),
  ],
);

const ADMINVM: PropDef[] = [
  prop("devices_denied", "str", "List of device interfaces that are denied for this qube.", {
    default: constant(""),
    setter: devicesDeniedSetter,
  }),
  computed("icon", "str", iconOf, "freedesktop icon name, suitable for use in QIcon.fromTheme()"),
  prop("include_in_backups", "bool", "If this domain is to be included in default backup.", { default: constant(true) }),
  prop("keyboard_layout", "str", "Keyboard layout for this VM", { default: constant("us++"), setter: keyboardLayoutSetter }),
  computed("klass", "str", (c) => klassOf(c), "Domain class name"),
  prop("label", "label", "Colourful label assigned to VM. This is where the colour of the padlock is set."),
  computed("maxmem", "int", (c) => c.world.host.dom0MaxmemMiB, "Maximum memory allocated for this qube."),
  computed("name", "str", constant("dom0"), "The name of this VM"),
  computed("qid", "int", constant("0"), "The QID of this VM"),
  computed("updateable", "bool", constant(true), "True if this machine may be updated on its own."),
  computed("uuid", "str", constant("00000000-0000-0000-0000-000000000000"), "Machine UUID"),
  prop("default_dispvm", "vm", "Default VM to be used as Disposable VM for service calls.", {
    stage: 4,
    allowNone: true,
    default: fromGlobal("default_dispvm"),
    setter: dispvmTemplateSetter("default_dispvm"),
  }),
];

const REMOTEVM: PropDef[] = [
  computed("icon", "str", iconOf, "freedesktop icon name, suitable for use in QIcon.fromTheme()"),
  prop("include_in_backups", "bool", "If this domain is to be included in default backup.", { default: constant(false) }),
  computed("klass", "str", (c) => klassOf(c), "Domain class name"),
  prop("label", "label", "Colourful label assigned to VM. This is where the colour of the padlock is set."),
  prop("name", "str", "User-specified name of the domain.", { access: "write-once" }),
  prop("qid", "int", "Internal, persistent identificator of particular domain. Note this is different from Xen domid.", {
    access: "write-once",
  }),
  prop("remote_name", "str", "Name of the qube on the remote side.", { default: (c) => selfQube(c).name }),
  prop("transport_rpc", "str", "RPC service used to reach the remote qube.", { default: constant("qubesair.SSHProxy") }),
  prop("uuid", "str", "UUID from libvirt.", { parseAs: "uuid", access: "write-once" }),
  prop("relayvm", "vm", "Qube relaying the calls to the remote qube.", { stage: 4, allowNone: true, default: constant(null) }),
];

const GLOBAL: PropDef[] = [
  prop("check_updates_vm", "bool", "Check for updates inside qubes", { stage: 3, default: constant(true) }),
  prop("clockvm", "vm", "Which VM to use as NTP proxy for updating AdminVM", { stage: 3, allowNone: true, default: constant(null) }),
  prop("default_audiovm", "vm", "Default AudioVM for VMs.", { stage: 3, allowNone: true, default: constant("dom0") }),
  prop("default_dispvm", "vm", "Default disposable template to be used for spawning disposable qubes for service calls in this system.", {
    stage: 3,
    allowNone: true,
    default: constant(null),
    setter: dispvmTemplateSetter("default_dispvm"),
  }),
  prop("default_guivm", "vm", "Default GuiVM for VMs.", { stage: 3, allowNone: true, default: constant("dom0") }),
  prop("default_kernel", "str", "Which kernel to use when not overriden in VM", { stage: 3, setter: kernelSetter }),
  prop(
    "default_netvm",
    "vm",
    "Default NetVM for AppVMs. Initial state is None, which means that AppVMs are not connected to the Internet.",
    { stage: 3, allowNone: true, default: constant(null), setter: defaultNetvmSetter },
  ),
  prop("default_pool", "str", "Default storage pool", {
    stage: 3,
    default: (c) => {
      if (c.world.pools.has("default")) return "default";
      for (const p of c.world.pools.values()) {
        if ((p.driver === "file" || p.driver === "file-reflink") && p.config.get("dir_path") === "/var/lib/qubes") return p.name;
      }
      return NO_VALUE;
    },
    setter: poolSetter("default_pool"),
  }),
  ...["kernel", "private", "root", "volatile"].map((vol) =>
    prop(`default_pool_${vol}`, "str", `Default storage pool for ${vol} volumes`, {
      stage: 3,
      default: (c) => c.global("default_pool"),
      setter: poolSetter(`default_pool_${vol}`),
    }),
  ),
  prop("default_qrexec_timeout", "int", "Default time in seconds after which qrexec connection attempt is deemed failed", {
    stage: 3,
    default: constant("60"),
  }),
  prop("default_shutdown_timeout", "int", "Default time in seconds for VM shutdown to complete", { stage: 3, default: constant("60") }),
  prop("default_template", "vm", "Default template for new AppVMs", { stage: 3, allowNone: true, vmClass: "TemplateVM" }),
  prop(
    "management_dispvm",
    "vm",
    "Default disposable template to be used for spawning disposable qubes for managing a qube in this system.",
    { stage: 3, allowNone: true, default: constant(null), setter: dispvmTemplateSetter("management_dispvm") },
  ),
  computed("maxmem", "int", (c) => c.world.host.memoryMiB, "Maximum system memory.", 3),
  computed("no_cpus", "int", (c) => String(c.world.host.cpus), "Quantity of CPUs", 3),
  prop("stats_interval", "int", "Interval in seconds for VM stats reporting (memory, CPU usage)", { stage: 3, default: constant("3") }),
  prop("updatevm", "vm", "Which VM to use as `yum` proxy for updating AdminVM and TemplateVMs", {
    stage: 3,
    allowNone: true,
    default: constant(null),
  }),
];

export type PropTable = { list: readonly PropDef[]; byName: ReadonlyMap<string, PropDef> };

function table(defs: PropDef[]): PropTable {
  const list = [...defs].sort((a, b) => a.stage - b.stage || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return { list, byName: new Map(list.map((d) => [d.name, d])) };
}

/** main's properties per owner; a release's tables drop what it lacks and retype what differs. */
const DEFS: Record<PropOwner, PropDef[]> = {
  AppVM: APPVM,
  TemplateVM: TEMPLATEVM,
  StandaloneVM: STANDALONEVM,
  DispVM: DISPVM,
  AdminVM: ADMINVM,
  RemoteVM: REMOTEVM,
  Qubes: GLOBAL,
};

function releaseTable(release: Release, owner: PropOwner): PropTable {
  const absent = new Set(release.absentProps[owner] ?? []);
  return table(
    DEFS[owner].filter((d) => !absent.has(d.name)).map((d) => {
      const wire = release.propTypes[d.name];
      return wire === undefined ? d : { ...d, wire, parseAs: wire };
    }),
  );
}

const TABLES = new Map<Release, Record<PropOwner, PropTable>>();

export function propTable(holder: Holder, release: Release): PropTable {
  let tables = TABLES.get(release);
  if (!tables) {
    tables = Object.fromEntries((Object.keys(DEFS) as PropOwner[]).map((o) => [o, releaseTable(release, o)])) as Record<PropOwner, PropTable>;
    TABLES.set(release, tables);
  }
  return tables[holder.kind === "app" ? "Qubes" : holder.qube.klass];
}
