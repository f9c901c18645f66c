// The operations a plan step performs and the checks a saved plan carries, as JSON-ready data.
// This is the contract with apply: each `Op` is exactly one Admin API call and each `GuestOp` one
// operation through a guest agent, executed as written (apply never diffs again), and each `Check`
// is one current value the plan relied on, which apply re-reads before acting. All are part of the
// versioned plan format (schemas/plan.schema.json).

import { createHash } from "node:crypto";
import type { AgentSpec, ContentRef } from "../model/guest.js";
import type { AssignmentMode, DeviceClass } from "../model/devices.js";
import { ownershipNames, type RecordKey } from "../model/ownership.js";
import { policyServiceName, type ExpectedToken } from "../model/qrexec-policy-admin.js";
import type { PolicyScope } from "../model/qrexec-policy.js";

/** Where a property lives: a qube (`admin.vm.property.*`) or the global Qubes object (`admin.property.*`). */
export type Holder = { vm: string } | "global";

export type Op =
  /** admin.vm.Create.<class> (or CreateInPool with `pool`); template in the argument when given. */
  | { op: "vm.create"; class: string; name: string; label: string; template?: string; pool?: string }
  | { op: "vm.remove"; vm: string }
  | { op: "vm.start"; vm: string }
  /** admin.vm.Shutdown+wait: returns once the qube is halted. */
  | { op: "vm.shutdown"; vm: string }
  | { op: "vm.pause"; vm: string }
  | { op: "vm.unpause"; vm: string }
  /** admin.vm.Resume (R4.3 and later): wakes a suspended qube. */
  | { op: "vm.resume"; vm: string }
  /** `value` is the exact payload ("" = none for vm properties). */
  | { op: "property.set"; holder: Holder; name: string; value: string }
  | { op: "property.reset"; holder: Holder; name: string }
  | { op: "feature.set"; vm: string; name: string; value: string }
  | { op: "feature.remove"; vm: string; name: string }
  | { op: "tag.set"; vm: string; name: string }
  | { op: "tag.remove"; vm: string; name: string }
  /** Replaces the whole rule list (canonical rule strings, in order). */
  | { op: "firewall.set"; vm: string; rules: string[] }
  | { op: "label.create"; name: string; colour: string }
  | { op: "label.remove"; name: string }
  | { op: "pool.add"; driver: string; name: string; params: Record<string, string> }
  | { op: "pool.remove"; name: string }
  /** New size in bytes, decimal (bigger than 2^53 is possible, so a string). */
  | { op: "volume.resize"; vm: string; volume: string; size: string }
  /**
   * admin.vm.property.Get `uuid`, right after the qube's Create: the UUID of a qube this apply
   * creates is unknown when the plan is made; the executor keeps the answer for the record ops
   * of the same qube that name no UUID.
   */
  | { op: "vm.uuid"; vm: string }
  /**
   * admin.vm.feature.Set `qubes-iac.<owner>.<uuid>.<record>` = `1` on `vm` (docs/ownership.md).
   * Without `uuid`: the UUID the `vm.uuid` op of this apply read for `vm` (a qube it creates).
   */
  | { op: "record.set"; vm: string; owner: string; uuid?: string; record: RecordKey }
  /** admin.vm.feature.Remove of such a record. */
  | { op: "record.remove"; vm: string; owner: string; uuid: string; record: RecordKey }
  /**
   * R4.3+: admin.vm.device.<class>.Assign to `vm`, argument `backend+port+device_id` (qarg form),
   * payload the serialized DeviceAssignment (src/model/devices.ts). `device_id` `*`: any device.
   */
  | { op: "device.assign"; vm: string; devclass: DeviceClass; backend: string; port: string; device_id: string; mode: AssignmentMode; options: Record<string, string> }
  /** R4.3+: admin.vm.device.<class>.Unassign of the assignment with that identity. */
  | { op: "device.unassign"; vm: string; devclass: DeviceClass; backend: string; port: string; device_id: string }
  /** R4.3+: admin.vm.device.<class>.Set.assignment: only the mode of an assignment qubes-iac made. */
  | { op: "device.set-mode"; vm: string; devclass: DeviceClass; backend: string; port: string; device_id: string; mode: AssignmentMode }
  /** R4.2: admin.vm.device.<class>.Attach with `persistent=True` (an assignment by port). */
  | { op: "device.attach"; vm: string; devclass: DeviceClass; backend: string; port: string; options: Record<string, string> }
  /** R4.2: admin.vm.device.<class>.Detach of a persistent attachment (the qube halted). */
  | { op: "device.detach"; vm: string; devclass: DeviceClass; backend: string; port: string };

export type OpName = Op["op"];

/**
 * One operation on a guest through its agent. Each carries how to reach the agent (`wait_ms`:
 * how long "not answering yet" is pending; absent: one bounded attempt), so a saved plan needs
 * nothing else. Never content: a write names where the content is and its size and SHA-256.
 */
export type GuestOp =
  /**
   * Reads the content again from `content`, refuses when its size or SHA-256 differ from the plan's,
   * then writes it in place (truncate, chunks, flush) and reads it back to verify.
   */
  | { op: "guest.file.write"; guest: string; agent: AgentSpec; wait_ms?: number; path: string; size: number; sha256: string; content: ContentRef }
  /** guest-shutdown, then waits for the agent's channel to close (the VM powered off). */
  | { op: "guest.shutdown"; guest: string; agent: AgentSpec; wait_ms?: number };

/**
 * One call of qrexec's policy admin API (policy.Replace, policy.Remove, or their policy.include.*
 * twins), with the token planning read: a compare-and-set, so a file changed since the plan is
 * left as it is. `content` is the whole file; the executor checks it before writing it.
 * `restricts` (a removal): the file holds deny or ask rules or includes, so removing it may
 * loosen isolation and needs the destroy approval; apply checks the claim against the file.
 */
export type PolicyOp =
  | { op: "policy.replace"; scope: PolicyScope; name: string; expected_token: ExpectedToken; content: string }
  | { op: "policy.remove"; scope: PolicyScope; name: string; expected_token: ExpectedToken; restricts: boolean };

/** What a step runs: Admin API calls, guest operations and policy admin calls. */
export type StepOp = Op | GuestOp | PolicyOp;

export const isGuestOp = (o: StepOp): o is GuestOp => o.op === "guest.file.write" || o.op === "guest.shutdown";
export const isPolicyOp = (o: StepOp): o is PolicyOp => o.op === "policy.replace" || o.op === "policy.remove";
/** An Admin API call (neither a guest operation nor a policy admin call). */
export const isAdminOp = (o: StepOp): o is Op => !isGuestOp(o) && !isPolicyOp(o);

/** The Admin API method, agent command or qrexec service an op is about, for the human plan. */
export function stepOpMethod(o: StepOp): string {
  if (isPolicyOp(o)) return `${policyServiceName(o.scope, o.op === "policy.replace" ? "Replace" : "Remove")}+${o.name}`;
  if (!isGuestOp(o)) return opMethod(o);
  switch (o.op) {
    case "guest.file.write":
      return "guest-file-write";
    case "guest.shutdown":
      return "guest-shutdown";
    default: {
      const never: never = o;
      return never;
    }
  }
}

/** The Admin API method an op calls, for the human plan and for counting calls. */
export function opMethod(o: Op): string {
  switch (o.op) {
    case "vm.create":
      return `admin.vm.${o.pool !== undefined ? "CreateInPool" : "Create"}.${o.class}`;
    case "vm.remove":
      return "admin.vm.Remove";
    case "vm.start":
      return "admin.vm.Start";
    case "vm.shutdown":
      return "admin.vm.Shutdown";
    case "vm.pause":
      return "admin.vm.Pause";
    case "vm.unpause":
      return "admin.vm.Unpause";
    case "vm.resume":
      return "admin.vm.Resume";
    case "property.set":
      return o.holder === "global" ? "admin.property.Set" : "admin.vm.property.Set";
    case "property.reset":
      return o.holder === "global" ? "admin.property.Reset" : "admin.vm.property.Reset";
    case "feature.set":
      return "admin.vm.feature.Set";
    case "feature.remove":
      return "admin.vm.feature.Remove";
    case "tag.set":
      return "admin.vm.tag.Set";
    case "tag.remove":
      return "admin.vm.tag.Remove";
    case "firewall.set":
      return "admin.vm.firewall.Set";
    case "label.create":
      return "admin.label.Create";
    case "label.remove":
      return "admin.label.Remove";
    case "pool.add":
      return "admin.pool.Add";
    case "pool.remove":
      return "admin.pool.Remove";
    case "volume.resize":
      return "admin.vm.volume.Resize";
    case "vm.uuid":
      return "admin.vm.property.Get";
    case "record.set":
      return "admin.vm.feature.Set";
    case "record.remove":
      return "admin.vm.feature.Remove";
    case "device.assign":
      return `admin.vm.device.${o.devclass}.Assign`;
    case "device.unassign":
      return `admin.vm.device.${o.devclass}.Unassign`;
    case "device.set-mode":
      return `admin.vm.device.${o.devclass}.Set.assignment`;
    case "device.attach":
      return `admin.vm.device.${o.devclass}.Attach`;
    case "device.detach":
      return `admin.vm.device.${o.devclass}.Detach`;
    default: {
      const never: never = o;
      return never;
    }
  }
}

/** The feature name a record op writes; `uuid` is what `vm.uuid` read when the op names none. */
export function recordName(o: Extract<Op, { op: "record.set" | "record.remove" }>, uuid: string | undefined = o.uuid): string | undefined {
  return uuid === undefined ? undefined : ownershipNames(o.owner).record(uuid, o.record);
}

/**
 * A value the plan relied on. `sha256` stands in for a value too large to copy; `present` says
 * only that it exists (the plan looked at the name, not the value).
 */
export type CheckedValue = { value: string } | { sha256: string } | { present: true } | { absent: true };

export type Check =
  /**
   * The qube's admin.vm.List line: its class, and its power state when the plan relied on it
   * (the qube's own changes); a qube the plan only refers to is checked without it.
   */
  | { check: "qube"; vm: string; class: string; power?: string }
  | { check: "qube-absent"; vm: string }
  /** A property as property.Get prints it: default flag and value text. */
  | { check: "property"; holder: Holder; name: string; default: boolean; value: string }
  | { check: "feature"; vm: string; name: string; expect: CheckedValue }
  | { check: "tag"; vm: string; name: string; present: boolean }
  /** The whole rule list, hashed (`sha256` of the rules joined with "\n"). */
  | { check: "firewall"; vm: string; expect: CheckedValue }
  | { check: "label"; name: string; expect: CheckedValue }
  | { check: "pool"; name: string; expect: CheckedValue }
  /** The vids a pool the plan removes holds, sorted, one per line: all of them go with the qubes the plan deletes. */
  | { check: "pool-volumes"; name: string; expect: CheckedValue }
  | { check: "volume-size"; vm: string; volume: string; size: string }
  /** A qube's assignments of one device class, through the release's API, hashed (`devicesFingerprint`). */
  | { check: "devices"; vm: string; devclass: DeviceClass; api: "assignment" | "persistent"; expect: CheckedValue };

/** Values longer than this are checked by hash: a saved plan never holds large contents. */
export const LARGE_VALUE = 256;

export const sha256 = (text: string): string => createHash("sha256").update(text, "utf8").digest("hex");

export function checkedValue(value: string | undefined): CheckedValue {
  if (value === undefined) return { absent: true };
  return value.length > LARGE_VALUE ? { sha256: sha256(value) } : { value };
}

/** The form a pool's identity is checked in: driver and parameters, sorted, one `k=v` per line. */
export function poolFingerprint(driver: string, params: ReadonlyMap<string, string>): string {
  return [`driver=${driver}`, ...[...params].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([k, v]) => `${k}=${v}`)].join("\n");
}

/** The form a qube's assignments of one class are checked in: one sorted line each, hashed. */
export function devicesFingerprint(list: ReadonlyArray<{ backend: string; port: string; deviceId?: string; mode: string; options: ReadonlyMap<string, string> }>): CheckedValue {
  const lines = list.map((a) => [`${a.backend}:${a.port}`, a.deviceId ?? "", a.mode, ...[...a.options].map(([k, v]) => `${k}=${v}`)].join(" ")).sort();
  return { sha256: sha256(lines.join("\n")) };
}

export const firewallFingerprint = (rules: readonly string[]): CheckedValue => ({ sha256: sha256(rules.join("\n")) });
