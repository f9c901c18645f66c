// The state reader: reads from Qubes exactly what planning needs and returns an ActualState. It
// receives a QubesReader — read calls only, so a plan cannot mutate anything — and bounds how
// many calls run at once. What it reads: the qube list, dom0's property names (which Qubes
// release answers, narrowed by the other property lists it reads) and dom0's features (the inventory), then
// per qube the config names or the inventory lists its properties, tags and feature names, the
// feature values, firewall and volumes the config names or qubes-iac owns; labels, pools and
// global properties only when the config or the inventory has them; a DispVM's template's feature
// names only when the DispVM carries format-1 records (docs/ownership.md, "Migration"). Other
// qubes cost nothing beyond their admin.vm.List line and the one property a reference of the
// config needs of them, unless something may be removed: then every qube's properties are read
// once to find who still refers to it (the reference scan), or a global default qubes follow moves
// (the follower scan: the plan counts the qubes it moves, src/plan/loosening.ts).

import type { ActualLabel, ActualPool, ActualProperty, ActualQube, ActualState, ActualVolume, DeviceAtPort, ListedQube } from "../model/actual.js";
import type { ActualAssignment, DeviceClass } from "../model/devices.js";
import type { DesiredState } from "../model/desired.js";
import { ownershipNames, readInventory, readQubeRecords } from "../model/ownership.js";
import { DEFAULT_LABELS } from "../model/qubes-rules.js";
import { refineRelease, rulesFor, type DetectedRelease } from "../model/release.js";
import { createLimiter } from "../util/concurrency.js";
import { readDevices } from "./device-reader.js";
import { needsReferenceScan } from "./diff.js";
import { FOLLOWED_DEFAULTS } from "./loosening.js";
import { compareProperty } from "./normalize.js";
import { needsRunningScan } from "./power-order.js";
import type { Holder } from "./ops.js";
import { referenceReads } from "./reference-needs.js";
import { readCloneSources } from "./clone-reader.js";

/** Read-only access to Qubes: the capability planning is given (never a writer). */
export type QubesReader = {
  listQubes(): Promise<ListedQube[]>;
  /** Which release answers, from dom0's property list (every release when that list is refused). */
  release(): Promise<DetectedRelease>;
  /** All properties of a qube or of the global object (GetAll, or its per-property fallback). */
  properties(holder: Holder): Promise<Map<string, ActualProperty>>;
  /** One property of a qube (admin.vm.property.Get). */
  vmProperty(vm: string, name: string): Promise<ActualProperty>;
  tags(vm: string): Promise<string[]>;
  featureNames(vm: string): Promise<string[]>;
  /** A feature's value; undefined when it is not set. */
  feature(vm: string, name: string): Promise<string | undefined>;
  firewall(vm: string): Promise<string[]>;
  labels(): Promise<string[]>;
  /** `0xrrggbb`; undefined when qubesd answers empty (a label created since it started). */
  labelColour(name: string): Promise<string | undefined>;
  pools(): Promise<string[]>;
  pool(name: string): Promise<ActualPool>;
  /** The vids a pool holds (`admin.pool.volume.List`). */
  poolVolumes(name: string): Promise<string[]>;
  /** The names of a qube's volumes (`admin.vm.volume.List`). */
  volumeNames(vm: string): Promise<string[]>;
  volume(vm: string, volume: string): Promise<ActualVolume>;
  /** A qube's notes (`admin.vm.notes.Get`, R4.3 and later). */
  notes(vm: string): Promise<string>;
  /** admin.deviceclass.List. */
  deviceClasses(): Promise<string[]>;
  /** A qube's device assignments of one class, through the release's API (Assigned, or R4.2's List). */
  deviceAssignments(vm: string, devclass: DeviceClass, api: DeviceApi): Promise<ActualAssignment[]>;
  /** What `backend` offers at `port` (Available with the port as argument). */
  deviceAt(backend: string, devclass: DeviceClass, port: string, api: DeviceApi): Promise<DeviceAtPort>;
};

export type DeviceApi = "assignment" | "persistent";

export type ReadOptions = {
  parallelism: number;
  /** How much of Qubes the connection shows (Transport.visibility); absent = all. */
  visibility?: "all" | "policy";
  /** Qubes the plan lets go of (`qubes-iac release`): never destroyed, so they need no reference scan. */
  release?: readonly string[];
};

const DEFAULT_LABEL_NAMES: ReadonlySet<string> = new Set(DEFAULT_LABELS.map(([n]) => n));

/** Wraps every call of a reader so that at most `limit` run at once. */
function limitReader(reader: QubesReader, limit: number): QubesReader {
  const run = createLimiter(limit);
  const wrapped = {} as Record<string, unknown>;
  for (const [k, fn] of Object.entries(reader) as Array<[string, (...args: unknown[]) => Promise<unknown>]>) {
    wrapped[k] = (...args: unknown[]) => run(() => fn(...args));
  }
  return wrapped as QubesReader;
}

/** Whether the qube carries records of format 1 (not bound to a UUID): a DispVM may have copied them. */
function hasLegacyRecords(owner: string, featureNames: ReadonlySet<string>): boolean {
  const r = readQubeRecords(owner, undefined, featureNames);
  return r.legacy.length > 0;
}

async function readQube(r: QubesReader, desired: DesiredState, listed: ListedQube, intentListed: boolean): Promise<{ qube: ActualQube; intent?: string }> {
  const names = ownershipNames(desired.owner);
  const vm = listed.name;
  const [properties, tags, featureNames] = await Promise.all([r.properties({ vm }), r.tags(vm), r.featureNames(vm)]);
  const featureSet = new Set(featureNames);
  // Format-1 records on a DispVM may be its template's, copied at creation: the template's
  // feature names tell (one feature.List, only in this migration case).
  const template = properties.get("template")?.raw ?? "";
  const templateFeatureNames =
    listed.klass === "DispVM" && template !== "" && hasLegacyRecords(desired.owner, featureSet) ? new Set(await r.featureNames(template)) : undefined;
  const uuid = properties.get("uuid")?.raw;
  const records = readQubeRecords(desired.owner, uuid, featureSet, templateFeatureNames);
  const want = desired.qubes.get(vm);
  const featureKeys = [...new Set([...(want?.features.keys() ?? []), ...records.features])].filter((f) => featureSet.has(f));
  const tagSet = new Set(tags);
  const [values, firewall, volumes, intent] = await Promise.all([
    Promise.all(featureKeys.map(async (f) => [f, (await r.feature(vm, f)) ?? ""] as const)),
    want?.firewall !== undefined || records.firewall ? r.firewall(vm) : Promise.resolve(undefined),
    Promise.all([...(want?.volumes.keys() ?? [])].map(async (v) => [v, await r.volume(vm, v)] as const)),
    // An intent is there only while a create, adopt or release is unfinished: its value says which.
    intentListed ? r.feature("dom0", names.intent(vm)) : Promise.resolve(undefined),
  ]);
  const qube: ActualQube = {
    name: vm,
    klass: listed.klass,
    power: listed.power,
    properties,
    tags: tagSet,
    featureNames: featureSet,
    features: new Map(values),
    volumes: new Map(volumes),
  };
  if (templateFeatureNames !== undefined) qube.templateFeatureNames = templateFeatureNames;
  if (firewall !== undefined) qube.firewall = firewall;
  return intent === undefined ? { qube } : { qube, intent };
}

/**
 * What the volume and notes settings of the config need besides the qubes' own reads: the
 * Info of the pools holding a volume whose revisions_to_keep the config sets (its driver bounds
 * it; for a qube to create, its existing `pool:`), and the notes of the qubes whose notes the config sets, on a release that has notes (on
 * R4.2 the plan refuses them without a call). Once the release is known.
 */
async function readVolumePoolsAndNotes(
  r: QubesReader,
  desired: DesiredState,
  details: Array<{ qube: ActualQube }>,
  read: { names?: Set<string>; pools: Map<string, ActualPool> },
  releaseHasNotes: boolean,
): Promise<void> {
  const pools = read.pools;
  const wanted = new Set<string>();
  const listed = new Set(details.map((d) => d.qube.name));
  for (const q of desired.qubes.values()) {
    const sets = [...q.volumes.values()].some((v) => v.revisionsToKeep !== undefined);
    if (sets && !listed.has(q.name) && q.pool !== undefined && !desired.pools.has(q.pool) && !pools.has(q.pool) && (read.names?.has(q.pool) ?? false)) wanted.add(q.pool);
  }
  for (const { qube } of details) {
    const want = desired.qubes.get(qube.name);
    for (const [v, d] of want?.volumes ?? []) {
      const pool = qube.volumes.get(v)?.pool;
      if (d.revisionsToKeep !== undefined && pool !== undefined && pool !== "" && !pools.has(pool)) wanted.add(pool);
    }
  }
  const [infos] = await Promise.all([
    Promise.all([...wanted].sort().map(async (p) => [p, await r.pool(p)] as const)),
    Promise.all(
      details.map(async (d) => {
        if (!releaseHasNotes || desired.qubes.get(d.qube.name)?.notes === undefined || d.qube.klass === "AdminVM") return;
        d.qube = { ...d.qube, notes: await r.notes(d.qube.name) };
      }),
    ),
  ]);
  for (const [p, info] of infos) pools.set(p, info);
}

/**
 * Whether the plan moves a global default that qubes follow (loosening.ts FOLLOWED_DEFAULTS): the
 * plan then counts the qubes that follow it, which needs every qube's properties.
 */
export function needsFollowerScan(desired: DesiredState, actual: ActualState): boolean {
  return Object.keys(FOLLOWED_DEFAULTS).some((g) => {
    const want = desired.properties.get(g);
    const current = actual.globals?.get(g);
    return want !== undefined && (current === undefined || compareProperty(want, current).kind !== "equal");
  });
}

/**
 * The running scan (power-order.ts): the properties of every qube that is not halted and was not
 * read; with `all` (the follower scan), of every qube that was not read.
 */
async function readRunning(r: QubesReader, actual: ActualState, everyQube = false): Promise<ActualState> {
  const rest = [...actual.listing.values()]
    .filter((l) => !actual.qubes.has(l.name) && (everyQube || (l.power !== "Halted" && l.klass !== "AdminVM")))
    .sort((a, b) => (a.name < b.name ? -1 : 1));
  const scanned = await Promise.all(rest.map(async (l) => [l, await r.properties({ vm: l.name })] as const));
  const all = new Map(actual.qubes);
  for (const [l, properties] of scanned) all.set(l.name, { name: l.name, klass: l.klass, power: l.power, properties, features: new Map(), volumes: new Map() });
  return { ...actual, qubes: all };
}

export async function readActualState(reader: QubesReader, desired: DesiredState, o: ReadOptions): Promise<ActualState> {
  const r = limitReader(reader, o.parallelism);
  const names = ownershipNames(desired.owner);
  const [list, dom0FeatureList] = await Promise.all([r.listQubes(), r.featureNames("dom0")]);
  const listing = new Map(list.map((q) => [q.name, q]));
  const dom0FeatureNames = new Set(dom0FeatureList);
  const inventory = readInventory(desired.owner, dom0FeatureNames);
  const dom0Features = new Map<string, string>();

  const qubes = [...new Set([...desired.qubes.keys(), ...inventory.qubes, ...inventory.intents])]
    .filter((n) => listing.has(n))
    .sort();
  const wantsLabels =
    desired.labels.size > 0 || inventory.labels.size > 0 || [...desired.qubes.values()].some((q) => q.label !== undefined && !DEFAULT_LABEL_NAMES.has(q.label));
  const wantsPools =
    desired.pools.size > 0 ||
    inventory.pools.size > 0 ||
    [...desired.qubes.values()].some((q) => q.pool !== undefined) ||
    [...desired.properties.keys()].some((g) => g.startsWith("default_pool"));

  const readLabels = async (): Promise<Map<string, ActualLabel> | undefined> => {
    if (!wantsLabels) return undefined;
    const all = await r.labels();
    const interesting = new Set([...desired.labels.keys(), ...inventory.labels]);
    const colours = await Promise.all(all.map(async (n) => (interesting.has(n) ? ([n, await r.labelColour(n)] as const) : ([n, undefined] as const))));
    return new Map(colours.map(([name, colour]) => [name, colour === undefined ? { name } : { name, colour }]));
  };
  const readPools = async (): Promise<{ names?: Set<string>; pools: Map<string, ActualPool> }> => {
    if (!wantsPools) return { pools: new Map() };
    const all = new Set(await r.pools());
    const interesting = [...new Set([...desired.pools.keys(), ...inventory.pools])].filter((p) => all.has(p)).sort();
    // A pool of ours the config dropped may be removed: what it still holds decides whether it can be.
    const infos = await Promise.all(
      interesting.map(async (p) => {
        const [info, volumes] = await Promise.all([r.pool(p), desired.pools.has(p) ? undefined : r.poolVolumes(p)]);
        return [p, volumes === undefined ? info : { ...info, volumes }] as const;
      }),
    );
    return { names: all, pools: new Map(infos) };
  };

  const [release, format, lockHolder, labels, pools, globals, details] = await Promise.all([
    r.release(),
    inventory.formatPresent ? r.feature("dom0", names.format) : Promise.resolve(undefined),
    // Present only while an apply of this owner runs: the plan says who (docs/locking.md).
    dom0FeatureNames.has(names.lock) ? r.feature("dom0", names.lock) : Promise.resolve(undefined),
    readLabels(),
    readPools(),
    // Also when a pool of ours may be removed: a default_pool* global pointing at it keeps it in use.
    desired.properties.size > 0 || [...inventory.pools].some((p) => !desired.pools.has(p)) ? r.properties("global") : Promise.resolve(undefined),
    Promise.all(qubes.map((n) => readQube(r, desired, listing.get(n) as ListedQube, inventory.intents.has(n)))),
  ]);
  // A pool the plan may remove still holds volumes: read every volume of the qubes the plan may
  // delete (dropped from the config, or of another class), so that the planner can tell the
  // volumes that go with them from those that would make qubesd refuse the removal.
  if ([...pools.pools.values()].some((p) => (p.volumes?.length ?? 0) > 0)) {
    const leaving = details.filter(({ qube }) => {
      const want = desired.qubes.get(qube.name);
      return inventory.qubes.has(qube.name) && (want === undefined || (want.class !== undefined && want.class !== qube.klass));
    });
    await Promise.all(
      leaving.map(async (d) => {
        const all = await r.volumeNames(d.qube.name);
        const read = await Promise.all(all.filter((v) => !d.qube.volumes.has(v)).map(async (v) => [v, await r.volume(d.qube.name, v)] as const));
        d.qube = { ...d.qube, volumes: new Map([...d.qube.volumes, ...read]) };
      }),
    );
  }
  const detected = refineRelease(release, [
    ...details.filter(({ qube }) => qube.klass !== "AdminVM").map(({ qube }) => ({ holder: "qube" as const, name: qube.name, properties: new Set(qube.properties.keys()) })),
    ...(globals !== undefined ? [{ holder: "global" as const, name: "global", properties: new Set(globals.keys()) }] : []),
  ]);
  await readVolumePoolsAndNotes(r, desired, details, pools, rulesFor(detected).notes);
  if (format !== undefined) dom0Features.set(names.format, format);
  if (lockHolder !== undefined) dom0Features.set(names.lock, lockHolder);
  for (const d of details) if (d.intent !== undefined) dom0Features.set(names.intent(d.qube.name), d.intent);

  // The other property lists read anyway narrow the release down further (a qube's tells R4.2).
  const actual: ActualState = {
    listing,
    qubes: new Map(details.map((d) => [d.qube.name, d.qube])),
    scanned: false,
    dom0FeatureNames,
    dom0Features,
    pools: pools.pools,
    release: detected,
  };
  if (o.visibility === "policy") actual.visibility = "policy";
  if (labels !== undefined) actual.labels = labels;
  if (pools.names !== undefined) actual.poolNames = pools.names;
  if (globals !== undefined) actual.globals = globals;
  Object.assign(actual, await readDevices(r, desired, actual));
  if (!needsReferenceScan(desired, actual, { release: o.release ?? [] })) {
    const followers = needsFollowerScan(desired, actual);
    return withReferenced(r, desired, followers || needsRunningScan(desired, actual) ? await readRunning(r, actual, followers) : actual);
  }

  // The reference scan: who else refers to what may be removed.
  const rest = [...listing.keys()].filter((n) => !actual.qubes.has(n)).sort();
  const [scanned, scanGlobals] = await Promise.all([
    Promise.all(rest.map(async (n) => [n, await r.properties({ vm: n })] as const)),
    actual.globals ?? r.properties("global"),
  ]);
  const all = new Map(actual.qubes);
  for (const [n, properties] of scanned) {
    const l = listing.get(n) as ListedQube;
    all.set(n, { name: n, klass: l.klass, power: l.power, properties, features: new Map(), volumes: new Map() });
  }
  return withReferenced(r, desired, { ...actual, qubes: all, scanned: true, globals: scanGlobals });
}

/**
 * What the config's references need of qubes that exist only on the system: one property each
 * (reference-needs.ts), none of a qube whose properties were read anyway.
 */
async function withReferenced(r: QubesReader, desired: DesiredState, read: ActualState): Promise<ActualState> {
  const cloneSources = await readCloneSources(r, desired, read.listing, read.release, read.deviceClasses);
  const actual = cloneSources === undefined ? read : { ...read, cloneSources };
  const reads = referenceReads(desired, actual.listing, new Set(actual.qubes.keys()));
  if (reads.length === 0) return actual;
  const values = await Promise.all(reads.map(async ({ vm, name }) => [vm, name, await r.vmProperty(vm, name)] as const));
  const referenced = new Map<string, Map<string, ActualProperty>>();
  for (const [vm, name, v] of values) referenced.set(vm, (referenced.get(vm) ?? new Map<string, ActualProperty>()).set(name, v));
  return { ...actual, referenced };
}
