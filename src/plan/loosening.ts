// What a plan loosens: every change that widens what a qube can reach or who can reach it, judged
// by effect (old against new state), as data with stable kind codes. The planner runs it on the
// plan's changes; the JSON plan carries the result per change and the human plan marks it. It
// decides nothing: narrowing changes are not marked, and nothing but display and the
// `--deny-loosening` gate reads it. Pure: the device kinds are judged in loosening-devices.ts,
// the policy kinds in loosening-policy.ts over the whole policy before and after (plan.ts runs both).

import type { ActualState } from "../model/actual.js";
import { isNoOp } from "./action.js";
import type { AttrValue, ResourceChange } from "./changes.js";
import { deviceLoosening } from "./loosening-devices.js";
import { firewallWidening } from "./loosening-firewall.js";

/**
 * The kinds, strongest first. Codes are stable (the JSON plan's `loosens[].kind`); `rank` orders
 * the summary; `summary` is the short phrase of the closing line.
 */
export const LOOSENING_KINDS = {
  "policy-admin": { rank: 0, summary: "grants policy or Admin API control", meaning: "a qrexec policy rule that lets a qube call policy.* (policy.Replace, policy.Remove, …) or every service (`*`) on dom0: the right to rewrite any policy, full control" },
  "policy-wider": { rank: 1, summary: "policy allows more", meaning: "a qrexec policy change after which some (service, source, target) is allowed or asked where it was denied, or a rule uses a broader source or target (@anyvm, a tag)" },
  "device-any": { rank: 2, summary: "accepts any device at a port", meaning: "a device assignment that accepts whatever device is at a port (`device: any`)" },
  "device-given": { rank: 3, summary: "gets a device", meaning: "a PCI or USB device given to a qube that had none" },
  "provides-network": { rank: 4, summary: "provides network", meaning: "`provides_network` turned on: the qube can serve as a netvm" },
  "netvm-gained": { rank: 5, summary: "gains a netvm", meaning: "a qube that had no netvm gets one" },
  "firewall-wider": { rank: 6, summary: "firewall accepts more", meaning: "a firewall rule list that accepts a packet the old list dropped (a new accept, a drop removed or moved, a wider host or port range)" },
  "global-default": { rank: 7, summary: "moves what qubes follow", meaning: "a global `default_netvm` or `default_dispvm` change followed by the qubes whose property is at its default" },
} as const;

export type LooseningKind = keyof typeof LOOSENING_KINDS;

export const LOOSENING_KIND_CODES = Object.keys(LOOSENING_KINDS) as LooseningKind[];

/**
 * One loosening of one change. `attribute`: the before/after key whose line the human plan
 * marks (absent: the resource's own line). `affects`: for a global default, how many qubes follow
 * it (`at_least`: the plan could not see every qube, as from a management qube).
 */
export type Loosening = {
  kind: LooseningKind;
  attribute?: string;
  detail: string;
  affects?: { qubes: number; at_least: boolean };
};

/** The global defaults whose followers a change moves, and the qube property that follows each. */
export const FOLLOWED_DEFAULTS = {
  default_netvm: { property: "netvm", followedBy: (klass: string): boolean => klass !== "AdminVM" && klass !== "TemplateVM" },
  default_dispvm: { property: "default_dispvm", followedBy: (klass: string): boolean => klass !== "DispVM" },
} as const satisfies Record<string, { property: string; followedBy: (klass: string) => boolean }>;

type FollowedDefault = keyof typeof FOLLOWED_DEFAULTS;
const isFollowed = (g: string): g is FollowedDefault => Object.hasOwn(FOLLOWED_DEFAULTS, g);

const value = (a: Record<string, AttrValue> | null, key: string): AttrValue | undefined => a?.[key];
const has = (a: Record<string, AttrValue> | null, key: string): boolean => a !== null && Object.hasOwn(a, key);

/** A global's value after the plan: the plan's new value, else what was read; undefined when unknown. */
function globalAfter(changes: readonly ResourceChange[], actual: ActualState, g: string): string | null | undefined {
  const c = changes.find((x) => x.type === "properties");
  if (c !== undefined && has(c.after, g)) {
    const v = value(c.after, g);
    if (v === null && c.afterDefault.includes(g)) return undefined;
    return typeof v === "string" ? v : null;
  }
  const read = actual.globals?.get(g);
  return read === undefined ? undefined : read.raw === "" ? null : read.raw;
}

function classOf(c: ResourceChange, actual: ActualState): string | undefined {
  const k = value(c.after, "class");
  return typeof k === "string" ? k : (actual.qubes.get(c.name ?? "")?.klass ?? actual.listing.get(c.name ?? "")?.klass);
}

function qubeLoosening(c: ResourceChange, changes: readonly ResourceChange[], actual: ActualState): Loosening[] {
  const out: Loosening[] = [];
  const created = c.before === null;
  // provides_network: a new network provider, also on a qube the plan creates.
  const pn = "properties.provides_network";
  if (value(c.after, pn) === "true" && value(c.before, pn) !== "true") {
    out.push({ kind: "provides-network", attribute: pn, detail: created ? "is created providing network (it can serve as a netvm)" : "starts to provide network (it can serve as a netvm)" });
  }
  // Device assignments: ActualQube.devices holds what the qube has of each class read.
  const held = actual.qubes.get(c.name ?? "")?.devices;
  out.push(...deviceLoosening(created ? null : c.before, c.after, created ? undefined : held));
  // A qube the plan creates has no isolation to lose: its own netvm and firewall are not marked.
  if (created) return out;
  const nv = "properties.netvm";
  if (has(c.after, nv) && has(c.before, nv) && value(c.before, nv) === null) {
    let now = value(c.after, nv);
    let via = "";
    if (now === null && c.afterDefault.includes(nv)) {
      const klass = classOf(c, actual);
      const g = klass === "TemplateVM" ? null : globalAfter(changes, actual, "default_netvm");
      now = g === undefined ? "the default netvm" : g;
      via = " (it follows default_netvm)";
    }
    if (now !== null && now !== undefined) out.push({ kind: "netvm-gained", attribute: nv, detail: `gains a netvm: none → ${now}${via}` });
  }
  const before = value(c.before, "firewall");
  const after = value(c.after, "firewall");
  if (Array.isArray(before) && Array.isArray(after)) {
    const w = firewallWidening(before, after);
    if (w !== undefined) out.push({ kind: "firewall-wider", attribute: "firewall", detail: `firewall accepts more: ${w.example}, which it dropped before` });
  }
  return out;
}

/**
 * How many existing qubes follow global `g` after the plan: their property is at its default and
 * the plan neither sets it nor removes the qube. `at_least` when the plan did not read every qube
 * (a management qube sees only what its policy lists).
 */
export function countFollowers(g: FollowedDefault, changes: readonly ResourceChange[], actual: ActualState): { qubes: number; at_least: boolean } {
  const { property, followedBy } = FOLLOWED_DEFAULTS[g];
  const key = `properties.${property}`;
  const byAddress = new Map(changes.map((c) => [c.address, c]));
  const newValue = globalAfter(changes, actual, g);
  let n = 0;
  for (const q of actual.qubes.values()) {
    if (!followedBy(q.klass) || q.name === newValue) continue;
    const c = byAddress.get(`qube.${q.name}`);
    if (c !== undefined && (c.after === null || c.action === "replace")) continue;
    const follows = c !== undefined && has(c.after, key) ? c.afterDefault.includes(key) : q.properties.get(property)?.isDefault === true;
    if (follows) n++;
  }
  const complete = actual.visibility !== "policy" && [...actual.listing.keys()].every((name) => actual.qubes.has(name));
  return { qubes: n, at_least: !complete };
}

function globalsLoosening(c: ResourceChange, changes: readonly ResourceChange[], actual: ActualState): Loosening[] {
  const out: Loosening[] = [];
  for (const g of Object.keys(FOLLOWED_DEFAULTS).filter(isFollowed)) {
    if (!has(c.after, g) || !has(c.before, g)) continue;
    const now = value(c.after, g);
    const was = value(c.before, g);
    // A move to none narrows; a value reset to its (unknown) default is not judged.
    if (typeof now !== "string" || now === was) continue;
    const affects = countFollowers(g, changes, actual);
    if (affects.qubes === 0 && !affects.at_least) continue;
    const count = `${affects.at_least ? "at least " : ""}${affects.qubes} qube${affects.qubes === 1 ? "" : "s"}`;
    out.push({ kind: "global-default", attribute: g, detail: `${g}: ${was ?? "none"} → ${now} moves ${count} that follow it`, affects });
  }
  return out;
}

/** Strongest first, then by attribute: the order loosenings are listed in. */
export function sortLoosenings(ls: readonly Loosening[]): Loosening[] {
  return [...ls].sort((a, b) => LOOSENING_KINDS[a.kind].rank - LOOSENING_KINDS[b.kind].rank || (a.attribute ?? "").localeCompare(b.attribute ?? ""));
}

/**
 * The loosenings of each change of a plan (qubes and global properties), by address; changes
 * that loosen nothing are absent. `actual` is the state the plan was made from.
 */
export function planLoosening(changes: readonly ResourceChange[], actual: ActualState): Map<string, Loosening[]> {
  const out = new Map<string, Loosening[]>();
  for (const c of changes) {
    if (isNoOp(c.action) || c.after === null) continue;
    const found = c.type === "qube" ? qubeLoosening(c, changes, actual) : c.type === "properties" ? globalsLoosening(c, changes, actual) : [];
    if (found.length > 0) out.set(c.address, sortLoosenings(found));
  }
  return out;
}
