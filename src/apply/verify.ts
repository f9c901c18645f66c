// Settles a call whose outcome is unknown (the connection dropped after the request was sent) by
// re-reading the one value the op changes and comparing it with what the op wanted: done, not
// done, or — when the re-read fails or the value is in between — still unknown. It never repeats
// the call. Reads only through the QubesReader capability.

import { settledPower } from "../model/actual.js";
import { normalizeAs } from "../plan/normalize.js";
import { recordName, type Op } from "../plan/ops.js";
import { isUuid, MARKER_VALUE } from "../model/ownership.js";
import type { UuidBindings } from "./admin-api.js";
import type { QubesReader } from "../plan/reader.js";
import { parseQubesBool } from "../model/qubes-rules.js";
import { isQubesApiError } from "../providers/qubes/errors.js";
import type { Verification } from "./engine.js";

const done: Verification = { kind: "done" };
const notDone = (detail: string): Verification => ({ kind: "not-done", detail });

/** Pool parameter values compare as Qubes reads them: booleans in any spelling, the rest exactly. */
function sameParam(want: string, have: string | undefined): boolean {
  if (have === undefined) return false;
  if (want === have) return true;
  const a = parseQubesBool(want);
  return a !== null && a === parseQubesBool(have);
}

async function compare(reader: QubesReader, o: Op, uuids: UuidBindings): Promise<Verification> {
  switch (o.op) {
    case "vm.create":
    case "vm.remove": {
      const listed = (await reader.listQubes()).find((q) => q.name === (o.op === "vm.create" ? o.name : o.vm));
      if (o.op === "vm.remove") return listed === undefined ? done : notDone(`qube ${o.vm} still exists`);
      if (listed === undefined) return notDone(`qube ${o.name} does not exist`);
      return listed.klass === o.class ? done : notDone(`qube ${o.name} exists but is a ${listed.klass}, not a ${o.class}`);
    }
    case "vm.start":
    case "vm.shutdown":
    case "vm.pause":
    case "vm.unpause":
    case "vm.resume": {
      const listed = (await reader.listQubes()).find((q) => q.name === o.vm);
      if (listed === undefined) return notDone(`qube ${o.vm} does not exist`);
      const power = settledPower(listed.power);
      const want = o.op === "vm.shutdown" ? "halted" : o.op === "vm.pause" ? "paused" : "running";
      if (power === want) return done;
      if (power === undefined) return { kind: "unknown", detail: `qube ${o.vm} is ${listed.power}` };
      return notDone(`qube ${o.vm} is ${listed.power}`);
    }
    case "property.set":
    case "property.reset": {
      const where = o.holder === "global" ? `global property ${o.name}` : `property ${o.name} of ${o.holder.vm}`;
      const p = (await reader.properties(o.holder)).get(o.name);
      if (p === undefined) return notDone(`there is no ${where}`);
      if (o.op === "property.reset") return p.isDefault ? done : notDone(`${where} is ${JSON.stringify(p.raw)}, not its default`);
      const want = normalizeAs(p.type, o.value);
      const have = normalizeAs(p.type, p.raw);
      const same = want.ok && have.ok ? want.text === have.text : o.value === p.raw;
      return same && !p.isDefault ? done : notDone(`${where} is ${JSON.stringify(p.raw)}${p.isDefault ? " (default)" : ""}`);
    }
    case "feature.set":
    case "feature.remove": {
      const v = await reader.feature(o.vm, o.name);
      if (o.op === "feature.remove") return v === undefined ? done : notDone(`feature ${o.name} of ${o.vm} is still set`);
      return v === o.value ? done : notDone(`feature ${o.name} of ${o.vm} is ${v === undefined ? "not set" : JSON.stringify(v)}`);
    }
    case "tag.set":
    case "tag.remove": {
      const has = (await reader.tags(o.vm)).includes(o.name);
      if (o.op === "tag.set") return has ? done : notDone(`qube ${o.vm} has no tag ${o.name}`);
      return has ? notDone(`qube ${o.vm} still has tag ${o.name}`) : done;
    }
    case "firewall.set": {
      // The client sends an empty list as one `action=drop` rule (qubesd refuses an empty list).
      const want = o.rules.length === 0 ? ["action=drop"] : o.rules;
      const have = await reader.firewall(o.vm);
      return have.length === want.length && have.every((r, i) => r === want[i]) ? done : notDone(`the firewall of ${o.vm} has other rules (${have.length})`);
    }
    case "label.create":
    case "label.remove": {
      const exists = (await reader.labels()).includes(o.name);
      if (o.op === "label.remove") return exists ? notDone(`label ${o.name} still exists`) : done;
      if (!exists) return notDone(`label ${o.name} does not exist`);
      // qubesd does not tell the colour of a label created since it started: existence must do.
      const colour = await reader.labelColour(o.name);
      return colour === undefined || colour.toLowerCase() === o.colour.toLowerCase() ? done : notDone(`label ${o.name} exists with colour ${colour}`);
    }
    case "pool.add":
    case "pool.remove": {
      const exists = (await reader.pools()).includes(o.name);
      if (o.op === "pool.remove") return exists ? notDone(`pool ${o.name} still exists`) : done;
      if (!exists) return notDone(`pool ${o.name} does not exist`);
      const p = await reader.pool(o.name);
      const same = p.driver === o.driver && Object.entries(o.params).every(([k, v]) => sameParam(v, p.params.get(k)));
      return same ? done : notDone(`pool ${o.name} exists with other settings (driver ${p.driver})`);
    }
    case "volume.resize": {
      const v = await reader.volume(o.vm, o.volume);
      return v.size === BigInt(o.size) ? done : notDone(`volume ${o.volume} of ${o.vm} is ${v.size} bytes`);
    }
    case "vm.uuid": {
      // A read: its re-read is the read itself, and binds the UUID as the op would have.
      const raw = (await reader.properties({ vm: o.vm })).get("uuid")?.raw ?? "";
      if (!isUuid(raw)) return notDone(`qube ${o.vm} has no valid UUID`);
      uuids.set(o.vm, raw);
      return done;
    }
    case "record.set":
    case "record.remove": {
      const name = recordName(o, o.uuid ?? uuids.get(o.vm));
      if (name === undefined) return notDone(`the UUID of ${o.vm} was not read by this apply`);
      const v = await reader.feature(o.vm, name);
      if (o.op === "record.remove") return v === undefined ? done : notDone(`record ${name} of ${o.vm} is still set`);
      return v === MARKER_VALUE ? done : notDone(`record ${name} of ${o.vm} is ${v === undefined ? "not set" : JSON.stringify(v)}`);
    }
    case "device.assign":
    case "device.unassign":
    case "device.set-mode":
    case "device.attach":
    case "device.detach": {
      const api = o.op === "device.attach" || o.op === "device.detach" ? "persistent" : "assignment";
      const found = (await reader.deviceAssignments(o.vm, o.devclass, api)).find((a) => a.backend === o.backend && a.port === o.port);
      const where = `${o.devclass} device ${o.backend}:${o.port} of ${o.vm}`;
      if (o.op === "device.unassign" || o.op === "device.detach") return found === undefined ? done : notDone(`${where} is still assigned`);
      if (found === undefined) return notDone(`${where} is not assigned`);
      if (o.op === "device.assign") return found.mode === o.mode && found.deviceId === o.device_id ? done : notDone(`${where} is assigned otherwise (${found.mode})`);
      if (o.op === "device.set-mode") return found.mode === o.mode ? done : notDone(`${where} is ${found.mode}`);
      return done;
    }
    default: {
      const never: never = o;
      throw new Error(`unknown op ${JSON.stringify(never)}`);
    }
  }
}

/** Re-reads what `op` changes; a failed re-read leaves the outcome unknown. */
export async function verifyOp(reader: QubesReader, op: Op, uuids: UuidBindings = new Map()): Promise<Verification> {
  try {
    return await compare(reader, op, uuids);
  } catch (e) {
    if (!isQubesApiError(e)) throw e;
    return { kind: "unknown", detail: `re-reading failed: ${e.message}` };
  }
}
