// Defaults that the same plan moves. A qube whose config value equals what it has only by default
// (following a global such as default_netvm, or its template's memory...) would silently take
// the new value when the plan changes that source: the plan pins the value on the qube first, so
// it shows what really happens to it. And qubes that follow default_netvm and run need the new
// netvm running before the global changes: the plan starts it, or refuses. Pure.

import type { ActualQube } from "../model/actual.js";
import { locate } from "../model/desired.js";
import type { DiffContext } from "./_context.js";
import { stepId, type PlannedStep, type ResourceChange } from "./changes.js";
import { planDiagnostic } from "./codes.js";
import { compareProperty } from "./normalize.js";
import type { Op } from "./ops.js";

/**
 * Qube properties whose default is the template's value, when the qube has a template
 * (qubes/vm/qubesvm.py `_default_with_template`: memory, maxmem, vcpus, kernel, default_user,
 * qrexec_timeout, shutdown_timeout, management_dispvm; virt_mode via `_default_virt_mode`).
 */
const FROM_TEMPLATE: ReadonlySet<string> = new Set(["memory", "maxmem", "vcpus", "kernel", "default_user", "qrexec_timeout", "shutdown_timeout", "management_dispvm", "virt_mode"]);

/**
 * Qube properties whose default is a global property (qubes/vm/mix/net.py netvm, qubes/vm/qubesvm.py
 * guivm, audiovm, default_dispvm; for a qube without a template also kernel, the timeouts and
 * management_dispvm). A TemplateVM's netvm defaults to none (qubes/vm/templatevm.py).
 */
const FROM_GLOBAL: Readonly<Record<string, string>> = {
  netvm: "default_netvm",
  guivm: "default_guivm",
  audiovm: "default_audiovm",
  default_dispvm: "default_dispvm",
  kernel: "default_kernel",
  qrexec_timeout: "default_qrexec_timeout",
  shutdown_timeout: "default_shutdown_timeout",
  management_dispvm: "management_dispvm",
};

type Source = { step: PlannedStep; what: string; next: string | undefined };

/** The op of `step` that sets or resets `name` on `holder`, as the new value (undefined: reset to a default not known here). */
function newValue(step: PlannedStep, holder: "global" | string, name: string): { next: string | undefined } | undefined {
  for (const o of step.ops) {
    if (o.op !== "property.set" && o.op !== "property.reset") continue;
    if (o.name !== name || (holder === "global" ? o.holder !== "global" : o.holder === "global" || o.holder.vm !== holder)) continue;
    return { next: o.op === "property.set" ? o.value : undefined };
  }
  return undefined;
}

/** Where the default of `prop` of qube `a` comes from, when this plan changes it. */
function movingSource(a: ActualQube, prop: string, steps: ReadonlyMap<string, PlannedStep>): Source | undefined {
  const template = a.properties.get("template")?.raw;
  if (template !== undefined && template !== "" && FROM_TEMPLATE.has(prop)) {
    const step = steps.get(stepId("update", `qube.${template}`));
    const v = step && newValue(step, template, prop);
    return step && v ? { step, what: `the ${prop} of its template ${template}`, next: v.next } : undefined;
  }
  const global = FROM_GLOBAL[prop];
  if (global === undefined || (prop === "netvm" && a.klass === "TemplateVM")) return undefined;
  const step = steps.get(stepId("update", "properties", global));
  const v = step && newValue(step, "global", global);
  return step && v ? { step, what: `the global ${global}`, next: v.next } : undefined;
}

/**
 * Pins each managed qube's config value that it has only by default, when the plan changes the
 * default's source to something else: the qube's step sets the value, and the source's step runs
 * after it.
 */
export function pinMovingDefaults(ctx: DiffContext, changes: readonly ResourceChange[], steps: PlannedStep[]): void {
  const byId = new Map(steps.map((s) => [s.id, s]));
  for (const c of changes) {
    if (c.type !== "qube" || c.name === null || (c.action !== "update" && c.action !== "no-op")) continue;
    const q = ctx.desired.qubes.get(c.name);
    const a = ctx.actual.qubes.get(c.name);
    if (q === undefined || a === undefined) continue;
    const id = stepId("update", c.address);
    // A template change moves every template-derived default anyway: the new template's values apply.
    if (byId.get(id)?.ops.some((o) => o.op === "property.set" && o.name === "template")) continue;
    for (const [p, v] of q.properties) {
      const ap = a.properties.get(p);
      if (ap === undefined || !ap.isDefault || v.kind === "default" || compareProperty(v, ap).kind !== "equal") continue;
      const source = movingSource(a, p, byId);
      if (source === undefined || source.next === ap.raw) continue;
      let step = byId.get(id);
      if (step === undefined) {
        step = { id, address: c.address, kind: "update", ops: [], uses: [], unreferences: [], after: [] };
        steps.push(step);
        byId.set(id, step);
        c.action = "update";
      }
      step.ops.push({ op: "property.set", holder: { vm: c.name }, name: p, value: ap.raw });
      source.step.after.push(id);
      const key = `properties.${p}`;
      c.afterDefault = c.afterDefault.filter((k) => k !== key);
      c.reasons.push(`${key} is pinned to ${ap.raw === "" ? "none" : ap.raw}: it follows ${source.what}, which this plan changes${source.next === undefined ? "" : ` to ${source.next === "" ? "none" : source.next}`}`);
    }
  }
}

/**
 * default_netvm moves every qube that follows it; qubesd attaches a running follower only to a
 * running netvm (QubesVMNotStartedError), so the global's step starts the new netvm first when
 * the config leaves its power alone, and refuses when the config keeps it halted. Followers the
 * plan pins or points elsewhere are no longer followers once their step has run: the global waits.
 */
export function startNetvmForFollowers(ctx: DiffContext, changes: ResourceChange[], steps: PlannedStep[]): void {
  const global = steps.find((s) => s.id === stepId("update", "properties", "default_netvm"));
  const set = global?.ops.find((o) => o.op === "property.set" && o.holder === "global" && o.name === "default_netvm");
  if (global === undefined || set === undefined || set.op !== "property.set" || set.value === "") return;
  const netvm = set.value;
  const followers: string[] = [];
  for (const [name, a] of [...ctx.actual.qubes].sort(([x], [y]) => (x < y ? -1 : 1))) {
    const p = a.properties.get("netvm");
    const listed = ctx.actual.listing.get(name);
    if (p === undefined || !p.isDefault || listed === undefined || listed.power === "Halted" || name === netvm) continue;
    const own = steps.find((s) => s.address === `qube.${name}` && s.ops.some((o) => o.op === "property.set" && o.holder !== "global" && o.holder.vm === name && o.name === "netvm"));
    if (own) {
      global.after.push(own.id);
      continue;
    }
    ctx.addCheck({ check: "qube", vm: name, class: listed.klass, power: listed.power });
    followers.push(name);
  }
  if (followers.length === 0) return;
  const declared = ctx.desired.qubes.get(netvm);
  if (declared?.state === "running" || declared?.state === "paused") return;
  const listed = ctx.actual.listing.get(netvm);
  if (listed) {
    ctx.addCheck({ check: "qube", vm: netvm, class: listed.klass, power: listed.power });
    if (listed.power !== "Halted") return;
  }
  const location = locate(ctx.desired, "properties.default_netvm");
  if (declared?.state === "halted") {
    ctx.diagnostics.push(
      planDiagnostic("QIAC-E142", `default_netvm becomes ${netvm}, which the config keeps halted, while running qubes follow it: ${followers.join(", ")}`, {
        address: "properties",
        location,
        hint: `Qubes attaches a running qube only to a running netvm: let ${netvm} run, shut ${followers.join(", ")} down first, or pin their netvm`,
      }),
    );
    return;
  }
  const start: Op = { op: "vm.start", vm: netvm };
  global.ops.splice(global.ops.indexOf(set), 0, start);
  const props = changes.find((c) => c.address === "properties");
  props?.reasons.push(`apply starts ${netvm} first: running qubes follow default_netvm (${followers.join(", ")}) and Qubes connects a running qube only to a running netvm`);
}
