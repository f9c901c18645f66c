// The config-only checks of `clone`, `clone_devices` and `root: empty` (src/model/clone.ts says
// what a clone copies). A source that is not in the config is the planner's to check: it sees
// the real system.

import { cloneVolumes } from "../model/clone.js";
import { locate, TEMPLATE_BASED_CLASSES, type DesiredQube } from "../model/desired.js";
import { diagnostic } from "./codes.js";
import type { Rule } from "./rules.js";

/** `clone_devices` needs a `clone`; `root: empty` is for a qube with its own root that is not cloned. */
export const cloneKeysApply: Rule = (state) =>
  [...state.qubes.values()].flatMap((q) => {
    const out = [];
    if (q.cloneDevices && q.clone === undefined && !q.locations.has("clone")) {
      out.push(diagnostic("QIAC-E081", `qube '${q.name}': clone_devices without clone`, locate(q, "clone_devices"), "add `clone: SOURCE`, or remove clone_devices"));
    }
    if (q.emptyRoot && q.locations.has("clone")) {
      out.push(diagnostic("QIAC-E081", `qube '${q.name}': root: empty and clone contradict each other (a clone's root is a copy)`, locate(q, "root"), "keep the one you mean"));
    } else if (q.emptyRoot && q.class !== undefined && TEMPLATE_BASED_CLASSES.has(q.class)) {
      out.push(diagnostic("QIAC-E081", `qube '${q.name}': the root of ${q.class === "AppVM" ? "an AppVM" : "a DispVM"} is its template's, it cannot be empty`, locate(q, "root"), "remove root: empty"));
    }
    return out;
  });

/** A source of the config must be of a class the qube's class can be copied from. */
export const cloneSourcesCanServe: Rule = (state) =>
  [...state.qubes.values()].flatMap((q) => {
    const source = q.clone === undefined ? undefined : state.qubes.get(q.clone);
    if (source?.class === undefined || q.class === undefined) return [];
    const r = cloneVolumes(source.class, q.class);
    if ("volumes" in r) return [];
    return [diagnostic("QIAC-E082", `clone source '${source.name}' of qube '${q.name}': ${r.error}`, locate(q, "clone"), "copy a qube of a class this one can be made from")];
  });

/** Each source is created before its copy: a loop of sources can never be created. */
export const noCloneLoops: Rule = (state) => {
  const reported = new Set<string>();
  const out = [];
  for (const start of state.qubes.values()) {
    const path: DesiredQube[] = [];
    let cur: DesiredQube | undefined = start;
    while (cur !== undefined && !path.includes(cur) && !reported.has(cur.name)) {
      path.push(cur);
      cur = cur.clone === undefined ? undefined : state.qubes.get(cur.clone);
    }
    if (cur === undefined || reported.has(cur.name)) continue;
    const loop = path.slice(path.indexOf(cur));
    for (const q of loop) reported.add(q.name);
    out.push(diagnostic("QIAC-E083", `clone sources form a loop: ${[...loop, cur].map((q) => q.name).join(" → ")}`, locate(cur, "clone"), "one of them must exist or be created without clone"));
  }
  return out;
};

export const CLONE_RULES: readonly Rule[] = [cloneKeysApply, cloneSourcesCanServe, noCloneLoops];
