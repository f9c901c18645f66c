// admin.vm.* methods that create, list, remove and run qubes: Create/CreateInPool per class,
// CreateDisposable, Remove, List, vmclass.List, Start/Shutdown/Kill/Pause/Unpause/Suspend/
// Resume, CurrentState, Console. Power is simulated: Start really marks the qube Running.

import type { Call, MethodSpec, Services } from "./call.js";
import { isAdminVm } from "./call.js";
import {
  emptyReply,
  permissionDenied,
  protocolError,
  pyRepr,
  qubesError,
  vmNotFound,
  vmNotHalted,
  vmNotRunning,
  vmNotStarted,
} from "./errors.js";
import { APP, addTag, ctxFor, eventValue, qubeHolder, readProp, vmProp, type Emit } from "./model.js";
import { propTable } from "./properties.js";
import { addQube, deleteQube, qidOf, VM_CLASSES, type PropValue, type Qube, type VmClass, type World } from "./state.js";
import { newVolumes, VOLUME_NAMES, type PoolChoice, type VolumeName } from "./volumes.js";
import { checkShutdownClients, checkShutdownPaused, resume, unpause } from "./running.js";
import { checkLabelName, checkVmName } from "../../../model/qubes-rules.js";

const MAX_DISPID = 10000;
const MAX_QID = 10000;

// ---------------------------------------------------------------------------------------------
// Listing

/** AdminVM and RemoteVM are always Running for qubesd. */
const alwaysRunning = (q: Qube): boolean => q.klass === "AdminVM" || q.klass === "RemoteVM";

function powerState(q: Qube): string {
  return alwaysRunning(q) ? "Running" : q.power;
}

/** admin.vm.List line; `withUuid` false gives the R4.2 format. */
function vmListLine(world: World, q: Qube, withUuid: boolean): string {
  const base = `${q.name} class=${q.klass} state=${powerState(q)}`;
  return withUuid ? `${base} uuid=${String(readProp(world, qubeHolder(q), "uuid"))}\n` : `${base}\n`;
}

/** AdminVM first, then by name (qubesd's VM ordering). */
function sortedQubes(world: World): Qube[] {
  return [...world.qubes.values()].sort((a, b) =>
    isAdminVm(a) !== isAdminVm(b) ? (isAdminVm(a) ? -1 : 1) : a.name < b.name ? -1 : a.name > b.name ? 1 : 0,
  );
}

// ---------------------------------------------------------------------------------------------
// Creation

const hasTemplate = (klass: VmClass): boolean => klass === "AppVM" || klass === "DispVM";

function newQid(world: World): number {
  const used = new Set([...world.qubes.values()].map(qidOf));
  for (let i = 1; i < MAX_QID; i++) if (!used.has(i)) return i;
  throw emptyReply("Cannot find unused qid!");
}

function newDispid(world: World, services: Services): number {
  const used = new Set([...world.qubes.values()].map((q) => q.props.get("dispid")).filter((v) => typeof v === "string"));
  for (let attempt = 0; attempt < MAX_DISPID; attempt++) {
    const id = services.randomInt(MAX_DISPID);
    if (!used.has(String(id)) && !world.qubes.has(`disp${id}`)) return id;
  }
  throw emptyReply("no unused dispid");
}

type NewQube = {
  klass: VmClass;
  name: string;
  label: string;
  template?: Qube;
  pools: PoolChoice;
  extraProps?: Record<string, PropValue>;
};

/** app.add_new_vm + create_on_disk, and the created-by tag of the admin API. */
function createQube(call: Call, spec: NewQube): Qube {
  const { world, emit } = call;
  const props = new Map<string, PropValue>([
    ["name", spec.name],
    ["qid", String(newQid(world))],
    ["uuid", call.services.randomUuid()],
    ["label", spec.label],
  ]);
  if (spec.template) props.set("template", spec.template.name);
  for (const [k, v] of Object.entries(spec.extraProps ?? {})) props.set(k, v);
  const qube: Qube = {
    name: spec.name,
    klass: spec.klass,
    props,
    features: new Map(),
    tags: new Set(),
    firewall: null,
    notes: "",
    volumes: [],
    power: "Halted",
    xid: -1,
    startTime: null,
  };
  if (spec.klass === "DispVM" && spec.template) inheritFromDispTemplate(qube, spec.template);
  addQube(world, qube);
  for (const prop of ["audiovm", "guivm"]) {
    const v = readProp(world, qubeHolder(qube), prop);
    if (typeof v === "string") qube.tags.add(`${prop}-${v}`);
  }
  qube.volumes = newVolumes(world, qube, spec.pools);
  emit(null, "domain-add", { vm: qube.name });
  tagCreatedBy(call, qube, `created-by-${call.src.name}`);
  return qube;
}

/** DispVM.__init__: explicit properties, firewall, features and tags of the disposable template. */
function inheritFromDispTemplate(disp: Qube, tpl: Qube): void {
  const own = propTable(qubeHolder(disp)).byName;
  for (const [name, value] of tpl.props) {
    if (["name", "qid", "uuid", "template", "dispid"].includes(name)) continue;
    if (own.get(name)?.access === "rw" && !disp.props.has(name)) disp.props.set(name, value);
  }
  disp.firewall = tpl.firewall ? [...tpl.firewall] : null;
  for (const [k, v] of tpl.features) if (!k.startsWith("preload-dispvm")) disp.features.set(k, v);
  for (const t of tpl.tags) disp.tags.add(t);
}

/** Adds created-by-<src>; the creator's `tag-created-vm-with` feature adds more (qubes.ext.admin). */
export function tagCreatedBy(call: Call, qube: Qube, tag: string): void {
  if (!addTag(qube, tag, call.emit)) return;
  const creator = call.world.qubes.get(tag.slice("created-by-".length));
  // qubesd looks the creator up by name and fails with a bare KeyError when there is none.
  if (!creator) throw emptyReply(`no qube ${tag.slice("created-by-".length)} for ${tag}`);
  for (const t of (creator.features.get("tag-created-vm-with") ?? "").split(" ")) {
    if (t !== "") addTag(qube, t, call.emit);
  }
}

function parseCreatePayload(call: Call, allowPool: boolean): { name: string; label: string; pools: PoolChoice } {
  if (call.payload.some((b) => b > 0x7f)) throw emptyReply("payload is not ASCII");
  const text = Buffer.from(call.payload).toString("latin1");
  let name: string | undefined;
  let label: string | undefined;
  const pools: PoolChoice = { perVolume: {} };
  const seen = new Set<string>();
  for (const token of text.split(" ")) {
    const eq = token.indexOf("=");
    if (eq < 0) throw emptyReply(`create option ${token} is not key=value`);
    const key = token.slice(0, eq);
    const value = token.slice(eq + 1);
    if (seen.has(key)) throw protocolError("duplicated parameters");
    seen.add(key);
    if (key === "name") {
      const err = checkVmName(value);
      if (err) throw qubesError("QubesValueError", err);
      name = value;
    } else if (key === "label") {
      const err = checkLabelName(value, true);
      if (err) throw qubesError("QubesInvalidLabelError", err);
      // An unknown label is dropped here, so the call fails as if no label was given.
      if (call.world.labels.some((l) => l.name === value)) label = value;
    } else if (key === "pool" || key.startsWith("pool:")) {
      if (!allowPool) throw protocolError("Pool option specified but pool selection requires admin.vm.CreateInPool");
      if (key === "pool") pools.all = value;
      else {
        const vol = key.slice("pool:".length);
        if (!(VOLUME_NAMES as readonly string[]).includes(vol)) throw protocolError(`Invalid volume name: ${vol}`);
        pools.perVolume[vol as VolumeName] = value;
      }
    } else {
      throw protocolError("Options does not match: name, label, pool, pool:");
    }
  }
  if (name === undefined) throw protocolError("Creation requested without key: name");
  if (label === undefined) throw protocolError("Creation requested without key: label");
  if (pools.all !== undefined && Object.keys(pools.perVolume).length > 0) {
    throw protocolError("Only one of 'pool=' and 'pool:volume=' can be used");
  }
  return { name, label, pools };
}

function resolveTemplate(call: Call, klass: VmClass): Qube | undefined {
  const { world, arg } = call;
  if (arg !== "") {
    if (!hasTemplate(klass)) throw protocolError(`${klass} cannot be based on template`);
    const tpl = world.qubes.get(arg);
    if (!tpl) throw vmNotFound(arg);
    return checkTemplate(klass, tpl);
  }
  if (!hasTemplate(klass)) return undefined;
  const fallback = readProp(world, APP, klass === "DispVM" ? "default_dispvm" : "default_template");
  const tpl = typeof fallback === "string" ? world.qubes.get(fallback) : undefined;
  if (!tpl) throw qubesError("QubesValueError", "Template for the qube not specified, nor default template set.");
  return checkTemplate(klass, tpl);
}

function checkTemplate(klass: VmClass, tpl: Qube): Qube {
  if (klass === "AppVM" && tpl.klass !== "TemplateVM") {
    throw qubesError(
      "QubesPropertyValueError",
      `wrong VM class: domains[${pyRepr(tpl.name)}] is of type ${tpl.klass} and not TemplateVM`,
    );
  }
  if (klass === "DispVM" && tpl.props.get("template_for_dispvms") !== true) {
    throw qubesError(
      "QubesValueError",
      `template for disposable (${tpl.name}) needs to be an AppVM with template_for_dispvms=True`,
    );
  }
  return tpl;
}

function createMethod(klass: VmClass, allowPool: boolean): MethodSpec {
  return {
    dest: "adminvm",
    arg: "optional",
    payload: "required",
    mutates: true,
    run(call) {
      const { name, label, pools } = parseCreatePayload(call, allowPool);
      if (klass === "AdminVM") throw qubesError("QubesValueError", "AdminVM cannot be created");
      const template = resolveTemplate(call, klass);
      for (const p of [pools.all, ...Object.values(pools.perVolume)]) {
        if (p !== undefined && !call.world.pools.has(p)) throw qubesError("QubesException", `Unknown storage pool ${p}`);
      }
      if (call.world.qubes.has(name)) throw qubesError("QubesVMAlreadyExistsError", `Qube already exists: ${name}`);
      const extraProps: Record<string, PropValue> = {};
      if (klass === "DispVM") extraProps.dispid = String(newDispid(call.world, call.services));
      createQube(call, { klass, name, label, ...(template ? { template } : {}), pools, extraProps });
      return null;
    },
  };
}

const createDisposable: MethodSpec = {
  dest: "any",
  arg: "optional",
  payload: "optional",
  mutates: true,
  run(call) {
    const { world, arg } = call;
    if (arg !== "" && arg !== "preload") throw permissionDenied(`Argument not in "'', 'preload'"`);
    const payload = Buffer.from(call.payload).toString("latin1");
    if (payload !== "" && payload !== "uuid") throw protocolError("Invalid payload, expected empty string or 'uuid'");
    let tpl: Qube | undefined;
    if (isAdminVm(call.dest)) {
      tpl = vmProp(world, call.src, "default_dispvm");
      // qubesd calls from_appvm(None) and fails with an AttributeError.
      if (!tpl) throw emptyReply(`${call.src.name} has no default_dispvm`);
    } else {
      tpl = call.dest;
    }
    if (tpl.props.get("template_for_dispvms") !== true) {
      throw qubesError("QubesException", "Refusing to create disposable out of app qube which has template_for_dispvms=False");
    }
    if (arg === "preload") return null;
    const dispid = newDispid(world, call.services);
    const label = readProp(world, qubeHolder(tpl), "label");
    const disp = createQube(call, {
      klass: "DispVM",
      name: `disp${dispid}`,
      label: typeof label === "string" ? label : "red",
      template: tpl,
      pools: { perVolume: {} },
      extraProps: { dispid: String(dispid), auto_cleanup: true },
    });
    addTag(disp, `disp-created-by-${call.src.name}`, call.emit);
    return payload === "uuid" ? `uuid:${String(disp.props.get("uuid"))}` : disp.name;
  },
};

// ---------------------------------------------------------------------------------------------
// Removal

/** Where qubesd's domain-pre-delete finds the qube still referenced. */
function referencesTo(world: World, q: Qube): string[] {
  const refs: string[] = [];
  for (const def of propTable(APP).list) {
    if (def.wire === "vm" && readProp(world, APP, def.name) === q.name) refs.push(`@GLOBAL:${def.name}`);
  }
  for (const other of world.qubes.values()) {
    if (other === q) continue;
    for (const def of propTable(qubeHolder(other)).list) {
      if (def.wire === "vm" && other.props.get(def.name) === q.name) refs.push(`${other.name}:${def.name}`);
    }
  }
  return refs;
}

function removeQube(world: World, q: Qube, emit: Emit): void {
  emit(null, "domain-pre-delete", { vm: q.name });
  deleteQube(world, q);
  for (const [token, t] of world.runtime.cloneTokens) if (t.qube === q.name) world.runtime.cloneTokens.delete(token);
  emit(null, "domain-delete", { vm: q.name });
}

const removeMethod: MethodSpec = {
  dest: "any",
  arg: "none",
  payload: "none",
  mutates: true,
  run({ world, dest, emit }) {
    if (isAdminVm(dest)) throw qubesError("QubesVMInUseError", "'dom0' cannot be removed");
    if (dest.power !== "Halted") throw vmNotHalted(dest.name);
    if (dest.props.get("installed_by_rpm") === true) {
      throw qubesError("QubesVMInUseError", `VM installed by package manager: ${dest.name}`);
    }
    if (referencesTo(world, dest).length > 0) {
      throw qubesError(
        "QubesVMInUseError",
        `Domain is in use: ${pyRepr(dest.name)};  see 'journalctl -u qubesd -e' in dom0 for details`,
      );
    }
    removeQube(world, dest, emit);
    return null;
  },
};

// ---------------------------------------------------------------------------------------------
// Power

function startQube(call: Call, q: Qube, depth = 0): void {
  if (alwaysRunning(q) || q.power !== "Halted") return;
  const prohibit = q.features.get("prohibit-start");
  if (prohibit) throw qubesError("QubesException", `Qube start is prohibited. Rationale: ${prohibit}`);
  if (q.klass === "AppVM" || q.klass === "DispVM") {
    if (!vmProp(call.world, q, "template")) throw qubesError("QubesNoTemplateError", `Template for the domain ${pyRepr(q.name)} not found`);
  }
  const netvm = vmProp(call.world, q, "netvm");
  if (netvm && netvm.power === "Halted" && depth < 16) startQube(call, netvm, depth + 1);
  call.emit(q.name, "domain-pre-start", { start_guid: "True", mem_required: "None" });
  q.power = "Running";
  q.xid = call.world.runtime.nextXid++;
  q.startTime = (call.services.now() / 1000).toFixed(2);
  call.emit(q.name, "domain-spawn", { start_guid: "True" });
  call.emit(q.name, "domain-start", { start_guid: "True" });
}

/** The qube stopped: runtime state cleared, and an auto_cleanup disposable goes away. */
function stopped(call: Call, q: Qube): void {
  q.power = "Halted";
  q.xid = -1;
  q.startTime = null;
  call.emit(q.name, "domain-stopped");
  call.emit(q.name, "domain-shutdown");
  if (q.klass === "DispVM" && readProp(call.world, qubeHolder(q), "auto_cleanup") === true) {
    removeQube(call.world, q, call.emit);
  }
}

const shutdownMethod: MethodSpec = {
  dest: "any",
  arg: "optional",
  payload: "none",
  mutates: true,
  run(call) {
    const { dest, arg } = call;
    const opts = arg === "" ? [] : arg.split("+");
    if (!opts.every((o) => o === "force" || o === "wait")) throw protocolError("Argument must match: force, wait");
    const force = opts.includes("force");
    if (alwaysRunning(dest)) throw qubesError("QubesVMError", `Cannot shut down ${dest.klass} ${pyRepr(dest.name)}`);
    if (dest.power === "Halted") throw vmNotStarted(dest.name);
    if (!force) checkShutdownClients(call.release, call.world, dest, (q, p) => readProp(call.world, qubeHolder(q), p));
    checkShutdownPaused(dest, force);
    call.emit(dest.name, "domain-pre-shutdown", { force: eventValue(force) });
    stopped(call, dest);
    return null;
  },
};

function powerMethod(run: (call: Call, q: Qube) => void): MethodSpec {
  return {
    dest: "any",
    arg: "none",
    payload: "none",
    mutates: true,
    run(call) {
      run(call, call.dest);
      return null;
    },
  };
}

const startMethod = powerMethod((call, q) => startQube(call, q));

const killMethod = powerMethod((call, q) => {
  if (alwaysRunning(q)) throw qubesError("QubesVMError", `Cannot kill ${q.klass} ${pyRepr(q.name)}`);
  if (q.power === "Halted") throw vmNotStarted(q.name);
  stopped(call, q);
});

const pauseMethod = powerMethod((call, q) => {
  if (alwaysRunning(q)) throw qubesError("QubesVMError", `Cannot pause ${q.klass} ${pyRepr(q.name)}`);
  if (q.power === "Halted" || q.power === "Suspended") throw vmNotRunning(q.name);
  if (q.power === "Paused") return;
  q.power = "Paused";
  call.emit(q.name, "domain-paused");
});

const unpauseMethod = powerMethod((call, q) => unpause(call, q));

const suspendMethod = powerMethod((_call, q) => {
  if (alwaysRunning(q)) throw qubesError("QubesVMError", `Cannot suspend ${q.klass} ${pyRepr(q.name)}`);
  if (q.power !== "Running") throw vmNotRunning(q.name);
  q.power = "Suspended";
});

const resumeMethod = powerMethod((call, q) => resume(call, call.release, q));

const currentState: MethodSpec = {
  dest: "any",
  arg: "none",
  payload: "none",
  mutates: false,
  run({ world, dest, services }) {
    const state = powerState(dest);
    if (state === "Halted" || dest.klass === "RemoteVM") return `mem=0 mem_static_max=0 cputime=0 power_state=${state}`;
    const h = qubeHolder(dest);
    const memory = isAdminVm(dest) ? BigInt(world.host.dom0MaxmemMiB) : BigInt(String(readProp(world, h, "memory")));
    const maxmem = isAdminVm(dest) ? memory : BigInt(String(readProp(world, h, "maxmem")));
    const started = dest.startTime === null ? services.now() / 1000 : Number(dest.startTime);
    const cputime = BigInt(Math.max(0, Math.round((services.now() / 1000 - started) * 1e7)));
    return `mem=${memory * 1024n} mem_static_max=${(maxmem > memory ? maxmem : memory) * 1024n} cputime=${cputime} power_state=${state}`;
  },
};

const consoleMethod: MethodSpec = {
  dest: "any",
  arg: "none",
  payload: "none",
  mutates: false,
  run({ dest }) {
    if (isAdminVm(dest) || dest.power === "Halted" || dest.power === "Paused") throw vmNotRunning(dest.name);
    return `/dev/pts/${dest.xid}`;
  },
};

const vmList = (withUuid: boolean): MethodSpec => ({
  dest: "any",
  arg: "none",
  payload: "none",
  mutates: false,
  run({ world, dest }) {
    const qubes = isAdminVm(dest) ? sortedQubes(world) : [dest];
    return qubes.map((q) => vmListLine(world, q, withUuid)).join("");
  },
});

const vmclassList: MethodSpec = {
  dest: "adminvm",
  arg: "none",
  payload: "none",
  mutates: false,
  run: () => VM_CLASSES.map((c) => `${c}\n`).join(""),
};

export function vmMethods(withUuid: boolean): Record<string, MethodSpec> {
  const methods: Record<string, MethodSpec> = {
    "admin.vmclass.List": vmclassList,
    "admin.vm.List": vmList(withUuid),
    "admin.vm.CreateDisposable": createDisposable,
    "admin.vm.Remove": removeMethod,
    "admin.vm.Start": startMethod,
    "admin.vm.Shutdown": shutdownMethod,
    "admin.vm.Kill": killMethod,
    "admin.vm.Pause": pauseMethod,
    "admin.vm.Unpause": unpauseMethod,
    "admin.vm.Suspend": suspendMethod,
    "admin.vm.Resume": resumeMethod,
    "admin.vm.CurrentState": currentState,
    "admin.vm.Console": consoleMethod,
  };
  for (const klass of VM_CLASSES) {
    methods[`admin.vm.Create.${klass}`] = createMethod(klass, false);
    methods[`admin.vm.CreateInPool.${klass}`] = createMethod(klass, true);
  }
  return methods;
}

