// Converts a written guest (a qube's `guest:` or an entry of the top-level `guests:`) into a
// DesiredGuest: the agent spec, the wait timeout, and each managed file with its content by
// reference — an inline string (hashed later, never shown) or a `source:` file next to the config
// file, which is looked at (exists, regular, readable, inside the config's directory) but not read.
// Shapes the schema rejects are skipped without a second diagnostic.

import { posix } from "node:path";
import type { SourceLocation } from "../model/diagnostics.js";
import { guestAddress, qubeGuestAddress, type DesiredGuest, type DesiredGuestFile, type GuestField, type GuestPowerState } from "../model/desired.js";
import { DEFAULT_QREXEC_SERVICE, toAgentSpec, type AgentSpec } from "../model/guest.js";
import type { ConfigCode } from "./codes.js";
import type { PathInfo } from "./index.js";
import { childPointer, describePath } from "./_paths.js";

export type GuestContext = {
  /** The config file as given, and what the loader's file access says of it and of its directory. */
  file: string;
  inspect?(path: string): PathInfo;
  loc(ptr: string, key?: boolean): SourceLocation;
  report(code: ConfigCode, message: string, ptr: string, hint?: string, key?: boolean): void;
};

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);

const GUEST_NAME_RE = /^[A-Za-z][A-Za-z0-9_-]{0,62}$/;
/** PATH_MAX less the terminating NUL. */
const MAX_GUEST_PATH_BYTES = 4095;
const CONTROL_RE = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/;
const MAX_WAIT_SECONDS = 3600;
const encoder = new TextEncoder();

/** Why a top-level guest name cannot be used, or null. */
export function checkGuestName(name: string): string | null {
  if (!GUEST_NAME_RE.test(name)) return "a guest name starts with a letter, then letters, digits, _ and - (at most 63 characters)";
  if (name === "qube") return "'qube' is reserved: guest.qube.<name> addresses the guest of a qube";
  return null;
}

/** Why a guest file path cannot be used, or null; `normal` is the form to suggest. */
export function checkGuestPath(path: string): { problem: string; normal?: string } | null {
  if (!path.startsWith("/")) return { problem: "must be absolute (start with /)" };
  if (path.includes("\0")) return { problem: "must not contain NUL" };
  if (CONTROL_RE.test(path)) return { problem: "must be printable (no control characters such as newline or tab)" };
  if (encoder.encode(path).length > MAX_GUEST_PATH_BYTES) return { problem: `is longer than ${MAX_GUEST_PATH_BYTES} bytes` };
  if (path === "/" || path.endsWith("/")) return { problem: "names a directory: a managed file's path does not end in /" };
  const normal = posix.normalize(path);
  if (normal !== path) return { problem: "is not in normal form (no //, /./ or /../)", normal };
  return null;
}

/** Wait timeout in milliseconds: an integer of seconds, or digits with s, m or h. */
export function parseWaitTimeout(raw: unknown): { ms: number } | { error: string } | undefined {
  let seconds: number;
  if (typeof raw === "number") {
    if (!Number.isInteger(raw)) return undefined;
    seconds = raw;
  } else if (typeof raw === "string") {
    const m = /^\s*([0-9]+)\s*(s|m|h)\s*$/.exec(raw);
    if (!m) return { error: `'${raw}' is not a duration` };
    seconds = Number(m[1]) * (m[2] === "h" ? 3600 : m[2] === "m" ? 60 : 1);
  } else return undefined;
  if (seconds < 1) return { error: "the timeout must be at least 1 second" };
  if (seconds > MAX_WAIT_SECONDS) return { error: `the timeout must be at most 1h (${MAX_WAIT_SECONDS} seconds)` };
  return { ms: seconds * 1000 };
}

/**
 * One guest. `qube` is set for a qube's `guest:` (whose agent defaults to the qube's qrexec
 * service); `name` is the top-level guest's key otherwise.
 */
export function normalizeGuest(ctx: GuestContext, ptr: string, raw: unknown, owner: { qube: string } | { name: string }): DesiredGuest | undefined {
  if (!isRecord(raw)) return undefined;
  const at = (field: string): string => childPointer(ptr, field);
  const locations = new Map<GuestField, SourceLocation>();
  for (const field of ["agent", "state", "wait", "files"] as const) if (field in raw) locations.set(field, ctx.loc(at(field)));
  let ok = true;

  let agent: AgentSpec | undefined;
  if (isRecord(raw.agent)) {
    const written = Object.fromEntries(Object.entries(raw.agent).filter(([, v]) => v !== undefined));
    const spec = toAgentSpec(written);
    if ("error" in spec) {
      ctx.report("QIAC-E061", `${describePath(at("agent"))}: ${spec.error}`, at("agent"), "docs/guests.md shows how to give each kind of agent");
      ok = false;
    } else if ("qube" in owner && spec.kind === "qrexec" && spec.qube !== owner.qube) {
      ctx.report("QIAC-E061", `the guest agent of qube '${owner.qube}' reaches qube '${spec.qube}'`, childPointer(at("agent"), "qube"), `name '${owner.qube}', or leave agent out for its qrexec service`);
      ok = false;
    } else agent = spec;
  } else if ("qube" in owner && !("agent" in raw)) {
    agent = { kind: "qrexec", qube: owner.qube, service: DEFAULT_QREXEC_SERVICE };
  } else ok = false;

  let waitMs: number | undefined;
  if (isRecord(raw.wait)) {
    const tptr = childPointer(at("wait"), "timeout");
    const t = parseWaitTimeout(raw.wait.timeout);
    if (t !== undefined && "error" in t) {
      ctx.report("QIAC-E066", `${describePath(tptr)}: ${t.error}`, tptr, "write seconds (an integer) or a duration: 90s, 2m, 1h");
      ok = false;
    } else if (t !== undefined) waitMs = t.ms;
  }

  const files = new Map<string, DesiredGuestFile>();
  for (const [path, value] of Object.entries(isRecord(raw.files) ? raw.files : {})) {
    const fptr = childPointer(at("files"), path);
    const bad = checkGuestPath(path);
    if (bad) {
      ctx.report("QIAC-E062", `guest file path ${JSON.stringify(path)} ${bad.problem}`, fptr, bad.normal !== undefined ? `write ${bad.normal}` : undefined, true);
      ok = false;
      continue;
    }
    const file = guestFile(ctx, fptr, path, value);
    if (file === undefined) {
      ok = false;
      continue;
    }
    files.set(path, file);
    locations.set(`files.${path}`, file.at);
  }

  const state = "name" in owner && (raw.state === "running" || raw.state === "shutdown") ? (raw.state as GuestPowerState) : undefined;
  if (!ok || agent === undefined) return undefined;
  const guest: DesiredGuest = {
    address: "qube" in owner ? qubeGuestAddress(owner.qube) : guestAddress(owner.name),
    agent,
    files,
    at: ctx.loc(ptr, true),
    locations,
  };
  if ("qube" in owner) guest.qube = owner.qube;
  if (state !== undefined) guest.state = state;
  if (waitMs !== undefined) guest.waitMs = waitMs;
  return guest;
}

function guestFile(ctx: GuestContext, fptr: string, path: string, value: unknown): DesiredGuestFile | undefined {
  const at = ctx.loc(fptr, true);
  if (typeof value === "string") {
    const config = ctx.inspect?.(ctx.file) ?? { kind: "file", realPath: ctx.file, readable: true };
    if (config.kind !== "file") throw new Error(`internal: the config file ${ctx.file} was read but cannot be looked at (${config.kind})`);
    return { path, content: { kind: "inline", file: config.realPath, pointer: fptr }, inline: value, at };
  }
  if (!isRecord(value) || typeof value.source !== "string" || Object.keys(value).length !== 1) return undefined;
  const sptr = childPointer(fptr, "source");
  const source = value.source;
  const where = `source ${JSON.stringify(source)} of guest file ${path}`;
  const hint = "put the file in the directory of this config file (or below it) and name it relative to that directory";
  const relative = posix.normalize(source);
  if (source === "" || source.includes("\0")) {
    ctx.report("QIAC-E064", `${where} is not a file name`, sptr, hint);
    return undefined;
  }
  if (posix.isAbsolute(source) || relative === ".." || relative.startsWith("../")) {
    ctx.report("QIAC-E064", `${where} ${posix.isAbsolute(source) ? "is absolute" : "leaves the directory of its config file"}`, sptr, hint);
    return undefined;
  }
  if (ctx.inspect === undefined) {
    ctx.report("QIAC-E065", `${where} cannot be looked at: this config was not loaded from files`, sptr);
    return undefined;
  }
  const dir = posix.dirname(ctx.file);
  const base = ctx.inspect(dir);
  const target = ctx.inspect(posix.join(dir, relative));
  switch (target.kind) {
    case "missing":
      ctx.report("QIAC-E065", `${where} does not exist (looked for ${posix.join(dir, relative)})`, sptr, "source paths are relative to the directory of the config file that names them");
      return undefined;
    case "error":
      ctx.report("QIAC-E065", `${where} cannot be looked at: ${target.reason}`, sptr);
      return undefined;
    case "directory":
    case "other":
      ctx.report("QIAC-E065", `${where} is not a regular file`, sptr);
      return undefined;
    case "file":
      break;
    default: {
      const never: never = target;
      return never;
    }
  }
  if (base.kind !== "directory" || !target.realPath.startsWith(`${base.realPath === "/" ? "" : base.realPath}/`)) {
    ctx.report("QIAC-E064", `${where} leaves the directory of its config file through a symbolic link (it is ${target.realPath})`, sptr, hint);
    return undefined;
  }
  if (!target.readable) {
    ctx.report("QIAC-E065", `${where} cannot be read (permission denied)`, sptr);
    return undefined;
  }
  return { path, content: { kind: "source", path: target.realPath }, source, at };
}
