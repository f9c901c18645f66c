// The order of a qube's network-isolation writes within its step: its `netvm` and its firewall
// (with the firewall's record) go before everything else, so that a failure at any later call
// leaves the qube at most as connected as the config asks (docs/ownership.md, "The order of
// writes"). Pure: it only reorders the ops the diff built.

import type { Op } from "./ops.js";

/** The ops of one isolation write: the call, with the record written just before it (if any). */
type Group = Op[];

const isNetvm = (o: Op, vm: string): boolean => (o.op === "property.set" || o.op === "property.reset") && o.holder !== "global" && o.holder.vm === vm && o.name === "netvm";

/** A firewall that lets everything through (Qubes' default): setting it narrows nothing. */
const acceptsAll = (rules: readonly string[]): boolean => rules[0] === "action=accept";

/**
 * Takes the netvm op and the firewall op (with its record, which the diff writes just before it)
 * of `vm` out of `ops`.
 */
function extract(ops: readonly Op[], vm: string): { netvm?: Group; firewall?: Group; rest: Op[] } {
  const out: { netvm?: Group; firewall?: Group; rest: Op[] } = { rest: [] };
  for (const [i, o] of ops.entries()) {
    if (isNetvm(o, vm)) out.netvm = [o];
    else if (o.op === "firewall.set" && o.vm === vm) {
      const prev = ops[i - 1];
      const record = prev !== undefined && prev.op === "record.set" && prev.vm === vm && prev.record === "firewall" ? out.rest.pop() : undefined;
      out.firewall = record !== undefined ? [record, o] : [o];
    } else out.rest.push(o);
  }
  return out;
}

/**
 * A new qube's ops: right after `Create` (which gives it the default netvm) and the read of its
 * UUID (which every record of it is bound to), its netvm, then its firewall record and firewall;
 * then the rest in the order they were built.
 */
export function isolateCreate(ops: readonly Op[], vm: string): Op[] {
  const created = ops.findIndex((o) => o.op === "vm.create" && o.name === vm);
  const at = ops[created + 1]?.op === "vm.uuid" ? created + 1 : created;
  if (created < 0) return [...ops];
  const { netvm, firewall, rest } = extract(ops, vm);
  return [...rest.slice(0, at + 1), ...(netvm ?? []), ...(firewall ?? []), ...rest.slice(at + 1)];
}

/**
 * An existing qube's attribute ops: a firewall that narrows before a netvm change that connects
 * it (to another netvm, or back to the default); a netvm change to none before the firewall (it
 * disconnects the qube); both before the rest, in the order they were built. A firewall that lets
 * everything through (back to Qubes' default, or an explicit accept-all) narrows nothing: it
 * comes after the netvm.
 */
export function isolateUpdate(ops: readonly Op[], vm: string): Op[] {
  const { netvm = [], firewall = [], rest } = extract(ops, vm);
  const fw = firewall.at(-1);
  const n = netvm[0];
  const narrows = fw !== undefined && fw.op === "firewall.set" && !acceptsAll(fw.rules);
  const disconnects = n !== undefined && n.op === "property.set" && n.value === "";
  return narrows && !disconnects ? [...firewall, ...netvm, ...rest] : [...netvm, ...firewall, ...rest];
}
