// Storage as the file and linux-kernel drivers present it: which volumes a new qube gets (per
// class, from its template), and the derived parts of a volume (vid, source, path) that follow
// the qube's template and kernel. Pure over the World; no disk is touched.

import { APP, readProp, qubeHolder, vmProp } from "./model.js";
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

function poolFor(world: World, name: VolumeName, choice: PoolChoice): string {
  const explicit = choice.perVolume[name] ?? (name === "kernel" ? undefined : choice.all);
  if (explicit) return explicit;
  const v = readProp(world, APP, `default_pool_${name}`);
  return typeof v === "string" ? v : "";
}

const poolRevisions = (pool: Pool | undefined): string => pool?.config.get("revisions_to_keep") ?? "0";

/** The volumes qubesd's create_on_disk makes for a new qube of its class. */
export function newVolumes(world: World, q: Qube, choice: PoolChoice): Volume[] {
  if (q.klass === "AdminVM" || q.klass === "RemoteVM") return [];
  const tpl = vmProp(world, q, "template");
  const make = (name: VolumeName, o: Partial<Volume>): Volume => {
    const pool = poolFor(world, name, choice);
    const saveOnStop = o.saveOnStop ?? false;
    return {
      name,
      pool,
      size: o.size ?? "0",
      rw: o.rw ?? true,
      saveOnStop,
      snapOnStart: o.snapOnStart ?? false,
      revisionsToKeep: saveOnStop ? poolRevisions(world.pools.get(pool)) : "0",
      ephemeral: o.ephemeral ?? false,
    };
  };
  const fromTemplate = (name: VolumeName, fallback: string): { size: string; rw: boolean } => {
    const v = tpl ? findVolume(tpl, name) : undefined;
    return { size: v?.size ?? fallback, rw: v?.rw ?? true };
  };
  const kernel = make("kernel", { rw: false });
  switch (q.klass) {
    case "TemplateVM":
    case "StandaloneVM":
      return [
        make("root", { size: ROOT_SIZE, saveOnStop: true }),
        make("private", { size: PRIVATE_SIZE, saveOnStop: true }),
        make("volatile", { size: ROOT_SIZE }),
        kernel,
      ];
    case "AppVM":
      return [
        make("root", { ...fromTemplate("root", ROOT_SIZE), snapOnStart: true }),
        make("private", { size: PRIVATE_SIZE, saveOnStop: true }),
        make("volatile", { size: ROOT_SIZE }),
        kernel,
      ];
    case "DispVM":
      return [
        make("root", { ...fromTemplate("root", ROOT_SIZE), snapOnStart: true }),
        make("private", { ...fromTemplate("private", PRIVATE_SIZE), snapOnStart: true }),
        make("volatile", { size: DISP_VOLATILE_SIZE }),
        kernel,
      ];
  }
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
