// Ownership records: the names and values qubes-iac writes into Qubes to remember what it owns
// (format 2, documented in docs/ownership.md — keep the two in step; format 1 is still read).
// The inventory lives in dom0's features and says whether qubes-iac created or adopted a qube;
// per-qube records live in the qube's own features and are bound to the qube's UUID, so a record
// Qubes copied from another qube (a DispVM's template, a clone's source) is never taken as this
// qube's. Every record is one feature whose name carries the data: a whole inventory is one
// feature.List, written one small feature at a time. Pure: names and parsing, no I/O.

import { ownerTag } from "./desired.js";

/** The record format this version writes and the newest it reads (it reads every older one too). */
export const OWNERSHIP_FORMAT_VERSION = 2;

/**
 * What an intent record announces: a qube about to be created, an existing one about to be
 * adopted, or one whose records are being removed (released: the qube itself stays).
 */
export type QubeIntent = "create" | "adopt" | "release";
const QUBE_INTENTS: ReadonlySet<string> = new Set<QubeIntent>(["create", "adopt", "release"]);

/** How a qube became the owner's: what dropping it from the config does depends on it. */
export type Lifecycle = "created" | "adopted";

/** Value of label and pool entries. */
export const ENTRY_OWNED = "own";
/** Value of every qube entry and per-qube marker record. */
export const MARKER_VALUE = "1";

/** A per-qube record, after `qubes-iac.<owner>.<uuid>.`. */
export type RecordKey = "own" | "protect" | "firewall" | `feature.${string}` | `tag.${string}` | `device.${string}`;

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
/** A UUID as qubesd prints the `uuid` property. */
export const isUuid = (s: string): boolean => UUID_RE.test(s);
const UUID_LENGTH = 36;

/** The record names of one owner. The owner is tag-charset (no dots), so prefixes never overlap. */
export function ownershipNames(owner: string) {
  const prefix = `qubes-iac.${owner}.`;
  return {
    prefix,
    /** on every qube it owns (for users and qrexec policy; alone it claims nothing). */
    ownerTag: ownerTag(owner),
    /** dom0: format version of this owner's records. */
    format: `${prefix}format`,
    /** dom0: a qube qubes-iac created (value `1`). */
    created: (name: string): string => `${prefix}created.${name}`,
    /** dom0: an existing qube qubes-iac adopted (value `1`). */
    adopted: (name: string): string => `${prefix}adopted.${name}`,
    /** dom0: format 1's entry of a qube (value `own`): read as adopted, rewritten by the next apply. */
    legacyQube: (name: string): string => `${prefix}qube.${name}`,
    /** dom0: intent, written before Create, before marking an adopted qube, or before a release (value: QubeIntent). */
    intent: (name: string): string => `${prefix}intent.${name}`,
    /** dom0: a label qubes-iac created, written before label.Create (value `own`). */
    label: (name: string): string => `${prefix}label.${name}`,
    /** dom0: a pool qubes-iac added, written before pool.Add (value `own`). */
    pool: (name: string): string => `${prefix}pool.${name}`,
    /** on the qube: a record bound to the qube's UUID (value `1`). */
    record: (uuid: string, key: RecordKey): string => `${prefix}${uuid}.${key}`,
    /** on the qube: format 1's records, not bound to the qube (read, migrated, never written). */
    legacy: {
      protect: `${prefix}protect`,
      firewall: `${prefix}firewall`,
      feature: (name: string): string => `${prefix}feature.${name}`,
      tag: (name: string): string => `${prefix}tag.${name}`,
    },
    /**
     * dom0: a qrexec policy file qubes-iac created or adopted (value `1`), by scope:
     * `policy.created.<name>`, `policy.adopted.<name>`, `policy.include.created.<name>`, …
     */
    policy: (scope: "policy" | "include", lifecycle: Lifecycle, name: string): string => `${prefix}${scope === "include" ? "policy.include." : "policy."}${lifecycle}.${name}`,
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

/** A device assignment's record key: `device.<class>.<backend>.<port>` (src/model/devices.ts deviceRecordKey). */
const DEVICE_RECORD_RE = /^device\.(pci|usb|block|mic)\.[A-Za-z][A-Za-z0-9_.-]*\.[A-Za-z0-9_.-]+$/;

/** A record key as it may appear in a plan: `own`, `protect`, `firewall`, `feature.<f>`, `tag.<t>`, `device.<class>.<backend>.<port>`. */
export function isRecordKey(s: string): s is RecordKey {
  return s === "own" || s === "protect" || s === "firewall" || /^feature\.[a-zA-Z0-9_.-]+$/.test(s) || /^tag\.[A-Za-z0-9_-]+$/.test(s) || DEVICE_RECORD_RE.test(s);
}

export type Inventory = {
  /** Whether the format record exists (its value is read separately, only when it exists). */
  formatPresent: boolean;
  /** Qubes with any entry: created, adopted or format 1's. */
  qubes: ReadonlySet<string>;
  created: ReadonlySet<string>;
  adopted: ReadonlySet<string>;
  /** Qubes with a format-1 entry (`qube.<name>`), read as adopted. */
  legacy: ReadonlySet<string>;
  /** Qubes with an intent record (an interrupted create, adopt or release, or one in progress). */
  intents: ReadonlySet<string>;
  labels: ReadonlySet<string>;
  pools: ReadonlySet<string>;
};

/** What an entry says about a listed qube; adopted wins (the safe side: it is released, never destroyed). */
export function lifecycleOf(inv: Inventory, name: string): Lifecycle | undefined {
  if (inv.adopted.has(name) || inv.legacy.has(name)) return "adopted";
  return inv.created.has(name) ? "created" : undefined;
}

/** The inventory as the names of dom0's features show it. */
export function readInventory(owner: string, dom0FeatureNames: Iterable<string>): Inventory {
  const n = ownershipNames(owner);
  const sets = { created: new Set<string>(), adopted: new Set<string>(), legacy: new Set<string>(), intents: new Set<string>(), labels: new Set<string>(), pools: new Set<string>() };
  let formatPresent = false;
  for (const name of dom0FeatureNames) {
    if (!name.startsWith(n.prefix)) continue;
    const rest = name.slice(n.prefix.length);
    if (rest === "format") formatPresent = true;
    const e = entryOf(rest);
    if (e !== undefined) sets[e.set].add(e.name);
  }
  return { formatPresent, qubes: new Set([...sets.created, ...sets.adopted, ...sets.legacy]), ...sets };
}

type EntrySet = "created" | "adopted" | "legacy" | "intents" | "labels" | "pools";
const ENTRY_KINDS: ReadonlyArray<[string, EntrySet]> = [
  ["created.", "created"],
  ["adopted.", "adopted"],
  ["qube.", "legacy"],
  ["intent.", "intents"],
  ["label.", "labels"],
  ["pool.", "pools"],
];

function entryOf(rest: string): { set: EntrySet; name: string } | undefined {
  for (const [p, set] of ENTRY_KINDS) if (rest.startsWith(p) && rest.length > p.length) return { set, name: rest.slice(p.length) };
  return undefined;
}

/**
 * The entries of every other owner in dom0's features, by object: who else lists a qube (any
 * entry or intent), a label or a pool, with the exact feature names (a take-over removes them).
 */
export type OtherOwners = {
  qubes: ReadonlyMap<string, ReadonlyMap<string, string[]>>;
  labels: ReadonlyMap<string, ReadonlyMap<string, string[]>>;
  pools: ReadonlyMap<string, ReadonlyMap<string, string[]>>;
};

const OWNER_RE = /^[A-Za-z0-9_-]+$/;

export function readOtherOwners(owner: string, dom0FeatureNames: Iterable<string>): OtherOwners {
  const out = { qubes: new Map<string, Map<string, string[]>>(), labels: new Map<string, Map<string, string[]>>(), pools: new Map<string, Map<string, string[]>>() };
  for (const name of dom0FeatureNames) {
    if (!name.startsWith(RECORD_PREFIX)) continue;
    const rest = name.slice(RECORD_PREFIX.length);
    const dot = rest.indexOf(".");
    const other = rest.slice(0, dot);
    if (dot <= 0 || other === owner || !OWNER_RE.test(other)) continue;
    const e = entryOf(rest.slice(dot + 1));
    if (e === undefined) continue;
    const map = e.set === "labels" ? out.labels : e.set === "pools" ? out.pools : out.qubes;
    const byOwner = map.get(e.name) ?? new Map<string, string[]>();
    byOwner.set(other, [...(byOwner.get(other) ?? []), name]);
    map.set(e.name, byOwner);
  }
  return out;
}

export function parseIntent(value: string | undefined): QubeIntent | undefined {
  return value !== undefined && QUBE_INTENTS.has(value) ? (value as QubeIntent) : undefined;
}

/** The format version a format record holds; undefined when it is not a decimal number. */
export function parseFormatVersion(value: string | undefined): number | undefined {
  return value !== undefined && /^[1-9][0-9]{0,5}$/.test(value) ? Number(value) : undefined;
}

/**
 * The records of one owner on one qube that are this qube's: format 2 bound to its UUID, and
 * format 1's that it did not inherit. `legacy` lists the format-1 names among them (the next
 * apply rewrites each in format 2); records bound to another UUID were copied and are ignored.
 */
export type QubeRecords = {
  own: boolean;
  protect: boolean;
  firewall: boolean;
  features: ReadonlySet<string>;
  tags: ReadonlySet<string>;
  /** Device assignments qubes-iac made, as `<class>.<backend>.<port>` (format 2 only). */
  devices: ReadonlySet<string>;
  legacy: ReadonlyArray<{ name: string; key: Exclude<RecordKey, "own"> }>;
  /** Every feature name of this qube's records (both formats), for a release. */
  names: readonly string[];
};

/**
 * `inherited`: the feature names of the qube's disposable template, for a DispVM (qubesd copies
 * them at creation: qubes/vm/dispvm.py, DispVM.__init__). A format-1 record the template has too
 * counts as inherited, not as this qube's — also once the template's was rewritten in format 2.
 */
export function readQubeRecords(owner: string, uuid: string | undefined, featureNames: Iterable<string>, inherited?: ReadonlySet<string>): QubeRecords {
  const n = ownershipNames(owner);
  const features = new Set<string>();
  const tags = new Set<string>();
  const devices = new Set<string>();
  const legacy: Array<{ name: string; key: Exclude<RecordKey, "own"> }> = [];
  const names: string[] = [];
  let own = false;
  let protect = false;
  let firewall = false;
  const mine = uuid !== undefined ? `${uuid}.` : undefined;
  const inheritedKeys = new Set<string>();
  for (const name of inherited ?? []) {
    const rest = name.startsWith(n.prefix) ? name.slice(n.prefix.length) : "";
    inheritedKeys.add(rest.length > UUID_LENGTH && rest[UUID_LENGTH] === "." && isUuid(rest.slice(0, UUID_LENGTH)) ? rest.slice(UUID_LENGTH + 1) : rest);
  }
  for (const name of featureNames) {
    if (!name.startsWith(n.prefix)) continue;
    let rest = name.slice(n.prefix.length);
    const bound = rest.length > UUID_LENGTH && rest[UUID_LENGTH] === "." && isUuid(rest.slice(0, UUID_LENGTH));
    if (bound) {
      if (mine === undefined || !rest.startsWith(mine)) continue;
      rest = rest.slice(mine.length);
    } else if (inheritedKeys.has(rest) || !isLegacyKey(rest)) continue;
    if (!isRecordKey(rest)) continue;
    names.push(name);
    if (!bound && rest !== "own") legacy.push({ name, key: rest });
    if (rest === "own") own = bound;
    else if (rest === "protect") protect = true;
    else if (rest === "firewall") firewall = true;
    else if (rest.startsWith("feature.")) features.add(rest.slice(8));
    else if (rest.startsWith("tag.")) tags.add(rest.slice(4));
    else if (rest.startsWith("device.") && bound) devices.add(rest.slice(7));
  }
  return { own, protect, firewall, features, tags, devices, legacy, names };
}

const isLegacyKey = (rest: string): boolean => rest === "protect" || rest === "firewall" || rest.startsWith("feature.") || rest.startsWith("tag.");

/** Owners other than `owner` whose records or tag a qube carries (a copy from its template, or a claim). */
export function otherOwnerMarks(owner: string, featureNames: Iterable<string>, tags: Iterable<string>): string[] {
  const out = new Set<string>();
  for (const f of featureNames) {
    if (!f.startsWith(RECORD_PREFIX)) continue;
    const o = f.slice(RECORD_PREFIX.length).split(".")[0] ?? "";
    if (o !== owner && OWNER_RE.test(o)) out.add(o);
  }
  for (const t of tags) {
    if (t.startsWith("managed-by-") && t !== ownerTag(owner)) out.add(t.slice("managed-by-".length));
  }
  return [...out].sort();
}

/** The owner whose record a feature name is (`qubes-iac.<owner>.…`); undefined for any other feature. */
export function ownerOfRecord(feature: string): string | undefined {
  if (!feature.startsWith(RECORD_PREFIX)) return undefined;
  const dot = feature.indexOf(".", RECORD_PREFIX.length);
  const owner = feature.slice(RECORD_PREFIX.length, dot);
  return dot > RECORD_PREFIX.length && /^[A-Za-z0-9_-]+$/.test(owner) ? owner : undefined;
}

/** A policy file's address in plans (`policy.<name>`, `policy.include.<name>`), as src/model/qrexec-policy.ts policyAddress. */
const policyFileAddress = (scope: "policy" | "include", name: string): string => (scope === "include" ? `policy.include.${name}` : `policy.${name}`);

/** What a dom0 feature name says about a policy file, after `qubes-iac.<owner>.`; undefined when it is no policy record. */
export function policyEntryOf(rest: string): { address: string; scope: "policy" | "include"; name: string; lifecycle: Lifecycle } | undefined {
  const m = /^policy\.(include\.)?(created|adopted)\.([A-Za-z0-9_-]+)$/.exec(rest);
  if (!m) return undefined;
  const scope = m[1] !== undefined ? "include" : "policy";
  const name = m[3] as string;
  return { address: policyFileAddress(scope, name), scope, name, lifecycle: m[2] as Lifecycle };
}

/** The policy files of one owner's inventory, by address; adopted wins over created (the safe side, as for qubes). */
export function readPolicyInventory(owner: string, dom0FeatureNames: Iterable<string>): ReadonlyMap<string, { scope: "policy" | "include"; name: string; lifecycle: Lifecycle; records: string[] }> {
  const prefix = ownershipNames(owner).prefix;
  const out = new Map<string, { scope: "policy" | "include"; name: string; lifecycle: Lifecycle; records: string[] }>();
  for (const f of dom0FeatureNames) {
    if (!f.startsWith(prefix)) continue;
    const e = policyEntryOf(f.slice(prefix.length));
    if (e === undefined) continue;
    const had = out.get(e.address);
    out.set(e.address, { scope: e.scope, name: e.name, lifecycle: had?.lifecycle === "adopted" || e.lifecycle === "adopted" ? "adopted" : "created", records: [...(had?.records ?? []), f].sort() });
  }
  return out;
}

/** Other owners whose inventory lists a policy file, by address (sorted). */
export function readOtherPolicyOwners(owner: string, dom0FeatureNames: Iterable<string>): ReadonlyMap<string, string[]> {
  const out = new Map<string, Set<string>>();
  for (const f of dom0FeatureNames) {
    const other = ownerOfRecord(f);
    if (other === undefined || other === owner) continue;
    const e = policyEntryOf(f.slice(`${RECORD_PREFIX}${other}.`.length));
    if (e === undefined) continue;
    out.set(e.address, (out.get(e.address) ?? new Set()).add(other));
  }
  return new Map([...out].map(([k, v]) => [k, [...v].sort()]));
}
