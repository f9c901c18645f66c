// diffState: the pure diff of a desired state against an actual state. It yields every resource's
// change, the unordered steps that carry the changes out (with dependency hints), the current
// values the plan relies on, and the diagnostics — including removals blocked by references the
// plan does not release. No I/O: the reader has already read everything this needs.

import { compareAddresses } from "../model/address.js";
import type { ActualState } from "../model/actual.js";
import type { DesiredState } from "../model/desired.js";
import type { Diagnostic } from "../model/diagnostics.js";
import { describeRecordedHolder, parseHolder, UNKNOWN_HOLDER_ID } from "../model/lock-record.js";
import { OWNERSHIP_FORMAT_VERSION, parseFormatVersion, RECORD_PREFIX } from "../model/ownership.js";
import { createContext, type DiffContext, type DiffOptions } from "./_context.js";
import { stepId, type PlannedStep, type ResourceChange } from "./changes.js";
import { planDiagnostic } from "./codes.js";
import { desiredReferences, diffDesiredQube, diffUndesiredQube } from "./diff-qube.js";
import { diffGlobals, diffLabels, diffPools } from "./diff-shared.js";
import { checkedValue, type Check } from "./ops.js";
import { checkReferenceNeeds } from "./reference-needs.js";
import { pinMovingDefaults, startNetvmForFollowers } from "./default-pinning.js";
import { orderShutdowns } from "./power-order.js";
import { desiredPolicies } from "./policy-desired.js";
import { diffPolicies, type PlannedPolicy } from "./diff-policies.js";
import { describeReferrer, findReferrers, isReleased, type ReleaseContext } from "./references.js";

export type { DiffOptions } from "./_context.js";

export type DiffResult = {
  changes: ResourceChange[];
  steps: PlannedStep[];
  checks: Check[];
  diagnostics: Diagnostic[];
  /** The policy files the config names or the inventory lists, before and after. */
  policies?: PlannedPolicy[];
};

export const SETUP_STEP = stepId("setup", "ownership");

/** Names of the inventory entries, confirmed or intended, that the config does not declare. */
function undesiredInventory(ctx: DiffContext): string[] {
  return [...new Set([...ctx.inventory.qubes, ...ctx.inventory.intents])].filter((n) => !ctx.desired.qubes.has(n)).sort();
}

/** The qube may be destroyed by this plan: created and dropped, or `absent: true` (a release destroys nothing). */
function mayDestroy(ctx: DiffContext, name: string): boolean {
  if (!ctx.actual.listing.has(name) || ctx.releases(name)) return false;
  const own = ctx.ownership(name);
  if (own.kind !== "owned") return false;
  return ctx.desired.qubes.get(name)?.absent === true || (!ctx.desired.qubes.has(name) && own.lifecycle === "created");
}

/**
 * Whether planning needs the reference scan (every qube's properties and the globals): only when
 * something may be removed — a qube or label the config dropped, a class or colour change.
 */
export function needsReferenceScan(desired: DesiredState, actual: ActualState, options: Pick<DiffOptions, "release"> = {}): boolean {
  const ctx = createContext(desired, actual, { allowRestart: false, ...options });
  for (const name of [...undesiredInventory(ctx), ...[...desired.qubes.values()].filter((q) => q.absent).map((q) => q.name)]) {
    if (mayDestroy(ctx, name)) return true;
  }
  for (const q of desired.qubes.values()) {
    const listed = actual.listing.get(q.name);
    if (listed && q.class !== undefined && listed.klass !== q.class && ctx.ownership(q.name).kind === "owned") return true;
  }
  for (const name of ctx.inventory.labels) {
    const want = desired.labels.get(name);
    const have = actual.labels?.get(name);
    if (have && (want === undefined || (have.colour !== undefined && have.colour.toLowerCase() !== want.colour))) return true;
  }
  return false;
}

/** The format the owner's records declare: undefined when there is no format record; false when unreadable or newer. */
function checkFormat(ctx: DiffContext): number | undefined | false {
  if (!ctx.inventory.formatPresent) return undefined;
  const raw = ctx.actual.dom0Features.get(ctx.names.format);
  const version = parseFormatVersion(raw);
  ctx.addCheck({ check: "feature", vm: "dom0", name: ctx.names.format, expect: checkedValue(raw) });
  if (version !== undefined && version <= OWNERSHIP_FORMAT_VERSION) return version;
  ctx.diagnostics.push(
    planDiagnostic("QIAC-E116", `the ownership records of ${ctx.desired.owner} have format ${raw ?? "(unreadable)"}; this qubes-iac reads format ${OWNERSHIP_FORMAT_VERSION}`, {
      location: ctx.desired.at,
      hint: "use the qubes-iac version that wrote them, or a newer one",
    }),
  );
  return false;
}

/** An apply of this owner holds the lock: what this plan reads may be about to change. */
function noteRunningApply(ctx: DiffContext): void {
  if (!ctx.actual.dom0FeatureNames.has(ctx.names.lock)) return;
  const holder = parseHolder(ctx.actual.dom0Features.get(ctx.names.lock));
  ctx.diagnostics.push(
    planDiagnostic(
      "QIAC-W104",
      `an apply of owner ${ctx.desired.owner} is running: the lock is held by ${describeRecordedHolder(holder)}. This plan shows Qubes before the rest of that apply's changes`,
      {
        hint: `plan again when it ends; if it is not running any more (killed, or its qube shut down), break the lock: qubes-iac apply --break-lock ${holder?.id ?? UNKNOWN_HOLDER_ID}`,
      },
    ),
  );
}

/** At most this many volumes are named in a diagnostic; the rest are counted. */
const NAMED_VOLUMES = 5;

/**
 * A pool removal qubesd would refuse: the pool holds volumes that are not those of the qubes
 * this plan deletes (a qube that stays in the config, one made by hand, another owner's), or a
 * `default_pool*` global property the plan leaves pointing at it.
 */
function checkPoolRemovals(ctx: DiffContext, steps: readonly PlannedStep[], qubeDeletions: readonly PlannedStep[]): void {
  const updates = new Set(steps.map((t) => t.id));
  const moved = (g: string): boolean => updates.has(stepId("update", "properties", g));
  for (const s of steps) {
    if (s.kind !== "delete" || !s.address.startsWith("pool.")) continue;
    const pool = s.address.slice("pool.".length);
    const held = ctx.actual.pools.get(pool)?.volumes;
    if (held === undefined) continue;
    // Apply re-reads both before acting: a volume put in the pool, or a default pointed at it,
    // since the plan was made refuses the apply.
    ctx.addCheck({ check: "pool-volumes", name: pool, expect: checkedValue([...held].sort().join("\n")) });
    const defaults = [...(ctx.actual.globals ?? [])].filter(([g]) => g.startsWith("default_pool"));
    for (const [g, v] of defaults) ctx.addCheck({ check: "property", holder: "global", name: g, default: v.isDefault, value: v.raw });
    // A default left at its default follows default_pool: moving default_pool moves it too.
    const stillDefault = defaults
      .filter(([g, v]) => v.raw === pool && !moved(g) && !(v.isDefault && g !== "default_pool" && moved("default_pool")))
      .map(([g]) => g);

    const going = new Set<string>();
    for (const d of qubeDeletions) {
      for (const v of ctx.actual.qubes.get(d.address.slice("qube.".length))?.volumes.values() ?? []) {
        if (v.pool === pool && v.vid !== undefined) going.add(v.vid);
      }
    }
    const staying = held.filter((vid) => !going.has(vid));
    if (staying.length === 0 && stillDefault.length === 0) continue;
    const uses: string[] = [];
    const hints: string[] = [];
    if (staying.length > 0) {
      uses.push(`holds volumes that stay: ${staying.slice(0, NAMED_VOLUMES).join(", ")}${staying.length > NAMED_VOLUMES ? ` and ${staying.length - NAMED_VOLUMES} more` : ""}`);
      hints.push("keep the pool in the config until the qubes with volumes in it are removed or moved to another pool");
    }
    if (stillDefault.length > 0) {
      uses.push(`is still the global propert${stillDefault.length === 1 ? "y" : "ies"} ${stillDefault.join(", ")}`);
      hints.push(`set ${stillDefault.join(", ")} to another pool under the config's properties`);
    }
    ctx.diagnostics.push(
      planDiagnostic("QIAC-E127", `pool ${pool} is to be removed but ${uses.join(", and ")}; qubesd refuses to remove a pool in use`, {
        address: s.address,
        hint: hints.join("; "),
      }),
    );
  }
}

/**
 * Removals the plan cannot make because something it does not change still refers to the qube.
 * From a management qube the scan saw only the qubes its policy shows: a removal it finds no
 * user of is then not known to be safe, and the plan says so.
 */
function checkRemovals(ctx: DiffContext, changes: readonly ResourceChange[], release: ReleaseContext): void {
  for (const c of changes) {
    if (c.type !== "qube" || c.name === null || (c.action !== "delete" && c.action !== "replace")) continue;
    const name = c.name;
    const blockers = findReferrers(ctx.actual, "qube", name)
      .filter((r) => !isReleased(r, "qube", name, release))
      .map(describeReferrer);
    if (c.action === "delete") {
      for (const q of ctx.desired.qubes.values()) {
        if (q.absent || ctx.releases(q.name)) continue;
        if (desiredReferences(q).some((r) => r.kind === "qube" && r.name === name)) blockers.push(`qube ${q.name} of the config`);
      }
      for (const [g, v] of ctx.desired.properties) if (v.kind === "vm" && v.value === name) blockers.push(`the global property ${g} of the config`);
    }
    if (blockers.length === 0) {
      if (ctx.actual.visibility === "policy") {
        ctx.diagnostics.push(
          planDiagnostic(
            "QIAC-W110",
            `qube ${name} is to be ${c.action === "delete" ? "deleted" : "replaced"}: no qube this management qube can see uses it, but its qrexec policy shows only some qubes. If one it cannot see still uses ${name}, qubesd refuses to remove it (QubesVMInUseError) and apply stops there`,
            { address: c.address, hint: `plan in dom0 (--connect qubesd) to check every qube, or check there that nothing uses ${name} (qvm-prefs of the qubes this one cannot see, and qubes-prefs)` },
          ),
        );
      }
      continue;
    }
    const unique = [...new Set(blockers)];
    ctx.diagnostics.push(
      c.action === "delete"
        ? planDiagnostic("QIAC-E104", `qube ${name} is to be deleted but is still used by ${unique.join(", ")}`, {
            address: c.address,
            hint: "point those at another qube (qubes-iac changes only what the config manages), or keep the qube in the config",
          })
        : planDiagnostic("QIAC-E121", `qube ${name} is to be replaced but Qubes refuses to delete a qube in use: it is used by ${unique.join(", ")}`, {
            address: c.address,
            hint: "point those at another qube first, or keep the class",
          }),
    );
  }
}

export function diffState(desired: DesiredState, actual: ActualState, options: DiffOptions): DiffResult {
  const ctx = createContext(desired, actual, options);
  const format = checkFormat(ctx);
  if (format === false) return { changes: [], steps: [], checks: ctx.checks(), diagnostics: ctx.diagnostics };
  noteRunningApply(ctx);
  ctx.diagnostics.push(...checkReferenceNeeds(desired, actual, ctx.addCheck));

  const changes: ResourceChange[] = [];
  const steps: PlannedStep[] = [];
  const take = (d: { change?: ResourceChange; changes?: ResourceChange[]; steps: PlannedStep[] }): void => {
    if (d.change) changes.push(d.change);
    if (d.changes) changes.push(...d.changes);
    steps.push(...d.steps);
  };

  for (const q of [...desired.qubes.values()].sort((a, b) => (a.name < b.name ? -1 : 1))) take(diffDesiredQube(ctx, q));
  for (const name of undesiredInventory(ctx)) take(diffUndesiredQube(ctx, name));

  const deleted = new Set(changes.filter((c) => c.type === "qube" && c.action === "delete").map((c) => c.name as string));
  const managed = new Set(changes.filter((c) => c.type === "qube" && (c.action === "update" || c.action === "no-op")).map((c) => c.name as string));
  const release: ReleaseContext = { desired, deleted, managed };
  checkRemovals(ctx, changes, release);

  take(diffLabels(ctx, release));
  take(diffPools(ctx));
  take(diffGlobals(ctx));
  pinMovingDefaults(ctx, changes, steps);
  startNetvmForFollowers(ctx, changes, steps);

  // A pool can be removed only once no qube has volumes in it: after every qube deletion, and
  // only when what it holds goes with those deletions.
  const qubeDeletions = steps.filter((s) => s.kind === "delete" && s.address.startsWith("qube."));
  for (const s of steps) if (s.kind === "delete" && s.address.startsWith("pool.")) s.after.push(...qubeDeletions.map((d) => d.id));
  checkPoolRemovals(ctx, steps, qubeDeletions);
  orderShutdowns(ctx, steps);

  const policy = diffPolicies(desired.owner, desiredPolicies(desired), actual, { takeOwnership: options.takeOwnership ?? [], at: desired.at });
  changes.push(...policy.changes);
  steps.push(...policy.steps);
  ctx.diagnostics.push(...policy.diagnostics);
  // The inventory entries each policy step relies on, as for a qube's (apply re-reads them).
  for (const s of policy.steps) {
    for (const o of s.ops) {
      if ((o.op === "feature.set" || o.op === "feature.remove") && o.vm === "dom0") ctx.addCheck({ check: "feature", vm: "dom0", name: o.name, expect: o.op === "feature.set" ? { absent: true } : { present: true } });
    }
  }

  // The first apply that writes any record writes the format record before it; one that writes
  // format-2 records over format-1 ones raises the number first, so a format-1 reader refuses
  // them rather than misreading them (docs/ownership.md, "Versions").
  const writesRecords = steps.some((s) =>
    s.ops.some((o) => o.op === "record.set" || ((o.op === "feature.set" || o.op === "tag.set") && (o.name.startsWith(RECORD_PREFIX) || o.name === ctx.names.ownerTag))),
  );
  if (writesRecords && (format === undefined || format < OWNERSHIP_FORMAT_VERSION)) {
    if (format === undefined) ctx.addCheck({ check: "feature", vm: "dom0", name: ctx.names.format, expect: { absent: true } });
    for (const s of steps) if (s.kind !== "forget") s.after.push(SETUP_STEP);
    steps.push({
      id: SETUP_STEP,
      address: "ownership",
      kind: "setup",
      ops: [{ op: "feature.set", vm: "dom0", name: ctx.names.format, value: String(OWNERSHIP_FORMAT_VERSION) }],
      uses: [],
      unreferences: [],
      after: [],
    });
  }

  changes.sort((a, b) => compareAddresses(a.address, b.address));
  return { changes, steps, checks: ctx.checks(), diagnostics: ctx.diagnostics, policies: policy.policies };
}
