// Resource addresses: how plans, diagnostics, --target and --exclude name what qubes-iac manages
// (`qube.work`, `label.magenta`, `pool.fast`, `properties` for the global properties, `guest.vm1`
// for a VM reached through its guest agent and `guest.qube.work` for a qube's inside). Parsing
// and printing only; which resources exist is decided elsewhere.

export type ResourceType = "qube" | "label" | "pool" | "properties" | "guest" | "policy";

/** A guest's name is `vm1` (top-level) or `qube.work` (a qube's guest); a policy file's `30-gpg` or `include.NAME`. */
export type Address = { type: "qube" | "label" | "pool" | "guest" | "policy"; name: string } | { type: "properties" };

export const qubeAddress = (name: string): Address => ({ type: "qube", name });
export const labelAddress = (name: string): Address => ({ type: "label", name });
export const poolAddress = (name: string): Address => ({ type: "pool", name });
export const GLOBAL_PROPERTIES: Address = { type: "properties" };

export function formatAddress(a: Address): string {
  return a.type === "properties" ? "properties" : `${a.type}.${a.name}`;
}

const NAME_RE = /^[A-Za-z0-9_.-]+$/;

export type AddressParse = { ok: true; address: Address } | { ok: false; error: string };

/** Parses `qube.NAME`, `label.NAME`, `pool.NAME`, `guest.NAME`, `guest.qube.NAME` or `properties`. */
export function parseAddress(text: string): AddressParse {
  if (text === "properties") return { ok: true, address: GLOBAL_PROPERTIES };
  const dot = text.indexOf(".");
  const type = dot < 0 ? text : text.slice(0, dot);
  const name = dot < 0 ? "" : text.slice(dot + 1);
  if (type !== "qube" && type !== "label" && type !== "pool" && type !== "guest" && type !== "policy") {
    return { ok: false, error: `'${text}' is not an address: use qube.NAME, label.NAME, pool.NAME, guest.NAME, guest.qube.NAME, policy.NAME, policy.include.NAME or properties` };
  }
  if (!NAME_RE.test(name)) return { ok: false, error: `'${text}' has no valid name after '${type}.'` };
  return { ok: true, address: { type, name } };
}

/** Orders addresses for stable output: labels, pools, qubes, the global properties, guests, then policy files. */
export function compareAddresses(a: string, b: string): number {
  const rank = (s: string): number => (s.startsWith("label.") ? 0 : s.startsWith("pool.") ? 1 : s.startsWith("qube.") ? 2 : s.startsWith("guest.") ? 4 : s.startsWith("policy.") ? 5 : 3);
  return rank(a) - rank(b) || (a < b ? -1 : a > b ? 1 : 0);
}
