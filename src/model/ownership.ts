// Ownership records: the names and values qubes-iac writes into Qubes to remember what it owns
// (format 1, documented in docs/ownership.md — keep the two in step). The inventory lives in
// dom0's features, per-qube records in the qube's own features, plus the tag `managed-by-<owner>`.
// Every record is one feature whose name carries the data, so a whole inventory is read with one
// feature.List (no value reads in the normal case) and written one small feature at a time, which
// keeps every request far below qubesd's 64 KiB limit. Pure: names and parsing, no I/O.

import { ownerTag } from "./desired.js";

/** The record format this version writes and the newest it reads. */
export const OWNERSHIP_FORMAT_VERSION = 1;

/** What an intent record announces: a qube about to be created, or an existing one about to be adopted. */
export type QubeIntent = "create" | "adopt";
const QUBE_INTENTS: ReadonlySet<string> = new Set<QubeIntent>(["create", "adopt"]);

/** Value of inventory entries (qube, label, pool). */
export const ENTRY_OWNED = "own";
/** Value of every per-qube marker record. */
export const MARKER_VALUE = "1";

/** The record names of one owner. The owner is tag-charset (no dots), so prefixes never overlap. */
export function ownershipNames(owner: string) {
  const prefix = `qubes-iac.${owner}.`;
  return {
    prefix,
    /** on every qube it owns. */
    ownerTag: ownerTag(owner),
    /** dom0: format version of this owner's records (value `1`). */
    format: `${prefix}format`,
    /** dom0: a qube in the inventory, confirmed once it carries the owner tag (value `own`). */
    qube: (name: string): string => `${prefix}qube.${name}`,
    /** dom0: intent, written before Create or before tagging an adopted qube (value: QubeIntent). */
    intent: (name: string): string => `${prefix}intent.${name}`,
    /** dom0: a label in the inventory, written before label.Create (value `own`). */
    label: (name: string): string => `${prefix}label.${name}`,
    /** dom0: a pool in the inventory, written before pool.Add (value `own`). */
    pool: (name: string): string => `${prefix}pool.${name}`,
    /** on the qube: never delete or replace it (value `1`). */
    protect: `${prefix}protect`,
    /** on the qube: qubes-iac set its firewall (value `1`). */
    firewall: `${prefix}firewall`,
    /** on the qube: qubes-iac set this feature (value `1`). */
    feature: (name: string): string => `${prefix}feature.${name}`,
    /** on the qube: qubes-iac set this tag (value `1`). */
    tag: (name: string): string => `${prefix}tag.${name}`,
    /** dom0: who holds the apply lock (docs/locking.md), while an apply runs. */
    lock: `${prefix}lock`,
  };
}

/** Labels whose names start with this are qubes-iac's own (the apply lock); a config may not declare or use them. */
export const RESERVED_LABEL_PREFIX = "qubes-iac.";

/** The label whose creation takes the apply lock of `owner` (docs/locking.md). */
export const lockLabelName = (owner: string): string => `${RESERVED_LABEL_PREFIX}lock.${owner}`;

export type OwnershipNames = ReturnType<typeof ownershipNames>;

/** Features whose names start with this are qubes-iac's records; a config may not set them. */
export const RECORD_PREFIX = "qubes-iac.";

export type Inventory = {
  /** Whether the format record exists (its value is read separately, only when it exists). */
  formatPresent: boolean;
  /** Qubes with a confirmed entry. */
  qubes: ReadonlySet<string>;
  /** Qubes with an intent record (an interrupted create or adopt, or one in progress). */
  intents: ReadonlySet<string>;
  labels: ReadonlySet<string>;
  pools: ReadonlySet<string>;
};

/** The inventory as the names of dom0's features show it. */
export function readInventory(owner: string, dom0FeatureNames: Iterable<string>): Inventory {
  const n = ownershipNames(owner);
  const qubes = new Set<string>();
  const intents = new Set<string>();
  const labels = new Set<string>();
  const pools = new Set<string>();
  let formatPresent = false;
  for (const name of dom0FeatureNames) {
    if (!name.startsWith(n.prefix)) continue;
    const rest = name.slice(n.prefix.length);
    if (rest === "format") formatPresent = true;
    else if (rest.startsWith("qube.")) qubes.add(rest.slice(5));
    else if (rest.startsWith("intent.")) intents.add(rest.slice(7));
    else if (rest.startsWith("label.")) labels.add(rest.slice(6));
    else if (rest.startsWith("pool.")) pools.add(rest.slice(5));
  }
  return { formatPresent, qubes, intents, labels, pools };
}

export function parseIntent(value: string | undefined): QubeIntent | undefined {
  return value !== undefined && QUBE_INTENTS.has(value) ? (value as QubeIntent) : undefined;
}

/** The format version a format record holds; undefined when it is not a decimal number. */
export function parseFormatVersion(value: string | undefined): number | undefined {
  return value !== undefined && /^[1-9][0-9]{0,5}$/.test(value) ? Number(value) : undefined;
}

export type QubeRecords = {
  protect: boolean;
  firewall: boolean;
  features: ReadonlySet<string>;
  tags: ReadonlySet<string>;
};

/** The per-qube records, from the names of the qube's features. */
export function readQubeRecords(owner: string, featureNames: Iterable<string>): QubeRecords {
  const n = ownershipNames(owner);
  const features = new Set<string>();
  const tags = new Set<string>();
  let protect = false;
  let firewall = false;
  for (const name of featureNames) {
    if (!name.startsWith(n.prefix)) continue;
    const rest = name.slice(n.prefix.length);
    if (rest === "protect") protect = true;
    else if (rest === "firewall") firewall = true;
    else if (rest.startsWith("feature.")) features.add(rest.slice(8));
    else if (rest.startsWith("tag.")) tags.add(rest.slice(4));
  }
  return { protect, firewall, features, tags };
}

/** The owner whose record a feature name is (`qubes-iac.<owner>.…`); undefined for any other feature. */
export function ownerOfRecord(feature: string): string | undefined {
  if (!feature.startsWith(RECORD_PREFIX)) return undefined;
  const dot = feature.indexOf(".", RECORD_PREFIX.length);
  const owner = feature.slice(RECORD_PREFIX.length, dot);
  return dot > RECORD_PREFIX.length && /^[A-Za-z0-9_-]+$/.test(owner) ? owner : undefined;
}
