// The diff of guests: each managed file compared by size and SHA-256 with what planning read
// through the agent, a top-level guest's power, and the one step per guest that writes the files
// (then shuts it down) after the qube it lives in runs. A guest that planning could not read for
// a good reason (its qube does not run yet, or this plan stops it) has its files written without
// comparing. Pure: the readings come in; content itself is only ever hashed, never copied.

import { createHash } from "node:crypto";
import { settledPower, type ActualState } from "../model/actual.js";
import type { DesiredGuest, DesiredGuestFile, DesiredState } from "../model/desired.js";
import type { Diagnostic } from "../model/diagnostics.js";
import type { Digest, GuestFacts, GuestObservation, ObservedFile } from "../model/guest.js";
import type { Action } from "./action.js";
import { newResourceChange, stepId, type Attributes, type PlannedStep, type ResourceChange } from "./changes.js";
import { planDiagnostic } from "./codes.js";
import type { GuestOp } from "./ops.js";

/** What the guest reader gathered: observations by guest address, digests of `source:` files by path. */
export type GuestReadings = {
  observations: ReadonlyMap<string, GuestObservation>;
  sources: ReadonlyMap<string, Digest | { error: string }>;
};

export const NO_GUEST_READINGS: GuestReadings = { observations: new Map(), sources: new Map() };

/**
 * Whether planning reads a guest through its agent now, and how: a top-level guest always (one
 * attempt when it is to be shut down: an agent that does not answer then means it is off); a
 * qube's guest only while the qube runs.
 */
export type GuestReadMode = { read: true; waitMs?: number } | { read: false; reason: string };

export function guestReadMode(g: DesiredGuest, actual: ActualState): GuestReadMode {
  if (g.qube === undefined) return g.state === "shutdown" || g.waitMs === undefined ? { read: true } : { read: true, waitMs: g.waitMs };
  const listed = actual.listing.get(g.qube);
  if (listed === undefined) return { read: false, reason: `qube ${g.qube} does not exist yet` };
  if (settledPower(listed.power) !== "running") return { read: false, reason: `qube ${g.qube} is ${listed.power.toLowerCase()}` };
  return g.waitMs === undefined ? { read: true } : { read: true, waitMs: g.waitMs };
}

/** A guest as the plan shows it: how it was read, its facts, and each managed file as read (null: not read). */
export type PlannedGuest = {
  address: string;
  qube?: string;
  agent: DesiredGuest["agent"];
  waitMs?: number;
  read: "answering" | "not-answering" | "not-read" | "failed";
  /** Why it was not read, or did not answer; for display only. */
  reason?: string;
  facts?: GuestFacts;
  files: Array<{ path: string; observed: Digest | { absent: true } | null }>;
};

export type GuestDiff = { changes: ResourceChange[]; steps: PlannedStep[]; guests: PlannedGuest[]; diagnostics: Diagnostic[] };

/** `21 bytes, sha256 3f2a9c1b0d4e`: what a plan shows of a file's content. */
export const showDigest = (d: Digest): string => `${d.size} byte${d.size === 1 ? "" : "s"}, sha256 ${d.sha256.slice(0, 12)}`;

const inlineDigest = (text: string): Digest => {
  const bytes = Buffer.from(text, "utf8");
  return { size: bytes.length, sha256: createHash("sha256").update(bytes).digest("hex") };
};

const sameDigest = (a: ObservedFile | undefined, b: Digest): boolean => a?.kind === "present" && a.size === b.size && a.sha256 === b.sha256;

const emptyChange = (address: string, name: string): ResourceChange => ({
  ...newResourceChange("guest", name, address, "no-op"),
  before: {},
  after: {},
});

/**
 * `qubeSteps`: the steps the qube diff made, to tell whether this plan starts, stops or recreates
 * a guest's qube. `inScope`: guests outside --target/--exclude are neither read nor planned.
 */
export function diffGuests(
  desired: DesiredState,
  actual: ActualState,
  readings: GuestReadings,
  qubeChanges: readonly ResourceChange[],
  qubeSteps: readonly PlannedStep[],
  inScope: (address: string) => boolean,
): GuestDiff {
  const out: GuestDiff = { changes: [], steps: [], guests: [], diagnostics: [] };
  for (const g of [...desired.guests.values()].sort((a, b) => (a.address < b.address ? -1 : 1))) {
    if (!inScope(g.address)) continue;
    diffGuest(g, desired, actual, readings, qubeChanges, qubeSteps, out);
  }
  return out;
}

function diffGuest(
  g: DesiredGuest,
  desired: DesiredState,
  actual: ActualState,
  readings: GuestReadings,
  qubeChanges: readonly ResourceChange[],
  qubeSteps: readonly PlannedStep[],
  out: GuestDiff,
): void {
  const mode = guestReadMode(g, actual);
  const observation = mode.read ? readings.observations.get(g.address) : undefined;
  if (mode.read && observation === undefined) throw new Error(`internal: guest ${g.address} was not read`);
  const planned: PlannedGuest = { address: g.address, agent: g.agent, read: "not-read", files: [...g.files.keys()].map((path) => ({ path, observed: null })) };
  if (g.qube !== undefined) planned.qube = g.qube;
  if (g.waitMs !== undefined) planned.waitMs = g.waitMs;
  if (!mode.read) planned.reason = mode.reason;
  out.guests.push(planned);
  const error = (code: Parameters<typeof planDiagnostic>[0], message: string, at = g.at, hint?: string): void => {
    out.diagnostics.push(planDiagnostic(code, message, { address: g.address, location: at, ...(hint !== undefined ? { hint } : {}) }));
  };

  // What the plan wants written: every file's digest (content is hashed, never kept).
  const wanted = new Map<string, Digest>();
  for (const f of g.files.values()) {
    const d = contentDigest(f, readings);
    if ("error" in d) error("QIAC-E126", `the source of guest file ${f.path} (${f.source ?? ""}) cannot be read: ${d.error}`, f.at);
    else wanted.set(f.path, d);
  }

  if (observation?.kind === "failed" || (observation?.kind === "not-answering" && g.state !== "shutdown")) {
    planned.read = observation.kind;
    planned.reason = observation.reason;
    error("QIAC-E123", `${g.address}: ${observation.reason}`, g.locations.get("agent") ?? g.at, observation.kind === "not-answering" ? notAnsweringHint(g) : undefined);
    return;
  }

  const change = emptyChange(g.address, g.address.slice("guest.".length));
  const ops: GuestOp[] = [];
  const before = change.before as Attributes;
  const after = change.after as Attributes;
  const agent = { agent: g.agent, ...(g.waitMs !== undefined ? { wait_ms: g.waitMs } : {}) };
  const write = (f: DesiredGuestFile, d: Digest): void => {
    ops.push({ op: "guest.file.write", guest: g.address, ...agent, path: f.path, size: d.size, sha256: d.sha256, content: f.content });
  };

  if (g.qube !== undefined) {
    const qube = desired.qubes.get(g.qube);
    const listed = actual.listing.get(g.qube);
    const power = listed === undefined ? undefined : settledPower(listed.power);
    const qubeAddress = `qube.${g.qube}`;
    const qubeChange = qubeChanges.find((c) => c.address === qubeAddress);
    const restarts = qubeChange?.action === "create" || qubeChange?.action === "replace" || qubeSteps.some((s) => s.address === qubeAddress && s.ops.some((o) => o.op === "vm.shutdown"));
    const runsAfter = qube?.state === "running" || (qube?.state === undefined && power === "running");
    if (!runsAfter) {
      if (g.files.size > 0) {
        const now = listed === undefined ? "will be created halted" : `is ${listed.power.toLowerCase()}`;
        error("QIAC-E124", `qube ${g.qube} ${now}, and its guest files are reached only while it runs`, g.at, `set state: running on qube ${g.qube}, or start it before planning`);
      }
      return;
    }
    if (observation === undefined || restarts) {
      if (observation?.kind === "answering") {
        planned.read = "answering";
        planned.facts = observation.facts;
      }
      const why = mode.read ? `apply stops or recreates qube ${g.qube}` : mode.reason;
      change.reasons.push(`${why}: its files are written once apply has it running, without comparing`);
      for (const f of g.files.values()) {
        const d = wanted.get(f.path);
        if (d === undefined) continue;
        after[`files.${f.path}`] = showDigest(d);
        write(f, d);
      }
      if (ops.length > 0 && g.waitMs === undefined) {
        out.diagnostics.push(
          planDiagnostic("QIAC-W103", `apply starts qube ${g.qube} and then writes its guest files, but its agent may not answer at once`, {
            address: g.address,
            location: g.at,
            hint: "add wait: {timeout: 120s} to the guest, so apply waits for the agent",
          }),
        );
      }
      finish(g, change, ops, out);
      return;
    }
  }

  // Read now (or a guest to shut down that is off): compare file by file.
  if (observation?.kind === "not-answering") {
    // Only a guest to keep shut down gets here: not answering means it is off.
    planned.read = "not-answering";
    planned.reason = observation.reason;
    before.state = "shutdown";
    after.state = "shutdown";
    change.reasons.push("the agent does not answer: the guest is taken to be shut down, and its files are not read");
    finish(g, change, ops, out);
    return;
  }
  if (observation?.kind !== "answering") throw new Error(`internal: guest ${g.address} has no usable reading`);
  planned.read = "answering";
  planned.facts = observation.facts;
  for (const f of g.files.values()) {
    const seen = observation.files.get(f.path);
    const entry = planned.files.find((x) => x.path === f.path);
    if (seen === undefined) throw new Error(`internal: guest file ${f.path} of ${g.address} was not read`);
    if (seen.kind === "unreadable") {
      error("QIAC-E125", `guest file ${f.path} of ${g.address} cannot be read: ${seen.reason}`, f.at, "qubes-iac reads each file before writing it: the agent must be able to open it");
      continue;
    }
    if (entry) entry.observed = seen.kind === "present" ? { size: seen.size, sha256: seen.sha256 } : { absent: true };
    const key = `files.${f.path}`;
    before[key] = seen.kind === "present" ? showDigest(seen) : null;
    const d = wanted.get(f.path);
    if (d === undefined) continue;
    after[key] = showDigest(d);
    if (!sameDigest(seen, d)) write(f, d);
  }
  if (g.state !== undefined) {
    before.state = "running";
    after.state = g.state;
    if (g.state === "shutdown") ops.push({ op: "guest.shutdown", guest: g.address, ...agent });
  }
  finish(g, change, ops, out);
}

function finish(g: DesiredGuest, change: ResourceChange, ops: GuestOp[], out: GuestDiff): void {
  const action: Action = ops.length > 0 ? "update" : "no-op";
  change.action = action;
  out.changes.push(change);
  if (ops.length === 0) return;
  out.steps.push({ id: stepId("update", g.address), address: g.address, kind: "update", ops, uses: g.qube !== undefined ? [`qube.${g.qube}`] : [], unreferences: [], after: [] });
}

function contentDigest(f: DesiredGuestFile, readings: GuestReadings): Digest | { error: string } {
  switch (f.content.kind) {
    case "inline":
      return inlineDigest(f.inline ?? "");
    case "source":
      return readings.sources.get(f.content.path) ?? { error: "it was not read" };
    default: {
      const never: never = f.content;
      return never;
    }
  }
}

function notAnsweringHint(g: DesiredGuest): string {
  if (g.waitMs === undefined) return "start the VM and its agent (docs/guests.md), or add wait: {timeout: 120s} if it is still starting";
  return "check that the VM runs and that its agent listens on this channel (docs/guests.md)";
}
