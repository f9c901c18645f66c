// `qubes-iac show [--json] [CONFIG…]`: the current state of what the config manages, as the
// reader sees it — every qube, label, pool and global property the config names or the owner's
// inventory lists, with the current value of each attribute the config manages (the plan's
// `before`, so show and plan can never disagree on what is read), and each guest with the facts
// its agent tells and its files' sizes and hash prefixes (never content). Changes nothing.
// `qubes-iac show PLANFILE` prints a saved plan (recognised by content, as apply does) as `plan`
// printed it, without connecting.

import { readerFromClient } from "../../apply/admin-api.js";
import { guestReaderFromAgents } from "../../apply/guest-agent.js";
import { formatSize } from "../../export/render.js";
import type { ActualState } from "../../model/actual.js";
import type { DesiredState } from "../../model/desired.js";
import { ownershipNames, readInventory, readQubeRecords } from "../../model/ownership.js";
import type { AttrValue } from "../../plan/changes.js";
import { NO_GUEST_READINGS, type GuestReadings } from "../../plan/diff-guests.js";
import { readGuests } from "../../plan/guest-reader.js";
import { toJsonPlan, type JsonGuestFacts, type JsonResourceChange } from "../../plan/json.js";
import { buildPlan } from "../../plan/plan.js";
import { displayPoolParam, displayRule, factsLine } from "../../plan/render.js";
import { readActualState } from "../../plan/reader.js";
import { parsePositiveInt, withClient, type ConnectionOptions } from "../connection.js";
import { interruptFlag, write, type CliIO } from "../io.js";
import { packageVersion } from "../version.js";
import { readSavedPlan } from "../../apply/saved-plan.js";
import { findSavedPlan } from "./apply.js";
import { loadConfigOrReport, printHumanPlan } from "./plan.js";
import { renderDiagnostics } from "./validate.js";
import { printable, printableDeep } from "../../util/printable.js";

export const STATE_FORMAT = "qubes-iac-state";
export const STATE_FORMAT_VERSION = 1;

export type ShowCommandOptions = ConnectionOptions & { json?: boolean };

/**
 * Whose a qube is, in words: `managed` (inventory and the qube's marker: its UUID-bound record, or
 * for a format-1 entry the owner tag), `not managed` (exists, not the owner's: `adopt: true` takes
 * it over), `drift` (the inventory lists it, the marker is gone), `absent` (docs/ownership.md).
 */
type Ownership = "managed" | "not managed" | "drift" | "absent";

export type ShownResource = {
  address: string;
  type: JsonResourceChange["type"];
  name: string | null;
  exists: boolean;
  /** Qubes only: the admin.vm.List line and whose the qube is. */
  class?: string;
  power?: string;
  ownership?: Ownership;
  /** The attributes the config manages, as read now (null: not set / none). */
  attributes: Record<string, AttrValue>;
  /** Attributes whose value is Qubes' default. */
  default_attributes: string[];
  /** Guests only: what the agent tells (null when it was not read), and why it was not. */
  facts?: JsonGuestFacts | null;
  reason?: string;
};

export type ShownState = { format: typeof STATE_FORMAT; format_version: number; qubes_iac_version: string; owner: string; resources: ShownResource[] };

function qubeOwnership(desired: DesiredState, actual: ActualState, name: string): Ownership {
  if (!actual.listing.has(name)) return "absent";
  const inv = readInventory(desired.owner, actual.dom0FeatureNames);
  const q = actual.qubes.get(name);
  const tagged = q?.tags?.has(ownershipNames(desired.owner).ownerTag) ?? false;
  const marked = readQubeRecords(desired.owner, q?.properties.get("uuid")?.raw, q?.featureNames ?? [], q?.templateFeatureNames).own || (inv.legacy.has(name) && tagged);
  const listed = inv.qubes.has(name) || inv.intents.has(name);
  if (listed && marked) return "managed";
  return inv.qubes.has(name) ? "drift" : "not managed";
}

export function shownState(desired: DesiredState, actual: ActualState, guests: GuestReadings = NO_GUEST_READINGS): ShownState {
  const plan = toJsonPlan(buildPlan(desired, actual, { allowRestart: false, targets: [], excludes: [] }, guests), { version: packageVersion() });
  const resources: ShownResource[] = [];
  const seen = new Set<string>();
  for (const g of plan.guests ?? []) {
    seen.add(g.address);
    const c = plan.resource_changes.find((x) => x.address === g.address);
    const r: ShownResource = {
      address: g.address,
      type: "guest",
      name: g.address.slice("guest.".length),
      exists: g.read === "answering",
      attributes: g.read === "answering" ? (c?.before ?? {}) : {},
      default_attributes: [],
      facts: g.facts,
    };
    if (g.reason !== null) r.reason = g.reason;
    resources.push(r);
  }
  for (const c of plan.resource_changes) {
    if (seen.has(c.address)) continue;
    seen.add(c.address);
    const exists = c.before !== null && c.action !== "forget";
    const r: ShownResource = { address: c.address, type: c.type, name: c.name, exists, attributes: exists ? (c.before ?? {}) : {}, default_attributes: exists ? c.before_default : [] };
    if (c.type === "qube" && c.name !== null) {
      const l = actual.listing.get(c.name);
      if (l) Object.assign(r, { class: l.klass, power: l.power });
      r.ownership = qubeOwnership(desired, actual, c.name);
    }
    resources.push(r);
  }
  // Qubes of the config the plan could not take on (not the owner's, a class qubes-iac does not manage): shown as they are listed.
  for (const name of desired.qubes.keys()) {
    const address = `qube.${name}`;
    if (seen.has(address)) continue;
    const l = actual.listing.get(name);
    resources.push({
      address,
      type: "qube",
      name,
      exists: l !== undefined,
      ...(l ? { class: l.klass, power: l.power } : {}),
      ownership: qubeOwnership(desired, actual, name),
      attributes: {},
      default_attributes: [],
    });
  }
  resources.sort((a, b) => (a.address < b.address ? -1 : a.address > b.address ? 1 : 0));
  return { format: STATE_FORMAT, format_version: STATE_FORMAT_VERSION, qubes_iac_version: packageVersion(), owner: desired.owner, resources };
}

function showValue(key: string, v: AttrValue, isDefault: boolean): string {
  let text: string;
  if (Array.isArray(v)) text = v.length === 0 ? "(none)" : v.join(", ");
  else if (v === null) text = key === "colour" ? "unknown (qubesd tells a new label's colour only after it restarts)" : key.startsWith("features.") ? "(absent)" : key.startsWith("devices.") ? "(not assigned)" : "none";
  else if (v === "") text = '""';
  else if (key.endsWith(".size") && /^[0-9]+$/.test(v)) text = String(formatSize(BigInt(v)));
  else text = v;
  return isDefault ? `${text} (default)` : text;
}

export function renderShownState(read: ShownState): string {
  // Names and values were read from qubesd and the guests.
  const s = printableDeep(read);
  const lines: string[] = [];
  for (const r of s.resources) {
    if (r.type === "guest") {
      const facts = r.facts ? factsLine({ facts: r.facts }) : undefined;
      lines.push(r.exists ? `${r.address}${facts ? ` (${facts})` : ""}` : `${r.address}: not read${r.reason ? ` (${r.reason})` : ""}`);
      for (const [k, v] of Object.entries(r.attributes)) lines.push(`    ${k}: ${v === null ? "(absent)" : String(v)}`);
      continue;
    }
    if (!r.exists) {
      lines.push(`${r.address}: absent`);
      continue;
    }
    const head = r.type === "qube" ? `${r.address} (${r.class ?? "?"}, ${(r.power ?? "?").toLowerCase()}, ${r.ownership === "managed" ? `managed by ${s.owner}` : (r.ownership ?? "")})` : r.address;
    lines.push(head);
    const defaults = new Set(r.default_attributes);
    for (const [k, v] of Object.entries(r.attributes)) {
      if (k === "firewall" && Array.isArray(v)) lines.push(`    firewall:`, ...v.map((rule) => `      ${displayRule(rule)}`));
      else lines.push(`    ${k}: ${showValue(k, r.type === "pool" ? displayPoolParam(r.attributes.driver, k, v) : v, defaults.has(k))}`);
    }
  }
  return `${lines.join("\n")}\n`;
}

/** A saved plan, checked as apply checks it, printed as `plan` printed it (or its JSON). */
function showSavedPlan(io: CliIO, saved: { file: string; text: string }, o: ShowCommandOptions): number {
  const r = readSavedPlan(saved.text, saved.file);
  if (r.kind !== "plan") {
    if (r.kind === "refused") write(io.stderr, `${renderDiagnostics(r.diagnostics, new Map())}\n`);
    return 1;
  }
  if (o.json) {
    write(io.stdout, JSON.stringify(r.plan, null, 2));
    return 0;
  }
  write(io.stdout, `${printable(`Saved plan ${saved.file}, made by qubes-iac ${r.plan.qubes_iac_version} for ${r.plan.owner}:`)}\n`);
  printHumanPlan(io, r.plan, new Map(), {});
  return 0;
}

export async function showCommand(io: CliIO, paths: string[], o: ShowCommandOptions): Promise<number> {
  const saved = findSavedPlan(io, paths);
  if (saved !== undefined) return showSavedPlan(io, saved, o);
  const parallelism = parsePositiveInt(o.parallelism, "--parallelism", 8);
  const stopped = interruptFlag(io);
  const loaded = loadConfigOrReport(io, paths, o.json === true);
  if (!loaded) return 1;
  const actual = await withClient(io, o, (client) => readActualState(readerFromClient(client), loaded.config, { parallelism }));
  const guests = await readGuests(guestReaderFromAgents(), loaded.config, actual, { parallelism, inScope: () => true });
  if (stopped() !== undefined) return 1;
  const state = shownState(loaded.config, actual, guests);
  if (o.json) write(io.stdout, JSON.stringify(state, null, 2));
  else io.stdout.write(renderShownState(state));
  return 0;
}
