// What a config's references need from the qube they name: a netvm must provide network, a
// default_dispvm (or a DispVM's template) must be a disposable template, an AppVM's template must
// be a TemplateVM. Decides which one property the reader reads of each qube that exists only on
// the system, and checks every reference before any call (QIAC-E130). Pure.

import type { ActualProperty, ActualState, ListedQube } from "../model/actual.js";
import { locate, type DesiredQube, type DesiredState, type QubeField, type TopField } from "../model/desired.js";
import type { Diagnostic, SourceLocation } from "../model/diagnostics.js";
import { planDiagnostic } from "./codes.js";
import type { Check } from "./ops.js";

/** A property that must be True on the referenced qube, or the class it must have. */
export type Need = { kind: "property"; name: "provides_network" | "template_for_dispvms" } | { kind: "class"; klass: "TemplateVM" };

const PROVIDES_NETWORK: Need = { kind: "property", name: "provides_network" };
const DISPOSABLE_TEMPLATE: Need = { kind: "property", name: "template_for_dispvms" };
const TEMPLATE: Need = { kind: "class", klass: "TemplateVM" };

/**
 * What each vm-typed property needs of the qube it names, on a qube or on the global object.
 * netvm: qubes/vm/mix/net.py `_setter_netvm` (QubesValueError "does not provide network");
 * default_dispvm, management_dispvm: a disposable is made from them, which qubes/vm/dispvm.py
 * (`from_appvm`, `__init__`) refuses unless template_for_dispvms; default_template: the global's
 * `vmclass=TemplateVM` in qubes/app.py.
 */
const PROPERTY_NEEDS: Readonly<Record<string, Need>> = {
  netvm: PROVIDES_NETWORK,
  default_netvm: PROVIDES_NETWORK,
  default_dispvm: DISPOSABLE_TEMPLATE,
  management_dispvm: DISPOSABLE_TEMPLATE,
  default_template: TEMPLATE,
};

/**
 * The classes that have each property at all (others cannot serve, and reading it would be an
 * error): provides_network is NetVMMixin's, on every QubesVM (qubes/vm/qubesvm.py); only AppVM
 * mixes in DVMTemplateMixin (qubes/vm/appvm.py), which holds template_for_dispvms.
 */
const CLASSES_WITH: Readonly<Record<Extract<Need, { kind: "property" }>["name"], ReadonlySet<string>>> = {
  provides_network: new Set(["AppVM", "DispVM", "StandaloneVM", "TemplateVM"]),
  template_for_dispvms: new Set(["AppVM"]),
};

export type Reference = { qube: string; need: Need; field: string; location: SourceLocation; address: string; holder: string };

/** Every reference of the config that needs something of the qube it names. */
export function configReferences(desired: DesiredState, listing: ReadonlyMap<string, ListedQube>): Reference[] {
  const out: Reference[] = [];
  for (const q of desired.qubes.values()) {
    const at = (field: QubeField): Pick<Reference, "field" | "location" | "address" | "holder"> => ({ field, location: locate(q, field), address: `qube.${q.name}`, holder: `qube ${q.name}` });
    const klass = q.class ?? listing.get(q.name)?.klass;
    if (q.template !== undefined && klass === "AppVM") out.push({ qube: q.template, need: TEMPLATE, ...at("template") });
    if (q.template !== undefined && klass === "DispVM") out.push({ qube: q.template, need: DISPOSABLE_TEMPLATE, ...at("template") });
    for (const [p, v] of q.properties) {
      const need = p === "default_netvm" || p === "default_template" ? undefined : PROPERTY_NEEDS[p];
      if (need !== undefined && v.kind === "vm" && v.value !== null) out.push({ qube: v.value, need, ...at(`properties.${p}`) });
    }
  }
  for (const [g, v] of desired.properties) {
    const need = g === "netvm" ? undefined : PROPERTY_NEEDS[g];
    const field: TopField = `properties.${g}`;
    if (need !== undefined && v.kind === "vm" && v.value !== null) out.push({ qube: v.value, need, field, location: locate(desired, field), address: "properties", holder: "the global properties" });
  }
  return out;
}

/**
 * The property reads the check needs: one per qube that exists only on the system (not in the
 * config, not read in depth) and property a reference needs of it, of a class that has it.
 */
export function referenceReads(desired: DesiredState, listing: ReadonlyMap<string, ListedQube>, read: ReadonlySet<string>): Array<{ vm: string; name: string }> {
  const out = new Map<string, { vm: string; name: string }>();
  for (const r of configReferences(desired, listing)) {
    if (r.need.kind !== "property" || desired.qubes.has(r.qube) || read.has(r.qube)) continue;
    const l = listing.get(r.qube);
    if (l === undefined || !CLASSES_WITH[r.need.name].has(l.klass)) continue;
    out.set(`${r.qube} ${r.need.name}`, { vm: r.qube, name: r.need.name });
  }
  return [...out.values()].sort((a, b) => (a.vm === b.vm ? (a.name < b.name ? -1 : 1) : a.vm < b.vm ? -1 : 1));
}

const isTrue = (p: ActualProperty | undefined): boolean => p?.raw === "True";

/**
 * Whether the qube can serve: `undefined` when it can, else what it is. A declared qube is as the
 * config makes it (what the config does not set, as it is now, or Qubes' default for a new qube).
 */
function shortfall(desired: DesiredState, actual: ActualState, r: Reference, relied: (c: Check) => void): string | undefined {
  const declared = desired.qubes.get(r.qube);
  const listed = actual.listing.get(r.qube);
  const klass = declared?.class ?? listed?.klass;
  if (klass === undefined) return undefined; // neither in the config nor in Qubes: QIAC-E107
  if (r.need.kind === "class") return klass === r.need.klass ? undefined : `is of class ${klass}, not ${r.need.klass}`;
  const name = r.need.name;
  if (!CLASSES_WITH[name].has(klass)) return `is of class ${klass}, which has no ${name}`;
  const set = declared?.properties.get(name);
  if (declared !== undefined) {
    // Both default to False (a reset in the config, or a qube the config creates without it).
    const serves = set?.kind === "bool" ? set.value : set?.kind === "default" ? false : isTrue(actual.qubes.get(r.qube)?.properties.get(name));
    return serves ? undefined : `has ${name} False`;
  }
  const read = actual.qubes.get(r.qube)?.properties.get(name) ?? actual.referenced?.get(r.qube)?.get(name);
  // What the plan relied on of a qube it does not manage: apply re-reads it before acting.
  if (read !== undefined) relied({ check: "property", holder: { vm: r.qube }, name, default: read.isDefault, value: read.raw });
  return isTrue(read) ? undefined : `has ${name} False`;
}

const describeNeed = (n: Need): string =>
  n.kind === "class" ? "a template" : n.name === "provides_network" ? "a netvm (a qube that provides network)" : "a disposable template";

/** The references that cannot be served, as diagnostics; `relied` gets the values of system-only qubes the plan relies on. */
export function checkReferenceNeeds(desired: DesiredState, actual: ActualState, relied: (c: Check) => void): Diagnostic[] {
  const out: Diagnostic[] = [];
  for (const r of configReferences(desired, actual.listing)) {
    const why = shortfall(desired, actual, r, relied);
    if (why === undefined) continue;
    const fix =
      r.need.kind === "class"
        ? "name a TemplateVM"
        : desired.qubes.has(r.qube)
          ? `set \`${r.need.name}: true\` on qube ${r.qube} in the config, or name another qube`
          : `name a qube that has ${r.need.name} True (qvm-prefs ${r.qube} ${r.need.name} shows it)`;
    out.push(
      planDiagnostic("QIAC-E130", `${r.holder}: ${r.field} '${r.qube}' cannot serve as ${describeNeed(r.need)}: it ${why}`, {
        location: r.location,
        address: r.address,
        hint: fix,
      }),
    );
  }
  return out;
}
