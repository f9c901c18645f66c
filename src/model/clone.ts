// What creating a qube as a copy of another copies, as the official tools do it: which class
// combinations are allowed and which volumes each copies, and which of the source's attributes
// come along. Pure data and predicates; the planner turns them into ops (src/plan/clone.ts).
//
// Modelled on qubes-core-admin-client (release4.2, release4.3, main):
// - qubesadmin/app.py `clone_vm`: Create.<class> with the source's template, then every
//   non-default property but name, qid, template, label, uuid and installed_by_rpm; every tag but
//   `created-by-*`; every feature but `preload-dispvm*` (except `preload-dispvm-max`); the firewall;
//   then each volume of the new qube with `save_on_stop` gets the source's data (Volume.clone:
//   admin.vm.volume.CloneFrom on the source, CloneTo with its token on the new qube); device
//   assignments unless `ignore_devices`.
// - qubesadmin/tools/qvm_clone.py `-C CLASS`: the class of the copy (TemplateVM from a
//   StandaloneVM or a TemplateVM);
// - qubesadmin/tools/qvm_create.py `--standalone -t TEMPLATE`: a StandaloneVM cloned from a
//   template with `ignore_volumes=('private',)`, so the root only.

import { RECORD_PREFIX } from "./ownership.js";

const article = (cls: string): string => `${/^[AEIOU]/.test(cls) ? "an" : "a"} ${cls}`;

/** Volumes whose data a clone copies. */
export type CloneVolume = "root" | "private";

/**
 * The volumes with `save_on_stop` of a new qube of `target` class made from a `source` qube, or
 * why that combination is not a clone the official tools make. An AppVM's root is its
 * template's (snap_on_start) and a DispVM has no persistent volume, so neither is copied.
 */
export function cloneVolumes(source: string, target: string): { volumes: readonly CloneVolume[] } | { error: string } {
  if (source === target) {
    switch (target) {
      case "TemplateVM":
      case "StandaloneVM":
        return { volumes: ["root", "private"] };
      case "AppVM":
        return { volumes: ["private"] };
      case "DispVM":
        return { error: "a DispVM has no volume of its own to copy: create it from its disposable template instead" };
      default:
        return { error: `${article(source)} is not a qube qubes-iac creates` };
    }
  }
  if (target === "TemplateVM" && source === "StandaloneVM") return { volumes: ["root", "private"] };
  if (target === "StandaloneVM" && source === "TemplateVM") return { volumes: ["root"] };
  return {
    error: `${article(target)} cannot be made from ${article(source)}: clones are of the same class (qvm-clone), a TemplateVM from a StandaloneVM (qvm-clone -C TemplateVM), or a StandaloneVM from a TemplateVM (qvm-create --standalone -t)`,
  };
}

/** Properties Create sets itself, or the copy must not share (qubesadmin/app.py clone_vm). */
export const NOT_COPIED_PROPERTIES: ReadonlySet<string> = new Set(["name", "qid", "template", "label", "uuid", "installed_by_rpm"]);

/** Whether a source's tag comes along: never qubesd's `created-by-*` nor any owner's `managed-by-*`. */
export const copiedTag = (tag: string): boolean => !tag.startsWith("created-by-") && !tag.startsWith("managed-by-");

/**
 * Whether a source's feature comes along: never qubes-iac's records (they are bound to the
 * source's UUID and belong to it) nor the preloaded-disposable bookkeeping clone_vm skips.
 */
export function copiedFeature(name: string): boolean {
  if (name.startsWith(RECORD_PREFIX)) return false;
  return !(name.startsWith("preload-dispvm") && name !== "preload-dispvm-max");
}

/** The driver whose volumes must be halted to be copied (qubes/storage/file.py FileVolume.export: "file pool cannot export running volumes"). */
export const HALTED_COPY_DRIVERS: ReadonlySet<string> = new Set(["file"]);

/** The shape of a CloneFrom token (qubes/utils.py random_string: 32 letters and digits). */
export const CLONE_TOKEN_RE = /^[A-Za-z0-9]{32}$/;
