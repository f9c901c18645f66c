// Values as qubesd stores them. qubesd rewrites some of the values it accepts (a MAC address and
// virt_mode lower-cased, ip6 in Python's compressed form, a pool's dir_path normalised), so a
// config value compared as written would differ after every apply and never converge. Each
// function gives the stored form, or an error for a value whose stored form differs by release
// or is not what the user meant (qubes-iac refuses it before any call). Pure.

import { ipv4Network, ipv6Network, parseIPv4, parseIPv6 } from "./ip-address.js";
import type { FirewallRule } from "./qubes-rules.js";

export type Canonical = { ok: true; value: string } | { ok: false; error: string };

const ok = (value: string): Canonical => ({ ok: true, value });

/**
 * The stored form of a str-typed qube property value (after checkVmPropertyRule accepted it).
 * Upstream: qubes/vm/mix/net.py `_setter_mac` (value.lower()), qubes/vm/qubesvm.py
 * `_setter_virt_mode` (value.lower()), net.py `ip6 = qubes.property(type=ipaddress.IPv6Address)`
 * (printed by str(), compressed lower case); the same on release4.2, release4.3 and main.
 */
export function canonicalQubeProperty(name: string, value: string): Canonical {
  switch (name) {
    case "mac":
    case "virt_mode":
      return ok(value.toLowerCase());
    case "ip6": {
      // Python 3.13 (R4.3's dom0) prints an IPv4-mapped address dotted, 3.11 (R4.2's) in hex.
      if (value.includes(".")) return { ok: false, error: `'${value}': write the IPv6 address in hex groups only (qubesd prints an embedded IPv4 address differently by release)` };
      const c = parseIPv6(value);
      return c === null ? { ok: false, error: `'${value}' is not an IPv6 address` } : ok(c);
    }
    case "devices_denied": {
      // release4.3 qubes/vm/qubesvm.py _setter_denied_list stores the codes deduplicated and sorted.
      if (value.length % 7 !== 0) return ok(value);
      const codes = new Set<string>();
      for (let i = 0; i < value.length; i += 7) codes.add(value.slice(i, i + 7));
      return ok([...codes].sort().join(""));
    }
    default:
      return ok(value);
  }
}

/** POSIX os.path.normpath (Python's posixpath.normpath: two leading slashes are kept, three or more become one). */
export function normpath(p: string): string {
  if (p === "") return ".";
  const lead = p.startsWith("//") && !p.startsWith("///") ? "//" : p.startsWith("/") ? "/" : "";
  const out: string[] = [];
  for (const part of p.split("/")) {
    if (part === "" || part === ".") continue;
    if (part !== ".." || (lead === "" && (out.length === 0 || out[out.length - 1] === ".."))) out.push(part);
    else if (out.length > 0) out.pop();
  }
  const joined = lead + out.join("/");
  return joined === "" ? "." : joined;
}

/** Drivers whose dir_path qubesd rewrites, and how (the path must be absolute: abspath depends on qubesd's working directory). */
const DIR_PATH_DRIVERS: ReadonlySet<string> = new Set([
  // qubes/storage/file.py FilePool.__init__: os.path.normpath(dir_path)
  "file",
  // qubes/storage/reflink.py ReflinkPool.__init__: os.path.abspath(dir_path)
  "file-reflink",
  // qubes/storage/kernels.py LinuxKernel.__init__ keeps it as given: the normalised form is stored as sent
  "linux-kernel",
]);

/** The stored form of a pool parameter. */
export function canonicalPoolParam(driver: string, key: string, value: string): Canonical {
  if (key !== "dir_path" || !DIR_PATH_DRIVERS.has(driver)) return ok(value);
  if (!value.startsWith("/")) return { ok: false, error: `dir_path '${value}' must be an absolute path` };
  return ok(normpath(value));
}

/**
 * A firewall rule as qubes-iac sends it. qubesd keeps a host as written (qubes/firewall.py
 * DstHost: inet_pton only checks it), so sending the canonical form is what makes it read back
 * the same; a dotted quad with leading zeros, which inet_pton refuses, is a DNS name to qubesd.
 */
export function canonicalFirewallRule(rule: FirewallRule): { ok: true; rule: FirewallRule } | { ok: false; error: string } {
  const dst = rule.dst;
  if (dst === undefined) return { ok: true, rule };
  if (dst.kind === "dsthost") {
    const parts = dst.value.split(".");
    if (parts.length === 4 && parts.every((p) => /^[0-9]{1,3}$/.test(p)) && parseIPv4(dst.value) === null) {
      return { ok: false, error: `dsthost ${dst.value} has leading zeros: qubesd takes it for a DNS name, not an IPv4 address` };
    }
    return { ok: true, rule };
  }
  const [addr = "", prefixText = ""] = dst.value.split("/");
  const prefix = Number(prefixText);
  const value = dst.kind === "dst4" ? ipv4Network(addr, prefix) : ipv6Network(addr, prefix);
  return { ok: true, rule: { ...rule, dst: { kind: dst.kind, value } } };
}
