// IP addresses in the textual forms qubesd gives them: Python's ipaddress module (the `ip` and
// `ip6` properties, qubes/vm/mix/net.py: IPv4Address, IPv6Address) and inet_pton (firewall
// hosts, qubes/firewall.py DstHost). Pure; shared by the config validator and the simulator.

/** A dotted quad as IPv4Address accepts it (no leading zeros), or null. */
export function parseIPv4(s: string): string | null {
  const parts = s.split(".");
  if (parts.length !== 4) return null;
  for (const p of parts) {
    if (!/^[0-9]{1,3}$/.test(p) || (p.length > 1 && p.startsWith("0")) || Number(p) > 255) return null;
  }
  return s;
}

/** The canonical (lower case, longest zero run as `::`) form of an IPv6 address, or null. */
export function parseIPv6(s: string): string | null {
  if (!/^[0-9A-Fa-f:.]+$/.test(s) || (s.match(/::/g) ?? []).length > 1) return null;
  const [head = "", tail] = s.split("::");
  const groups = (x: string): string[] => (x === "" ? [] : x.split(":"));
  const h = groups(head);
  const t = tail === undefined ? [] : groups(tail);
  const expand = (gs: string[]): string[] | null => {
    const out: string[] = [];
    for (const [i, g] of gs.entries()) {
      if (g.includes(".") && i === gs.length - 1) {
        const v4 = parseIPv4(g);
        if (!v4) return null;
        const [a = 0, b = 0, c = 0, d = 0] = v4.split(".").map(Number);
        out.push(((a << 8) | b).toString(16), ((c << 8) | d).toString(16));
      } else if (/^[0-9A-Fa-f]{1,4}$/.test(g)) out.push(Number.parseInt(g, 16).toString(16));
      else return null;
    }
    return out;
  };
  const eh = expand(h);
  const et = expand(t);
  if (!eh || !et) return null;
  const missing = 8 - eh.length - et.length;
  if (tail === undefined ? missing !== 0 : missing < 1) return null;
  const all = [...eh, ...Array<string>(missing).fill("0"), ...et];
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    let j = i;
    while (j < 8 && all[j] === "0") j++;
    if (j - i > bestLen) {
      best = i;
      bestLen = j - i;
    }
    i = j === i ? i + 1 : j;
  }
  if (best < 0) return all.join(":");
  return `${all.slice(0, best).join(":")}::${all.slice(best + bestLen).join(":")}`;
}

/** The 8 groups of an IPv6 address as numbers (parseIPv6 must have accepted it). */
function ipv6Groups(canonical: string): number[] {
  const [head = "", tail] = canonical.split("::");
  const nums = (x: string): number[] => (x === "" ? [] : x.split(":").map((g) => Number.parseInt(g, 16)));
  const h = nums(head);
  const t = tail === undefined ? [] : nums(tail);
  return [...h, ...Array<number>(8 - h.length - t.length).fill(0), ...t];
}

/** `addr/prefix` with the host bits cleared (ipaddress.ip_network(strict=False)); addr must be valid. */
export function ipv4Network(addr: string, prefix: number): string {
  const n = addr.split(".").reduce((acc, p) => acc * 256 + Number(p), 0);
  const size = 2 ** (32 - prefix);
  const net = Math.floor(n / size) * size;
  return `${[24, 16, 8, 0].map((s) => Math.floor(net / 2 ** s) % 256).join(".")}/${prefix}`;
}

/** The IPv6 counterpart of ipv4Network, in canonical form; addr must be valid. */
export function ipv6Network(addr: string, prefix: number): string {
  const canonical = parseIPv6(addr) ?? addr;
  const groups = ipv6Groups(canonical).map((g, i) => {
    const keep = Math.max(0, Math.min(16, prefix - i * 16));
    return keep === 16 ? g : g & (0xffff << (16 - keep)) & 0xffff;
  });
  return `${parseIPv6(groups.map((g) => g.toString(16)).join(":")) ?? canonical}/${prefix}`;
}
