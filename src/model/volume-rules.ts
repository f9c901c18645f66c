// qubesd's rules for a qube's volumes and notes, as pure functions shared by the config loader,
// the planner, export and the simulator: the revisions_to_keep each pool driver takes, the value
// a new volume gets, which volumes ephemeral can be enabled on, which pool CreateInPool puts each
// volume in, and what admin.vm.notes.Set keeps of a text. No I/O.

/** The volumes of a qube (qubes/vm/appvm.py, templatevm.py, dispvm.py `volume_config`). */
export type VolumeShape = { name: string; rw: boolean; snapOnStart: boolean; saveOnStop: boolean };

/**
 * The volumes a new qube of `klass` gets (qubes-core-admin qubes/vm/appvm.py, dispvm.py,
 * templatevm.py and standalonevm.py `volume_config`): an AppVM's root and a DispVM's root and
 * private are snapshots of their template's; a TemplateVM's and StandaloneVM's are their own.
 */
export function volumeShapes(klass: string): VolumeShape[] {
  const own = (name: string, saveOnStop: boolean): VolumeShape => ({ name, rw: true, snapOnStart: false, saveOnStop });
  const snap = (name: string): VolumeShape => ({ name, rw: true, snapOnStart: true, saveOnStop: false });
  const kernel: VolumeShape = { name: "kernel", rw: false, snapOnStart: false, saveOnStop: false };
  switch (klass) {
    case "TemplateVM":
    case "StandaloneVM":
      return [own("root", true), own("private", true), own("volatile", false), kernel];
    case "AppVM":
      return [snap("root"), own("private", true), own("volatile", false), kernel];
    case "DispVM":
      return [snap("root"), snap("private"), own("volatile", false), kernel];
    default:
      return [];
  }
}

/**
 * Where CreateInPool puts a volume (qubes/vm/qubesvm.py `_patch_pool_config`, the same on
 * release4.2, release4.3 and main): `pool=` moves only a writable volume that is not a snapshot;
 * a snapshot stays in its origin's pool (qubes/storage/__init__.py `_update_volume_config_source`),
 * the kernel in `default_pool_kernel`; without a pool, each volume goes to `default_pool_<name>`.
 * `origin` is the pool of the template's volume a snapshot starts from (undefined when unknown).
 */
export function newVolumePool(shape: VolumeShape, pool: string | undefined, defaults: (name: string) => string | undefined, origin: string | undefined): string | undefined {
  if (shape.snapOnStart) return origin ?? defaults(shape.name);
  if (pool !== undefined && shape.rw) return pool;
  return defaults(shape.name);
}

/** Pool drivers whose volumes keep no revisions at all (qubes/storage/kernels.py). */
const NO_REVISIONS_DRIVERS: ReadonlySet<string> = new Set(["linux-kernel"]);

/** Inclusive bounds; `max` undefined: no upper bound but the 19 digits of validate_size. */
export type RevisionsLimit = { min: number; max?: number };

/**
 * The revisions_to_keep a volume of `driver` takes (admin.vm.volume.Set.revisions_to_keep).
 * `negativeAllowed`: the release takes -1, "no snapshots" (release4.3 and main:
 * `validate_size(allow_negative=True)` then `Storage.set_revisions_to_keep`, which refuses < -1;
 * release4.2: digits only). file: at most 1 (qubes/storage/file.py FileVolume.revisions_to_keep);
 * linux-kernel: only 0 (kernels.py); lvm_thin, file-reflink, zfs and callback: no driver limit.
 */
export function revisionsLimit(driver: string, negativeAllowed: boolean): RevisionsLimit {
  if (NO_REVISIONS_DRIVERS.has(driver)) return { min: 0, max: 0 };
  const min = negativeAllowed ? -1 : 0;
  return driver === "file" ? { min, max: 1 } : { min };
}

export const describeLimit = (l: RevisionsLimit): string =>
  l.max === undefined ? `${l.min} or more` : l.min === l.max ? `only ${l.min}` : `${l.min} to ${l.max}`;

export const withinLimit = (l: RevisionsLimit, n: number): boolean => n >= l.min && (l.max === undefined || n <= l.max);

/**
 * The revisions_to_keep a new volume gets: the pool's for every volume (lvm.py, reflink.py,
 * zfs.py `init_volume`), but the file driver's only for save_on_stop volumes (file.py
 * `init_volume` sets 0 otherwise) and never for the kernel.
 */
export function defaultRevisions(driver: string, poolRevisions: number, saveOnStop: boolean): number {
  if (NO_REVISIONS_DRIVERS.has(driver)) return 0;
  if (driver === "file") return saveOnStop ? poolRevisions : 0;
  return poolRevisions;
}

/**
 * Whether ephemeral can be enabled (qubes/storage/__init__.py Volume.ephemeral setter: not on a
 * snap_on_start, save_on_stop or read-only volume); of a new qube's volumes only `volatile`.
 */
export const ephemeralAllowed = (s: VolumeShape): boolean => s.rw && !s.snapOnStart && !s.saveOnStop;

/** A volume's ephemeral when never set: the pool's `ephemeral_volatile` where it is allowed, else False. */
export const defaultEphemeral = (s: VolumeShape, poolEphemeralVolatile: boolean): boolean => ephemeralAllowed(s) && poolEphemeralVolatile;

// ---------------------------------------------------------------------------------------------
// Notes (admin.vm.notes.Set, qubes/api/admin.py vm_notes_set on release4.3 and main)

/** The largest payload vm_notes_set takes, in bytes. */
export const MAX_NOTES_BYTES = 256000;

// Scripts qubes-linux-utils qrexec-lib/unicode-generator.c allows (with Common and Inherited).
const SAFE_SCRIPTS =
  /^[\p{Script=Latin}\p{Script=Greek}\p{Script=Cyrillic}\p{Script=Han}\p{Script=Hangul}\p{Script=Hiragana}\p{Script=Katakana}\p{Script=Bopomofo}\p{Script=Braille}\p{Script=Common}\p{Script=Inherited}]$/u;
// General categories it allows: letters, numbers, punctuation, math and currency symbols.
const SAFE_CATEGORIES = /^[\p{L}\p{N}\p{Pd}\p{Ps}\p{Pe}\p{Pc}\p{Po}\p{Pi}\p{Pf}\p{Sm}\p{Sc}]$/u;
// Blocks of right-to-left scripts, whose Common characters it refuses by their bidi class.
const RTL_BLOCKS: ReadonlyArray<readonly [number, number]> = [
  [0x0590, 0x08ff],
  [0xfb1d, 0xfdff],
  [0xfe70, 0xfeff],
  [0x10800, 0x10fff],
  [0x1e800, 0x1efff],
];

/**
 * Whether qubesd keeps a code point of notes as it is (libqubes-pure
 * `qubes_pure_code_point_safe_for_display`, plus tab and newline); any other becomes `_`. The
 * allowlist is generated from Unicode data (qubes-linux-utils qrexec-lib/unicode-generator.c:
 * printable ASCII; beyond it letters, numbers, punctuation, math and currency symbols of a few
 * scripts, left-to-right or neutral); this follows the same rules with the Unicode data of Node.
 */
export function notesCharKept(cp: number): boolean {
  if (cp === 0x09 || cp === 0x0a) return true;
  if (cp < 0x20 || cp === 0x7f) return false;
  if (cp < 0x7f) return true;
  if (cp >= 0xd800 && cp <= 0xdfff) return false;
  const ch = String.fromCodePoint(cp);
  if (!SAFE_CATEGORIES.test(ch) || !SAFE_SCRIPTS.test(ch)) return false;
  return !RTL_BLOCKS.some(([a, b]) => cp >= a && cp <= b);
}

/** What admin.vm.notes.Set stores of `text`: each code point it does not keep becomes `_`. */
export function sanitizeNotes(text: string): string {
  let out = "";
  for (const ch of text) out += notesCharKept(ch.codePointAt(0) ?? 0) ? ch : "_";
  return out;
}

/** Why qubesd would not store `text` as it is (too large, or a character it replaces), or null. */
export function checkNotes(text: string): string | null {
  const bytes = Buffer.byteLength(text, "utf8");
  if (bytes > MAX_NOTES_BYTES) return `notes are ${bytes} bytes; qubesd takes at most ${MAX_NOTES_BYTES}`;
  let line = 1;
  let col = 1;
  for (const ch of text) {
    const cp = ch.codePointAt(0) ?? 0;
    if (!notesCharKept(cp)) {
      const hex = cp.toString(16).toUpperCase().padStart(4, "0");
      return `notes line ${line} column ${col}: U+${hex} is a character qubesd replaces with '_' (control, format, bidi, private-use or a script it does not display)`;
    }
    if (cp === 0x0a) {
      line++;
      col = 1;
    } else col++;
  }
  return null;
}
