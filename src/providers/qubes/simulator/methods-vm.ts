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
import { APP, addTag, ctxFor, eventValue, qubeHolder, readProp, refused, vmNameError, vmProp, type Emit } from "./model.js";
import { connectedVms, NO_VALUE, propTable } from "./properties.js";
import { addQube, deleteQube, qidOf, VM_CLASSES, type PropValue, type Qube, type VmClass, type World } from "./state.js";
import { newVolumes, VOLUME_NAMES, type PoolChoice, type VolumeName } from "./volumes.js";
import { checkLabelName } from "../../../model/qubes-rules.js";
import { checkShutdownClients, checkShutdownPaused, resume, unpause } from "./running.js";

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
    assignments: [],
  };
  if (spec.klass === "DispVM" && spec.template) inheritFromDispTemplate(world, qube, spec.template);
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

/** DispVM.__init__: explicit properties, firewall, features and tags of the disposable template (per release: releases.ts). */
function inheritFromDispTemplate(world: World, disp: Qube, tpl: Qube): void {
  const own = propTable(qubeHolder(disp), world.release).byName;
  for (const [name, value] of tpl.props) {
    if (["name", "qid", "uuid", "template", "dispid"].includes(name)) continue;
    if (own.get(name)?.access === "rw" && !disp.props.has(name)) disp.props.set(name, value);
  }
  disp.firewall = tpl.firewall ? [...tpl.firewall] : null;
  const skip = world.release.dispvmFeatureSkipPrefixes;
  for (const [k, v] of tpl.features) if (!skip.some((p) => k.startsWith(p))) disp.features.set(k, v);
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
      const err = vmNameError(call.world.release, value);
      if (err) throw qubesError("QubesValueError", err);
      name = value;
    } else if (key === "label") {
      const err = checkLabelName(value, true);
      if (err) throw qubesError("QubesInvalidLabelError", err);
      const known = call.world.labels.some((l) => l.name === value);
      // main drops an unknown label here, so the call fails as if none was given (qubes/api/admin.py
      // _vm_create: invalid_label); R4.2/R4.3 let app.get_label raise at once.
      if (known) label = value;
      else if (call.world.release.createUnknownLabel === "not-found") throw qubesError("QubesLabelNotFoundError", `Label does not exist: ${value}`);
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

/** add_new_vm's template: the one the argument names, else the class's global default. */
function resolveTemplate(call: Call, klass: VmClass): Qube | undefined {
  const { world, arg } = call;
  if (arg !== "") {
    const tpl = world.qubes.get(arg);
    if (!tpl) throw vmNotFound(arg);
    return checkTemplate(call, klass, tpl);
  }
  if (!hasTemplate(klass)) return undefined;
  const fallback = readProp(world, APP, klass === "DispVM" ? "default_dispvm" : "default_template");
  const tpl = typeof fallback === "string" ? world.qubes.get(fallback) : undefined;
  if (!tpl) throw qubesError("QubesValueError", "Template for the qube not specified, nor default template set.");
  return checkTemplate(call, klass, tpl);
}

/**
 * Python's repr() of a qube object (qubes/vm/__init__.py BaseVM.__repr__): class, id() (a
 * process address, random here), name, qid, then `prop=str(value)` for every property in
 * property_list() order that has a value.
 */
function qubeRepr(call: Call, q: Qube): string {
  const h = qubeHolder(q);
  const props: string[] = [];
  for (const def of propTable(h, call.world.release).list) {
    if (def.name === "name" || def.name === "qid") continue;
    const v = readProp(call.world, h, def.name);
    if (v === NO_VALUE) continue;
    props.push(`${def.name}=${v === null ? "None" : typeof v === "boolean" ? (v ? "True" : "False") : v}`);
  }
  let address = "0x7f";
  for (let i = 0; i < 10; i++) address += call.services.randomInt(16).toString(16);
  return `<${q.klass} at ${address} name=${pyRepr(q.name)} qid=${String(readProp(call.world, h, "qid"))} ${props.join(" ")}>`;
}

function checkTemplate(call: Call, klass: VmClass, tpl: Qube): Qube {
  if (klass === "AppVM" && tpl.klass !== "TemplateVM") {
    // _vm_create passes the qube object itself as template=, so VMProperty.__set__ formats it with
    // {!r}: the qube's repr, not its name (qubes/vm/__init__.py VMProperty.__set__).
    throw qubesError("QubesPropertyValueError", `wrong VM class: domains[${qubeRepr(call, tpl)}] is of type ${tpl.klass} and not TemplateVM`);
  }
  if (klass === "DispVM" && tpl.props.get("template_for_dispvms") !== true) {
    throw qubesError(
      "QubesValueError",
      `template for disposable (${tpl.name}) needs to be an AppVM with template_for_dispvms=True`,
    );
  }
  return tpl;
}

/**
 * qubes/api/admin.py _vm_create: a template argument for a class without one is refused first
 * (R4.2/R4.3 also an unknown template), then the payload is parsed; an existing name, (main) an
 * unknown template and an unknown pool are reported in that order after it, and add_new_vm
 * checks the template last.
 */
function createMethod(klass: VmClass, allowPool: boolean): MethodSpec {
  return {
    dest: "adminvm",
    arg: "optional",
    payload: "required",
    mutates: true,
    run(call) {
      const templateArg = call.world.release.createTemplateArg;
      if (call.arg !== "" && !hasTemplate(klass)) throw qubesError(templateArg.refusal, `${klass} cannot be based on template`);
      if (call.arg !== "" && templateArg.lookedUpFirst && !call.world.qubes.has(call.arg)) throw vmNotFound(call.arg);
      const { name, label, pools } = parseCreatePayload(call, allowPool);
      if (klass === "AdminVM") throw qubesError("QubesValueError", "AdminVM cannot be created");
      if (call.world.qubes.has(name)) throw refused(call.world.release.messages.vmExists(name));
      if (call.arg !== "" && !call.world.qubes.has(call.arg)) throw vmNotFound(call.arg);
      for (const p of [pools.all, ...Object.values(pools.perVolume)]) {
        if (p !== undefined && !call.world.pools.has(p)) throw qubesError("QubesException", `Unknown storage pool ${p}`);
      }
      const template = resolveTemplate(call, klass);
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
    // R4.2's create_disposable is no_payload and enforce(not self.arg) (qubes/api/admin.py, release4.2).
    if (!world.release.disposableOptions && call.payload.length > 0) throw protocolError("unexpected payload");
    if (!world.release.disposableOptions && arg !== "") throw permissionDenied("enforce(not self.arg)");
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
  for (const def of propTable(APP, world.release).list) {
    if (def.wire === "vm" && readProp(world, APP, def.name) === q.name) refs.push(`@GLOBAL:${def.name}`);
  }
  for (const other of world.qubes.values()) {
    if (other === q) continue;
    for (const def of propTable(qubeHolder(other), world.release).list) {
      if (def.wire === "vm" && other.props.get(def.name) === q.name) refs.push(`${other.name}:${def.name}`);
    }
  }
  return refs;
}

function removeQube(world: World, q: Qube, emit: Emit): void {
  emit(null, "domain-pre-delete", { vm: q.name });
  deleteQube(world, q);
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
    if (referencesTo(world, dest).length > 0) throw refused(world.release.messages.removeInUse(dest.name));
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
    if (!force) checkShutdownClients(call.world.release.name, call.world, dest, (q, p) => readProp(call.world, qubeHolder(q), p));
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

const resumeMethod = powerMethod((call, q) => resume(call, call.world.release.name, q));

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

const vmList: MethodSpec = {
  dest: "any",
  arg: "none",
  payload: "none",
  mutates: false,
  run({ world, dest }) {
    const qubes = isAdminVm(dest) ? sortedQubes(world) : [dest];
    return qubes.map((q) => vmListLine(world, q, world.release.uuids)).join("");
  },
};

const vmclassList: MethodSpec = {
  dest: "adminvm",
  arg: "none",
  payload: "none",
  mutates: false,
  run: ({ world }) => world.release.vmClasses.map((c) => `${c}\n`).join(""),
};

export function vmMethods(): Record<string, MethodSpec> {
  const methods: Record<string, MethodSpec> = {
    "admin.vmclass.List": vmclassList,
    "admin.vm.List": vmList,
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

