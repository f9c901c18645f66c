// Judges two ordered firewall rule lists by effect, not by line: the first rule that matches a
// packet decides, and a packet no rule matches is dropped (QubesOS/qubes-core-admin
// qubes/firewall.py: `Firewall.policy` is always drop). Every packet class the rules of either
// list can tell apart is tried once, so a new accept, a drop removed or moved below an accept,
// and a wider host or port range are all found, and a rewrite that accepts the same is not. Pure.

import { parseIPv6 } from "../model/ip-address.js";
import { parseFirewallRule, type FirewallRule } from "../model/qubes-rules.js";

/** What the new list accepts that the old did not, as one example packet a reviewer can read. */
export type FirewallWidening = { example: string };

type Family = "ipv4" | "ipv6" | "name";
type Proto = "tcp" | "udp" | "icmp" | "other";
type Packet = { family: Family; addr: bigint; name: string; proto: Proto; port: number; icmp: number };

type Range = { family: "ipv4" | "ipv6"; from: bigint; to: bigint };

/** Qubes' virtual DNS servers, which `specialtarget=dns` means (qubes/vm/mix/net.py `dns`). */
const DNS_SERVERS: readonly Range[] = [
  { family: "ipv4", from: 0x0a8b0101n, to: 0x0a8b0101n },
  { family: "ipv4", from: 0x0a8b0102n, to: 0x0a8b0102n },
];

/** Above this many packet classes the lists are judged line by line (conservatively) instead. */
const MAX_CLASSES = 200_000;

function ipv4Value(text: string): bigint {
  return text.split(".").reduce((acc, p) => acc * 256n + BigInt(Number(p)), 0n);
}

function ipv6Value(text: string): bigint {
  const [head = "", tail] = text.split("::");
  const groups = (x: string): string[] => (x === "" ? [] : x.split(":"));
  const h = groups(head);
  const t = tail === undefined ? [] : groups(tail);
  const all = [...h, ...Array<string>(8 - h.length - t.length).fill("0"), ...t];
  return all.reduce((acc, g) => acc * 65536n + BigInt(Number.parseInt(g, 16)), 0n);
}

function rangeOf(dst: NonNullable<FirewallRule["dst"]>): Range | undefined {
  if (dst.kind === "dsthost") return undefined;
  const [addr = "", prefixText = ""] = dst.value.split("/");
  const family = dst.kind === "dst4" ? "ipv4" : "ipv6";
  const bits = family === "ipv4" ? 32n : 128n;
  const prefix = BigInt(Number(prefixText));
  const base = family === "ipv4" ? ipv4Value(addr) : ipv6Value(addr);
  const size = 1n << (bits - prefix);
  const from = (base / size) * size;
  return { family, from, to: from + size - 1n };
}

const inRange = (p: Packet, r: Range): boolean => p.family === r.family && p.addr >= r.from && p.addr <= r.to;

function matches(rule: FirewallRule, p: Packet): boolean {
  if (rule.dst !== undefined) {
    const r = rangeOf(rule.dst);
    if (r === undefined ? p.family !== "name" || p.name !== rule.dst.value : !inRange(p, r)) return false;
  }
  if (rule.proto !== undefined && p.proto !== rule.proto) return false;
  if (rule.dstports !== undefined && ((p.proto !== "tcp" && p.proto !== "udp") || p.port < rule.dstports[0] || p.port > rule.dstports[1])) return false;
  if (rule.icmptype !== undefined && (p.proto !== "icmp" || p.icmp !== rule.icmptype)) return false;
  if (rule.specialtarget === "dns" && (!DNS_SERVERS.some((d) => inRange(p, d)) || (p.proto !== "tcp" && p.proto !== "udp") || p.port !== 53)) return false;
  return true;
}

function accepts(rules: readonly FirewallRule[], p: Packet): boolean {
  for (const r of rules) if (matches(r, p)) return r.action === "accept";
  return false;
}

/** The lower end of every cell the ranges cut [min, max] into. */
function cellStarts(min: bigint, max: bigint, ranges: ReadonlyArray<{ from: bigint; to: bigint }>): bigint[] {
  const out = new Set<bigint>([min]);
  for (const r of ranges) {
    out.add(r.from);
    if (r.to < max) out.add(r.to + 1n);
  }
  return [...out].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}

function packetClasses(rules: readonly FirewallRule[]): Packet[] | undefined {
  const ranges = rules.flatMap((r) => (r.dst === undefined ? [] : [rangeOf(r.dst)].filter((x): x is Range => x !== undefined)));
  const special = rules.some((r) => r.specialtarget === "dns") ? DNS_SERVERS : [];
  const dsts: Array<Pick<Packet, "family" | "addr" | "name">> = [];
  for (const family of ["ipv4", "ipv6"] as const) {
    const max = family === "ipv4" ? (1n << 32n) - 1n : (1n << 128n) - 1n;
    for (const addr of cellStarts(0n, max, [...ranges, ...special].filter((r) => r.family === family))) dsts.push({ family, addr, name: "" });
  }
  for (const r of rules) if (r.dst?.kind === "dsthost" && !dsts.some((d) => d.name === r.dst?.value)) dsts.push({ family: "name", addr: 0n, name: r.dst.value });
  const portRanges = rules.flatMap((r) => (r.dstports === undefined ? [] : [{ from: BigInt(r.dstports[0]), to: BigInt(r.dstports[1]) }]));
  if (special.length > 0) portRanges.push({ from: 53n, to: 53n });
  const ports = cellStarts(0n, 65535n, portRanges).map(Number);
  const icmps = [-1, ...new Set(rules.flatMap((r) => (r.icmptype === undefined ? [] : [r.icmptype])))];
  if (dsts.length * (2 * ports.length + icmps.length + 1) > MAX_CLASSES) return undefined;
  const out: Packet[] = [];
  for (const d of dsts) {
    for (const proto of ["tcp", "udp"] as const) for (const port of ports) out.push({ ...d, proto, port, icmp: -1 });
    for (const icmp of icmps) out.push({ ...d, proto: "icmp", port: 0, icmp });
    out.push({ ...d, proto: "other", port: 0, icmp: -1 });
  }
  return out;
}

function describe(p: Packet): string {
  const host =
    p.family === "name"
      ? p.name
      : p.family === "ipv4"
        ? [24n, 16n, 8n, 0n].map((s) => String((p.addr >> s) & 255n)).join(".")
        : (() => {
            const full = [...Array(8).keys()].map((i) => ((p.addr >> BigInt((7 - i) * 16)) & 0xffffn).toString(16)).join(":");
            return parseIPv6(full) ?? full;
          })();
  const what = p.proto === "tcp" || p.proto === "udp" ? `${p.proto} port ${p.port}` : p.proto === "icmp" ? (p.icmp < 0 ? "icmp" : `icmp type ${p.icmp}`) : "other protocols";
  return `${what} to ${host}`;
}

function parseAll(lines: readonly string[]): FirewallRule[] | undefined {
  const out: FirewallRule[] = [];
  for (const l of lines) {
    const r = parseFirewallRule(l);
    if (!r.ok) return undefined;
    out.push(r.rule);
  }
  return out;
}

/**
 * A packet class the `after` list accepts and `before` drops; undefined when `after` accepts
 * nothing more. Lists that cannot be parsed, or too large to try every class, are judged line by
 * line: any accept line `before` lacks, or a drop line it had and `after` lacks, counts as wider.
 */
export function firewallWidening(before: readonly string[], after: readonly string[]): FirewallWidening | undefined {
  const old = parseAll(before);
  const now = parseAll(after);
  const classes = old !== undefined && now !== undefined ? packetClasses([...old, ...now]) : undefined;
  if (old === undefined || now === undefined || classes === undefined) {
    const added = after.find((l) => /(^| )action=accept( |$)/.test(l) && !before.includes(l));
    if (added !== undefined) return { example: `a new rule: ${added}` };
    const dropped = before.find((l) => /(^| )action=drop( |$)/.test(l) && !after.includes(l));
    return dropped === undefined ? undefined : { example: `a rule removed: ${dropped}` };
  }
  for (const p of classes) if (accepts(now, p) && !accepts(old, p)) return { example: describe(p) };
  return undefined;
}
