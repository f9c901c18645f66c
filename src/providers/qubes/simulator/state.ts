// The simulator's persistent state: the in-memory World and its versioned JSON document.
// Pure: parsing and serialising only; reading and writing files is store.ts's job.
//
// Document (format "qubes-iac-sim-state", version 1):
//   release  the Qubes release imitated (releases.ts: "r4.2", "r4.3", "main"); absent = "main"
//   host     facts qubesd reads from the machine: memory_mib, cpus, dom0_maxmem_mib (decimal
//            strings where values can exceed 2^53), installed kernels, pool size/usage,
//            lvm_thin_pools (volume_group/thin_pool pairs that exist; none in the default fixture)
//   labels   [{index, name, color}] in index order
//   pools    [{name, driver, config}]: config holds the driver options as strings (no name/driver)
//   globals  explicitly set global properties; unset ones take their default
//   qubes    in qid order: {name, class, props (explicit values only: ints as decimal strings,
//            bools, VM/label names, null for "none"), features ([name, value] in insertion
//            order), tags, firewall (rule lines, or null for the default "action=accept"),
//            notes, volumes [{name, pool, size, rw, save_on_stop, snap_on_start,
//            revisions_to_keep, ephemeral}], power, and while not Halted xid and start_time}
//   policy   (optional, absent = empty) dom0's qrexec policy directory: {files: {name: text}}
//            for /etc/qubes/policy.d/<name>.policy, {include: {name: text}} for its include/
//            (served as policy.* by policy-admin.ts; not Admin API state)
// A document that does not parse is an error naming the file; it is never silently replaced.

import { parseRelease, releaseOf, type Release, type SimRelease } from "./releases.js";

export const STATE_FORMAT = "qubes-iac-sim-state";
export const STATE_VERSION = 1;

/** The document as written (see the header); what parseState checks and serializeState writes. */
export type StateDocument = {
  format: typeof STATE_FORMAT;
  version: typeof STATE_VERSION;
  release?: SimRelease;
  host: {
    memory_mib: string;
    cpus: number;
    dom0_maxmem_mib: string;
    kernels: string[];
    pool_size: string;
    pool_usage: string;
    lvm_thin_pools: string[];
  };
  labels: Array<{ index: number; name: string; color: string }>;
  pools: Array<{ name: string; driver: string; config: Record<string, string> }>;
  globals: Record<string, PropValue>;
  /** The devices the host and its qubes offer; absent: the recorded default (block and pci classes, none offered, PCI offline). */
  devices?: DevicesDocument;
  qubes: QubeDocument[];
  policy?: { files: Record<string, string>; include: Record<string, string> };
};

/** Device classes dom0 serves, whether dom0's PCI list answers, and what each backend exposes. */
export type DevicesDocument = {
  classes: string[];
  pci_online: boolean;
  exposed: Array<{ backend: string; devclass: string; port_id: string; device_id: string; props: Record<string, string> }>;
};

/** One assignment held in qubes.xml (R4.3+; R4.2's persistent attachments read as the class's default mode). */
export type AssignmentDocument = { devclass: string; backend: string; port_id: string; device_id: string; mode: string; options: Array<[string, string]> };

export type QubeDocument = {
  name: string;
  class: VmClass;
  props: Record<string, PropValue>;
  features: Array<[string, string]>;
  tags: string[];
  firewall: string[] | null;
  notes: string;
  volumes: Array<{
    name: string;
    pool: string;
    size: string;
    rw: boolean;
    save_on_stop: boolean;
    snap_on_start: boolean;
    revisions_to_keep: string;
    ephemeral: boolean;
  }>;
  power: PowerState;
  xid?: number;
  start_time?: string | null;
  /** Device assignments; absent when there are none. */
  assignments?: AssignmentDocument[];
};

export const VM_CLASSES = ["AdminVM", "AppVM", "DispVM", "RemoteVM", "StandaloneVM", "TemplateVM"] as const;
export type VmClass = (typeof VM_CLASSES)[number];

export type PowerState = "Halted" | "Running" | "Paused" | "Suspended";
const POWER_STATES: readonly PowerState[] = ["Halted", "Running", "Paused", "Suspended"];

/** A stored property value: ints as canonical decimal strings, VM and label references by name. */
export type PropValue = string | boolean | null;

export type Volume = {
  name: string;
  pool: string;
  /** Bytes, decimal. */
  size: string;
  rw: boolean;
  saveOnStop: boolean;
  snapOnStart: boolean;
  revisionsToKeep: string;
  ephemeral: boolean;
};

export type Qube = {
  name: string;
  klass: VmClass;
  /** Explicitly set properties; absent = default. */
  props: Map<string, PropValue>;
  features: Map<string, string>;
  tags: Set<string>;
  firewall: string[] | null;
  notes: string;
  volumes: Volume[];
  power: PowerState;
  /** Xen domain id while not Halted, else -1; start time in seconds since the epoch. */
  xid: number;
  startTime: string | null;
  assignments: AssignmentDocument[];
};

export type ExposedDevice = DevicesDocument["exposed"][number];
export type PolicyDir = { files: Map<string, string>; include: Map<string, string> };

export type Label = { index: number; name: string; color: string };

export type Pool = { name: string; driver: string; config: Map<string, string> };

export type Host = {
  memoryMiB: string;
  cpus: number;
  dom0MaxmemMiB: string;
  kernels: string[];
  poolSize: string;
  poolUsage: string;
  lvmThinPools: string[];
};

export type World = {
  /** The release imitated: which methods, classes and properties exist, and what errors say. */
  release: Release;
  host: Host;
  labels: Label[];
  pools: Map<string, Pool>;
  globals: Map<string, PropValue>;
  qubes: Map<string, Qube>;
  byUuid: Map<string, Qube>;
  /** Device classes served, dom0's PCI list online or not, and the devices backends expose. */
  devices: { classes: string[]; pciOnline: boolean; exposed: ExposedDevice[]; fromDocument: boolean };
  /** dom0's qrexec policy directory (file name without `.policy` → text), and its include/. */
  policy: PolicyDir;
  /** What qubesd keeps in memory only and loses on restart. */
  runtime: {
    /** Labels created in this lifetime: their colour is still bytes, so label.Get fails (upstream quirk). */
    freshLabels: Set<string>;
    cloneTokens: Map<string, { qube: string; volume: string }>;
    nextXid: number;
  };
};

export class StateFormatError extends Error {
  override readonly name = "StateFormatError";
}

// ---------------------------------------------------------------------------------------------
// Document → World

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

/** Parses and checks a state document; throws StateFormatError saying what is wrong and where. */
export function parseState(text: string): World {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    throw new StateFormatError(`not JSON (${e instanceof Error ? e.message : String(e)})`);
  }
  return worldFromDocument(doc);
}

/** Builds a fresh World from an already parsed document (the fixture, or a state file). */
export function worldFromDocument(doc: unknown): World {
  const top = obj(doc as Json, "document");
  if (top.format !== STATE_FORMAT) {
    throw new StateFormatError(`format is ${JSON.stringify(top.format ?? null)}, expected "${STATE_FORMAT}"`);
  }
  if (top.version !== STATE_VERSION) {
    throw new StateFormatError(
      `version ${JSON.stringify(top.version ?? null)} is not supported (this simulator reads version ${STATE_VERSION})`,
    );
  }
  const releaseName = top.release === undefined ? "main" : str(top.release, "release");
  const parsedRelease = parseRelease(releaseName);
  if (!parsedRelease.ok || releaseName === "head") throw new StateFormatError(`release: ${parsedRelease.ok ? "write main, not head" : parsedRelease.error}`);
  const hostDoc = obj(top.host, "host");
  const host: Host = {
    memoryMiB: decimal(hostDoc.memory_mib, "host.memory_mib"),
    cpus: int(hostDoc.cpus, "host.cpus"),
    dom0MaxmemMiB: decimal(hostDoc.dom0_maxmem_mib, "host.dom0_maxmem_mib"),
    kernels: arr(hostDoc.kernels, "host.kernels").map((k, i) => str(k, `host.kernels[${i}]`)),
    poolSize: decimal(hostDoc.pool_size, "host.pool_size"),
    poolUsage: decimal(hostDoc.pool_usage, "host.pool_usage"),
    lvmThinPools: arr(hostDoc.lvm_thin_pools, "host.lvm_thin_pools").map((k, i) => str(k, `host.lvm_thin_pools[${i}]`)),
  };
  const labels = arr(top.labels, "labels").map((l, i): Label => {
    const o = obj(l, `labels[${i}]`);
    return { index: int(o.index, `labels[${i}].index`), name: str(o.name, `labels[${i}].name`), color: str(o.color, `labels[${i}].color`) };
  });
  labels.sort((a, b) => a.index - b.index);
  const pools = new Map<string, Pool>();
  for (const [i, p] of arr(top.pools, "pools").entries()) {
    const o = obj(p, `pools[${i}]`);
    const name = str(o.name, `pools[${i}].name`);
    const config = new Map<string, string>();
    for (const [k, v] of Object.entries(obj(o.config, `pools[${i}].config`))) config.set(k, str(v, `pools[${i}].config.${k}`));
    pools.set(name, { name, driver: str(o.driver, `pools[${i}].driver`), config });
  }
  const globals = new Map<string, PropValue>();
  for (const [k, v] of Object.entries(obj(top.globals, "globals"))) globals.set(k, propValue(v, `globals.${k}`));
  const world: World = {
    release: releaseOf(parsedRelease.release),
    host,
    labels,
    pools,
    globals,
    qubes: new Map(),
    byUuid: new Map(),
    devices: parseDevices(top.devices),
    policy: parsePolicyDir(top.policy),
    runtime: { freshLabels: new Set(), cloneTokens: new Map(), nextXid: 1 },
  };
  for (const [i, q] of arr(top.qubes, "qubes").entries()) {
    const qube = parseQube(obj(q, `qubes[${i}]`), `qubes[${i}]`);
    if (world.qubes.has(qube.name)) throw new StateFormatError(`qubes[${i}]: duplicate qube ${qube.name}`);
    addQube(world, qube);
    world.runtime.nextXid = Math.max(world.runtime.nextXid, qube.xid + 1);
  }
  if (![...world.qubes.values()].some((q) => q.klass === "AdminVM")) throw new StateFormatError("qubes: no AdminVM (dom0)");
  return world;
}

function parseDevices(v: Json | undefined): World["devices"] {
  if (v === undefined) return { classes: ["block", "pci"], pciOnline: false, exposed: [], fromDocument: false };
  const o = obj(v, "devices");
  const exposed = arr(o.exposed, "devices.exposed").map((e, i): ExposedDevice => {
    const eo = obj(e, `devices.exposed[${i}]`);
    const at = `devices.exposed[${i}]`;
    const props: Record<string, string> = {};
    for (const [k, pv] of Object.entries(obj(eo.props, `${at}.props`))) props[k] = str(pv, `${at}.props.${k}`);
    return { backend: str(eo.backend, `${at}.backend`), devclass: str(eo.devclass, `${at}.devclass`), port_id: str(eo.port_id, `${at}.port_id`), device_id: str(eo.device_id, `${at}.device_id`), props };
  });
  return { classes: arr(o.classes, "devices.classes").map((c, i) => str(c, `devices.classes[${i}]`)), pciOnline: bool(o.pci_online, "devices.pci_online"), exposed, fromDocument: true };
}

function parseAssignments(v: Json | undefined, at: string): AssignmentDocument[] {
  if (v === undefined) return [];
  return arr(v, at).map((a, i) => {
    const ao = obj(a, `${at}[${i}]`);
    const p = `${at}[${i}]`;
    return {
      devclass: str(ao.devclass, `${p}.devclass`),
      backend: str(ao.backend, `${p}.backend`),
      port_id: str(ao.port_id, `${p}.port_id`),
      device_id: str(ao.device_id, `${p}.device_id`),
      mode: str(ao.mode, `${p}.mode`),
      options: arr(ao.options, `${p}.options`).map((kv, j) => {
        const pair = arr(kv, `${p}.options[${j}]`);
        return [str(pair[0], `${p}.options[${j}][0]`), str(pair[1], `${p}.options[${j}][1]`)] as [string, string];
      }),
    };
  });
}

function parsePolicyDir(doc: Json | undefined): PolicyDir {
  const dir: PolicyDir = { files: new Map(), include: new Map() };
  if (doc === undefined) return dir;
  const o = obj(doc, "policy");
  for (const key of ["files", "include"] as const) {
    for (const [k, v] of Object.entries(obj(o[key] ?? {}, `policy.${key}`))) {
      if (!/^[A-Za-z0-9_-]+$/.test(k)) throw new StateFormatError(`policy.${key}: ${JSON.stringify(k)} is not a policy file name`);
      dir[key].set(k, str(v, `policy.${key}.${k}`));
    }
  }
  return dir;
}

function parseQube(o: { [k: string]: Json }, at: string): Qube {
  const klass = str(o.class, `${at}.class`);
  if (!(VM_CLASSES as readonly string[]).includes(klass)) throw new StateFormatError(`${at}.class: unknown class ${klass}`);
  const power = str(o.power, `${at}.power`);
  if (!(POWER_STATES as readonly string[]).includes(power)) throw new StateFormatError(`${at}.power: unknown state ${power}`);
  const props = new Map<string, PropValue>();
  for (const [k, v] of Object.entries(obj(o.props, `${at}.props`))) props.set(k, propValue(v, `${at}.props.${k}`));
  const features = new Map<string, string>();
  for (const [j, f] of arr(o.features, `${at}.features`).entries()) {
    const pair = arr(f, `${at}.features[${j}]`);
    features.set(str(pair[0], `${at}.features[${j}][0]`), str(pair[1], `${at}.features[${j}][1]`));
  }
  const firewall =
    o.firewall === undefined || o.firewall === null
      ? null
      : arr(o.firewall, `${at}.firewall`).map((r, j) => str(r, `${at}.firewall[${j}]`));
  const volumes = arr(o.volumes, `${at}.volumes`).map((v, j): Volume => {
    const vo = obj(v, `${at}.volumes[${j}]`);
    const p = `${at}.volumes[${j}]`;
    return {
      name: str(vo.name, `${p}.name`),
      pool: str(vo.pool, `${p}.pool`),
      size: decimal(vo.size, `${p}.size`),
      rw: bool(vo.rw, `${p}.rw`),
      saveOnStop: bool(vo.save_on_stop, `${p}.save_on_stop`),
      snapOnStart: bool(vo.snap_on_start, `${p}.snap_on_start`),
      revisionsToKeep: decimal(vo.revisions_to_keep, `${p}.revisions_to_keep`, true),
      ephemeral: bool(vo.ephemeral, `${p}.ephemeral`),
    };
  });
  return {
    name: str(o.name, `${at}.name`),
    klass: klass as VmClass,
    props,
    features,
    tags: new Set(arr(o.tags, `${at}.tags`).map((t, j) => str(t, `${at}.tags[${j}]`))),
    firewall,
    notes: o.notes === undefined ? "" : str(o.notes, `${at}.notes`),
    volumes,
    power: power as PowerState,
    xid: o.xid === undefined ? -1 : int(o.xid, `${at}.xid`),
    startTime: o.start_time === undefined || o.start_time === null ? null : str(o.start_time, `${at}.start_time`),
    assignments: parseAssignments(o.assignments, `${at}.assignments`),
  };
}

/** Registers a qube in the world's indexes. */
export function addQube(world: World, qube: Qube): void {
  world.qubes.set(qube.name, qube);
  const uuid = qube.props.get("uuid");
  if (typeof uuid === "string") world.byUuid.set(uuid, qube);
}

export function deleteQube(world: World, qube: Qube): void {
  world.qubes.delete(qube.name);
  const uuid = qube.props.get("uuid");
  if (typeof uuid === "string") world.byUuid.delete(uuid);
}

function obj(v: Json | undefined, at: string): { [k: string]: Json } {
  if (v === null || v === undefined || typeof v !== "object" || Array.isArray(v)) throw new StateFormatError(`${at}: expected an object`);
  return v;
}
function arr(v: Json | undefined, at: string): Json[] {
  if (!Array.isArray(v)) throw new StateFormatError(`${at}: expected an array`);
  return v;
}
function str(v: Json | undefined, at: string): string {
  if (typeof v !== "string") throw new StateFormatError(`${at}: expected a string`);
  return v;
}
function bool(v: Json | undefined, at: string): boolean {
  if (typeof v !== "boolean") throw new StateFormatError(`${at}: expected true or false`);
  return v;
}
function int(v: Json | undefined, at: string): number {
  if (typeof v !== "number" || !Number.isSafeInteger(v)) throw new StateFormatError(`${at}: expected an integer`);
  return v;
}
function decimal(v: Json | undefined, at: string, signed = false): string {
  const s = str(v, at);
  if (!(signed ? /^-?[0-9]+$/ : /^[0-9]+$/).test(s)) throw new StateFormatError(`${at}: expected a decimal number as a string`);
  return s;
}
function propValue(v: Json | undefined, at: string): PropValue {
  if (v === null || typeof v === "string" || typeof v === "boolean") return v;
  throw new StateFormatError(`${at}: expected a string, true/false or null`);
}

// ---------------------------------------------------------------------------------------------
// World → Document

/**
 * Qubes' serialised JSON kept between saves, so a save re-serialises only the qubes a call
 * touched (`dirty`, by name); everything else is reused. Without a cache, all are serialised.
 */
export type FragmentCache = WeakMap<Qube, string>;

export function serializeState(world: World, cache?: FragmentCache, dirty?: ReadonlySet<string>): string {
  const qubes = [...world.qubes.values()].sort((a, b) => qidOf(a) - qidOf(b));
  const head = {
    format: STATE_FORMAT,
    version: STATE_VERSION,
    release: world.release.name,
    host: {
      memory_mib: world.host.memoryMiB,
      cpus: world.host.cpus,
      dom0_maxmem_mib: world.host.dom0MaxmemMiB,
      kernels: world.host.kernels,
      pool_size: world.host.poolSize,
      pool_usage: world.host.poolUsage,
      lvm_thin_pools: world.host.lvmThinPools,
    },
    labels: world.labels.map((l) => ({ index: l.index, name: l.name, color: l.color })),
    pools: [...world.pools.values()].map((p) => ({ name: p.name, driver: p.driver, config: Object.fromEntries(p.config) })),
    globals: Object.fromEntries(world.globals),
    ...(world.devices.fromDocument ? { devices: { classes: world.devices.classes, pci_online: world.devices.pciOnline, exposed: world.devices.exposed } } : {}),
    // Only when it holds a file: a state without policy stays byte-identical to the ones before it.
    ...(world.policy.files.size + world.policy.include.size > 0
      ? { policy: { files: Object.fromEntries([...world.policy.files].sort(([a], [b]) => (a < b ? -1 : 1))), include: Object.fromEntries([...world.policy.include].sort(([a], [b]) => (a < b ? -1 : 1))) } }
      : {}),
  };
  const fragments = qubes.map((q) => {
    const hit = cache && dirty && !dirty.has(q.name) ? cache.get(q) : undefined;
    if (hit !== undefined) return hit;
    const json = JSON.stringify(qubeDocument(q));
    cache?.set(q, json);
    return json;
  });
  return `${JSON.stringify(head).slice(0, -1)},"qubes":[${fragments.join(",")}]}\n`;
}

function qubeDocument(q: Qube): QubeDocument {
  return {
    name: q.name,
    class: q.klass,
    props: Object.fromEntries(q.props),
    features: [...q.features],
    tags: [...q.tags].sort(),
    firewall: q.firewall,
    notes: q.notes,
    volumes: q.volumes.map((v) => ({
      name: v.name,
      pool: v.pool,
      size: v.size,
      rw: v.rw,
      save_on_stop: v.saveOnStop,
      snap_on_start: v.snapOnStart,
      revisions_to_keep: v.revisionsToKeep,
      ephemeral: v.ephemeral,
    })),
    power: q.power,
    ...(q.power === "Halted" ? {} : { xid: q.xid, start_time: q.startTime }),
    ...(q.assignments.length > 0 ? { assignments: q.assignments } : {}),
  };
}

/** qid of a qube: stored for every class but AdminVM, which is always 0. */
export function qidOf(q: Qube): number {
  const v = q.props.get("qid");
  return typeof v === "string" ? Number(v) : 0;
}
