// Qubes' own naming and value rules (qubes-core-admin: qubes/vm/__init__.py validate_name,
// qubes/utils.py labels, qubes/api/admin.py features/tags/pools, qubes/firewall.py rules).
// Shared by the config validator (to reject bad input before any call) and the simulator
// (to answer as qubesd does). Pure: no I/O. Messages are the server's own texts.

import { parseIPv4 } from "./ip-address.js";

/** The characters qrexec allows in a service argument (qrexec-daemon sanitize_name + '+'). */
export const QREXEC_ARG_RE = /^[A-Za-z0-9_.+-]*$/;
/** Hard cap of qubesd on one request, header and payload together. */
export const MAX_REQUEST_BYTES = 65536;

const VM_NAME_RE = /^[a-zA-Z][a-zA-Z0-9_.-]*$/;
const UUID_DEST_RE = /^uuid:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** qubesd's validate_name: returns the server's error message, or null when valid. */
export function checkVmName(name: string): string | null {
  if (name.length > 31) return "VM name must be shorter than 32 characters";
  if (/^[0-9_.-]/.test(name)) return "VM name cannot start with hyphen, underscore, dot or numbers";
  if (!VM_NAME_RE.test(name)) return "VM name contains illegal characters";
  if (name === "Domain-0") return "VM name cannot be 'Domain-0'";
  if (name === "none" || name === "default") return "VM name cannot be 'none' nor 'default'";
  if (name.endsWith("-dm")) return "VM name cannot end with -dm";
  return null;
}

/** A call destination: a VM name or `uuid:<canonical lowercase uuid>`. */
export function checkDestination(dest: string): string | null {
  if (dest.startsWith("uuid:")) {
    return UUID_DEST_RE.test(dest) ? null : `VM UUID is not valid: '${dest.slice(5)}'`;
  }
  return checkVmName(dest);
}

const TAG_RE = /^[A-Za-z0-9_-]+$/;
export function checkTagName(tag: string): string | null {
  if (tag === "") return "tag cannot be empty";
  if (!TAG_RE.test(tag)) return "disallowed characters";
  return null;
}

const LABEL_NAME_RE = /^[A-Za-z0-9_.-]+$/;
export function checkLabelName(name: string, creation = false): string | null {
  if (name === "") return "Label name must be set";
  if (creation && /^[0-9]+$/.test(name)) return "Label must not be a digit";
  if (!LABEL_NAME_RE.test(name)) return "Label must be in safe set: [A-Za-z0-9_.-]";
  return null;
}

/** Label colour as qubesd accepts it: `0x` + 6 hex digits (8 chars after strip). */
export function checkLabelColour(value: string): string | null {
  if (!/^[\x00-\x7f]*$/.test(value)) return "Label value must be ASCII";
  const v = value.trim();
  if (v.length !== 8) return "Label value must have length of 8";
  if (!v.startsWith("0x")) return "Label value must start with 0x";
  if (!/^0x[0-9A-Fa-f]{6}$/.test(v)) return "Label value must be in hex format";
  return null;
}

export const DEFAULT_LABELS: ReadonlyArray<readonly [string, string]> = [
  ["red", "0xcc0000"],
  ["orange", "0xf57900"],
  ["yellow", "0xedd400"],
  ["green", "0x73d216"],
  ["gray", "0x555555"],
  ["blue", "0x3465a4"],
  ["purple", "0x75507b"],
  ["black", "0x000000"],
];

const FEATURE_NAME_RE = /^[a-zA-Z0-9_.-]+$/;
const FEATURE_VALUE_RE = /^[\x20-\x7e]*$/;
export function checkFeatureName(name: string): string | null {
  return FEATURE_NAME_RE.test(name) ? null : "feature name contains illegal characters";
}
export function checkFeatureValue(name: string, value: string): string | null {
  return FEATURE_VALUE_RE.test(value) ? null : `${name} value contains illegal characters`;
}
/** Features the Admin API refuses to change for any caller (qubes.ext.admin). */
export const PROHIBITED_FEATURES: ReadonlySet<string> = new Set([
  "deferred-netvm-original",
  "preload-dispvm",
  "preload-dispvm-completed",
  "preload-dispvm-in-progress",
]);

const POOL_NAME_RE = /^[A-Za-z0-9_.-]+$/;
export function checkPoolName(name: string): string | null {
  return POOL_NAME_RE.test(name) ? null : "Pool name must be in safe set: [A-Za-z0-9_.-]";
}

/** qubes.property.bool: case-insensitive 1/yes/true/on and 0/no/false/off. */
export function parseQubesBool(value: string): boolean | null {
  const v = value.trim().toLowerCase();
  if (v === "1" || v === "yes" || v === "true" || v === "on") return true;
  if (v === "0" || v === "no" || v === "false" || v === "off") return false;
  return null;
}

/** validate_number (volume size, revisions_to_keep): the server's ProtocolError text or null. */
export function checkDecimal(value: string, what: string, allowNegative: boolean): string | null {
  const digits = allowNegative && value.startsWith("-") ? value.slice(1) : value;
  if (!/^[0-9]+$/.test(digits)) return `${what} contains non ASCII digits`;
  if (digits.length >= 20) return `${what} is bigger than 19 decimal digits`;
  if (digits.length > 1 && digits.startsWith("0")) return `${what} contains spurious leading zeros`;
  return null;
}

// ---------------------------------------------------------------------------------------------
// Firewall rules (qubes/firewall.py). A rule is parsed from the API string form and printed in
// the server's canonical option order, which is what admin.vm.firewall.Get returns.

export type FirewallRule = {
  action: "accept" | "drop";
  /** dsthost in canonical form: IPs carry their prefix length (`/32`, `/128`). */
  dst?: { kind: "dst4" | "dst6" | "dsthost"; value: string };
  proto?: "tcp" | "udp" | "icmp";
  specialtarget?: "dns";
  /** [from, to]; printed `from-to`. */
  dstports?: [number, number];
  icmptype?: number;
  expire?: number;
  comment?: string;
};

const OPTION_CHARS_RE = /^[A-Za-z0-9:;,./\-_[\]]*$/;
const COMMENT_CHARS_RE = /^[A-Za-z0-9:;,./\-_[\] ]*$/;
const HOSTNAME_RE = /^[a-z0-9._-]+$/;

export type FirewallParse = { ok: true; rule: FirewallRule } | { ok: false; error: string };

/** Parses one rule line the way Rule.from_api_string does; error texts are ours (qubesd sends none). */
export function parseFirewallRule(line: string): FirewallParse {
  if (!/^[\x00-\x7f]*$/.test(line)) return { ok: false, error: "Rules contains non-ASCII characters" };
  const idx = line.indexOf("comment=");
  const optionsPart = idx >= 0 ? line.slice(0, idx) : line;
  const comment = idx >= 0 ? line.slice(idx + "comment=".length) : "";
  const kv = new Map<string, string>();
  const trimmed = optionsPart.trim();
  if (trimmed === "") return { ok: false, error: "rule has no options" };
  for (const option of trimmed.split(" ")) {
    const eq = option.indexOf("=");
    if (eq < 0) return { ok: false, error: `option '${option}' is not key=value` };
    let key = option.slice(0, eq);
    const value = option.slice(eq + 1);
    if (key === "dst4" || key === "dst6" || key === "dstname") key = "dsthost";
    if (!["action", "proto", "dsthost", "dstports", "icmptype", "specialtarget", "expire"].includes(key)) {
      return { ok: false, error: `unknown firewall option '${key}'` };
    }
    if (kv.has(key)) return { ok: false, error: `option '${key}' already set` };
    if (!OPTION_CHARS_RE.test(value)) return { ok: false, error: `option '${key}' has disallowed characters` };
    kv.set(key, value);
  }
  if (comment !== "" && !COMMENT_CHARS_RE.test(comment)) {
    return { ok: false, error: "comment has disallowed characters" };
  }
  const fields: Record<string, string | undefined> = Object.fromEntries(kv);
  return buildFirewallRule({ ...fields, comment: comment === "" ? undefined : comment });
}

/** Builds a canonical rule from separate option values (as a config gives them). */
export function buildFirewallRule(o: Record<string, string | undefined>): FirewallParse {
  const fail = (error: string): FirewallParse => ({ ok: false, error });
  if (o.action !== "accept" && o.action !== "drop") {
    return fail(o.action === undefined ? "action is required" : `action must be accept or drop, not '${o.action}'`);
  }
  const rule: FirewallRule = { action: o.action };
  if (o.expire !== undefined) {
    if (!/^[0-9]+$/.test(o.expire)) return fail("expire must be a UNIX timestamp");
    rule.expire = Number(o.expire);
  }
  if (o.dsthost !== undefined) {
    const dst = parseDstHost(o.dsthost);
    if ("error" in dst) return fail(dst.error);
    rule.dst = dst;
  }
  if (o.proto !== undefined) {
    if (o.proto !== "tcp" && o.proto !== "udp" && o.proto !== "icmp") {
      return fail(`proto must be tcp, udp or icmp, not '${o.proto}'`);
    }
    rule.proto = o.proto;
  }
  if (o.specialtarget !== undefined) {
    if (o.specialtarget !== "dns") return fail(`specialtarget must be dns, not '${o.specialtarget}'`);
    rule.specialtarget = "dns";
  }
  if (o.dstports !== undefined) {
    if (rule.proto !== "tcp" && rule.proto !== "udp") return fail("dstports valid only for 'tcp' and 'udp' protocols");
    const m = /^([0-9]+)(?:-([0-9]+))?$/.exec(o.dstports);
    if (!m) return fail(`dstports must be N or N-M, not '${o.dstports}'`);
    const from = Number(m[1]);
    const to = m[2] === undefined ? from : Number(m[2]);
    if (from > 65535 || to > 65535) return fail("Ports out of range");
    if (from > to) return fail("Invalid port range");
    rule.dstports = [from, to];
  }
  if (o.icmptype !== undefined) {
    if (rule.proto !== "icmp") return fail("icmptype valid only for 'icmp' protocol");
    if (!/^[0-9]{1,3}$/.test(o.icmptype) || Number(o.icmptype) > 255) return fail("ICMP type out of range");
    rule.icmptype = Number(o.icmptype);
  }
  if (o.comment !== undefined && o.comment !== "") {
    if (!COMMENT_CHARS_RE.test(o.comment)) return fail("comment may contain only letters, digits, spaces and :;,./-_[]");
    rule.comment = o.comment;
  }
  return { ok: true, rule };
}

function parseDstHost(value: string): NonNullable<FirewallRule["dst"]> | { error: string } {
  const slashes = value.split("/").length - 1;
  if (slashes > 1) return { error: `Too many /: ${value}` };
  const [host = "", prefixText] = value.split("/");
  let prefix: number | undefined;
  if (prefixText !== undefined) {
    if (!/^[0-9]+$/.test(prefixText)) return { error: `invalid prefix length '${prefixText}'` };
    prefix = Number(prefixText);
  }
  if (isIPv6(host)) {
    const p = prefix ?? 128;
    if (p > 128) return { error: "netmask for IPv6 must be <= 128" };
    return { kind: "dst6", value: `${host}/${p}` };
  }
  if (isIPv4(host)) {
    const p = prefix ?? 32;
    if (p > 32) return { error: "netmask for IPv4 must be <= 32" };
    return { kind: "dst4", value: `${host}/${p}` };
  }
  if (prefix !== undefined) return { error: `Invalid IP address: ${host}` };
  if (!HOSTNAME_RE.test(host)) return { error: `invalid host name '${host}' (allowed: a-z 0-9 . _ -)` };
  return { kind: "dsthost", value: host };
}

/** inet_pton(AF_INET) as qubes/firewall.py and Python's IPv4Address take it: no leading zeros ("010.1.1.1" is not an address). */
function isIPv4(s: string): boolean {
  return parseIPv4(s) !== null;
}

function isIPv6(s: string): boolean {
  if (!s.includes(":") || !/^[0-9A-Fa-f:.]+$/.test(s)) return false;
  const halves = s.split("::");
  if (halves.length > 2) return false;
  const groups = (h: string) => (h === "" ? [] : h.split(":"));
  const all = halves.flatMap(groups);
  let count = 0;
  for (const [i, g] of all.entries()) {
    if (g.includes(".")) {
      if (i !== all.length - 1 || !isIPv4(g)) return false;
      count += 2;
    } else {
      if (!/^[0-9A-Fa-f]{1,4}$/.test(g)) return false;
      count += 1;
    }
  }
  return halves.length === 2 ? count < 8 : count === 8;
}

/** The server's canonical form (Rule.api_rule): action expire dst proto specialtarget dstports icmptype comment. */
export function formatFirewallRule(rule: FirewallRule): string {
  const parts = [`action=${rule.action}`];
  if (rule.expire !== undefined) parts.push(`expire=${rule.expire}`);
  if (rule.dst) parts.push(`${rule.dst.kind}=${rule.dst.value}`);
  if (rule.proto) parts.push(`proto=${rule.proto}`);
  if (rule.specialtarget) parts.push(`specialtarget=${rule.specialtarget}`);
  if (rule.dstports) parts.push(`dstports=${rule.dstports[0]}-${rule.dstports[1]}`);
  if (rule.icmptype !== undefined) parts.push(`icmptype=${rule.icmptype}`);
  if (rule.comment !== undefined) parts.push(`comment=${rule.comment}`);
  return parts.join(" ");
}

// ---------------------------------------------------------------------------------------------
// Property values (qubes/__init__.py property.sanitize; setters in qubes/vm/qubesvm.py and
// qubes/vm/mix/net.py). Messages are the server's where it sends one, ours otherwise.

const PYTHON_PRINTABLE_RE = /^[\x20-\x7e\t\n\r\x0b\x0c]*$/;

/** property.sanitize of a str-typed property value: ASCII, then Python's `string.printable`. */
export function checkStrPropertyValue(value: string): string | null {
  if (!/^[\x00-\x7f]*$/.test(value)) return "Non-ASCII bytes in property value";
  if (!PYTHON_PRINTABLE_RE.test(value)) return "Invalid characters in property value";
  return null;
}

const POSITIVE_INT_PROPERTIES: ReadonlySet<string> = new Set(["memory", "vcpus", "qrexec_timeout", "shutdown_timeout", "stubdom_mem"]);
const DEFAULT_USER_RE = /^[A-Za-z0-9_\-+,.]*$/;
const MAC_RE = /^([0-9a-f][0-9a-f]:){5}[0-9a-f][0-9a-f]$/;
const DEVICES_DENIED_RE = /^([bump*][0-9a-f*]{6})*$/;

/** The setter rule of a qube property beyond its type (after sanitize): the server's message, or null. */
export function checkVmPropertyRule(name: string, value: string | number | boolean): string | null {
  if (typeof value === "number") {
    if (POSITIVE_INT_PROPERTIES.has(name) && value <= 0) return `${name} must be positive`;
    if (name === "maxmem" && value < 0) return "maxmem must be positive or zero";
    return null;
  }
  if (typeof value !== "string") return null;
  switch (name) {
    case "kernel":
      return value.includes("/") ? "Kernel name cannot contain '/'" : null;
    case "kernelopts":
      return value.length > 512 ? "Kernelopts value too long (512 chars max)" : null;
    case "default_user":
      return DEFAULT_USER_RE.test(value) ? null : "Username can contain only those characters: letters, digits and _-+,.";
    case "virt_mode":
      return ["hvm", "pv", "pvh"].includes(value.toLowerCase()) ? null : "Invalid virtualization mode, supported values: hvm, pv, pvh";
    case "keyboard_layout":
      return checkKeyboardLayout(value);
    case "mac":
      return MAC_RE.test(value.toLowerCase()) ? null : "Invalid MAC address value";
    case "ip":
      return isIPv4(value) ? null : `'${value}' is not an IPv4 address (four numbers 0-255, no leading zeros)`;
    case "ip6":
      return isIPv6(value) ? null : `'${value}' is not an IPv6 address`;
    case "devices_denied":
      return DEVICES_DENIED_RE.test(value) ? null : "devices_denied must be 7-character interface codes like u0e0100";
    default:
      return null;
  }
}

function checkKeyboardLayout(value: string): string | null {
  if (!/^[\x00-\x7f]*$/.test(value)) return "Keyboard layouts must be ASCII";
  const parts = value.split("+");
  if (parts.length !== 3) return "invalid number of keyboard layout parameters";
  const [layout = "", variant = "", options = ""] = parts;
  if (!/^[A-Za-z]+$/.test(layout)) return "Invalid keyboard layout provided";
  if (!/^[A-Za-z0-9_-]*$/.test(variant)) return "Invalid layout variant provided";
  if (!/^[A-Za-z0-9_:,-]*$/.test(options)) return "Invalid layout options provided";
  return null;
}
