// How a create step that failed after `Create` left its qube: re-read its netvm and firewall and
// report them ("offline1 left with netvm none, firewall drop"). A qube left more connected than
// its step was making it (its netvm not yet the config's, or its firewall not yet the config's
// while it has a netvm) is removed again: the step made it moments ago and it holds nothing yet.
// The next plan finishes, or makes again, what is left (the intent record stays).

import type { ActualProperty } from "../model/actual.js";
import type { JsonStep } from "../plan/json.js";
import { isGuestOp, type Op } from "../plan/ops.js";
import type { QubesReader } from "../plan/reader.js";
import type { OpOutcome, StepFailure } from "./engine.js";

export type LeftState =
  /** As re-read: netvm `null` = none. `removal` says why removing it again failed, when it was tried. */
  | { kind: "left"; vm: string; netvm: string | null; netvmDefault: boolean; firewall: string[]; removal?: string }
  /** It was more connected than the config asks, and was removed again. */
  | { kind: "removed"; vm: string; netvm: string | null; firewall: string[] }
  | { kind: "unread"; vm: string; detail: string };

export type LeftStateIO = {
  /** GetAll, as apply's other re-reads: the policy grants it on the qubes apply creates (src/apply/policy.ts). */
  reader: Pick<QubesReader, "properties" | "firewall">;
  run(op: Op): Promise<OpOutcome>;
};

const adminOps = (step: JsonStep): Op[] => step.ops.filter((o): o is Op => !isGuestOp(o));

/** The qube the step created before the call that failed, if it did. */
function createdBefore(step: JsonStep, failure: StepFailure): string | undefined {
  const i = step.ops.findIndex((o) => o.op === "vm.create");
  const create = step.ops[i];
  return i >= 0 && i < failure.opIndex && create?.op === "vm.create" ? create.name : undefined;
}

const sameList = (a: readonly string[], b: readonly string[]): boolean => a.length === b.length && a.every((x, i) => x === b[i]);
const netvmOf = (p: ActualProperty): string | null => (p.raw === "" ? null : p.raw);

export async function settleFailedCreate(step: JsonStep, failure: StepFailure, io: LeftStateIO): Promise<LeftState | undefined> {
  const vm = createdBefore(step, failure);
  if (vm === undefined) return undefined;
  let netvm: ActualProperty | undefined;
  let firewall: string[];
  try {
    const [properties, rules] = await Promise.all([io.reader.properties({ vm }), io.reader.firewall(vm)]);
    netvm = properties.get("netvm");
    firewall = rules;
  } catch (e) {
    return { kind: "unread", vm, detail: e instanceof Error ? e.message : String(e) };
  }
  if (netvm === undefined) return { kind: "unread", vm, detail: "qubesd did not list its netvm" };
  const ops = adminOps(step);
  const wantNetvm = ops.find((o) => o.op === "property.set" && o.holder !== "global" && o.holder.vm === vm && o.name === "netvm");
  const wantFirewall = ops.find((o) => o.op === "firewall.set" && o.vm === vm);
  const now = netvmOf(netvm);
  const netvmShort = wantNetvm?.op === "property.set" && (netvm.isDefault || netvm.raw !== wantNetvm.value);
  const firewallShort = wantFirewall?.op === "firewall.set" && now !== null && !sameList(firewall, wantFirewall.rules);
  const left = { vm, netvm: now, netvmDefault: netvm.isDefault, firewall };
  if (!netvmShort && !firewallShort) return { kind: "left", ...left };
  const removed = await io.run({ op: "vm.remove", vm });
  if (removed.kind === "ok") return { kind: "removed", vm, netvm: now, firewall };
  return { kind: "left", ...left, removal: removed.failure.message };
}

/** `drop`, `accept dsthost=example.org proto=tcp dstports=443-443, drop`, `none (no rules)`. */
const describeFirewall = (rules: readonly string[]): string => (rules.length === 0 ? "none (no rules)" : rules.map((r) => r.replace(/^action=/, "")).join(", "));

/** One line for a person: `offline1 left with netvm none, firewall drop`. */
export function describeLeftState(l: LeftState): string {
  switch (l.kind) {
    case "left": {
      const netvm = `${l.netvm ?? "none"}${l.netvmDefault ? " (the default)" : ""}`;
      const was = `${l.vm} left with netvm ${netvm}, firewall ${describeFirewall(l.firewall)}`;
      return l.removal === undefined ? was : `${was}; more connected than the config asks, and removing it again failed: ${l.removal}`;
    }
    case "removed":
      return `${l.vm} removed again: it was left with netvm ${l.netvm ?? "none"}, firewall ${describeFirewall(l.firewall)}, more connected than the config asks`;
    case "unread":
      return `${l.vm}: how it was left could not be read (${l.detail})`;
    default: {
      const never: never = l;
      return never;
    }
  }
}

/** The `left` field of apply's JSON failure events (schemas/apply-events.schema.json). */
export function leftStateJson(l: LeftState): Record<string, unknown> {
  switch (l.kind) {
    case "left":
      return { qube: l.vm, state: "left", netvm: l.netvm, netvm_default: l.netvmDefault, firewall: l.firewall, ...(l.removal !== undefined ? { removal_error: l.removal } : {}), text: describeLeftState(l) };
    case "removed":
      return { qube: l.vm, state: "removed", netvm: l.netvm, firewall: l.firewall, text: describeLeftState(l) };
    case "unread":
      return { qube: l.vm, state: "unread", detail: l.detail, text: describeLeftState(l) };
    default: {
      const never: never = l;
      return never;
    }
  }
}
