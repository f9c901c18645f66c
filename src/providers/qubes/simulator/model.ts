// Reading and changing the World the way qubesd's PropertyHolder, Features and Tags do:
// property resolution (explicit value or default), Get/GetAll/GetDefault formats, Set/Reset
// with sanitising, setters, events and their side effects (auto tags, servicevm feature...).
// Pure over the World; events go out through the Emit callback given by the caller.

import {
  emptyReply,
  pyRepr,
  qubesError,
  type SimError,
} from "./errors.js";
import { NO_VALUE, propTable, type Holder, type PropCtx, type PropDef, type Value } from "./properties.js";
import type { Label, PropValue, Qube, World } from "./state.js";
import { parseIPv4, parseIPv6 } from "./ip.js";
import { runningPreSet } from "./running.js";
import { checkVmName } from "../../../model/qubes-rules.js";
import type { Refusal, Release } from "./releases.js";

export type Emit = (subject: string | null, event: string, kwargs?: Record<string, string>) => void;

export const APP: Holder = { kind: "app" };
export const qubeHolder = (qube: Qube): Holder => ({ kind: "qube", qube });

export const holderName = (h: Holder): string => (h.kind === "app" ? "Qubes" : h.qube.name);

const LEADING_RULE = "VM name cannot start with hyphen, underscore, dot or numbers";

/** validate_name of the release: R4.2 has no rule for the first character, its regexp refuses the name. */
export function vmNameError(release: Release, name: string): string | null {
  const err = checkVmName(name);
  return err === LEADING_RULE && !release.vmNameLeadingRule ? "VM name contains illegal characters" : err;
}

let readDepth = 0;

/** A property's value as qubesd's getattr gives it: explicit, else its default, else NO_VALUE. */
export function readProp(world: World, holder: Holder, name: string): Value {
  const def = propTable(holder, world.release).byName.get(name);
  if (!def) return NO_VALUE;
  const explicit = holder.kind === "app" ? world.globals : holder.qube.props;
  if (explicit.has(name)) return explicit.get(name) ?? null;
  if (!def.default) return NO_VALUE;
  // A default chain that loops (guivm pointing back at itself) fails like the AttributeError it is.
  if (readDepth > 64) return NO_VALUE;
  readDepth++;
  try {
    return def.default(ctxFor(world, holder));
  } finally {
    readDepth--;
  }
}

/**
 * One context per world and holder, made once: a GetAll resolves some 60 defaults, and making
 * a context (four closures) for each was a good part of the simulator's time per call. A context
 * holds only references and reads the live state through them, so it never goes stale.
 */
const contexts = new WeakMap<World, { app?: PropCtx; qubes: WeakMap<Qube, PropCtx> }>();

export function ctxFor(world: World, holder: Holder): PropCtx {
  let forWorld = contexts.get(world);
  if (forWorld === undefined) {
    forWorld = { qubes: new WeakMap() };
    contexts.set(world, forWorld);
  }
  const cached = holder.kind === "app" ? forWorld.app : forWorld.qubes.get(holder.qube);
  if (cached !== undefined) return cached;
  const made: PropCtx = {
    world,
    holder,
    get: (name) => readProp(world, holder, name),
    of: (q, name) => readProp(world, qubeHolder(q), name),
    global: (name) => readProp(world, APP, name),
    qube: (v) => (typeof v === "string" ? world.qubes.get(v) : undefined),
  };
  if (holder.kind === "app") forWorld.app = made;
  else forWorld.qubes.set(holder.qube, made);
  return made;
}

function isDefault(holder: Holder, name: string, world: World): boolean {
  return !(holder.kind === "app" ? world.globals : holder.qube.props).has(name);
}

const readFor = (world: World) => (q: Qube, name: string): Value => readProp(world, qubeHolder(q), name);

/** The qube a VM-valued property points at, if any. */
export function vmProp(world: World, q: Qube, name: string): Qube | undefined {
  const v = readProp(world, qubeHolder(q), name);
  return typeof v === "string" ? world.qubes.get(v) : undefined;
}

/** str() of a value in event arguments: None, True/False, names, numbers. */
export function eventValue(v: Value): string {
  if (v === NO_VALUE || v === null) return "None";
  if (typeof v === "boolean") return v ? "True" : "False";
  return v;
}

function wireValue(v: Value): string {
  if (v === NO_VALUE || v === null) return "";
  if (typeof v === "boolean") return v ? "True" : "False";
  return v;
}

export function lookupProp(world: World, holder: Holder, name: string): PropDef {
  const def = propTable(holder, world.release).byName.get(name);
  if (!def) throw qubesError("QubesNoSuchPropertyError", `Invalid property ${pyRepr(name)} of ${holderName(holder)}`);
  return def;
}

/** `default=<True|False> type=<t> <value>` (admin.*.property.Get). */
export function formatGet(world: World, holder: Holder, def: PropDef): string {
  const v = readProp(world, holder, def.name);
  if (v === NO_VALUE) return `default=True type=${def.wire} `;
  return `default=${isDefault(holder, def.name, world) ? "True" : "False"} type=${def.wire} ${wireValue(v)}`;
}

/** `type=<t> <value>`, or null when the property has no default (empty OK reply). */
export function formatGetDefault(world: World, holder: Holder, def: PropDef): string | null {
  if (!def.default) return null;
  const v = def.default(ctxFor(world, holder));
  if (v === NO_VALUE) return null;
  return `type=${def.wire} ${wireValue(v)}`;
}

export function formatGetAll(world: World, holder: Holder): string {
  return propTable(holder, world.release)
    .list.map((def) => `${def.name} ${formatGet(world, holder, def).replace(/\\/g, "\\\\").replace(/\n/g, "\\n")}\n`)
    .join("");
}

// ---------------------------------------------------------------------------------------------
// Set / Reset

const PRINTABLE_RE = /^[\x20-\x7e\t\n\r\x0b\x0c]*$/;

/** qubes.property.bool: case-insensitive literals, no trimming. */
export function parsePyBool(s: string): boolean | null {
  const v = s.toLowerCase();
  if (v === "1" || v === "yes" || v === "true" || v === "on") return true;
  if (v === "0" || v === "no" || v === "false" || v === "off") return false;
  return null;
}

/** Python int(): surrounding whitespace, a sign and digit-group underscores are accepted. */
function parsePyInt(s: string): string | null {
  const m = /^\s*([+-]?)(\d+(?:_\d+)*)\s*$/.exec(s);
  if (!m) return null;
  return BigInt(`${m[1]}${(m[2] ?? "").replace(/_/g, "")}`).toString();
}

function parseUuid(s: string): string | null {
  const hex = s
    .replace(/^urn:uuid:/i, "")
    .replace(/^\{(.*)\}$/, "$1")
    .replace(/-/g, "");
  if (!/^[0-9a-fA-F]{32}$/.test(hex)) return null;
  const h = hex.toLowerCase();
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/** property.sanitize: the payload turned into a typed value, or the QubesValueError qubesd sends. */
function sanitizeProp(release: Release, def: PropDef, payload: Uint8Array): PropValue {
  if (payload.some((b) => b > 0x7f)) throw qubesError("QubesValueError", "Non-ASCII bytes in property value");
  const s = Buffer.from(payload).toString("latin1");
  const parseFailed = (type: string): SimError => qubesError("QubesValueError", `Failed to parse property value as ${type}`);
  switch (def.parseAs) {
    case "bool": {
      const b = parsePyBool(s);
      if (b === null) throw qubesError("QubesValueError", `Invalid literal for boolean property: ${pyRepr(s)}`);
      return b;
    }
    case "int": {
      const n = parsePyInt(s);
      if (n === null) throw parseFailed("int");
      return n;
    }
    case "ipv4":
      return parseIPv4(s) ?? throwErr(parseFailed("IPv4Address"));
    case "ipv6":
      return parseIPv6(s) ?? throwErr(parseFailed("IPv6Address"));
    case "uuid":
      return parseUuid(s) ?? throwErr(parseFailed("UUID"));
    case "vm": {
      if (s === "") return null;
      const err = vmNameError(release, s);
      if (err) throw qubesError("QubesValueError", err);
      return s;
    }
    case "str":
    case "label":
      if (!PRINTABLE_RE.test(s)) throw qubesError("QubesValueError", "Invalid characters in property value");
      return s;
  }
}

function throwErr(e: SimError): never {
  throw e;
}

/** app.get_label: a label by name, else by index given as a number (Python int() rules). */
export function findLabel(world: World, ref: string): Label {
  const label = lookupLabel(world, ref);
  if (!label) throw qubesError("QubesLabelNotFoundError", `Label does not exist: ${ref}`);
  return label;
}

export function lookupLabel(world: World, ref: string): Label | undefined {
  const index = parsePyInt(ref);
  return world.labels.find((l) => l.name === ref) ?? (index === null ? undefined : world.labels.find((l) => String(l.index) === index));
}

/** A SimError for a release's refusal. */
export const refused = (r: Refusal): SimError => qubesError(r.qubesClass, r.message);

/** setter_label: also accepts the `label-<index>` form of qubes.xml. */
function resolveLabel(world: World, v: string): string {
  const m = /^label-([0-9]+)$/.exec(v);
  return findLabel(world, m ? (m[1] ?? "") : v).name;
}

/** The checks of VMProperty.__set__ and of the property's own setter; returns the value to store. */
function checkedValue(world: World, holder: Holder, def: PropDef, value: PropValue): PropValue {
  const explicit = holder.kind === "app" ? world.globals : holder.qube.props;
  if (def.access === "write-once" && explicit.has(def.name)) {
    throw emptyReply(`property ${pyRepr(def.name)} is write-once and already set`);
  }
  if (def.access === "read-only") {
    const klass = holder.kind === "app" ? "Qubes" : holder.qube.klass;
    throw qubesError("QubesPropertyValueError", `property ${pyRepr(def.name)} on ${klass} instance cannot be set`);
  }
  let v = value;
  if (def.wire === "vm") {
    if (v === null) {
      if (!def.allowNone) {
        throw qubesError("QubesPropertyValueError", `Invalid value None for property ${pyRepr(def.name)} of ${holderName(holder)}`);
      }
    } else {
      const target = world.qubes.get(String(v));
      if (!target) throw qubesError("QubesPropertyValueError", `Can't set ${def.name} to non-existing qube ${String(v)}`);
      if (def.vmClass && target.klass !== def.vmClass) {
        throw qubesError(
          "QubesPropertyValueError",
          `wrong VM class: domains[${pyRepr(target.name)}] is of type ${target.klass} and not ${def.vmClass}`,
        );
      }
    }
  }
  if (def.wire === "label" && typeof v === "string") v = resolveLabel(world, v);
  return def.setter ? def.setter(ctxFor(world, holder), v) : v;
}

/** admin.*.property.Set after the name lookup: sanitise, check, store, fire events. */
export function setProp(world: World, holder: Holder, def: PropDef, payload: Uint8Array, emit: Emit): void {
  const value = checkedValue(world, holder, def, sanitizeProp(world.release, def, payload));
  assignProp(world, holder, def, value, emit);
}

/** Stores a checked value with the events and side effects of qubes.property.__set__. */
export function assignProp(world: World, holder: Holder, def: PropDef, value: PropValue, emit: Emit): void {
  const old = readProp(world, holder, def.name);
  if (old !== value) runningPreSet(world.release.name, world, holder, def.name, value, readFor(world));
  const subject = holder.kind === "app" ? null : holder.qube.name;
  const kwargs = (): Record<string, string> => ({
    name: def.name,
    newvalue: eventValue(value),
    ...(old === NO_VALUE ? {} : { oldvalue: eventValue(old) }),
  });
  emit(subject, `property-pre-set:${def.name}`, kwargs());
  preChangeEffects(world, holder, def.name, value, old, emit);
  (holder.kind === "app" ? world.globals : holder.qube.props).set(def.name, value);
  emit(subject, `property-set:${def.name}`, kwargs());
  changeEffects(world, holder, def.name, old, emit);
}

/** admin.*.property.Reset after the name lookup. */
export function resetProp(world: World, holder: Holder, def: PropDef, emit: Emit): void {
  const explicit = holder.kind === "app" ? world.globals : holder.qube.props;
  if (def.access === "write-once" && explicit.has(def.name)) {
    throw emptyReply(`property ${pyRepr(def.name)} is write-once and already set`);
  }
  if (holder.kind === "qube" && def.name === "template" && (holder.qube.klass === "AppVM" || holder.qube.klass === "DispVM")) {
    const fallback = holder.qube.klass === "AppVM" ? readProp(world, APP, "default_template") : NO_VALUE;
    throw qubesError(
      "QubesValueError",
      typeof fallback === "string"
        ? `Cannot unset template. You can set it to the current default (${fallback}) instead`
        : "Cannot unset template",
    );
  }
  if (holder.kind === "qube" && def.name === "netvm" && def.setter && def.default) {
    // property-pre-reset:netvm runs the netvm setter on the default, so loops are refused here too.
    const next = def.default(ctxFor(world, holder));
    if (next !== NO_VALUE) def.setter(ctxFor(world, holder), next);
    if (next !== NO_VALUE && next !== readProp(world, holder, def.name)) runningPreSet(world.release.name, world, holder, def.name, next, readFor(world));
  }
  const old = readProp(world, holder, def.name);
  const subject = holder.kind === "app" ? null : holder.qube.name;
  const kwargs: Record<string, string> = old === NO_VALUE ? { name: def.name } : { name: def.name, oldvalue: eventValue(old) };
  emit(subject, `property-pre-reset:${def.name}`, kwargs);
  emit(subject, `property-pre-del:${def.name}`, kwargs);
  const next = def.default ? def.default(ctxFor(world, holder)) : NO_VALUE;
  preChangeEffects(world, holder, def.name, next === NO_VALUE ? null : next, old, emit);
  explicit.delete(def.name);
  emit(subject, `property-reset:${def.name}`, kwargs);
  emit(subject, `property-del:${def.name}`, kwargs);
  changeEffects(world, holder, def.name, old, emit);
}

// ---------------------------------------------------------------------------------------------
// Side effects of property changes (qubes.app handlers and qubes.ext.* extensions)

function preChangeEffects(world: World, holder: Holder, name: string, next: Value, old: Value, emit: Emit): void {
  if (holder.kind !== "app") return;
  if (name === "clockvm" && typeof next === "string") {
    const vm = world.qubes.get(next);
    if (vm && !vm.features.has("service.clocksync")) setFeature(vm, "service.clocksync", "1", emit);
  }
  if (name === "default_netvm") {
    for (const vm of qubesWithDefault(world, "netvm")) {
      emit(vm.name, "property-pre-set:netvm", {
        name: "netvm",
        newvalue: eventValue(next),
        ...(old === NO_VALUE ? {} : { oldvalue: eventValue(old) }),
      });
    }
  }
}

function changeEffects(world: World, holder: Holder, name: string, old: Value, emit: Emit): void {
  const now = readProp(world, holder, name);
  if (holder.kind === "qube") {
    const q = holder.qube;
    if (name === "provides_network") {
      if (now === true) setFeature(q, "servicevm", "1", emit);
      else if (q.features.has("servicevm")) deleteFeature(q, "servicevm", emit);
    }
    if (name === "guivm" || name === "audiovm") retag(q, name, old, now, emit);
    return;
  }
  if (name === "clockvm" && old !== now && typeof old === "string") {
    const vm = world.qubes.get(old);
    if (vm && vm.features.get("service.clocksync")) deleteFeature(vm, "service.clocksync", emit);
  }
  if (name === "default_guivm" || name === "default_audiovm") {
    const prop = name === "default_guivm" ? "guivm" : "audiovm";
    for (const vm of qubesWithDefault(world, prop)) retag(vm, prop, old, now, emit);
  }
  if (name === "default_netvm" || name === "default_dispvm") {
    const prop = name === "default_netvm" ? "netvm" : "default_dispvm";
    for (const vm of qubesWithDefault(world, prop)) {
      emit(vm.name, `property-reset:${prop}`, { name: prop, ...(old === NO_VALUE ? {} : { oldvalue: eventValue(old) }) });
    }
  }
}

/** Qubes that have `prop` and leave it at its default, in qid order. */
function qubesWithDefault(world: World, prop: string): Qube[] {
  return [...world.qubes.values()]
    .filter((q) => propTable(qubeHolder(q), world.release).byName.has(prop) && !q.props.has(prop))
    .sort((a, b) => Number(readProp(world, qubeHolder(a), "qid")) - Number(readProp(world, qubeHolder(b), "qid")));
}

/** The guivm-<vm> / audiovm-<vm> tags follow the property (qubes.ext.gui, qubes.ext.audio). */
function retag(q: Qube, prop: string, old: Value, now: Value, emit: Emit): void {
  if (old === now) return;
  if (typeof old === "string" && q.tags.has(`${prop}-${old}`)) removeTag(q, `${prop}-${old}`, emit);
  if (typeof now === "string") addTag(q, `${prop}-${now}`, emit);
}

// ---------------------------------------------------------------------------------------------
// Features and tags with their events

export function setFeature(q: Qube, name: string, value: string, emit: Emit): void {
  const old = q.features.get(name);
  if (old === value) return;
  const kwargs: Record<string, string> = old === undefined ? { feature: name, value } : { feature: name, value, oldvalue: old };
  emit(q.name, `domain-feature-pre-set:${name}`, kwargs);
  q.features.set(name, value);
  emit(q.name, `domain-feature-set:${name}`, kwargs);
}

export function deleteFeature(q: Qube, name: string, emit: Emit): void {
  emit(q.name, `domain-feature-pre-delete:${name}`, { feature: name });
  q.features.delete(name);
  emit(q.name, `domain-feature-delete:${name}`, { feature: name });
}

/** Adds a tag; false when it was already there (no event then). */
export function addTag(q: Qube, tag: string, emit: Emit): boolean {
  if (q.tags.has(tag)) return false;
  q.tags.add(tag);
  emit(q.name, `domain-tag-add:${tag}`, { tag });
  return true;
}

export function removeTag(q: Qube, tag: string, emit: Emit): void {
  q.tags.delete(tag);
  emit(q.name, `domain-tag-delete:${tag}`, { tag });
}
