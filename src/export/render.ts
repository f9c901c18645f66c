// Export's renderer: an ActualState (as src/export/read.ts reads it) → a config in the format
// users write, as YAML text with the yaml-language-server schema comment. It lists only what
// differs from Qubes' defaults, never what Qubes or the qube's agent maintain (automatic tags and
// features, ownership records, bookkeeping properties), and never the power state. Pure.

import { Document, visit, type Node, type YAMLMap, type YAMLSeq } from "yaml";
import { GLOBAL_PROPERTIES, POOL_DRIVERS, QUBE_PROPERTIES, classesOf, type PropertyType } from "../config/catalog.js";
import type { ActualProperty, ActualQube, ActualState } from "../model/actual.js";
import { CONFIG_VERSION, TEMPLATE_BASED_CLASSES, type QubeClass } from "../model/desired.js";
import type { Diagnostic } from "../model/diagnostics.js";
import { configModeOf, defaultDeviceMode } from "../model/devices.js";
import { lifecycleOf, ownershipNames, readInventory, readQubeRecords, RECORD_PREFIX } from "../model/ownership.js";
import { checkFeatureName, checkFeatureValue, checkTagName, parseFirewallRule, parseQubesBool, PROHIBITED_FEATURES, type FirewallRule } from "../model/qubes-rules.js";
import { exportDiagnostic } from "./codes.js";
import { sizedVolumes } from "./read.js";
import { CONTROL_BUT_TAB_AND_NEWLINE, escapeControl, printable } from "../util/printable.js";

export type ExportOptions = {
  owner: string;
  all: boolean;
  /** Where the editor finds the schema, relative to the written file. */
  schemaPath: string;
  /** `qubes-iac 0.1.0`. */
  generator: string;
  /** Keep the values the host sets itself (HOST_GLOBALS, a qube's kernel version): `--host-values`. */
  hostValues?: boolean;
};

/**
 * Values the host sets and changes by itself, which an exported config would pin to this
 * machine: dom0's kernel packages set `default_kernel` on install and on each kernel update (it
 * has no default: qubes-core-admin qubes/app.py, Qubes.default_kernel), and qubesd sets
 * `default_pool_kernel` to `linux-kernel` when it creates its store (Qubes.create_empty_store).
 */
const HOST_GLOBALS: ReadonlySet<string> = new Set(["default_kernel", "default_pool_kernel"]);
/** A qube's `kernel` naming one of dom0's kernel versions (`""`, the qube's own kernel, is a choice that travels). */
const isHostQubeValue = (name: string, p: ActualProperty): boolean => name === "kernel" && p.raw !== "";

export type ExportResult = {
  text: string;
  diagnostics: Diagnostic[];
  counts: { qubes: number; labels: number; pools: number; properties: number };
};

/** Properties that record events rather than intent: exporting them would undo the next backup. */
const BOOKKEEPING_PROPERTIES: ReadonlySet<string> = new Set(["backup_timestamp"]);

/** Features the qube's agent reports or Qubes maintains; a config setting them would fight it. */
const AUTOMATIC_FEATURES: ReadonlySet<string> = new Set([
  "os",
  "os-distribution",
  "os-distribution-like",
  "os-version",
  "os-eol",
  "qrexec",
  "gui",
  "gui-emulated",
  "vmexec",
  "qubes-agent-version",
  "last-updates-check",
  "updates-available",
  "template-name",
  "template-release",
  "template-buildtime",
  "template-epoch",
  "template-version",
  "template-summary",
  "template-description",
  "template-url",
  "template-license",
  "template-reponame",
  "default-menu-items",
  "netvm-menu-items",
  // Qubes sets and removes it with provides_network.
  "servicevm",
]);
const AUTOMATIC_FEATURE_PREFIXES = ["supported-service.", "supported-feature.", "supported-rpc.", "boot-mode.", "audio-model"];

/** Tags qubesd sets itself (`created-by-*`, and `audiovm-*`/`guivm-*` from those properties) or qubes-iac does. */
const AUTOMATIC_TAG_RE = /^(created-by-|managed-by-|audiovm-|guivm-)/;

/** Qubes' default sizes (qubes.config.defaults): a volume of this size is not listed. */
const DEFAULT_VOLUME_SIZES: Readonly<Record<string, bigint>> = { root: 10n * 1024n ** 3n, private: 2n * 1024n ** 3n, volatile: 10n * 1024n ** 3n };

/** Qubes' default firewall. */
const DEFAULT_FIREWALL = ["action=accept"];

const UNITS: ReadonlyArray<[string, bigint]> = [
  ["TiB", 1024n ** 4n],
  ["GiB", 1024n ** 3n],
  ["MiB", 1024n ** 2n],
  ["KiB", 1024n],
];

/** `20GiB` when exact in a binary unit, else the byte count (a number up to 2^53). */
export function formatSize(bytes: bigint): string | number {
  for (const [unit, n] of UNITS) if (bytes >= n && bytes % n === 0n) return `${bytes / n}${unit}`;
  return Number(bytes);
}

type Value = string | number | boolean | null;

/** A property value as the config writes it, typed by the catalog; undefined when it cannot be. */
function configValue(type: PropertyType, p: ActualProperty): Value | undefined {
  switch (type) {
    case "bool":
      return parseQubesBool(p.raw) ?? undefined;
    case "int":
      return /^-?[0-9]+$/.test(p.raw) && Number.isSafeInteger(Number(p.raw)) ? Number(p.raw) : undefined;
    case "str":
      return p.raw;
    case "vm":
      return p.raw === "" ? null : p.raw;
    default: {
      const never: never = type;
      return never;
    }
  }
}

/** A canonical firewall rule as the config's rule object. */
function ruleObject(r: FirewallRule): Record<string, Value> {
  const o: Record<string, Value> = { action: r.action };
  if (r.dst) o.dsthost = r.dst.value;
  if (r.proto) o.proto = r.proto;
  if (r.dstports) o.dstports = r.dstports[0] === r.dstports[1] ? r.dstports[0] : `${r.dstports[0]}-${r.dstports[1]}`;
  if (r.icmptype !== undefined) o.icmptype = r.icmptype;
  if (r.specialtarget) o.specialtarget = r.specialtarget;
  if (r.expire !== undefined) o.expire = r.expire;
  if (r.comment !== undefined) o.comment = r.comment;
  return o;
}

const isAutomaticFeature = (f: string): boolean => AUTOMATIC_FEATURES.has(f) || AUTOMATIC_FEATURE_PREFIXES.some((p) => f.startsWith(p));

type QubeEntry = Record<string, unknown>;

/** What was left out as host-derived, for the header: global names, and the qubes whose kernel was. */
type HostLeftOut = { globals: string[]; kernelOf: string[] };

function exportQube(q: ActualQube, actual: ActualState, o: ExportOptions, owned: boolean, created: boolean, diagnostics: Diagnostic[], hostLeftOut: HostLeftOut): QubeEntry {
  const names = ownershipNames(o.owner);
  const address = `qube.${q.name}`;
  const prop = (n: string): ActualProperty | undefined => q.properties.get(n);
  const rec = readQubeRecords(o.owner, prop("uuid")?.raw, q.featureNames ?? [], q.templateFeatureNames);
  const entry: QubeEntry = {};
  // Only what qubes-iac created is exported without adopt: dropping an adopted qube releases it.
  if (!created) entry.adopt = true;
  entry.class = q.klass;
  const template = prop("template")?.raw ?? "";
  if (TEMPLATE_BASED_CLASSES.has(q.klass as QubeClass) && template !== "") entry.template = template;
  entry.label = prop("label")?.raw ?? "";
  // The pool matters only to create the qube again: listed when it is not the default pool.
  const pool = q.volumes.get("private")?.pool ?? q.volumes.get("volatile")?.pool;
  const defaultPool = actual.globals?.get("default_pool")?.raw;
  if (pool !== undefined && defaultPool !== undefined && pool !== defaultPool && q.volumes.has("private")) entry.pool = pool;
  if (owned && rec.protect) entry.protect = true;

  const properties: Record<string, Value> = {};
  for (const [name, spec] of Object.entries(QUBE_PROPERTIES)) {
    const p = prop(name);
    if (p === undefined || p.isDefault || BOOKKEEPING_PROPERTIES.has(name) || !classesOf(spec).includes(q.klass as QubeClass)) continue;
    if (!o.hostValues && isHostQubeValue(name, p)) {
      hostLeftOut.kernelOf.push(q.name);
      continue;
    }
    const v = configValue(spec.type, p);
    if (v === undefined) {
      diagnostics.push(exportDiagnostic("QIAC-W303", `qube ${q.name}: property ${name} = ${JSON.stringify(p.raw)} is not a ${spec.type}`, address));
      continue;
    }
    properties[name] = v;
  }
  if (Object.keys(properties).length > 0) entry.properties = properties;

  const features: Record<string, string> = {};
  for (const [f, v] of [...q.features].sort(([a], [b]) => (a < b ? -1 : 1))) {
    if (f.startsWith(RECORD_PREFIX) || PROHIBITED_FEATURES.has(f) || isAutomaticFeature(f)) continue;
    const problem = checkFeatureName(f) ?? checkFeatureValue(f, v);
    if (problem !== null) {
      diagnostics.push(exportDiagnostic("QIAC-W303", `qube ${q.name}: feature ${f}: ${problem}`, address));
      continue;
    }
    features[f] = v;
  }
  if (Object.keys(features).length > 0) entry.features = features;

  const tags = [...(q.tags ?? [])].filter((t) => !AUTOMATIC_TAG_RE.test(t) && t !== names.ownerTag && checkTagName(t) === null).sort();
  if (tags.length > 0) entry.tags = tags;

  const rules = q.firewall ?? DEFAULT_FIREWALL;
  const managedRules = owned && rec.firewall;
  if (managedRules || rules.length !== DEFAULT_FIREWALL.length || rules[0] !== DEFAULT_FIREWALL[0]) {
    const parsed = rules.map(parseFirewallRule);
    const bad = parsed.find((p) => !p.ok);
    if (bad !== undefined && !bad.ok) diagnostics.push(exportDiagnostic("QIAC-W303", `qube ${q.name}: firewall left out: ${bad.error}`, address));
    else entry.firewall = parsed.map((p) => (p.ok ? ruleObject(p.rule) : {}));
  }

  const volumes: Record<string, { size: string | number }> = {};
  for (const v of sizedVolumes(q.klass)) {
    const size = q.volumes.get(v)?.size;
    if (size !== undefined && size !== DEFAULT_VOLUME_SIZES[v]) volumes[v] = { size: formatSize(size) };
  }
  if (Object.keys(volumes).length > 0) entry.volumes = volumes;

  // Devices as the config writes them: the mode when not the class's default, options (a list
  // when all are True), `device: any` for an assignment that accepts any device; a concrete
  // identity is left to the plan, which keeps the one Qubes holds.
  const devices: Record<string, Record<string, Record<string, unknown>>> = {};
  for (const [devclass, list] of [...(q.devices ?? [])].sort(([a], [b]) => (a < b ? -1 : 1))) {
    for (const a of [...list].sort((x, y) => (`${x.backend}:${x.port}` < `${y.backend}:${y.port}` ? -1 : 1))) {
      if (a.mode === "manual") continue;
      const body: Record<string, unknown> = {};
      if (a.mode !== defaultDeviceMode(devclass)) body.mode = configModeOf(a.mode);
      if (a.options.size > 0) body.options = [...a.options.values()].every((v) => v === "True") ? [...a.options.keys()] : Object.fromEntries(a.options);
      if (a.deviceId === "*") body.device = "any";
      (devices[devclass] ??= {})[`${a.backend}:${a.port}`] = body;
    }
  }
  if (Object.keys(devices).length > 0) entry.devices = devices;
  return entry;
}

function exportPool(driver: string, params: ReadonlyMap<string, string>): Record<string, Value> {
  const out: Record<string, Value> = { driver };
  const known = POOL_DRIVERS[driver];
  for (const [k, v] of [...params].sort(([a], [b]) => (a < b ? -1 : 1))) {
    if (known === undefined) {
      out[k] = v;
      continue;
    }
    const spec = known.params[k];
    if (spec === undefined) continue;
    out[k] = spec.type === "bool" ? (parseQubesBool(v) ?? v) : spec.type === "int" && /^-?[0-9]+$/.test(v) ? Number(v) : v;
  }
  return out;
}

/** Flow style for the small collections people write on one line. */
/**
 * A string with a control character is written double-quoted, where YAML has escapes: the yaml
 * library escapes C0 there itself but leaves DEL, C1 and bidirectional controls raw, which the
 * text then gets as `\xNN`/`\uNNNN` (see `exportText`), so the file reads back the same and
 * prints safely.
 */
const HAS_CONTROL = new RegExp(CONTROL_BUT_TAB_AND_NEWLINE.source);
function quoteControls(doc: Document): void {
  visit(doc, {
    Scalar(_key, node) {
      if (typeof node.value === "string" && HAS_CONTROL.test(node.value)) node.type = "QUOTE_DOUBLE";
    },
  });
}

/** The document as text; control characters only stand inside double-quoted scalars by then (`quoteControls`). */
const exportText = (doc: Document): string => doc.toString({ lineWidth: 0, flowCollectionPadding: false }).replace(CONTROL_BUT_TAB_AND_NEWLINE, escapeControl);

function styleDocument(doc: Document): void {
  quoteControls(doc);
  const qubes = doc.get("qubes", true) as YAMLMap | undefined;
  for (const pair of qubes?.items ?? []) {
    const q = pair.value as YAMLMap;
    const tags = q.get("tags", true) as YAMLSeq | undefined;
    if (tags) tags.flow = true;
    const firewall = q.get("firewall", true) as YAMLSeq | undefined;
    for (const rule of firewall?.items ?? []) (rule as Node & { flow?: boolean }).flow = true;
    const devices = q.get("devices", true) as YAMLMap | undefined;
    for (const c of devices?.items ?? []) for (const d of (c.value as YAMLMap).items) (d.value as YAMLMap).flow = true;
    const volumes = q.get("volumes", true) as YAMLMap | undefined;
    for (const v of volumes?.items ?? []) (v.value as YAMLMap).flow = true;
  }
}

function hostNote(left: HostLeftOut): string[] {
  const kernels = left.kernelOf.length === 0 ? [] : [`the kernel of ${left.kernelOf.length > 5 ? `${left.kernelOf.slice(0, 5).join(", ")} and ${left.kernelOf.length - 5} more` : left.kernelOf.join(", ")}`];
  const what = [...left.globals, ...kernels];
  return what.length === 0 ? [] : [`# Left out as this host sets them (export --host-values keeps them): ${what.join(", ")}.`];
}

export function renderExport(actual: ActualState, o: ExportOptions): ExportResult {
  const diagnostics: Diagnostic[] = [];
  const inventory = readInventory(o.owner, actual.dom0FeatureNames);
  const ownerTag = ownershipNames(o.owner).ownerTag;

  const labels: Record<string, string> = {};
  for (const [name, l] of [...(actual.labels ?? [])].sort(([a], [b]) => (a < b ? -1 : 1))) {
    if (l.colour !== undefined) {
      labels[name] = l.colour;
      continue;
    }
    const owned = inventory.labels.has(name);
    diagnostics.push(
      owned
        ? exportDiagnostic("QIAC-E301", `label ${name} is managed by ${o.owner}, but qubesd does not tell its colour (it answers so for a label created since it started)`, `label.${name}`, "restart qubesd (systemctl restart qubesd) and export again")
        : exportDiagnostic("QIAC-W301", `label ${name} left out: qubesd does not tell its colour until it restarts`, `label.${name}`),
    );
  }

  const pools: Record<string, Record<string, Value>> = {};
  for (const [name, p] of [...actual.pools].sort(([a], [b]) => (a < b ? -1 : 1))) pools[name] = exportPool(p.driver, p.params);

  const hostLeftOut: HostLeftOut = { globals: [], kernelOf: [] };
  const properties: Record<string, Value> = {};
  if (o.all) {
    for (const [name, spec] of Object.entries(GLOBAL_PROPERTIES)) {
      const p = actual.globals?.get(name);
      if (p === undefined || p.isDefault) continue;
      if (!o.hostValues && HOST_GLOBALS.has(name)) {
        hostLeftOut.globals.push(name);
        continue;
      }
      const v = configValue(spec.type, p);
      if (v === undefined) diagnostics.push(exportDiagnostic("QIAC-W303", `global property ${name} = ${JSON.stringify(p.raw)} is not a ${spec.type}`, "properties"));
      else properties[name] = v;
    }
  }

  const qubes: Record<string, QubeEntry> = {};
  for (const q of [...actual.qubes.values()].sort((a, b) => (a.name < b.name ? -1 : 1))) {
    const inInventory = inventory.qubes.has(q.name) || inventory.intents.has(q.name);
    const tagged = q.tags?.has(ownerTag) ?? false;
    const marked = readQubeRecords(o.owner, q.properties.get("uuid")?.raw, q.featureNames ?? [], q.templateFeatureNames).own || (inventory.legacy.has(q.name) && tagged);
    const owned = inInventory && marked;
    if (!o.all && !owned) {
      diagnostics.push(
        exportDiagnostic("QIAC-W302", `qube ${q.name} is in the inventory of ${o.owner} but lacks its ownership marker (${ownerTag} alone is no claim): left out`, `qube.${q.name}`, "`qubes-iac plan` says why (ownership drift or an interrupted adopt)"),
      );
      continue;
    }
    qubes[q.name] = exportQube(q, actual, o, owned, owned && lifecycleOf(inventory, q.name) === "created", diagnostics, hostLeftOut);
  }

  const config: Record<string, unknown> = { version: CONFIG_VERSION, owner: o.owner };
  if (Object.keys(labels).length > 0) config.labels = labels;
  if (Object.keys(pools).length > 0) config.pools = pools;
  if (Object.keys(properties).length > 0) config.properties = properties;
  if (Object.keys(qubes).length > 0) config.qubes = qubes;
  const doc = new Document(config);
  styleDocument(doc);

  const what = o.all
    ? "every qube but dom0 (adopt: true takes over each qube not yet managed by this owner), the custom labels, the storage pools and the global properties"
    : `the qubes, labels and pools managed by ${o.owner}`;
  const header = [
    `# yaml-language-server: $schema=${printable(o.schemaPath)}`,
    "#",
    `# Exported by ${o.generator}: ${what}.`,
    "# Only values that differ from Qubes' defaults are listed; power states are not.",
    ...hostNote(hostLeftOut),
  ];
  return {
    text: `${header.join("\n")}\n${exportText(doc)}`,
    diagnostics,
    counts: { qubes: Object.keys(qubes).length, labels: Object.keys(labels).length, pools: Object.keys(pools).length, properties: Object.keys(properties).length },
  };
}
