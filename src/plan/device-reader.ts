// What the plan reads about devices, after the qubes themselves: the device classes dom0 serves,
// each read qube's assignments of the classes its config names or its records claim (through the
// release's API: Assigned on R4.3+, List on R4.2), and what the backends offer at the ports the
// config names — always for PCI (a device dom0 does not offer is refused), and for others only
// where the identity of the device present must be learnt (a new assignment). Nothing when no
// qube has or had devices.

import type { ActualQube, ActualState, DeviceAtPort } from "../model/actual.js";
import { devicePortKey } from "../model/actual.js";
import type { DesiredState } from "../model/desired.js";
import { isDeviceClass, type DeviceClass } from "../model/devices.js";
import { readQubeRecords } from "../model/ownership.js";
import { rulesFor, UNDETECTED } from "../model/release.js";
import type { QubesReader } from "./reader.js";

/** Classes whose assignments of `q` the plan needs: the config's and those its records claim. */
function classesOf(desired: DesiredState, q: ActualQube): DeviceClass[] {
  const out = new Set<DeviceClass>();
  for (const d of desired.qubes.get(q.name)?.devices?.values() ?? []) out.add(d.devclass);
  const rec = readQubeRecords(desired.owner, q.properties.get("uuid")?.raw, q.featureNames ?? []);
  for (const k of rec.devices) {
    const c = k.slice(0, k.indexOf("."));
    if (isDeviceClass(c)) out.add(c);
  }
  return [...out].sort();
}

/**
 * `everyClassOf`: qubes (read in depth) whose assignments of every served class are read too —
 * the sources of clones with `clone_devices: true`, whose assignments devicesOfSource
 * (diff-devices.ts) turns into the clone's.
 */
export async function readDevices(r: QubesReader, desired: DesiredState, actual: ActualState, everyClassOf: readonly string[] = []): Promise<ActualState> {
  const all = new Set(everyClassOf);
  const wanted0 = [...actual.qubes.values()].filter((q) => q.tags !== undefined).map((q) => [q, classesOf(desired, q)] as const);
  const configHas = [...desired.qubes.values()].some((q) => (q.devices?.size ?? 0) > 0);
  if (wanted0.every(([q, c]) => c.length === 0 && !all.has(q.name)) && !configHas) return actual;
  const devices = rulesFor(actual.release ?? UNDETECTED).devices;
  const classes = new Set(await r.deviceClasses());
  const served = [...classes].filter(isDeviceClass).sort();
  const wanted = wanted0.map(([q, c]) => [q, all.has(q.name) ? served : c] as const).filter(([, c]) => c.length > 0);
  // An ambiguous release has no one device API: the planner refuses devices then (diff-devices.ts).
  if (devices === undefined) return { ...actual, deviceClasses: classes };
  const api = devices.api;
  const qubes = new Map(actual.qubes);
  await Promise.all(
    wanted.map(async ([q, cls]) => {
      const read = await Promise.all(cls.filter((c) => classes.has(c)).map(async (c) => [c, await r.deviceAssignments(q.name, c, api)] as const));
      qubes.set(q.name, { ...q, devices: new Map(read) });
    }),
  );
  const ports = new Map<string, { backend: string; devclass: DeviceClass; port: string }>();
  for (const dq of desired.qubes.values()) {
    const have = qubes.get(dq.name)?.devices;
    for (const d of dq.devices?.values() ?? []) {
      if (!classes.has(d.devclass) || !actual.listing.has(d.backend)) continue;
      const assigned = have?.get(d.devclass)?.some((a) => a.backend === d.backend && a.port === d.port && a.deviceId !== "*") ?? false;
      // Any new assignment: its identity, or (given in the config) whether anything is plugged in there.
      const isNew = !(have?.get(d.devclass)?.some((a) => a.backend === d.backend && a.port === d.port) ?? false);
      const needsIdentity = devices.identity && d.identity.kind === "present" && !assigned;
      if (d.devclass === "pci" || needsIdentity || isNew) ports.set(devicePortKey(d.devclass, d.backend, d.port), d);
    }
  }
  const at = await Promise.all([...ports].map(async ([k, p]) => [k, await r.deviceAt(p.backend, p.devclass, p.port, api)] as const));
  return { ...actual, qubes, deviceClasses: classes, devicesAt: new Map<string, DeviceAtPort>(at) };
}
