// Storage as the file and linux-kernel drivers present it: which volumes a new qube gets (per
// class, from its template), and the derived parts of a volume (vid, source, path) that follow
// the qube's template and kernel. Pure over the World; no disk is touched.

import { APP, parsePyBool, readProp, qubeHolder, vmProp } from "./model.js";
import { qubesError } from "./errors.js";
import { defaultEphemeral, defaultRevisions, newVolumePool, volumeShapes } from "../../../model/volume-rules.js";
import type { Pool, Qube, Volume, World } from "./state.js";

export const VOLUME_NAMES = ["root", "private", "volatile", "kernel"] as const;
export type VolumeName = (typeof VOLUME_NAMES)[number];

const GIB = 1024n * 1024n * 1024n;
const ROOT_SIZE = (10n * GIB).toString();
const PRIVATE_SIZE = (2n * GIB).toString();
const DISP_VOLATILE_SIZE = (12n * GIB).toString();

/** Directory of a qube's volumes inside a file pool (qubesd's dir_path_prefix). */
const dirPrefix = (q: Qube): string => (q.klass === "TemplateVM" ? "vm-templates" : "appvms");

export function findVolume(q: Qube, name: string): Volume | undefined {
  return q.volumes.find((v) => v.name === name);
}

/** The volume whose data a snap_on_start volume starts from (followed to its origin). */
function sourceOf(world: World, q: Qube, vol: Volume): { qube: Qube; volume: Volume } | undefined {
  let cur = { qube: q, volume: vol };
  for (let hops = 0; hops < 8 && cur.volume.snapOnStart; hops++) {
    const tpl = vmProp(world, cur.qube, "template");
    const next = tpl ? findVolume(tpl, cur.volume.name) : undefined;
    if (!tpl || !next) return hops === 0 ? undefined : cur;
    cur = { qube: tpl, volume: next };
  }
  return cur.qube === q ? undefined : cur;
}

export function vidOf(world: World, q: Qube, vol: Volume): string {
  if (vol.name === "kernel") {
    const k = readProp(world, qubeHolder(q), "kernel");
    return typeof k === "string" ? k : "";
  }
  return `${dirPrefix(q)}/${q.name}/${vol.name}`;
}

export function pathOf(world: World, q: Qube, vol: Volume): string {
  const dir = world.pools.get(vol.pool)?.config.get("dir_path") ?? "";
  const vid = vidOf(world, q, vol);
  if (vol.name === "kernel") return vid === "" ? "" : `${dir}/${vid}/modules.img`;
  const src = vol.snapOnStart ? sourceOf(world, q, vol) : undefined;
  if (src) return pathOf(world, src.qube, src.volume);
  return `${dir}/${vid}.img`;
}

/** admin.vm.volume.Info body, keys in qubesd's order. */
export function formatVolumeInfo(world: World, q: Qube, vol: Volume): string {
  const src = vol.snapOnStart ? sourceOf(world, q, vol) : undefined;
  const b = (x: boolean): string => (x ? "True" : "False");
  return [
    `pool=${vol.pool}`,
    `vid=${vidOf(world, q, vol)}`,
    `size=${vol.size}`,
    "usage=0",
    `rw=${b(vol.rw)}`,
    `source=${src ? vidOf(world, src.qube, src.volume) : ""}`,
    `path=${pathOf(world, q, vol)}`,
    `save_on_stop=${b(vol.saveOnStop)}`,
    `snap_on_start=${b(vol.snapOnStart)}`,
    `revisions_to_keep=${vol.revisionsToKeep}`,
    `ephemeral=${b(vol.ephemeral)}`,
    "is_outdated=False",
    "",
  ].join("\n");
}

/** Pool choice of Create/CreateInPool: `pool=` for all but the kernel, or `pool:<vol>=`. */
export type PoolChoice = { all?: string; perVolume: Partial<Record<VolumeName, string>> };

const defaultPool = (world: World, name: string): string | undefined => {
  const v = readProp(world, APP, `default_pool_${name}`);
  return typeof v === "string" ? v : undefined;
};

/** The template's volume a snapshot starts from, followed to its origin (_update_volume_config_source). */
function originOf(world: World, q: Qube, name: string): Volume | undefined {
  let tpl = vmProp(world, q, "template");
  for (let hops = 0; tpl && hops < 8; hops++) {
    const v = findVolume(tpl, name);
    if (!v || !v.snapOnStart) return v;
    tpl = vmProp(world, tpl, "template");
  }
  return undefined;
}

/**
 * The volumes qubesd's create_on_disk makes for a new qube of its class, in the pools
 * CreateInPool puts them (model/volume-rules.ts newVolumePool): a snapshot in its origin's pool,
 * whatever `pool=` says, and `pool:<snapshot>=` refused as qubesd refuses it (qubes/vm/qubesvm.py
 * _patch_pool_config: a QubesException, and the qube is not created).
 */
export function newVolumes(world: World, q: Qube, choice: PoolChoice): Volume[] {
  const shapes = volumeShapes(q.klass);
  for (const s of shapes) {
    const moved = choice.perVolume[s.name as VolumeName];
    if (s.snapOnStart && moved !== undefined) {
      throw qubesError(
        "QubesException",
        `Snapshot volume ${s.name} must be in the same pool as its origin (${s.name} volume of template),cannot move to pool ${moved} `,
      );
    }
  }
  const sizes: Record<string, string> = { root: ROOT_SIZE, private: PRIVATE_SIZE, volatile: q.klass === "DispVM" ? DISP_VOLATILE_SIZE : ROOT_SIZE, kernel: "0" };
  return shapes.map((s): Volume => {
    const origin = s.snapOnStart ? originOf(world, q, s.name) : undefined;
    const pool =
      choice.perVolume[s.name as VolumeName] ?? newVolumePool(s, choice.all, (n) => defaultPool(world, n), origin?.pool) ?? "";
    const p = world.pools.get(pool);
    const poolRevisions = Number(p?.config.get("revisions_to_keep") ?? "0");
    const ephemeralVolatile = parsePyBool(p?.config.get("ephemeral_volatile") ?? "False") === true;
    return {
      name: s.name,
      pool,
      size: origin?.size ?? sizes[s.name] ?? "0",
      rw: s.snapOnStart ? (origin?.rw ?? true) : s.rw,
      saveOnStop: s.saveOnStop,
      snapOnStart: s.snapOnStart,
      revisionsToKeep: String(p ? defaultRevisions(p.driver, poolRevisions, s.saveOnStop) : 0),
      ephemeral: defaultEphemeral(s, ephemeralVolatile),
    };
  });
}

/** vids a pool holds, as admin.pool.volume.List lists them (templates' directory first). */
export function poolVolumes(world: World, pool: Pool): string[] {
  if (pool.driver === "linux-kernel") return [...world.host.kernels];
  const byDir = (prefix: string) =>
    [...world.qubes.values()]
      .filter((q) => dirPrefix(q) === prefix && q.klass !== "AdminVM")
      .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
      .flatMap((q) => q.volumes.filter((v) => v.pool === pool.name && v.name !== "kernel").map((v) => vidOf(world, q, v)));
  return [...byDir("vm-templates"), ...byDir("appvms")];
}
