// The Admin API client as the two capabilities the core is given: the planner's read-only
// QubesReader and apply's op runner (each op exactly one client call). Next to each sits the
// table of the Admin API calls it makes; `qubes-iac policy` grants calls from these tables only,
// and test/apply/admin-api.test.ts holds every entry against the calls seen on the wire.

import type { ActualProperty } from "../model/actual.js";
import { rulesFor } from "../model/release.js";
import {
  assignmentPayload,
  attachPayloadR42,
  DEVICE_CLASSES,
  deviceQarg,
  deviceQargR42,
  parseAssignedLine,
  parseAvailableLine,
  parseAvailableLineR42,
  parseListLineR42,
  type ActualAssignment,
} from "../model/devices.js";
import type { Op } from "../plan/ops.js";
import { opMethod, recordName } from "../plan/ops.js";
import { isUuid, MARKER_VALUE } from "../model/ownership.js";
import type { QubesReader } from "../plan/reader.js";
import type { AdminClient } from "../providers/qubes/client.js";
import { QubesApiError } from "../providers/qubes/errors.js";
import type { Transport } from "../providers/qubes/transport.js";
import type { CallFailure, OpExecutor, OpOutcome } from "./engine.js";
import { explainShutdownFailure, SHUTDOWN_TIMEOUT } from "./shutdown.js";
import { verifyOp } from "./verify.js";

/**
 * Where a call goes: dom0 itself (`@adminvm` in a policy), the qube it is about, or either (the
 * feature calls also read dom0's own features, which hold the ownership inventory); `referenced`:
 * only a qube the config refers to without declaring it, for the one property a reference needs
 * of it (src/plan/reference-needs.ts).
 */
export type CallTarget = "dom0" | "qube" | "qube-or-dom0" | "referenced";
export type MethodUse = { method: string; target: CallTarget };

/**
 * The calls each reader function makes. `properties` calls GetAll; only when a policy refuses
 * GetAll does the client fall back to List + one Get per property (READER_FALLBACK_METHODS).
 */
export const READER_CALLS: { readonly [K in keyof QubesReader]: readonly MethodUse[] } = {
  listQubes: [{ method: "admin.vm.List", target: "dom0" }],
  release: [{ method: "admin.vm.property.List", target: "dom0" }],
  properties: [
    // dom0 too: the reference scan reads every listed qube, and dom0's default_dispvm can name one.
    { method: "admin.vm.property.GetAll", target: "qube-or-dom0" },
    { method: "admin.property.GetAll", target: "dom0" },
  ],
  vmProperty: [{ method: "admin.vm.property.Get", target: "referenced" }],
  tags: [{ method: "admin.vm.tag.List", target: "qube" }],
  featureNames: [{ method: "admin.vm.feature.List", target: "qube-or-dom0" }],
  feature: [{ method: "admin.vm.feature.Get", target: "qube-or-dom0" }],
  firewall: [{ method: "admin.vm.firewall.Get", target: "qube" }],
  labels: [{ method: "admin.label.List", target: "dom0" }],
  labelColour: [{ method: "admin.label.Get", target: "dom0" }],
  pools: [{ method: "admin.pool.List", target: "dom0" }],
  pool: [{ method: "admin.pool.Info", target: "dom0" }],
  poolVolumes: [{ method: "admin.pool.volume.List", target: "dom0" }],
  volumeNames: [{ method: "admin.vm.volume.List", target: "qube" }],
  volume: [{ method: "admin.vm.volume.Info", target: "qube" }],
  deviceClasses: [{ method: "admin.deviceclass.List", target: "dom0" }],
  // R4.3+ Assigned, R4.2 List (src/model/release.ts `devices.api`); policy.ts keeps the classes the config names.
  deviceAssignments: DEVICE_CLASSES.flatMap((c) => [
    { method: `admin.vm.device.${c}.Assigned`, target: "qube" as const },
    { method: `admin.vm.device.${c}.List`, target: "qube" as const },
  ]),
  // dom0 offers pci and mic; a qube (sys-usb) usb and block.
  deviceAt: DEVICE_CLASSES.map((c) => ({ method: `admin.vm.device.${c}.Available`, target: "qube-or-dom0" as const })),
};

export const READER_FALLBACK_METHODS: readonly string[] = ["admin.vm.property.List", "admin.vm.property.Get", "admin.property.List", "admin.property.Get"];

/** Pool.Info keys that describe usage, not configuration. */
const POOL_STATUS_KEYS: ReadonlySet<string> = new Set(["driver", "name", "size", "usage", "included_in"]);

/** The read-only face of the Admin API client that planning (and apply's re-reads) are given. */
export function readerFromClient(client: AdminClient): QubesReader {
  const toActual = (m: Map<string, { isDefault: boolean; type: ActualProperty["type"]; raw: string }>): Map<string, ActualProperty> =>
    new Map([...m].map(([k, v]) => [k, { isDefault: v.isDefault, type: v.type, raw: v.raw }]));
  return {
    listQubes: async () => (await client.vm.list()).map((e) => ({ name: e.name, klass: e.klass, power: e.state })),
    release: () => client.release(),
    properties: async (holder) => toActual(await client.property.getAll(holder === "global" ? "global" : { vm: holder.vm })),
    vmProperty: async (vm, name) => {
      const v = await client.property.get({ vm }, name);
      return { isDefault: v.isDefault, type: v.type, raw: v.raw };
    },
    tags: (vm) => client.tag.list(vm),
    featureNames: (vm) => client.feature.list(vm),
    feature: (vm, name) => client.feature.getOptional(vm, name),
    firewall: (vm) => client.firewall.get(vm),
    labels: () => client.label.list(),
    labelColour: async (name) => {
      // The head answers nothing for a label created since it started (an upstream bug the
      // releases do not have: there an empty reply is a refusal or a failure, reported as such).
      try {
        const c = await client.label.get(name);
        return c === "" ? undefined : c;
      } catch (e) {
        if (e instanceof QubesApiError && e.code === "empty-reply" && rulesFor(await client.release()).newLabelColour === "empty") return undefined;
        throw e;
      }
    },
    pools: () => client.pool.list(),
    pool: async (name) => {
      const info = await client.pool.info(name);
      return { name, driver: info.get("driver") ?? "", params: new Map([...info].filter(([k]) => !POOL_STATUS_KEYS.has(k))) };
    },
    poolVolumes: (name) => client.pool.volumes(name),
    volumeNames: (vm) => client.volume.list(vm),
    volume: async (vm, volume) => {
      const v = await client.volume.info(vm, volume);
      return { pool: v.pool, size: v.size, rw: v.rw, vid: v.vid };
    },
    deviceClasses: () => client.device.classes(),
    deviceAssignments: async (vm, devclass, api) => {
      const out: ActualAssignment[] = [];
      for (const line of await client.device.assigned(vm, devclass, api)) {
        const a = api === "assignment" ? parseAssignedLine(devclass, line) : parseListLineR42(devclass, line);
        if (a === null) continue;
        if ("error" in a) throw new QubesApiError("bad-reply", `invalid reply to admin.vm.device.${devclass} listing of ${vm}: ${a.error}`, {});
        // Attached lists live attachments too; an assignment is what has a mode other than manual.
        if (a.mode !== "manual") out.push(a);
      }
      return out;
    },
    deviceAt: async (backend, devclass, port, api) => {
      let lines: string[];
      try {
        lines = await client.device.available(backend, devclass, port);
      } catch (e) {
        // dom0's PCI list needs the hypervisor (qubesd offline: "VMM operations disabled").
        if (e instanceof QubesApiError && e.code === "exception") return { kind: "unavailable", why: e.message };
        throw e;
      }
      const [line] = lines;
      if (line === undefined) return { kind: "absent" };
      const d = api === "assignment" ? parseAvailableLine(devclass, backend, line) : parseAvailableLineR42(devclass, backend, line);
      if ("error" in d) throw new QubesApiError("bad-reply", `invalid reply to admin.vm.device.${devclass}.Available of ${backend}: ${d.error}`, {});
      return d.port === port ? { kind: "found", device: d } : { kind: "absent" };
    },
  };
}

/** The one Admin API call an op makes: method, destination and argument as qrexec sees them. */
export type OpCall = { method: string; dest: string; arg: string };

export function opCall(o: Op): OpCall {
  const method = opMethod(o);
  switch (o.op) {
    case "vm.create":
      return { method, dest: "dom0", arg: o.template ?? "" };
    case "vm.remove":
    case "vm.start":
    case "vm.pause":
    case "vm.unpause":
    case "vm.resume":
      return { method, dest: o.vm, arg: "" };
    case "vm.shutdown":
      return { method, dest: o.vm, arg: "wait" };
    case "property.set":
    case "property.reset":
      return { method, dest: o.holder === "global" ? "dom0" : o.holder.vm, arg: o.name };
    case "feature.set":
    case "feature.remove":
    case "tag.set":
    case "tag.remove":
      return { method, dest: o.vm, arg: o.name };
    case "firewall.set":
      return { method, dest: o.vm, arg: "" };
    case "label.create":
    case "label.remove":
      return { method, dest: "dom0", arg: o.name };
    case "pool.add":
      return { method, dest: "dom0", arg: o.driver };
    case "pool.remove":
      return { method, dest: "dom0", arg: o.name };
    case "volume.resize":
      return { method, dest: o.vm, arg: o.volume };
    case "vm.uuid":
      return { method, dest: o.vm, arg: "uuid" };
    case "record.set":
    case "record.remove":
      // A record of a qube created by this apply: its name is known only at apply time.
      return { method, dest: o.vm, arg: recordName(o) ?? ANY_ARGUMENT };
    case "device.assign":
    case "device.unassign":
    case "device.set-mode":
      return { method, dest: o.vm, arg: deviceQarg(o.backend, o.port, o.device_id) };
    case "device.attach":
    case "device.detach":
      return { method, dest: o.vm, arg: deviceQargR42(o.backend, o.port) };
    default: {
      const never: never = o;
      throw new Error(`unknown op ${JSON.stringify(never)}`);
    }
  }
}

/** The argument of a call whose argument is known only when it runs (a policy line grants any). */
export const ANY_ARGUMENT = "*";

/**
 * The UUIDs `vm.uuid` read during one apply, by qube. A qube removed by the same apply forgets
 * its UUID, so a record op of a qube created again never uses the old one.
 */
export type UuidBindings = Map<string, string>;

/** The one record op's feature name, or why it cannot be written (no `vm.uuid` ran for the qube). */
function boundRecordName(o: Extract<Op, { op: "record.set" | "record.remove" }>, uuids: UuidBindings): string {
  const name = recordName(o, o.uuid ?? uuids.get(o.vm));
  if (name === undefined) throw new QubesApiError("invalid-request", `the UUID of ${o.vm} was not read by this apply: its record ${o.record} is not written`, {});
  return name;
}

/** Runs one op as the one Admin API call it names (opCall says which). */
export async function runOp(client: AdminClient, o: Op, uuids: UuidBindings = new Map()): Promise<void> {
  switch (o.op) {
    case "vm.create":
      return client.vm.create({ klass: o.class, name: o.name, label: o.label, ...(o.template !== undefined ? { template: o.template } : {}), ...(o.pool !== undefined ? { pool: o.pool } : {}) });
    case "vm.remove":
      return client.vm.remove(o.vm);
    case "vm.start":
      return client.vm.start(o.vm);
    case "vm.shutdown":
      return client.vm.shutdown(o.vm, { wait: true });
    case "vm.pause":
      return client.vm.pause(o.vm);
    case "vm.unpause":
      return client.vm.unpause(o.vm);
    case "vm.resume":
      return client.vm.resume(o.vm);
    case "property.set":
      return client.property.set(o.holder, o.name, o.value);
    case "property.reset":
      return client.property.reset(o.holder, o.name);
    case "feature.set":
      return client.feature.set(o.vm, o.name, o.value);
    case "feature.remove":
      return client.feature.remove(o.vm, o.name);
    case "tag.set":
      return client.tag.set(o.vm, o.name);
    case "tag.remove":
      return client.tag.remove(o.vm, o.name);
    case "firewall.set":
      return client.firewall.set(o.vm, o.rules);
    case "label.create":
      return client.label.create(o.name, o.colour);
    case "label.remove":
      return client.label.remove(o.name);
    case "pool.add":
      return client.pool.add(o.driver, o.name, o.params);
    case "pool.remove":
      return client.pool.remove(o.name);
    case "volume.resize":
      return client.volume.resize(o.vm, o.volume, BigInt(o.size));
    case "vm.uuid": {
      const p = await client.property.get({ vm: o.vm }, "uuid");
      if (!isUuid(p.raw)) throw new QubesApiError("bad-reply", `qube ${o.vm} has no valid UUID (${JSON.stringify(p.raw.slice(0, 40))})`, {});
      uuids.set(o.vm, p.raw);
      return;
    }
    case "record.set":
      return client.feature.set(o.vm, boundRecordName(o, uuids), MARKER_VALUE);
    case "record.remove":
      return client.feature.remove(o.vm, boundRecordName(o, uuids));
    case "device.assign":
      return client.device.assign(o.vm, o.devclass, opCall(o).arg, assignmentPayload({ ...o, deviceId: o.device_id, options: new Map(Object.entries(o.options)) }, o.vm));
    case "device.unassign":
      return client.device.unassign(o.vm, o.devclass, opCall(o).arg);
    case "device.set-mode":
      return client.device.setAssignment(o.vm, o.devclass, opCall(o).arg, o.mode);
    case "device.attach":
      return client.device.attach(o.vm, o.devclass, opCall(o).arg, attachPayloadR42(new Map(Object.entries(o.options))));
    case "device.detach":
      return client.device.detach(o.vm, o.devclass, opCall(o).arg);
    default: {
      const never: never = o;
      throw new Error(`unknown op ${JSON.stringify(never)}`);
    }
  }
}

/**
 * What a person reads about a failed call. A removal qubesd refuses as in use is refused by its
 * own check (qubes-core-admin qubes/app.py, Qubes.on_domain_pre_deleted: "Domain is in use"): from
 * a management qube the plan's reference scan saw only the qubes its policy shows, so it says so.
 */
function failureMessage(e: QubesApiError, o: Op, visibility: Transport["visibility"]): string {
  if (o.op !== "vm.remove" || e.qubesClass !== "QubesVMInUseError") return e.message;
  const unseen =
    visibility === "policy"
      ? `: something this management qube cannot see still uses ${o.vm} (its qrexec policy shows only some qubes, and the plan's reference scan saw only those); in dom0 \`journalctl -u qubesd\` names it`
      : "";
  return `qubesd refused to remove qube ${o.vm}, it is still in use${unseen} (${e.message})`;
}

function callFailure(e: QubesApiError, o: Op, visibility: Transport["visibility"]): CallFailure {
  const c = opCall(o);
  return {
    code: e.code,
    ...(e.qubesClass !== undefined ? { qubesClass: e.qubesClass } : {}),
    message: failureMessage(e, o, visibility),
    call: e.details.call ?? `${c.method}+${c.arg} → ${c.dest}`,
  };
}

/**
 * Whether a failed mutation may still have happened: the request may have reached qubesd and no
 * answer came back (`maybeDelivered`), or qubesd closed without a word. On qubesd's socket a
 * connection dropped after the call ran and qubesd's own empty reply (a refusal, or a failure
 * after a partial change) are the same zero bytes, so an empty reply settles nothing either.
 */
export const outcomeUnknown = (e: QubesApiError): boolean => e.details.maybeDelivered === true || e.code === "empty-reply";

/**
 * `--kill-after-timeout`: qubesd's Shutdown+wait waited the qube's whole shutdown_timeout, so the
 * qube is killed now; one that halted in the meantime (QubesVMNotStartedError) needs nothing more.
 */
async function killAfterTimeout(client: AdminClient, vm: string): Promise<OpOutcome> {
  const note = `qube ${vm} did not halt within its shutdown_timeout (${SHUTDOWN_TIMEOUT})`;
  try {
    await client.vm.kill(vm);
    return { kind: "ok", note: `${note}: killed (admin.vm.Kill, --kill-after-timeout)` };
  } catch (e) {
    if (!(e instanceof QubesApiError)) throw e;
    if (e.qubesClass === "QubesVMNotStartedError") return { kind: "ok", note: `${note}, then halted by itself: not killed` };
    const kill: Op = { op: "vm.shutdown", vm };
    return { kind: outcomeUnknown(e) ? "unknown" : "failed", failure: { ...callFailure(e, kill, client.transport.visibility), message: `${note}, and admin.vm.Kill failed: ${e.message}`, call: `admin.vm.Kill+ → ${vm}` } };
  }
}

/**
 * Apply's executor over the client: a Qubes exception or a call never sent is a failure; a call
 * whose outcome is unknown is settled by `verify`, which re-reads through the reader (never by
 * sending the call again). Anything but a QubesApiError is a bug and propagates.
 */
export function executorFromClient(client: AdminClient, options: { killAfterTimeout?: boolean } = {}): OpExecutor {
  const reader = readerFromClient(client);
  const uuids: UuidBindings = new Map();
  return {
    run: async (o) => {
      if (o.op === "vm.remove" || o.op === "vm.create") uuids.delete(o.op === "vm.remove" ? o.vm : o.name);
      try {
        await runOp(client, o, uuids);
        return { kind: "ok" };
      } catch (e) {
        if (!(e instanceof QubesApiError)) throw e;
        const failure = callFailure(e, o, client.transport.visibility);
        if (outcomeUnknown(e)) return { kind: "unknown", failure };
        if (o.op !== "vm.shutdown") return { kind: "failed", failure };
        if (failure.qubesClass === SHUTDOWN_TIMEOUT && options.killAfterTimeout === true) return killAfterTimeout(client, o.vm);
        const explained = explainShutdownFailure(o.vm, failure);
        return { kind: "failed", failure: explained === undefined ? failure : { ...failure, message: explained } };
      }
    },
    verify: (o) => verifyOp(reader, o, uuids),
  };
}
