// The diff of a qube's volumes (size, revisions_to_keep, ephemeral) and notes, for an existing
// qube and for one to create: the ops, the before/after the plan shows, the checks apply re-reads
// and the located errors for what qubesd would refuse (a shrink, a revisions_to_keep outside the
// pool driver's limit on this release, notes on a release without them). The rules are
// model/volume-rules.ts; what differs by release is model/release.ts. Pure.

import { locate, type DesiredQube, type QubeField } from "../model/desired.js";
import type { ActualVolume } from "../model/actual.js";
import { describeLimit, ephemeralAllowed, newVolumePool, revisionsLimit, volumeShapes, withinLimit } from "../model/volume-rules.js";
import { describeRelease } from "../model/release.js";
import type { DetailedQube, DiffContext } from "./_context.js";
import type { Attributes } from "./changes.js";
import { planDiagnostic } from "./codes.js";
import { checkedValue, type Op } from "./ops.js";
import { detectedRelease, releaseRules } from "./release-rules.js";

/** What the volume and notes diff adds to a qube's change. */
export type VolumeAcc = {
  before: Attributes;
  after: Attributes;
  ops: Op[];
  changed: string[];
  /** Changed keys that need the qube halted whatever the release table says (a switch to or from -1 revisions). */
  haltOnly: string[];
};

const GIB = 1024 ** 3;

/** The size a new volume gets (qubes.config.defaults: 10 GiB root and volatile, 2 GiB private; a DispVM's volatile both). */
function creationSize(klass: string, volume: string): number | undefined {
  if (volume === "private") return 2 * GIB;
  if (volume === "root") return 10 * GIB;
  if (volume === "volatile") return klass === "DispVM" ? 12 * GIB : 10 * GIB;
  return undefined;
}

/** revisions_to_keep `n` of a volume in `pool`: an error when its driver or the release refuses it. */
function checkRevisions(ctx: DiffContext, q: DesiredQube, volume: string, n: number, pool: string | undefined): boolean {
  const rules = releaseRules(ctx.actual);
  const field = `volumes.${volume}.revisions_to_keep` as QubeField;
  const address = `qube.${q.name}`;
  if (n < 0 && !rules.volumeRevisionsNegative) {
    ctx.diagnostics.push(
      planDiagnostic("QIAC-E180", `qube ${q.name}: volume ${volume} cannot keep ${n} revisions: ${describeRelease(detectedRelease(ctx.actual))} takes 0 or more (-1, no snapshots, is R4.3 and later)`, {
        location: locate(q, field),
        address,
        hint: "use 0 on this release",
      }),
    );
    return false;
  }
  const driver = pool === undefined ? undefined : (ctx.desired.pools.get(pool)?.driver ?? ctx.actual.pools.get(pool)?.driver);
  if (driver === undefined) return true;
  const limit = revisionsLimit(driver, rules.volumeRevisionsNegative);
  if (withinLimit(limit, n)) return true;
  ctx.diagnostics.push(
    planDiagnostic("QIAC-E180", `qube ${q.name}: volume ${volume} is in pool ${pool} (driver ${driver}), whose volumes keep ${describeLimit(limit)} revisions, not ${n}`, {
      location: locate(q, field),
      address,
      hint: driver === "file" ? "use 0 or 1, or put the qube in a file-reflink or lvm_thin pool" : `use ${describeLimit(limit)}`,
    }),
  );
  return false;
}

/** Notes on a release without them, or cleared where qubesd cannot clear them: an error, true when fine. */
function checkNotesRelease(ctx: DiffContext, q: DesiredQube, current: string | undefined): boolean {
  const rules = releaseRules(ctx.actual);
  const release = describeRelease(detectedRelease(ctx.actual));
  if (!rules.notes) {
    ctx.diagnostics.push(
      planDiagnostic("QIAC-E181", `qube ${q.name}: ${release} has no qube notes (admin.vm.notes.* are R4.3 and later)`, {
        location: locate(q, "notes"),
        address: `qube.${q.name}`,
        hint: "remove notes: from the config for this system",
      }),
    );
    return false;
  }
  if (q.notes === "" && (current ?? "") !== "" && !rules.notesClearable) {
    ctx.diagnostics.push(
      planDiagnostic("QIAC-E182", `qube ${q.name}: ${release} refuses empty notes (admin.vm.notes.Set wants a payload), so its notes cannot be cleared`, {
        location: locate(q, "notes"),
        address: `qube.${q.name}`,
        hint: "leave a line of text in notes:, or remove notes: to stop managing them",
      }),
    );
    return false;
  }
  return true;
}

/** The volumes and notes of an existing qube. */
export function diffVolumesAndNotes(ctx: DiffContext, q: DesiredQube, a: DetailedQube, acc: VolumeAcc): void {
  const vm = q.name;
  const address = `qube.${vm}`;
  for (const [v, want] of q.volumes) {
    const av: ActualVolume | undefined = a.volumes.get(v);
    if (av === undefined) throw new Error(`internal: volume ${v} of qube '${vm}' was not read`);
    if (want.size !== undefined) {
      const key = `volumes.${v}.size`;
      ctx.addCheck({ check: "volume-size", vm, volume: v, size: av.size.toString() });
      acc.before[key] = av.size.toString();
      acc.after[key] = String(want.size);
      const size = BigInt(want.size);
      if (size < av.size) {
        ctx.diagnostics.push(
          planDiagnostic("QIAC-E110", `qube ${vm}: volume ${v} is ${av.size} bytes; it cannot shrink to ${want.size}`, {
            location: locate(q, key as QubeField),
            address,
            hint: `give at least ${av.size}`,
          }),
        );
      } else if (size > av.size) {
        acc.ops.push({ op: "volume.resize", vm, volume: v, size: size.toString() });
        acc.changed.push(key);
      }
    }
    if (want.revisionsToKeep !== undefined) {
      const key = `volumes.${v}.revisions_to_keep`;
      ctx.addCheck({ check: "volume", vm, volume: v, key: "revisions_to_keep", value: String(av.revisionsToKeep) });
      acc.before[key] = String(av.revisionsToKeep);
      acc.after[key] = String(want.revisionsToKeep);
      if (want.revisionsToKeep !== av.revisionsToKeep && checkRevisions(ctx, q, v, want.revisionsToKeep, av.pool)) {
        acc.ops.push({ op: "volume.revisions", vm, volume: v, value: String(want.revisionsToKeep) });
        acc.changed.push(key);
        if (want.revisionsToKeep < av.revisionsToKeep) {
          ctx.diagnostics.push(
            planDiagnostic("QIAC-W180", `qube ${vm}: volume ${v} keeps ${av.revisionsToKeep} revisions; with ${want.revisionsToKeep} the older ones are removed when the qube next stops (they are its backups to revert to)`, {
              location: locate(q, key as QubeField),
              address,
              hint: `revert first if a revision is needed (qvm-volume revert ${vm}:${v})`,
            }),
          );
        }
        // qubes/storage/__init__.py Storage.set_revisions_to_keep: snapshots on or off only while halted.
        if (want.revisionsToKeep === -1 || av.revisionsToKeep === -1) acc.haltOnly.push(key);
      }
    }
    if (want.ephemeral !== undefined) {
      const key = `volumes.${v}.ephemeral`;
      ctx.addCheck({ check: "volume", vm, volume: v, key: "ephemeral", value: av.ephemeral ? "True" : "False" });
      acc.before[key] = String(av.ephemeral);
      acc.after[key] = String(want.ephemeral);
      if (want.ephemeral !== av.ephemeral) {
        if (want.ephemeral && !ephemeralAllowed({ name: v, rw: av.rw, snapOnStart: av.snapOnStart, saveOnStop: av.saveOnStop })) {
          ctx.diagnostics.push(
            planDiagnostic("QIAC-E184", `qube ${vm}: volume ${v} cannot be ephemeral: it is ${av.snapOnStart ? "a snapshot of its template's" : av.saveOnStop ? "kept at shutdown" : "read-only"}`, {
              location: locate(q, key as QubeField),
              address,
              hint: "only a writable volume that is discarded at shutdown (volatile) can be ephemeral",
            }),
          );
        } else {
          acc.ops.push({ op: "volume.ephemeral", vm, volume: v, value: want.ephemeral });
          acc.changed.push(key);
        }
      }
    }
  }
  if (q.notes !== undefined && checkNotesRelease(ctx, q, a.notes)) {
    const cur = a.notes;
    if (cur === undefined) throw new Error(`internal: the notes of qube '${vm}' were not read`);
    ctx.addCheck({ check: "notes", vm, expect: checkedValue(cur) });
    acc.before.notes = cur;
    acc.after.notes = q.notes;
    if (cur !== q.notes) {
      acc.ops.push({ op: "notes.set", vm, text: q.notes });
      acc.changed.push("notes");
    }
  }
}

/**
 * The volumes and notes of a qube to create, after its Create: the pool each volume lands in (as
 * CreateInPool puts them), the resizes to more than the creation size (less is an error), the
 * revisions_to_keep and ephemeral the config sets, and the notes.
 */
export function createVolumesAndNotes(
  ctx: DiffContext,
  q: DesiredQube,
  klass: string,
  after: Attributes,
  reasons: string[],
  /** Volumes a clone copies, with the source's size in bytes (undefined: not known at plan time). */
  copied: ReadonlyMap<string, string | undefined> = new Map(),
): Op[] {
  const vm = q.name;
  const ops: Op[] = [];
  const shapes = volumeShapes(klass);
  if (q.pool !== undefined) {
    for (const s of shapes.filter((x) => x.name !== "kernel")) {
      const pool = newVolumePool(s, q.pool, () => undefined, undefined);
      if (pool !== undefined) after[`volumes.${s.name}.pool`] = pool;
    }
    const kept = shapes.filter((s) => s.snapOnStart).map((s) => s.name);
    if (kept.length > 0) {
      reasons.push(`pool ${q.pool} holds ${shapes.filter((s) => !s.snapOnStart && s.rw).map((s) => s.name).join(", ")}; ${kept.join(" and ")} ${kept.length === 1 ? "is a snapshot" : "are snapshots"} of ${q.template ?? "the template"}'s and ${kept.length === 1 ? "stays" : "stay"} in ${kept.length === 1 ? "its pool" : "their pools"} (CreateInPool moves only writable volumes that are not snapshots)`);
    }
  }
  for (const [v, want] of q.volumes) {
    if (want.size !== undefined) {
      const key = `volumes.${v}.size`;
      after[key] = String(want.size);
      const copy = copied.has(v);
      const copiedSize = copied.get(v);
      const initial = copy ? (copiedSize === undefined ? undefined : Number(copiedSize)) : creationSize(klass, v);
      if (initial !== undefined && want.size < initial) {
        ctx.diagnostics.push(
          planDiagnostic("QIAC-E183", `qube ${vm}: volume ${v} of a new ${klass} is created with ${initial} bytes${copy ? " (its clone source's size)" : ""}; it cannot shrink to ${want.size}`, {
            location: locate(q, key as QubeField),
            address: `qube.${vm}`,
            hint: `give at least ${initial} (volumes only grow)`,
          }),
        );
      } else if (initial === undefined || want.size > initial) {
        ops.push({ op: "volume.resize", vm, volume: v, size: String(want.size) });
      }
    }
    if (want.revisionsToKeep !== undefined) {
      after[`volumes.${v}.revisions_to_keep`] = String(want.revisionsToKeep);
      const shape = shapes.find((s) => s.name === v);
      const pool = shape === undefined ? undefined : newVolumePool(shape, q.pool, () => undefined, undefined);
      if (checkRevisions(ctx, q, v, want.revisionsToKeep, pool)) ops.push({ op: "volume.revisions", vm, volume: v, value: String(want.revisionsToKeep) });
    }
    if (want.ephemeral !== undefined) {
      after[`volumes.${v}.ephemeral`] = String(want.ephemeral);
      ops.push({ op: "volume.ephemeral", vm, volume: v, value: want.ephemeral });
    }
  }
  if (q.notes !== undefined && checkNotesRelease(ctx, q, "")) {
    after.notes = q.notes;
    if (q.notes !== "") ops.push({ op: "notes.set", vm, text: q.notes });
  }
  return ops;
}
