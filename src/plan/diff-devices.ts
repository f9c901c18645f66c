// The diff of a qube's device assignments (src/model/devices.ts) against what Qubes holds, per
// release (src/model/release.ts `devices`): R4.3+ Assign/Unassign/Set.assignment by port and
// identity, R4.2 persistent Attach/Detach by port. Only assignments the qube's records say
// qubes-iac made are changed or removed; one the config lists that exists as written needs nothing
// (and stays not qubes-iac's, as a feature of the same value); one that exists otherwise is refused. What it
// decides and reports: release limits (no `ask`, no identity on R4.2), a PCI device dom0 does not
// offer, the identity of the device present at a port, `device: any` as a loosening. Pure.

import { devicePortKey } from "../model/actual.js";
import { locate, type DesiredQube, type QubeField } from "../model/desired.js";
import {
  configModeOf,
  deviceAddress,
  deviceAttrKey,
  deviceRecordKey,
  isSafeDeviceId,
  parseDeviceRecord,
  type ActualAssignment,
  type DesiredDevice,
  type DeviceClass,
} from "../model/devices.js";
import type { RecordKey } from "../model/ownership.js";
import { describeRelease, type ReleaseInfo } from "../model/release.js";
import type { DiffContext } from "./_context.js";
import type { AttrValue } from "./changes.js";
import { planDiagnostic } from "./codes.js";
import { devicesFingerprint, type Op } from "./ops.js";
import { detectedRelease, releaseRules } from "./release-rules.js";

/** Where the device diff writes: the same accumulator fields as the attribute diff. */
export type DeviceAcc = {
  before: Record<string, AttrValue>;
  after: Record<string, AttrValue>;
  ops: Op[];
  changed: string[];
  /** Changed keys that need the qube halted whatever the class (R4.2 removes only from a halted qube). */
  halted: string[];
};

/** The current state of a qube's devices: undefined for a qube this plan creates. */
export type CurrentDevices = { devices: ReadonlyMap<DeviceClass, readonly ActualAssignment[]>; owned: ReadonlySet<string>; uuid: string; virtMode?: { raw: string; isDefault: boolean } };

const sameOptions = (a: ReadonlyMap<string, string>, b: ReadonlyMap<string, string>): boolean => a.size === b.size && [...a].every(([k, v]) => b.get(k) === v);

/** What the plan shows for an assignment: `mode=required device=ID no-strict-reset=True`. */
function describe(mode: string, deviceId: string | undefined, options: ReadonlyMap<string, string>): string {
  const id = deviceId === undefined ? "" : ` device=${deviceId === "*" ? "any" : deviceId}`;
  return `mode=${configModeOf(mode as never)}${id}${[...options].map(([k, v]) => ` ${k}=${v}`).join("")}`;
}

const recordKeyOf = (c: DeviceClass, backend: string, port: string): RecordKey => deviceRecordKey(c, backend, port);

const parseOwned = parseDeviceRecord;

export function diffDevices(ctx: DiffContext, q: DesiredQube, current: CurrentDevices | undefined, acc: DeviceAcc): void {
  const vm = q.name;
  const address = `qube.${vm}`;
  const owned = current?.owned ?? new Set<string>();
  const desired = q.devices ?? new Map<string, DesiredDevice>();
  if (desired.size === 0 && owned.size === 0) return;
  const rules = releaseRules(ctx.actual).devices;
  const release = describeRelease(detectedRelease(ctx.actual));
  const err = (code: Parameters<typeof planDiagnostic>[0], key: string, message: string, hint?: string): void => {
    ctx.diagnostics.push(planDiagnostic(code, `qube ${vm}: ${message}`, { location: locate(q, key as QubeField), address, ...(hint !== undefined ? { hint } : {}) }));
  };
  if (rules === undefined) {
    ctx.diagnostics.push(
      planDiagnostic("QIAC-E170", `qube ${vm}: device assignments differ between the releases this system may be (${release}); the plan cannot tell which calls to make`, {
        location: locate(q, "devices"),
        address,
        hint: "plan from dom0 or with a policy that lets the management qube read dom0's property list",
      }),
    );
    return;
  }
  // What the plan relied on: each class's assignments as read (a saved plan re-reads them).
  if (current !== undefined) {
    const classesRead = new Set<DeviceClass>([...desired.values()].map((d) => d.devclass));
    for (const k of owned) {
      const p = parseDeviceRecord(k);
      if (p !== undefined) classesRead.add(p.devclass);
    }
    for (const c of [...classesRead].sort()) {
      const list = current.devices.get(c);
      if (list !== undefined) ctx.addCheck({ check: "devices", vm, devclass: c, api: rules.api, expect: devicesFingerprint(list) });
    }
  }
  const setRecord = (key: RecordKey): Op => (current === undefined ? { op: "record.set", vm, owner: ctx.desired.owner, record: key } : { op: "record.set", vm, owner: ctx.desired.owner, uuid: current.uuid, record: key });
  const classes = ctx.actual.deviceClasses ?? new Set<string>();

  if (current?.virtMode !== undefined && !current.virtMode.isDefault && current.virtMode.raw === "pvh" && q.properties.get("virt_mode") === undefined) {
    const pci = [...desired.keys()].find((k) => desired.get(k)?.devclass === "pci");
    if (pci !== undefined) err("QIAC-E178", pci, "its virt_mode is pvh, and a PCI device needs hvm (qubes/ext/pci.py refuses PCI in pvh mode)", "add `virt_mode: hvm` to its properties");
  }

  const start = acc.ops.length;
  for (const [key, d] of desired) {
    const where = `${d.devclass} device ${deviceAddress(d.backend, d.port)}`;
    if (!classes.has(d.devclass)) {
      err("QIAC-E171", key, `this system serves no ${d.devclass} devices (admin.deviceclass.List: ${[...classes].sort().join(", ") || "none"})`, d.devclass === "usb" ? "install qubes-usb-proxy in dom0 (it adds the usb class)" : d.devclass === "mic" ? "install the audio support (qubes-gui-daemon's mic class) in dom0" : undefined);
      continue;
    }
    if (!rules.modes.includes(d.mode)) {
      err("QIAC-E172", key, `${where}: ${release} has no mode ${configModeOf(d.mode)} (its assignments are persistent attachments)`, "use auto-attach (or required for pci and block)");
      continue;
    }
    if (!rules.identity && d.identity.kind === "id") {
      err("QIAC-E173", key, `${where}: ${release} assigns by port only and cannot hold a device identity`, "drop `device:` on this system");
      continue;
    }
    const at = ctx.actual.devicesAt?.get(devicePortKey(d.devclass, d.backend, d.port));
    if (d.devclass === "pci" && at?.kind === "absent") {
      err("QIAC-E174", key, `${where}: dom0 offers no PCI device at ${d.port}`, "`qvm-pci` lists the devices dom0 has");
      continue;
    }
    if (d.devclass === "pci" && at?.kind === "unavailable") {
      ctx.diagnostics.push(planDiagnostic("QIAC-W173", `qube ${vm}: ${where}: dom0's PCI devices could not be listed (${at.why}): whether it exists is not checked`, { location: locate(q, key as QubeField), address }));
    }
    const cur = current?.devices.get(d.devclass)?.find((a) => a.backend === d.backend && a.port === d.port);
    const isOwned = owned.has(recordKeyOf(d.devclass, d.backend, d.port).slice("device.".length));
    // The identity to assign: kept as Qubes holds it for `present`, else what is at the port now.
    let deviceId: string | undefined;
    if (rules.identity) {
      if (d.identity.kind === "any") deviceId = "*";
      else if (d.identity.kind === "id") deviceId = d.identity.id;
      else if (cur !== undefined && cur.deviceId !== undefined && cur.deviceId !== "*") deviceId = cur.deviceId;
      else if (at?.kind === "found" && at.device.deviceId !== undefined) deviceId = at.device.deviceId;
      if (deviceId === undefined || !(deviceId === "*" || isSafeDeviceId(deviceId))) {
        const backend = ctx.actual.listing.get(d.backend);
        const why =
          deviceId !== undefined
            ? `the identity ${JSON.stringify(deviceId)} of the device there cannot be sent`
            : at?.kind === "unavailable"
              ? `what is at the port cannot be read (${at.why})`
              : backend === undefined
                ? `${d.backend} does not exist yet (this plan creates it), so the device at the port is unknown`
                : backend.power !== "Running" && d.backend !== "dom0"
                  ? `${d.backend} is not running, so the device at the port is unknown`
                  : "no device is plugged in at that port";
        err("QIAC-E175", key, `${where}: ${why}, and an assignment holds the identity of the device it accepts`, "plug the device in (start its backend), or write `device: <identity>` or `device: any`");
        continue;
      }
      if (deviceId === "*") {
        ctx.diagnostics.push(
          planDiagnostic("QIAC-W172", `qube ${vm}: ${where} accepts any device plugged in at that port (\`device: any\`): a loosening`, { location: locate(q, key as QubeField), address }),
        );
      }
    } else if (cur === undefined && d.devclass !== "pci") {
      // Said of what this plan attaches (a PCI port is a fixed slot: what sits there is the board's).
      ctx.diagnostics.push(
        planDiagnostic("QIAC-W171", `qube ${vm}: ${where}: ${release} assigns by port only, so any device plugged in there is attached (no identity, no ask)`, { location: locate(q, key as QubeField), address }),
      );
    }
    if (at?.kind === "absent" && d.devclass !== "pci" && (!rules.identity || d.identity.kind !== "present")) {
      ctx.diagnostics.push(planDiagnostic("QIAC-W170", `qube ${vm}: ${where}: nothing is plugged in there now (or ${d.backend} is halted); the assignment takes effect when it is`, { location: locate(q, key as QubeField), address }));
    }
    const attr = deviceAttrKey(d.devclass, d.backend, d.port);
    acc.before[attr] = cur === undefined ? null : describe(cur.mode, cur.deviceId, cur.options);
    acc.after[attr] = describe(d.mode, deviceId, d.options);
    const record = recordKeyOf(d.devclass, d.backend, d.port);
    const options = Object.fromEntries(d.options);
    const assign: Op =
      rules.api === "assignment"
        ? { op: "device.assign", vm, devclass: d.devclass, backend: d.backend, port: d.port, device_id: deviceId ?? "*", mode: d.mode, options }
        : { op: "device.attach", vm, devclass: d.devclass, backend: d.backend, port: d.port, options };
    if (cur === undefined) {
      if (!isOwned) acc.ops.push(setRecord(record));
      acc.ops.push(assign);
      acc.changed.push(attr);
      continue;
    }
    // R4.2 has one mode: a persistent line is whatever mode the config gives it.
    const sameMode = rules.api === "persistent" || cur.mode === d.mode;
    const sameId = rules.api === "persistent" || cur.deviceId === deviceId;
    const sameOpts = sameOptions(cur.options, d.options);
    if (rules.api === "persistent") acc.after[attr] = describe(cur.mode, undefined, d.options);
    // As written: nothing to do. Not claimed either (as for a feature of the same value): it is
    // not qubes-iac's to remove later, and an exported config plans no change.
    if (sameMode && sameId && sameOpts) continue;
    if (!isOwned) {
      err("QIAC-E176", key, `${where} is assigned already (${describe(cur.mode, cur.deviceId, cur.options)}), not by qubes-iac: it is never changed or detached`, `make the config match it, or unassign it by hand first (qvm-device ${d.devclass} unassign ${vm} ${deviceAddress(d.backend, d.port)})`);
      continue;
    }
    acc.changed.push(attr);
    if (rules.api === "assignment" && sameId && sameOpts) {
      acc.ops.push({ op: "device.set-mode", vm, devclass: d.devclass, backend: d.backend, port: d.port, device_id: cur.deviceId ?? "*", mode: d.mode });
      continue;
    }
    acc.ops.push(removeOp(rules, vm, cur), assign);
    if (!rules.removeWhileRunning) acc.halted.push(attr);
  }

  // Assignments qubes-iac made that the config no longer lists: removed (then their records)
  // before any is added, so an interruption leaves the qube with fewer devices, never more.
  const adds = acc.ops.splice(start);
  for (const k of [...owned].sort()) {
    const p = parseOwned(k);
    if (p === undefined || desired.has(deviceAttrKey(p.devclass, p.backend, p.port))) continue;
    if (!classes.has(p.devclass)) continue;
    const attr = deviceAttrKey(p.devclass, p.backend, p.port);
    const cur = current?.devices.get(p.devclass)?.find((a) => a.backend === p.backend && a.port === p.port);
    acc.before[attr] = cur === undefined ? null : describe(cur.mode, cur.deviceId, cur.options);
    acc.after[attr] = null;
    if (cur !== undefined) {
      acc.ops.push(removeOp(rules, vm, cur));
      acc.changed.push(attr);
      if (!rules.removeWhileRunning) acc.halted.push(attr);
    }
    if (current !== undefined) acc.ops.push({ op: "record.remove", vm, owner: ctx.desired.owner, uuid: current.uuid, record: recordKeyOf(p.devclass, p.backend, p.port) });
  }
  acc.ops.push(...adds);
}

function removeOp(rules: ReleaseInfo["devices"], vm: string, cur: ActualAssignment): Op {
  return rules.api === "assignment"
    ? { op: "device.unassign", vm, devclass: cur.devclass, backend: cur.backend, port: cur.port, device_id: cur.deviceId ?? "*" }
    : { op: "device.detach", vm, devclass: cur.devclass, backend: cur.backend, port: cur.port };
}

/**
 * The assignments of a clone's source, as the config of the clone would write them (for
 * `clone_devices: true`): each of the source's assignments of a served class, same port, mode,
 * options and identity. The clone step lists them as the clone's desired devices, so the plan
 * assigns them like any other (records, release rules, loosening) — a copy is never implicit.
 */
export function devicesOfSource(source: ReadonlyMap<DeviceClass, readonly ActualAssignment[]>): Map<string, DesiredDevice> {
  const out = new Map<string, DesiredDevice>();
  for (const [devclass, list] of [...source].sort(([a], [b]) => (a < b ? -1 : 1))) {
    for (const a of list) {
      if (a.mode === "manual") continue;
      const identity = a.deviceId === undefined || a.deviceId === "*" ? ({ kind: "any" } as const) : ({ kind: "id", id: a.deviceId } as const);
      out.set(deviceAttrKey(devclass, a.backend, a.port), { devclass, backend: a.backend, port: a.port, mode: a.mode, options: a.options, identity });
    }
  }
  return out;
}
