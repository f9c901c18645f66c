// IP addresses in the textual form Python's ipaddress module gives them (IPv4Address,
// IPv6Address): parsing a property value, and printing the addresses qubesd derives.

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
