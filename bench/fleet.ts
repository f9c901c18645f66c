// The configs the benchmark plans and applies, written from a generated simulator system: a config
// that adopts the first N qubes exactly as they are (so that, once applied, a plan of it is a
// no-op), one that creates new qubes, and one that changes a property on managed qubes. Pure:
// state document in, config object out; the caller writes it as YAML.

import { QUBE_PROPERTIES } from "../src/config/catalog.js";
import { parseFirewallRule, type FirewallRule } from "../src/model/qubes-rules.js";
import type { QubeDocument, StateDocument } from "../src/providers/qubes/simulator/index.js";

/** Properties a config cannot set (identity, or set through the qube's own keys). */
const NOT_PROPERTIES: ReadonlySet<string> = new Set(["name", "qid", "uuid", "label", "template"]);
/** Tags qubesd gives a qube itself; a config does not list them. */
const AUTO_TAG_RE = /^(audiovm|guivm|created-by)-/;
/** Features a qube's own agent reports (qvm-features-request), which are not configuration. */
const AGENT_FEATURE_RE = /^(os|os-.+|qrexec|gui|supported-(service|feature|rpc)\..+)$/;

type ConfigValue = string | number | boolean | null;
type FirewallEntry = Record<string, string | number>;
export type ConfigQube = {
  adopt?: true;
  class?: string;
  template?: string;
  label?: string;
  properties?: Record<string, ConfigValue>;
  features?: Record<string, string>;
  tags?: string[];
  firewall?: FirewallEntry[];
};
export type Config = { version: 1; owner: string; qubes: Record<string, ConfigQube> };

/** Qubes a config may manage: every qube of the system but dom0, in the system's (qid) order. */
export function manageableQubes(doc: StateDocument): QubeDocument[] {
  return doc.qubes.filter((q) => q.class !== "AdminVM");
}

/** A stored property value as the config writes it (ints as numbers, per the property's type). */
function configValue(name: string, v: string | boolean | null): ConfigValue {
  if (typeof v === "string" && QUBE_PROPERTIES[name]?.type === "int") return Number(v);
  return v;
}

/** A canonical firewall rule line as a config rule entry. */
function firewallEntry(line: string): FirewallEntry {
  const parsed = parseFirewallRule(line);
  if (!parsed.ok) throw new Error(`generated firewall rule '${line}' does not parse: ${parsed.error}`);
  const r: FirewallRule = parsed.rule;
  const e: FirewallEntry = { action: r.action };
  if (r.dst) e.dsthost = r.dst.value;
  if (r.proto) e.proto = r.proto;
  if (r.specialtarget) e.specialtarget = r.specialtarget;
  if (r.dstports) e.dstports = r.dstports[0] === r.dstports[1] ? r.dstports[0] : `${r.dstports[0]}-${r.dstports[1]}`;
  if (r.icmptype !== undefined) e.icmptype = r.icmptype;
  if (r.expire !== undefined) e.expire = r.expire;
  if (r.comment !== undefined) e.comment = r.comment;
  return e;
}

/** The config entry that adopts `q` and states every managed attribute at its current value. */
export function adoptedQube(q: QubeDocument): ConfigQube {
  const entry: ConfigQube = { adopt: true, class: q.class };
  const label = q.props.label;
  if (typeof label === "string") entry.label = label;
  const template = q.props.template;
  if (typeof template === "string" && (q.class === "AppVM" || q.class === "DispVM")) entry.template = template;
  const properties: Record<string, ConfigValue> = {};
  for (const [name, v] of Object.entries(q.props)) if (!NOT_PROPERTIES.has(name)) properties[name] = configValue(name, v);
  if (Object.keys(properties).length > 0) entry.properties = properties;
  const features = q.features.filter(([name]) => !AGENT_FEATURE_RE.test(name));
  if (features.length > 0) entry.features = Object.fromEntries(features);
  const tags = q.tags.filter((t) => !AUTO_TAG_RE.test(t));
  if (tags.length > 0) entry.tags = tags;
  if (q.firewall !== null) entry.firewall = q.firewall.map(firewallEntry);
  return entry;
}

/** Adopts the first `count` manageable qubes of `doc`, each as it is. */
export function adoptConfig(doc: StateDocument, owner: string, count: number): Config {
  const qubes = manageableQubes(doc);
  if (count > qubes.length) throw new RangeError(`the system has ${qubes.length} qubes besides dom0, not ${count}`);
  return { version: 1, owner, qubes: Object.fromEntries(qubes.slice(0, count).map((q) => [q.name, adoptedQube(q)])) };
}

/** `config` with `name: value` set on every qube it names. */
export function withProperty(config: Config, name: string, value: ConfigValue): Config {
  const qubes = Object.fromEntries(
    Object.entries(config.qubes).map(([n, q]) => [n, { ...q, properties: { ...q.properties, [name]: value } }] as const),
  );
  return { ...config, qubes };
}

/**
 * `count` new AppVMs `new-1`…, each with non-default properties, a few features and tags, and a
 * firewall — the shape of a typical qube a user adds. Uses the templates and service qubes every
 * generated system has.
 */
export function createConfig(owner: string, count: number): Config {
  const labels = ["red", "orange", "yellow", "green", "gray", "blue", "purple", "black"];
  const qubes: Record<string, ConfigQube> = {};
  for (let i = 1; i <= count; i++) {
    qubes[`new-${i}`] = {
      class: "AppVM",
      template: i % 3 === 0 ? "debian-12" : "fedora-41",
      label: labels[i % labels.length] as string,
      properties: { netvm: i % 4 === 0 ? "sys-vpn" : "sys-firewall", memory: 600 + 100 * (i % 5), maxmem: 4000, vcpus: 2 },
      features: { "service.crond": "1", "service.cups": "", "service.shutdown-idle": "1" },
      tags: ["bench", `batch-${i % 4}`],
      firewall: [
        { action: "accept", specialtarget: "dns" },
        { action: "accept", dsthost: "updates.example.org", proto: "tcp", dstports: 443 },
        { action: "accept", dsthost: "10.137.0.0/16", proto: "icmp" },
        { action: "drop" },
      ],
    };
  }
  return { version: 1, owner, qubes };
}

/**
 * The calls a plan of `config` needs on the system `doc`, by the list in docs/ownership.md
 * ("Reading it back cheaply"): admin.vm.List, dom0's feature.List and its format record; per
 * qube the config names, property.GetAll, tag.List, feature.List, one feature.Get per feature the
 * config names or qubes-iac recorded that is set, firewall.Get when declared or recorded; and one
 * property.Get per qube only the system has and property a reference needs of it. (These
 * configs have no labels, pools, global properties or volumes, and no interrupted intents.)
 */
export function planCallsNeeded(doc: StateDocument, config: Config): number {
  const prefix = `qubes-iac.${config.owner}.`;
  const dom0 = doc.qubes.find((q) => q.class === "AdminVM");
  const hasFormat = dom0?.features.some(([name]) => name === `${prefix}format`) ?? false;
  // admin.vm.List, dom0's feature.List (the inventory) and property.List (which tells the release:
  // src/model/release.ts), and the format record's value when it exists.
  let calls = 3 + (hasFormat ? 1 : 0);
  const byName = new Map(doc.qubes.map((q) => [q.name, q]));
  for (const [name, q] of Object.entries(config.qubes)) {
    const actual = byName.get(name);
    if (!actual) continue;
    const present = new Set(actual.features.map(([f]) => f));
    // The features qubes-iac set: its records of them, bound to the qube's UUID (format 2) or not (format 1).
    const uuid = actual.props.uuid;
    const recordPrefixes = [`${prefix}${String(uuid)}.feature.`, `${prefix}feature.`];
    const recorded = [...present].flatMap((f) => recordPrefixes.filter((r) => f.startsWith(r)).map((r) => f.slice(r.length)));
    const wanted = new Set([...Object.keys(q.features ?? {}), ...recorded]);
    calls += 3 + [...wanted].filter((f) => present.has(f)).length;
    if (q.firewall !== undefined || present.has(`${prefix}${String(uuid)}.firewall`) || present.has(`${prefix}firewall`)) calls++;
  }
  return calls + referenceReadsNeeded(doc, config);
}

/** What a reference needs of the qube it names (src/plan/reference-needs.ts), and the classes that have that property. */
const NEEDS: Readonly<Record<string, { property: string; classes: readonly string[] }>> = {
  netvm: { property: "provides_network", classes: ["AppVM", "DispVM", "StandaloneVM", "TemplateVM"] },
  default_dispvm: { property: "template_for_dispvms", classes: ["AppVM"] },
  management_dispvm: { property: "template_for_dispvms", classes: ["AppVM"] },
};

/** One property.Get per qube only the system has (not in the config) and property a reference of the config needs of it. */
function referenceReadsNeeded(doc: StateDocument, config: Config): number {
  const byName = new Map(doc.qubes.map((q) => [q.name, q]));
  const reads = new Set<string>();
  const need = (target: unknown, n: { property: string; classes: readonly string[] } | undefined): void => {
    const t = typeof target === "string" ? byName.get(target) : undefined;
    if (n !== undefined && t !== undefined && !(t.name in config.qubes) && n.classes.includes(t.class)) reads.add(`${t.name} ${n.property}`);
  };
  for (const [name, q] of Object.entries(config.qubes)) {
    for (const [p, v] of Object.entries(q.properties ?? {})) need(v, NEEDS[p]);
    if ((q.class ?? byName.get(name)?.class) === "DispVM") need(q.template, NEEDS.default_dispvm);
  }
  return reads.size;
}
