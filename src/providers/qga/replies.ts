// The typed results of the agent's commands (qapi-schema-guest.json) and their strict decoders:
// each checks the fields it reads and throws QgaError "bad-reply" otherwise. Members a newer
// agent adds are ignored. Results are plain data (no bigint) unless a field is an int64 by nature.

import type { GuestOs } from "../../model/guest.js";
import { QgaError } from "./errors.js";
import { isJsonObject, type JsonObject, type JsonValue } from "./json.js";

export type AgentCommandInfo = { name: string; enabled: boolean; successResponse: boolean };
export type AgentInfo = { version: string; commands: AgentCommandInfo[] };
export type FileReadResult = { count: number; bytes: Buffer; eof: boolean };
export type FileWriteResult = { count: number; eof: boolean };
export type FileSeekResult = { position: number; eof: boolean };
export type FsfreezeStatus = "thawed" | "frozen";
export type GuestIpAddress = { address: string; type: "ipv4" | "ipv6"; prefix: number };
export type GuestInterface = { name: string; hardwareAddress: string | null; addresses: GuestIpAddress[] };
/** guest-get-osinfo: every member is optional in the schema; absent ones are null. */
export type GuestOsInfo = GuestOs;

const bad = (command: string, what: string): never => {
  throw new QgaError("bad-reply", `${command}: malformed reply (${what})`, { command, maybeDelivered: true });
};

const obj = (command: string, v: JsonValue | undefined, what: string): JsonObject => (isJsonObject(v) ? v : bad(command, `${what} is not an object`));
const str = (command: string, v: JsonValue | undefined, what: string): string => (typeof v === "string" ? v : bad(command, `${what} is not a string`));
const bool = (command: string, v: JsonValue | undefined, what: string): boolean => (typeof v === "boolean" ? v : bad(command, `${what} is not a boolean`));
const optStr = (command: string, v: JsonValue | undefined, what: string): string | null => (v === undefined ? null : str(command, v, what));

/** An integer that fits a JS number exactly (counts, handles, positions, prefixes). */
export const safeInt = (command: string, v: JsonValue | undefined, what: string): number =>
  typeof v === "number" && Number.isSafeInteger(v) ? v : bad(command, `${what} is not an integer within ±2^53`);

/** An int64 (sync ids, nanosecond times), exact. */
export function int64(command: string, v: JsonValue | undefined, what: string): bigint {
  const n = typeof v === "bigint" ? v : typeof v === "number" && Number.isSafeInteger(v) ? BigInt(v) : bad(command, `${what} is not an integer`);
  if (n < -(1n << 63n) || n >= 1n << 63n) bad(command, `${what} is outside int64`);
  return n;
}

export function decodeInfo(v: JsonValue): AgentInfo {
  const c = "guest-info";
  const o = obj(c, v, "return");
  const list = o.supported_commands;
  if (!Array.isArray(list)) return bad(c, "supported_commands is not a list");
  return {
    version: str(c, o.version, "version"),
    commands: list.map((x, i) => {
      const e = obj(c, x, `supported_commands[${i}]`);
      return {
        name: str(c, e.name, `supported_commands[${i}].name`),
        enabled: bool(c, e.enabled, `supported_commands[${i}].enabled`),
        // Absent before 1.3: commands then all answered.
        successResponse: e["success-response"] === undefined ? true : bool(c, e["success-response"], `supported_commands[${i}].success-response`),
      };
    }),
  };
}

/** Empty-object returns (guest-ping, guest-file-close, guest-file-flush). */
export function decodeEmpty(command: string, v: JsonValue): void {
  const o = obj(command, v, "return");
  if (Object.keys(o).length !== 0) bad(command, "return is not {}");
}

// A plain character-class run (no repeated group): linear on megabyte strings, no deep backtracking.
const BASE64_RE = /^[A-Za-z0-9+/]*={0,2}$/;

/** guest-file-read: the decoded bytes must number exactly `count`, and no more than requested. */
export function decodeFileRead(v: JsonValue, requested: number): FileReadResult {
  const c = "guest-file-read";
  const o = obj(c, v, "return");
  const count = safeInt(c, o.count, "count");
  const b64 = str(c, o["buf-b64"], "buf-b64");
  const eof = bool(c, o.eof, "eof");
  if (count < 0 || count > requested) bad(c, `count ${count} outside 0..${requested}`);
  if (b64.length !== Math.ceil(count / 3) * 4 || !BASE64_RE.test(b64)) bad(c, "buf-b64 is not the base64 of count bytes");
  const bytes = Buffer.from(b64, "base64");
  if (bytes.length !== count) bad(c, "buf-b64 does not decode to count bytes");
  return { count, bytes, eof };
}

export function decodeFileWrite(v: JsonValue): FileWriteResult {
  const c = "guest-file-write";
  const o = obj(c, v, "return");
  const count = safeInt(c, o.count, "count");
  if (count < 0) bad(c, "negative count");
  return { count, eof: bool(c, o.eof, "eof") };
}

export function decodeFileSeek(v: JsonValue): FileSeekResult {
  const c = "guest-file-seek";
  const o = obj(c, v, "return");
  const position = safeInt(c, o.position, "position");
  if (position < 0) bad(c, "negative position");
  return { position, eof: bool(c, o.eof, "eof") };
}

export function decodeFsfreezeStatus(v: JsonValue): FsfreezeStatus {
  if (v === "thawed" || v === "frozen") return v;
  return bad("guest-fsfreeze-status", "not \"thawed\" or \"frozen\"");
}

/** A filesystem count (guest-fsfreeze-freeze / -thaw). */
export function decodeCount(command: string, v: JsonValue): number {
  const n = safeInt(command, v, "return");
  if (n < 0) bad(command, "negative count");
  return n;
}

export function decodeInterfaces(v: JsonValue): GuestInterface[] {
  const c = "guest-network-get-interfaces";
  if (!Array.isArray(v)) return bad(c, "return is not a list");
  return v.map((x, i) => {
    const o = obj(c, x, `[${i}]`);
    const rawAddrs = o["ip-addresses"] ?? [];
    const addrs = Array.isArray(rawAddrs) ? rawAddrs : bad(c, `[${i}].ip-addresses is not a list`);
    return {
      name: str(c, o.name, `[${i}].name`),
      hardwareAddress: optStr(c, o["hardware-address"], `[${i}].hardware-address`),
      addresses: addrs.map((a, j) => {
        const ao = obj(c, a, `[${i}].ip-addresses[${j}]`);
        const type = ao["ip-address-type"];
        if (type !== "ipv4" && type !== "ipv6") bad(c, `[${i}].ip-addresses[${j}].ip-address-type is not ipv4 or ipv6`);
        const prefix = safeInt(c, ao.prefix, `[${i}].ip-addresses[${j}].prefix`);
        if (prefix < 0 || prefix > 128) bad(c, `[${i}].ip-addresses[${j}].prefix out of range`);
        return { address: str(c, ao["ip-address"], `[${i}].ip-addresses[${j}].ip-address`), type: type as "ipv4" | "ipv6", prefix };
      }),
    };
  });
}

export function decodeOsInfo(v: JsonValue): GuestOsInfo {
  const c = "guest-get-osinfo";
  const o = obj(c, v, "return");
  const f = (k: string): string | null => optStr(c, o[k], k);
  return {
    id: f("id"),
    name: f("name"),
    prettyName: f("pretty-name"),
    version: f("version"),
    versionId: f("version-id"),
    kernelRelease: f("kernel-release"),
    kernelVersion: f("kernel-version"),
    machine: f("machine"),
  };
}

export function decodeHostName(v: JsonValue): string {
  const c = "guest-get-host-name";
  return str(c, obj(c, v, "return")["host-name"], "host-name");
}
