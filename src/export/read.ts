// What export reads, through the planner's read-only QubesReader: the qube list, dom0's features
// (the owner's inventory), the global properties, and then — for the qubes, labels and pools it
// exports — everything a config can say about them: properties, tags, every feature's value,
// the firewall, the sizes of the volumes a config may size and the device assignments. Returns an ActualState holding
// exactly the selected resources; export's renderer turns that into a config.

import type { ActualLabel, ActualPool, ActualQube, ActualState, ActualVolume, ListedQube } from "../model/actual.js";
import { readInventory, RESERVED_LABEL_PREFIX, type Inventory } from "../model/ownership.js";
import { DEVICE_CLASSES } from "../model/devices.js";
import { DEFAULT_LABELS } from "../model/qubes-rules.js";
import { rulesFor } from "../model/release.js";
import type { QubesReader } from "../plan/reader.js";
import { createLimiter } from "../util/concurrency.js";

export type ExportSelection = {
  owner: string;
  /** Every qube but dom0, custom labels, pools and global properties; else what the owner manages. */
  all: boolean;
};

/** Classes a config can hold (AdminVM is dom0; RemoteVM is not managed). */
const EXPORTABLE_CLASSES: ReadonlySet<string> = new Set(["AppVM", "TemplateVM", "StandaloneVM", "DispVM"]);
const DEFAULT_LABEL_NAMES: ReadonlySet<string> = new Set(DEFAULT_LABELS.map(([n]) => n));

/** The volumes whose size a config may set, per class (the others come from the template). */
export function sizedVolumes(klass: string): Array<"root" | "private" | "volatile"> {
  switch (klass) {
    case "TemplateVM":
    case "StandaloneVM":
      return ["root", "private", "volatile"];
    case "AppVM":
      return ["private", "volatile"];
    default:
      return ["volatile"];
  }
}

/** Qubes of the inventory that carry the owner tag are exported; the rest are reported. */
export function inventoryQubes(inv: Inventory): string[] {
  return [...new Set([...inv.qubes, ...inv.intents])].sort();
}

export async function readForExport(reader: QubesReader, sel: ExportSelection, o: { parallelism: number }): Promise<ActualState> {
  const limit = createLimiter(o.parallelism);
  const r = Object.fromEntries(
    Object.entries(reader).map(([k, fn]) => [k, (...args: unknown[]) => limit(() => (fn as (...a: unknown[]) => Promise<unknown>)(...args))]),
  ) as QubesReader;

  const [list, dom0FeatureList, globals] = await Promise.all([r.listQubes(), r.featureNames("dom0"), r.properties("global")]);
  const listing = new Map(list.map((q) => [q.name, q]));
  const dom0FeatureNames = new Set(dom0FeatureList);
  const inventory = readInventory(sel.owner, dom0FeatureNames);

  const qubeNames = sel.all
    ? list.filter((q) => EXPORTABLE_CLASSES.has(q.klass)).map((q) => q.name).sort()
    : inventoryQubes(inventory).filter((n) => EXPORTABLE_CLASSES.has(listing.get(n)?.klass ?? ""));

  // Device assignments of every class dom0 serves, through the release's API (none when it is not known exactly).
  const [release, deviceClasses] = await Promise.all([r.release(), r.deviceClasses()]);
  const deviceApi = rulesFor(release).devices?.api;
  const classes = DEVICE_CLASSES.filter((c) => deviceClasses.includes(c));

  const readQube = async (l: ListedQube): Promise<ActualQube> => {
    const vm = l.name;
    const [properties, tags, featureNames, firewall, volumes, devices] = await Promise.all([
      r.properties({ vm }),
      r.tags(vm),
      r.featureNames(vm),
      r.firewall(vm),
      Promise.all(sizedVolumes(l.klass).map(async (v) => [v, await r.volume(vm, v)] as [string, ActualVolume])),
      deviceApi === undefined ? Promise.resolve([]) : Promise.all(classes.map(async (c) => [c, await r.deviceAssignments(vm, c, deviceApi)] as const)),
    ]);
    const values = await Promise.all(featureNames.map(async (f) => [f, (await r.feature(vm, f)) ?? ""] as const));
    const q: ActualQube = { name: vm, klass: l.klass, power: l.power, properties, tags: new Set(tags), featureNames: new Set(featureNames), features: new Map(values), firewall, volumes: new Map(volumes) };
    if (deviceApi !== undefined) q.devices = new Map(devices);
    return q;
  };

  const readLabels = async (): Promise<Map<string, ActualLabel>> => {
    // A label in qubes-iac's reserved namespace is an apply's lock (docs/locking.md), never the user's.
    const names = (await r.labels()).filter((n) => (sel.all ? !DEFAULT_LABEL_NAMES.has(n) && !n.startsWith(RESERVED_LABEL_PREFIX) : inventory.labels.has(n))).sort();
    const colours = await Promise.all(names.map(async (n) => [n, await r.labelColour(n)] as const));
    return new Map(colours.map(([name, colour]) => [name, colour === undefined ? { name } : { name, colour: colour.toLowerCase() }]));
  };

  const readPools = async (): Promise<{ names: Set<string>; pools: Map<string, ActualPool> }> => {
    const names = new Set(await r.pools());
    const wanted = [...names].filter((n) => sel.all || inventory.pools.has(n)).sort();
    return { names, pools: new Map(await Promise.all(wanted.map(async (n) => [n, await r.pool(n)] as const))) };
  };

  const [qubes, labels, pools] = await Promise.all([
    Promise.all(qubeNames.map((n) => readQube(listing.get(n) as ListedQube))),
    readLabels(),
    readPools(),
  ]);
  return {
    listing,
    qubes: new Map(qubes.map((q) => [q.name, q])),
    scanned: false,
    dom0FeatureNames,
    dom0Features: new Map(),
    labels,
    poolNames: pools.names,
    pools: pools.pools,
    globals,
  };
}
