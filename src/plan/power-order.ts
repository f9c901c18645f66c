// Power rules of a running system that the plan must respect (qubesd enforces them; the
// simulator models them in src/providers/qubes/simulator/running.ts): a qube whose running
// clients (netvm, audiovm, guivm users) stay up cannot be shut down; a disposable template's
// template is frozen while its disposables run; a suspended qube wakes only through
// admin.vm.Resume, which R4.2 lacks. Also what the reader must read for these rules. Pure.

import type { ActualProperty, ActualState } from "../model/actual.js";
import { locate, type DesiredQube, type DesiredState, type QubeField } from "../model/desired.js";
import type { DiffContext } from "./_context.js";
import type { PlannedStep } from "./changes.js";
import { planDiagnostic } from "./codes.js";
import { compareProperty } from "./normalize.js";
import type { Op } from "./ops.js";

/** The properties by which a running qube keeps another one up (qubesd's domain-pre-shutdown handlers). */
export const CLIENT_KINDS = ["netvm", "audiovm", "guivm"] as const;
export type ClientKind = (typeof CLIENT_KINDS)[number];

export type RunningClient = { name: string; kind: ClientKind };

/**
 * The power calls each release offers, as data. The release is told by what the system answers:
 * R4.2's qubes have no `bootmode` property (added with admin.vm.Resume in R4.3).
 */
type PowerRelease = "r4.2" | "r4.3+";
const POWER_CALLS: { readonly [R in PowerRelease]: { resume: boolean; name: string } } = {
  "r4.2": { resume: false, name: "R4.2" },
  "r4.3+": { resume: true, name: "R4.3 and later" },
};

const powerRelease = (properties: ReadonlyMap<string, ActualProperty>): PowerRelease => (properties.has("bootmode") ? "r4.3+" : "r4.2");

/**
 * Whether planning needs the properties of every qube that is not halted: when the plan may shut
 * a qube down (to find its running clients), changes a disposable template (its running
 * disposables) or moves default_netvm (its running followers).
 */
export function needsRunningScan(desired: DesiredState, actual: ActualState): boolean {
  const defaultNetvm = desired.properties.get("default_netvm");
  const current = actual.globals?.get("default_netvm");
  if (defaultNetvm !== undefined && (current === undefined || compareProperty(defaultNetvm, current).kind !== "equal")) return true;
  for (const [name, a] of actual.qubes) {
    const q = desired.qubes.get(name);
    const differs = (p: string, want: string | undefined): boolean => want !== undefined && a.properties.get(p)?.raw !== want;
    // A disposable template's running disposables, whatever its own power.
    if (q !== undefined && a.properties.get("template_for_dispvms")?.raw === "True" && (differs("template", q.template) || q.properties.has("template_for_dispvms"))) return true;
    if (actual.listing.get(name)?.power === "Halted") continue;
    if (q === undefined || q.state === "halted" || (q.class !== undefined && q.class !== a.klass)) return true;
    const maxmem = q.properties.get("maxmem");
    if (differs("template", q.template)) return true;
    if (maxmem !== undefined && (maxmem.kind !== "int" || a.properties.get("maxmem")?.raw !== String(maxmem.value))) return true;
  }
  return false;
}

const isRunning = (actual: ActualState, name: string): boolean => {
  const p = actual.listing.get(name)?.power;
  return p !== undefined && p !== "Halted";
};

/** The qubes that are not halted and use `vm` as their netvm, audiovm or guivm, as read. */
export function runningClients(actual: ActualState, vm: string): RunningClient[] {
  const out: RunningClient[] = [];
  for (const [name, q] of [...actual.qubes].sort(([a], [b]) => (a < b ? -1 : 1))) {
    if (name === vm || !isRunning(actual, name)) continue;
    for (const kind of CLIENT_KINDS) if (q.properties.get(kind)?.raw === vm) out.push({ name, kind });
  }
  return out;
}

const powerOpsOn = (s: PlannedStep, vm: string): Op[] =>
  s.ops.filter((o): o is Op => "vm" in o && o.vm === vm && (o.op === "vm.shutdown" || o.op === "vm.start" || o.op === "vm.remove" || o.op === "vm.unpause" || o.op === "vm.resume"));

/** The step leaves `vm` halted (or removed): its last power call is a shutdown or a removal. */
function leavesHalted(s: PlannedStep, vm: string): boolean {
  const last = powerOpsOn(s, vm).at(-1);
  return last !== undefined && (last.op === "vm.shutdown" || last.op === "vm.remove");
}

/** The step points `vm`'s `kind` at another qube (a reset is not known to). */
function movesOff(s: PlannedStep, vm: string, kind: ClientKind, from: string): boolean {
  return s.ops.some((o) => o.op === "property.set" && o.holder !== "global" && o.holder.vm === vm && o.name === kind && o.value !== from);
}

/**
 * Every shutdown the plan makes (a `state: halted`, a restart for a halt-only change) of a qube
 * with running clients: after the steps that shut those clients down or move them elsewhere, or
 * an error naming the clients that stay (qubesd refuses the shutdown: QubesVMError on R4.2,
 * QubesVMInUseError on R4.3 and later for netvm and audiovm). Deletions are left to the reference
 * checks (QIAC-E104, QIAC-E121), which see every user, running or not.
 */
export function orderShutdowns(ctx: DiffContext, steps: readonly PlannedStep[]): void {
  const byQube = new Map<string, PlannedStep[]>();
  for (const s of steps) if (s.address.startsWith("qube.")) byQube.set(s.address.slice(5), [...(byQube.get(s.address.slice(5)) ?? []), s]);
  for (const s of steps) {
    if (s.kind === "delete" || !s.address.startsWith("qube.")) continue;
    const vm = s.address.slice(5);
    if (!s.ops.some((o) => o.op === "vm.shutdown" && o.vm === vm)) continue;
    const blocked: RunningClient[] = [];
    for (const c of runningClients(ctx.actual, vm)) {
      const listed = ctx.actual.listing.get(c.name);
      if (listed) ctx.addCheck({ check: "qube", vm: c.name, class: listed.klass, power: listed.power });
      const first = (byQube.get(c.name) ?? []).find((t) => t !== s && (leavesHalted(t, c.name) || movesOff(t, c.name, c.kind, vm)));
      if (first) s.after.push(first.id);
      else blocked.push(c);
    }
    if (blocked.length === 0) continue;
    const q = ctx.desired.qubes.get(vm);
    const names = [...new Set(blocked.map((c) => c.name))];
    ctx.diagnostics.push(
      planDiagnostic("QIAC-E141", `qube ${vm} is to be shut down but running qubes use it: ${blocked.map((c) => `${c.name} (${c.kind})`).join(", ")}; qubesd refuses to shut down a qube whose clients run`, {
        address: s.address,
        ...(q ? { location: q.locations.get("state") ?? q.at } : {}),
        hint: `shut ${names.join(", ")} down first (\`state: halted\` in the config, or qvm-shutdown --wait ${names.join(" ")}), or point them at another qube`,
      }),
    );
  }
}

/**
 * A disposable template whose disposables run cannot change its template (QubesVMNotHaltedError
 * on R4.2, QubesVMInUseError on R4.3 and later) nor stop being one; its disposables are shut down
 * only by hand (they are removed when they stop).
 */
export function checkRunningDisposables(ctx: DiffContext, q: DesiredQube, changed: readonly string[], ops: readonly Op[]): void {
  const a = ctx.actual.qubes.get(q.name);
  if (a?.properties.get("template_for_dispvms")?.raw !== "True") return;
  const dropsDvm = ops.some((o) => o.op === "property.set" && o.name === "template_for_dispvms" && !/^(true|1|yes|on)$/i.test(o.value))
    || ops.some((o) => o.op === "property.reset" && o.name === "template_for_dispvms");
  const what: QubeField | undefined = changed.includes("template") ? "template" : dropsDvm ? "properties.template_for_dispvms" : undefined;
  if (what === undefined) return;
  const running = [...ctx.actual.qubes]
    .filter(([n, d]) => d.klass === "DispVM" && d.properties.get("template")?.raw === q.name && isRunning(ctx.actual, n))
    .map(([n]) => n)
    .sort();
  if (running.length === 0) return;
  for (const n of running) {
    const listed = ctx.actual.listing.get(n);
    if (listed) ctx.addCheck({ check: "qube", vm: n, class: listed.klass, power: listed.power });
  }
  ctx.diagnostics.push(
    planDiagnostic("QIAC-E143", `qube ${q.name} is a disposable template with running disposables (${running.join(", ")}): Qubes refuses to change its ${what === "template" ? "template" : "template_for_dispvms"} while they run`, {
      address: `qube.${q.name}`,
      location: locate(q, what),
      hint: `shut the disposables down first (qvm-shutdown --wait ${running.join(" ")}; they are removed when they stop), then plan again`,
    }),
  );
}

/**
 * A suspended qube wakes only through admin.vm.Resume (Unpause refuses it on every release); on a
 * release without Resume, a plan that must wake it is an error.
 */
export function checkResume(ctx: DiffContext, vm: string, ops: readonly Op[], location?: DesiredQube): void {
  if (!ops.some((o) => o.op === "vm.resume")) return;
  const a = ctx.actual.qubes.get(vm);
  if (a === undefined) return;
  const release = POWER_CALLS[powerRelease(a.properties)];
  if (release.resume) return;
  ctx.diagnostics.push(
    planDiagnostic("QIAC-E144", `qube ${vm} is suspended and ${release.name} cannot resume it through the Admin API (no admin.vm.Resume; Unpause refuses a suspended qube)`, {
      address: `qube.${vm}`,
      ...(location ? { location: location.locations.get("state") ?? location.at } : {}),
      hint: `wake it in dom0 (virsh -c xen:/// dompmwakeup ${vm}), or stop it there (qvm-kill ${vm}: its unsaved state is lost), then plan again`,
    }),
  );
}
