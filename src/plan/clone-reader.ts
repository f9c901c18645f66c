// What the planner reads of an existing clone source (src/model/clone.ts): everything qvm-clone
// copies — its properties, tags, every feature with its value, its firewall — and, of each
// volume to copy, its size and its pool's driver (a `file` pool copies only a halted volume).
// Read only for a qube the config creates by cloning; read calls only.

import type { CloneSource } from "../model/actual.js";
import type { ActualAssignment } from "../model/devices.js";
import { isDeviceClass, type DeviceClass } from "../model/devices.js";
import { rulesFor, type DetectedRelease } from "../model/release.js";
import { cloneVolumes, type CloneVolume } from "../model/clone.js";
import type { DesiredState } from "../model/desired.js";
import type { ListedQube } from "../model/actual.js";
import type { QubesReader } from "./reader.js";


/** The existing sources of the qubes the config would create by cloning, and the volumes each gives. */
export function cloneSourcesToRead(desired: DesiredState, listing: ReadonlyMap<string, ListedQube>): Map<string, Set<CloneVolume>> {
  const out = new Map<string, Set<CloneVolume>>();
  for (const q of desired.qubes.values()) {
    if (q.clone === undefined || q.absent || q.release || q.class === undefined) continue;
    const existing = listing.get(q.name);
    const source = listing.get(q.clone);
    if ((existing !== undefined && existing.klass === q.class) || source === undefined) continue;
    const r = cloneVolumes(source.klass, q.class);
    const vols = out.get(q.clone) ?? new Set<CloneVolume>();
    if ("volumes" in r) for (const v of r.volumes) vols.add(v);
    out.set(q.clone, vols);
  }
  return out;
}

/**
 * `release`: the answering release, whose device API reads the assignments of a source that a
 * copy with `clone_devices: true` takes (qubesadmin/app.py clone_vm copies assignments unless
 * told not to; qubes-iac copies them only when the config says so).
 */
export async function readCloneSources(
  r: QubesReader,
  desired: DesiredState,
  listing: ReadonlyMap<string, ListedQube>,
  release?: DetectedRelease,
  knownClasses?: ReadonlySet<string>,
): Promise<Map<string, CloneSource> | undefined> {
  const wanted = cloneSourcesToRead(desired, listing);
  if (wanted.size === 0) return undefined;
  const withDevices = new Set([...desired.qubes.values()].filter((q) => q.cloneDevices === true && q.clone !== undefined && wanted.has(q.clone)).map((q) => q.clone as string));
  const api = release === undefined ? undefined : rulesFor(release).devices?.api;
  const classes: DeviceClass[] = withDevices.size === 0 || api === undefined ? [] : [...(knownClasses ?? new Set(await r.deviceClasses()))].filter(isDeviceClass).sort();
  const devicesOf = async (vm: string): Promise<Map<DeviceClass, readonly ActualAssignment[]> | undefined> => {
    if (!withDevices.has(vm) || api === undefined) return undefined;
    return new Map(await Promise.all(classes.map(async (c) => [c, await r.deviceAssignments(vm, c, api)] as const)));
  };
  const drivers = new Map<string, Promise<string>>();
  const driverOf = (pool: string): Promise<string> => {
    let d = drivers.get(pool);
    if (d === undefined) {
      d = r.pool(pool).then((p) => p.driver);
      drivers.set(pool, d);
    }
    return d;
  };
  const read = await Promise.all(
    [...wanted].sort(([a], [b]) => (a < b ? -1 : 1)).map(async ([vm, vols]): Promise<CloneSource> => {
      const l = listing.get(vm) as ListedQube;
      const [properties, tags, featureNames, firewall, volumes, devices] = await Promise.all([
        r.properties({ vm }),
        r.tags(vm),
        r.featureNames(vm),
        r.firewall(vm),
        Promise.all([...vols].sort().map(async (v) => {
          const info = await r.volume(vm, v);
          return [v, { ...info, driver: await driverOf(info.pool) }] as const;
        })),
        devicesOf(vm),
      ]);
      const features = await Promise.all(featureNames.map(async (f) => [f, (await r.feature(vm, f)) ?? ""] as const));
      const source: CloneSource = { name: vm, klass: l.klass, power: l.power, properties, tags: new Set(tags), features: new Map(features), firewall, volumes: new Map(volumes) };
      if (devices !== undefined) source.devices = devices;
      return source;
    }),
  );
  return new Map(read.map((s) => [s.name, s]));
}
