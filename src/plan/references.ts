// Who refers to a qube or a label in the actual state, and whether the plan releases each
// reference before the referred thing is removed. A reference the plan does not change — held
// by anything the config does not manage, or left as is by the config — blocks the removal.
// Pure; relies on the reader's reference scan (every listed qube's properties and the globals:
// from a management qube, only the qubes its qrexec policy shows — ActualState.visibility).

import type { ActualState } from "../model/actual.js";
import type { DesiredState } from "../model/desired.js";
import type { Holder } from "./ops.js";

export type Referrer = { holder: Holder; property: string; isDefault: boolean };

/** The global property a qube property falls back to when it is at its default. */
const GLOBAL_DEFAULT_OF: Readonly<Record<string, string>> = {
  netvm: "default_netvm",
  default_dispvm: "default_dispvm",
  management_dispvm: "management_dispvm",
  guivm: "default_guivm",
  audiovm: "default_audiovm",
};

export const describeReferrer = (r: Referrer): string =>
  r.holder === "global" ? `the global property ${r.property}` : `qube ${r.holder.vm} (${r.property}${r.isDefault ? ", by default" : ""})`;

/** Every vm-typed property (or, for a label, every `label`) whose current value is `name`. */
export function findReferrers(actual: ActualState, kind: "qube" | "label", name: string): Referrer[] {
  const out: Referrer[] = [];
  const wanted = kind === "qube" ? "vm" : "label";
  for (const [qube, q] of [...actual.qubes].sort(([a], [b]) => (a < b ? -1 : 1))) {
    if (kind === "qube" && qube === name) continue;
    for (const [prop, v] of q.properties) {
      if (v.type === wanted && v.raw === name) out.push({ holder: { vm: qube }, property: prop, isDefault: v.isDefault });
    }
  }
  if (kind === "qube") {
    for (const [prop, v] of actual.globals ?? []) {
      if (v.type === "vm" && v.raw === name) out.push({ holder: "global", property: prop, isDefault: v.isDefault });
    }
  }
  return out;
}

export type ReleaseContext = {
  desired: DesiredState;
  /** Qubes the plan deletes (not replaces): their references go with them. */
  deleted: ReadonlySet<string>;
  /** Qubes whose desired attributes the plan applies (owned or being adopted, in the config). */
  managed: ReadonlySet<string>;
};

/** Whether the plan moves this reference away from `name` before `name` is removed. */
export function isReleased(r: Referrer, kind: "qube" | "label", name: string, c: ReleaseContext): boolean {
  const setsGlobalAway = (g: string): boolean => {
    const v = c.desired.properties.get(g);
    return v !== undefined && v.kind === "vm" && v.value !== name;
  };
  if (r.holder === "global") return setsGlobalAway(r.property);
  const vm = r.holder.vm;
  if (c.deleted.has(vm)) return true;
  const q = c.desired.qubes.get(vm);
  if (q && c.managed.has(vm)) {
    if (kind === "label") return q.label !== undefined && q.label !== name;
    if (r.property === "template") return q.template !== undefined && q.template !== name;
    const v = q.properties.get(r.property);
    if (v !== undefined && v.kind === "vm") return v.value !== name;
  }
  const g = kind === "qube" && r.isDefault ? GLOBAL_DEFAULT_OF[r.property] : undefined;
  return g !== undefined && setsGlobalAway(g);
}
