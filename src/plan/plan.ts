// buildPlan: the pure planner. Diff, resolve dependencies, apply --target/--exclude, order the
// steps in waves, and gather what a reviewer and apply need into one in-memory Plan. It takes
// only data (desired and actual state, what was read through guest agents, options) and performs
// no I/O.

import { formatAddress, type Address } from "../model/address.js";
import type { ActualState } from "../model/actual.js";
import type { DesiredState } from "../model/desired.js";
import type { Diagnostic } from "../model/diagnostics.js";
import type { ResourceChange } from "./changes.js";
import { diffState } from "./diff.js";
import { planLoosening, sortLoosenings } from "./loosening.js";
import { planPolicyLoosening } from "./loosening-policy.js";
import { diffGuests, NO_GUEST_READINGS, type GuestReadings, type PlannedGuest } from "./diff-guests.js";
import type { Check } from "./ops.js";
import { orderSteps, resolveDependencies, type OrderedStep } from "./order.js";
import { planRelease, type PlanRelease } from "./release-rules.js";
import { selectSteps } from "./scope.js";
import type { PlannedPolicy } from "./diff-policies.js";
import { desiredPolicies } from "./policy-desired.js";

export type PlanOptions = {
  allowRestart: boolean;
  targets: readonly Address[];
  excludes: readonly Address[];
  /** The time the plan is made (ms since the epoch): judges firewall rules with `expire`. */
  now?: number;
  /** `--take-ownership OWNER`: owners whose qubes, labels and pools the plan may take over. */
  takeOwnership?: readonly string[];
  /** Qube names to let go of without destroying them (`qubes-iac release`). */
  release?: readonly string[];
};

export type Plan = {
  owner: string;
  /** The release the state reader saw. */
  release: PlanRelease;
  options: PlanOptions;
  /** Every resource in scope, sorted by address (no-op ones included). */
  changes: ResourceChange[];
  /** In execution order: by wave, then by id. */
  steps: OrderedStep[];
  checks: Check[];
  /** The guests in scope: how each was read, its facts, and its files as read. */
  guests: PlannedGuest[];
  /** The policy files in scope, before and after (diff-policies.ts). */
  policies: PlannedPolicy[];
  diagnostics: Diagnostic[];
};

/**
 * Whether a guest is in scope. Nothing depends on a guest, so --target and --exclude decide it by
 * its own address alone (a qube's guest is `guest.qube.NAME`, not part of `qube.NAME`).
 */
export function guestInScope(options: Pick<PlanOptions, "targets" | "excludes">): (address: string) => boolean {
  const targets = new Set(options.targets.map(formatAddress));
  const excludes = new Set(options.excludes.map(formatAddress));
  return (address) => (targets.size === 0 || targets.has(address)) && !excludes.has(address);
}

/** Every address the config declares or the actual state shows as managed. */
function knownAddresses(desired: DesiredState, changes: readonly ResourceChange[]): Set<string> {
  const out = new Set(changes.map((c) => c.address));
  for (const n of desired.qubes.keys()) out.add(`qube.${n}`);
  for (const n of desired.labels.keys()) out.add(`label.${n}`);
  for (const n of desired.pools.keys()) out.add(`pool.${n}`);
  if (desired.properties.size > 0) out.add("properties");
  for (const a of desired.guests.keys()) out.add(a);
  for (const a of desiredPolicies(desired).keys()) out.add(a);
  return out;
}

/** `guests`: what the guest reader read (guests in scope that guestReadMode reads). */
export function buildPlan(desired: DesiredState, actual: ActualState, options: PlanOptions, guests: GuestReadings = NO_GUEST_READINGS): Plan {
  const diff = diffState(desired, actual, {
    allowRestart: options.allowRestart,
    takeOwnership: options.takeOwnership ?? [],
    release: options.release ?? [],
    ...(options.now !== undefined ? { now: options.now } : {}),
  });
  const inner = diffGuests(desired, actual, guests, diff.changes, diff.steps, guestInScope(options));
  const steps = [...diff.steps, ...inner.steps];
  const deps = resolveDependencies(steps);
  const selection = selectSteps(steps, deps, options, knownAddresses(desired, diff.changes));
  const inScope = (address: string | undefined): boolean => address === undefined || selection.addresses === undefined || selection.addresses.has(address);
  const ordered = orderSteps(
    steps.filter((s) => selection.steps.has(s.id)),
    deps,
  );
  const diagnostics = [...[...diff.diagnostics, ...inner.diagnostics].filter((d) => inScope(d.address)), ...selection.diagnostics, ...ordered.diagnostics];
  const changes = [...diff.changes, ...inner.changes].filter((c) => inScope(c.address));
  const policies = (diff.policies ?? []).filter((p) => inScope(p.address));
  // What the plan loosens: qubes and globals from their before/after, policy files by effect over the whole policy.
  const loosening = planLoosening(changes, actual);
  const policy = planPolicyLoosening(policies, actual, (address) => desiredPolicies(desired).get(address)?.at);
  diagnostics.push(...policy.diagnostics);
  for (const c of changes) c.loosens = sortLoosenings([...(loosening.get(c.address) ?? []), ...(policy.loosens.get(c.address) ?? [])]);
  return { owner: desired.owner, release: planRelease(actual), options, changes, steps: ordered.steps, checks: diff.checks, guests: inner.guests.filter((g) => inScope(g.address)), policies, diagnostics };
}
