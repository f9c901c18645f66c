// Storage methods: admin.pool.* and admin.vm.volume.*. Drivers are simulated: file and
// file-reflink pools always work, lvm_thin only for thin pools the host document lists, and
// the file driver's limit of one revision is kept (qubesd answers with an empty reply).

import { method, type Call, type MethodSpec, type Shape } from "./call.js";
import { argumentNotIn, emptyReply, protocolError, qubesError } from "./errors.js";
import { APP, parsePyBool, readProp, refused } from "./model.js";
import type { Pool, Qube, Volume, World } from "./state.js";
import { findVolume, formatVolumeInfo, pathOf, poolVolumes, vidOf } from "./volumes.js";
import { normpath } from "../../../model/canonical.js";
import { checkDecimal, checkPoolName } from "../../../model/qubes-rules.js";
import { describeLimit, revisionsLimit, withinLimit } from "../../../model/volume-rules.js";

/** Driver name → its __init__ parameters in order, and which of them have no default. */
const DRIVERS: ReadonlyArray<{ name: string; params: string[]; required: string[]; defaults: Record<string, string> }> = [
  { name: "callback", params: ["conf_id"], required: ["conf_id"], defaults: {} },
  {
    name: "file",
    params: ["revisions_to_keep", "dir_path", "ephemeral_volatile"],
    required: ["dir_path"],
    defaults: { revisions_to_keep: "1", ephemeral_volatile: "False" },
  },
  {
    name: "file-reflink",
    params: ["revisions_to_keep", "dir_path", "setup_check", "ephemeral_volatile"],
    required: ["dir_path"],
    defaults: { revisions_to_keep: "1", ephemeral_volatile: "False" },
  },
  { name: "linux-kernel", params: ["dir_path"], required: ["dir_path"], defaults: {} },
  {
    name: "lvm_thin",
    params: ["revisions_to_keep", "volume_group", "thin_pool", "ephemeral_volatile"],
    required: ["volume_group", "thin_pool"],
    defaults: { revisions_to_keep: "1", ephemeral_volatile: "False" },
  },
  {
    name: "zfs",
    params: ["revisions_to_keep", "container", "ephemeral_volatile", "snap_on_start_forensics"],
    required: ["container"],
    defaults: { revisions_to_keep: "1", ephemeral_volatile: "False", snap_on_start_forensics: "False" },
  },
];

const isFileDriver = (p: Pick<Pool, "driver">): boolean => p.driver === "file" || p.driver === "file-reflink";


function poolArg(call: Call): Pool {
  const pool = call.world.pools.get(call.arg);
  if (!pool) throw argumentNotIn("pools");
  return pool;
}

/** The other pool whose directory holds this one (pool.included_in). */
function includedIn(world: World, pool: Pool): Pool | undefined {
  const dir = pool.config.get("dir_path");
  if (!dir) return undefined;
  return [...world.pools.values()].find((o) => {
    const od = o.config.get("dir_path");
    return o !== pool && isFileDriver(o) && od !== undefined && dir.startsWith(`${od}/`);
  });
}

function poolInfo(world: World, pool: Pool): string {
  const config = new Map(pool.config);
  config.set("driver", pool.driver);
  config.set("name", pool.name);
  const lines = [...config].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([k, v]) => `${k}=${v}\n`);
  if (isFileDriver(pool)) lines.push(`size=${world.host.poolSize}\n`, `usage=${world.host.poolUsage}\n`);
  const parent = includedIn(world, pool);
  if (parent) lines.push(`included_in=${parent.name}\n`);
  return lines.join("");
}

/** validate_size of qubesd: the ProtocolError texts of checkDecimal. */
function parseNumber(text: string, allowNegative: boolean): bigint {
  const err = checkDecimal(text, "Volume size", allowNegative);
  if (err) throw protocolError(err);
  return BigInt(text);
}

function poolRevisionsLimit(pool: Pool | undefined, value: bigint): void {
  // FilePool.revisions_to_keep raises NotImplementedError above 1: an empty reply.
  if (pool && isFileDriver(pool) && value > 1n) throw emptyReply("file driver keeps at most 1 revision");
}

/**
 * The driver's limit of a volume's revisions_to_keep (model/volume-rules.ts): its setter raises
 * NotImplementedError outside it (qubes/storage/file.py, kernels.py), an empty reply.
 */
function checkRevisionsLimit(world: World, pool: Pool | undefined, value: bigint): void {
  if (!pool) return;
  const limit = revisionsLimit(pool.driver, world.release.volumeRevisionsNegative);
  if (!withinLimit(limit, Number(value))) throw emptyReply(`${pool.driver} volumes keep ${describeLimit(limit)} revisions`);
}

function boolPayload(call: Call): boolean {
  const b = call.payload.some((x) => x > 0x7f) ? null : parsePyBool(Buffer.from(call.payload).toString("latin1"));
  if (b === null) throw protocolError("Payload is not boolean ASCII");
  return b;
}

/** The enforce() reason of pool_add for a bad name: Python's ascii_letters + digits + "-_.". */
const POOL_NAME_SAFE_SET = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.";

/** qubes/api/admin.py pool_add: the checks and messages in main's order; R4.2/R4.3 name an unknown driver first. */
function addPool(call: Call): null {
  const { world } = call;
  const driver = DRIVERS.find((d) => d.name === call.arg);
  if (!driver) {
    const refusal = world.release.messages.poolUnknownDriver(call.arg);
    throw refusal === "enforce" ? argumentNotIn("available drivers") : refused(refusal);
  }
  if (call.payload.some((b) => b > 0x7f)) throw protocolError("Pool parameters contains non-ASCII characters");
  // str.splitlines(): every line boundary Python knows in ASCII text.
  const lines = Buffer.from(call.payload).toString("latin1").split(/\r\n|[\n\r\v\f\x1c\x1d\x1e]/);
  if (lines[lines.length - 1] === "") lines.pop();
  if (!lines.every((l) => l.includes("="))) throw protocolError("Options must be separated by equal sign");
  const config = new Map<string, string>();
  for (const line of lines) {
    const eq = line.indexOf("=");
    const key = line.slice(0, eq);
    if (config.has(key)) throw protocolError("Options must be unique");
    config.set(key, line.slice(eq + 1));
  }
  const name = config.get("name");
  if (name === undefined) throw protocolError("Pool configuration must contain key: name");
  if (checkPoolName(name)) throw protocolError(`Pool name must be in safe set: ${POOL_NAME_SAFE_SET}`);
  config.delete("name");
  if ([...config.keys()].some((k) => !driver.params.includes(k))) throw protocolError("Unexpected driver options found");
  const missing = driver.required.filter((k) => !config.has(k));
  if (missing.length > 0) {
    const refusal = world.release.messages.poolMissingOptions(missing);
    throw refusal ? refused(refusal) : emptyReply(`${driver.name} pool without ${missing.join(" ")} (TypeError)`);
  }
  if (world.pools.has(name)) throw qubesError("QubesPoolInUseError", `Storage pool is in use: '${name}'`);
  for (const [k, v] of Object.entries(driver.defaults)) if (!config.has(k)) config.set(k, v);
  if (config.has("ephemeral_volatile")) {
    const b = parsePyBool(config.get("ephemeral_volatile") ?? "");
    if (b === null) throw emptyReply("ephemeral_volatile is not a boolean");
    config.set("ephemeral_volatile", b ? "True" : "False");
  }
  const rtk = config.get("revisions_to_keep");
  if (rtk !== undefined) {
    if (!/^-?[0-9]+$/.test(rtk)) throw emptyReply("revisions_to_keep is not a number");
    poolRevisionsLimit({ name, driver: driver.name, config }, BigInt(rtk));
  }
  // qubesd stores a file pool's dir_path normalised: qubes/storage/file.py FilePool.__init__
  // (os.path.normpath), qubes/storage/reflink.py ReflinkPool.__init__ (os.path.abspath; qubesd runs in /).
  const dir = config.get("dir_path");
  if (dir !== undefined && isFileDriver({ driver: driver.name })) config.set("dir_path", normpath(dir.startsWith("/") || driver.name === "file" ? dir : `/${dir}`));
  switch (driver.name) {
    case "lvm_thin": {
      const thin = `${config.get("volume_group")}/${config.get("thin_pool")}`;
      if (!world.host.lvmThinPools.includes(thin)) throw qubesError("StoragePoolException", `Thin pool ${thin} does not exist`);
      break;
    }
    case "zfs":
      throw qubesError("StoragePoolException", `ZFS container ${config.get("container") ?? ""} does not exist`);
    case "callback":
      throw qubesError("StoragePoolException", `callback pool ${config.get("conf_id") ?? ""} is not configured on this host`);
  }
  world.pools.set(name, { name, driver: driver.name, config });
  call.emit(null, "pool-add", { pool: name });
  return null;
}

function removePool(call: Call): null {
  const { world } = call;
  const pool = poolArg(call);
  const inUse = [...world.qubes.values()].some((q) => q.volumes.some((v) => v.pool === pool.name));
  if (inUse) throw qubesError("QubesPoolInUseError", `Storage pool is in use: '${pool.name}'`);
  for (const suffix of ["", "_kernel", "_private", "_root", "_volatile"]) {
    if (readProp(world, APP, `default_pool${suffix}`) === pool.name) {
      throw qubesError("QubesPoolInUseError", `Storage pool is in use: set as default_pool${suffix}`);
    }
  }
  call.emit(null, "pool-pre-delete", { pool: pool.name });
  world.pools.delete(pool.name);
  call.emit(null, "pool-delete", { pool: pool.name });
  return null;
}

const DOM0_READ = (arg: MethodSpec["arg"]): Shape => ({ dest: "adminvm", arg, payload: "none", mutates: false });
const DOM0_WRITE: Shape = { dest: "adminvm", arg: "required", payload: "required", mutates: true };

const poolMethods: Record<string, MethodSpec> = {
  "admin.pool.List": method(DOM0_READ("none"), (call) => [...call.world.pools.keys()].map((p) => `${p}\n`).join("")),
  "admin.pool.ListDrivers": method(DOM0_READ("none"), () => DRIVERS.map((d) => `${d.name} ${d.params.join(" ")}\n`).join("")),
  "admin.pool.Info": method(DOM0_READ("required"), (call) => poolInfo(call.world, poolArg(call))),
  "admin.pool.UsageDetails": method(DOM0_READ("required"), (call) => {
    const pool = poolArg(call);
    return isFileDriver(pool) ? `data_size=${call.world.host.poolSize}\ndata_usage=${call.world.host.poolUsage}\n` : "";
  }),
  "admin.pool.volume.List": method(DOM0_READ("required"), (call) =>
    poolVolumes(call.world, poolArg(call))
      .map((v) => `${v}\n`)
      .join(""),
  ),
  "admin.pool.Add": method(DOM0_WRITE, addPool),
  "admin.pool.Remove": method({ dest: "adminvm", arg: "required", payload: "none", mutates: true }, removePool),
  "admin.pool.Set.revisions_to_keep": method(DOM0_WRITE, (call) => {
    const pool = poolArg(call);
    const value = parseNumber(Buffer.from(call.payload).toString("latin1"), true);
    if (value < -1n) throw protocolError("Invalid value for revisions_to_keep");
    if (!pool.config.has("revisions_to_keep")) throw emptyReply(`${pool.driver} pools have no revisions_to_keep`);
    poolRevisionsLimit(pool, value);
    pool.config.set("revisions_to_keep", value.toString());
    return null;
  }),
  "admin.pool.Set.ephemeral_volatile": method(DOM0_WRITE, (call) => {
    const pool = poolArg(call);
    const value = boolPayload(call);
    if (!pool.config.has("ephemeral_volatile")) throw emptyReply(`${pool.driver} pools have no ephemeral_volatile`);
    pool.config.set("ephemeral_volatile", value ? "True" : "False");
    return null;
  }),
};

// ---------------------------------------------------------------------------------------------
// Volumes of a qube

function volumeArg(call: Call): Volume {
  const vol = findVolume(call.dest, call.arg);
  if (!vol) throw argumentNotIn(`${call.dest.name} volumes`);
  return vol;
}

function requireHalted(q: Qube): void {
  if (q.power !== "Halted") throw qubesError("QubesVMNotHaltedError", `Domain is not powered off: '${q.name}'`);
}

const VOL_READ: Shape = { dest: "any", arg: "required", payload: "none", mutates: false };
const VOL_WRITE: Shape = { dest: "any", arg: "required", payload: "required", mutates: true };
const TOKEN_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

const volumeMethods: Record<string, MethodSpec> = {
  "admin.vm.volume.List": method({ dest: "any", arg: "none", payload: "none", mutates: false }, (call) =>
    call.dest.volumes.map((v) => `${v.name}\n`).join(""),
  ),
  "admin.vm.volume.Info": method(VOL_READ, (call) => formatVolumeInfo(call.world, call.dest, volumeArg(call))),
  "admin.vm.volume.ListSnapshots": method(VOL_READ, (call) => {
    volumeArg(call);
    return "";
  }),
  "admin.vm.volume.Revert": method(VOL_WRITE, (call) => {
    volumeArg(call);
    const revision = Buffer.from(call.payload).toString("latin1").trim();
    if (!/^[A-Za-z0-9:_.-]+$/.test(revision)) throw protocolError("Invalid revision name");
    // No revisions are kept by the simulated drivers; qubesd fails with a bare KeyError.
    throw emptyReply(`no revision ${revision}`);
  }),
  "admin.vm.volume.Resize": method(VOL_WRITE, (call) => {
    const vol = volumeArg(call);
    const size = parseNumber(Buffer.from(call.payload).toString("latin1").trim(), false);
    if (vol.name === "kernel") throw emptyReply("kernel volumes cannot be resized");
    if (size < BigInt(vol.size)) {
      throw qubesError(
        "StoragePoolException",
        `For your own safety, shrinking of ${vol.name} is disabled (${size} < ${vol.size}). If you really know what you are doing, use \`truncate\` on ${pathOf(call.world, call.dest, vol)} manually.`,
      );
    }
    vol.size = size.toString();
    return null;
  }),
  "admin.vm.volume.Clear": method({ ...VOL_READ, mutates: true }, (call) => {
    volumeArg(call);
    requireHalted(call.dest);
    return null;
  }),
  "admin.vm.volume.CloneFrom": method({ ...VOL_READ, mutates: false }, (call) => {
    const vol = volumeArg(call);
    let token = "";
    for (let i = 0; i < 32; i++) token += TOKEN_CHARS[call.services.randomInt(TOKEN_CHARS.length)];
    call.world.runtime.cloneTokens.set(token, { qube: call.dest.name, volume: vol.name });
    return token;
  }),
  // qubes/api/admin.py vm_volume_clone_to: the token is used up whatever happens next; a source
  // volume gone since CloneFrom is a QubesVolumeNotFoundError, a KeyError (empty reply).
  "admin.vm.volume.CloneTo": method(VOL_WRITE, (call) => {
    const dst = volumeArg(call);
    if (call.payload.some((b) => b > 0x7f)) throw protocolError("Token contains non-ASCII characters");
    const token = Buffer.from(call.payload).toString("latin1").trim();
    const from = call.world.runtime.cloneTokens.get(token);
    // The class is a KeyError too: its str() is the repr of the message.
    if (!from) throw qubesError("QubesVolumeCopyTokenNotFoundError", "'Token to clone volume of qube was not found'");
    call.world.runtime.cloneTokens.delete(token);
    const src = call.world.qubes.get(from.qube);
    const srcVol = src ? findVolume(src, from.volume) : undefined;
    if (!srcVol || !src) throw emptyReply("source volume is gone (QubesVolumeNotFoundError)");
    requireHalted(call.dest);
    // qubes/storage/__init__.py Storage.import_volume: a running volume without snapshots cannot be
    // imported; qubes/storage/file.py FileVolume.export: a file pool exports no running volume.
    const srcRunning = src.power !== "Halted";
    if (srcRunning && srcVol.revisionsToKeep === "-1" && !srcVol.snapOnStart && srcVol.saveOnStop) {
      throw qubesError("StoragePoolException", `Volume ${vidOf(call.world, src, srcVol)} must be stopped before importing its data`);
    }
    if (srcRunning && srcVol.saveOnStop && call.world.pools.get(srcVol.pool)?.driver === "file") throw qubesError("StoragePoolException", "file pool cannot export running volumes");
    dst.size = srcVol.size;
    return null;
  }),
  // qubes/api/admin.py vm_volume_set_revisions_to_keep: validate_size (with allow_negative on
  // release4.3 and main, then Storage.set_revisions_to_keep), then the driver's setter.
  "admin.vm.volume.Set.revisions_to_keep": method(VOL_WRITE, (call) => {
    const vol = volumeArg(call);
    const negative = call.world.release.volumeRevisionsNegative;
    const err = checkDecimal(Buffer.from(call.payload).toString("latin1"), "Revisions to keep", negative);
    if (err) throw protocolError(err);
    const value = BigInt(Buffer.from(call.payload).toString("latin1"));
    if (negative) {
      if (value < -1n) throw qubesError("QubesValueError", "Invalid value for revisions_to_keep");
      const current = BigInt(vol.revisionsToKeep);
      if (value !== current && (value === -1n || current === -1n)) requireHalted(call.dest);
    }
    checkRevisionsLimit(call.world, call.world.pools.get(vol.pool), value);
    vol.revisionsToKeep = value.toString();
    return null;
  }),
  "admin.vm.volume.Set.rw": method(VOL_WRITE, (call) => {
    const vol = volumeArg(call);
    const value = boolPayload(call);
    requireHalted(call.dest);
    vol.rw = value;
    return null;
  }),
  // vm_volume_set_ephemeral, then the Volume.ephemeral setter (qubes/storage/__init__.py).
  "admin.vm.volume.Set.ephemeral": method(VOL_WRITE, (call) => {
    const vol = volumeArg(call);
    const value = boolPayload(call);
    if (call.world.release.ephemeralNeedsHalt) requireHalted(call.dest);
    if (vol.name === "kernel") throw emptyReply("LinuxModules does not support setting ephemeral value");
    if (value && (vol.snapOnStart || vol.saveOnStop || !vol.rw)) {
      throw qubesError("QubesValueError", "Cannot enable ephemeral on snap_on_start or save_on_stop or non-dom0 or not writable volume");
    }
    vol.ephemeral = value;
    return null;
  }),
};

export function storageMethods(): Record<string, MethodSpec> {
  return { ...poolMethods, ...volumeMethods };
}
