// Property value formats (reference §3): `default=<True|False> type=<t> <value>` from Get,
// `<name> <Get-format>` lines with `\\` and `\n` escaped from GetAll, `type=<t> <value>` from
// GetDefault. Pure parsing; a malformed value is an error value, never a guess.

export type PropertyType = "bool" | "int" | "str" | "vm" | "label";

export type PropertyValue = {
  isDefault: boolean;
  type: PropertyType;
  /** The value text exactly as qubesd sent it (unescaped). */
  raw: string;
  /** Typed: bool, int, str; vm and label as names; null for "no value" (empty vm = none, unset int/bool). */
  value: boolean | number | string | null;
};

const TYPES: ReadonlySet<string> = new Set(["bool", "int", "str", "vm", "label"]);

export type Parsed<T> = { ok: true; value: T } | { ok: false; error: string };

export function parseTypedValue(type: string, raw: string): Parsed<Omit<PropertyValue, "isDefault">> {
  if (!TYPES.has(type)) return { ok: false, error: `invalid value type '${type}'` };
  const t = type as PropertyType;
  switch (t) {
    case "bool":
      if (raw === "") return { ok: true, value: { type: t, raw, value: null } };
      if (raw !== "True" && raw !== "False") return { ok: false, error: `invalid bool '${raw}'` };
      return { ok: true, value: { type: t, raw, value: raw === "True" } };
    case "int":
      if (raw === "") return { ok: true, value: { type: t, raw, value: null } };
      if (!/^-?[0-9]+$/.test(raw)) return { ok: false, error: `invalid int '${raw}'` };
      return { ok: true, value: { type: t, raw, value: Number(raw) } };
    case "vm":
    case "label":
      return { ok: true, value: { type: t, raw, value: raw === "" ? null : raw } };
    case "str":
      return { ok: true, value: { type: t, raw, value: raw } };
    default: {
      const never: never = t;
      return { ok: false, error: `unhandled type ${String(never)}` };
    }
  }
}

/** Parses a property.Get reply body. */
export function parsePropertyGet(body: string): Parsed<PropertyValue> {
  const m = /^default=(True|False|yes|no) type=([a-z]+) ([\s\S]*)$/.exec(body);
  if (!m) return { ok: false, error: `malformed property value ${JSON.stringify(body.slice(0, 80))}` };
  const r = parseTypedValue(m[2] ?? "", m[3] ?? "");
  if (!r.ok) return r;
  return { ok: true, value: { isDefault: m[1] === "True" || m[1] === "yes", ...r.value } };
}

/** Parses a property.GetDefault reply body; null when the property has no default (empty body). */
export function parsePropertyDefault(body: string): Parsed<Omit<PropertyValue, "isDefault"> | null> {
  if (body === "") return { ok: true, value: null };
  const m = /^type=([a-z]+) ([\s\S]*)$/.exec(body);
  if (!m) return { ok: false, error: `malformed default value ${JSON.stringify(body.slice(0, 80))}` };
  return parseTypedValue(m[1] ?? "", m[2] ?? "");
}

/** Reverses GetAll's escaping: `\\` → `\`, `\n` → newline. */
export function unescapeGetAll(s: string): string {
  return s.replace(/\\(\\|n)/g, (_, c: string) => (c === "n" ? "\n" : "\\"));
}

/** Parses a property.GetAll reply body into name → value, keeping the server's order. */
export function parsePropertyGetAll(body: string): Parsed<Map<string, PropertyValue>> {
  const out = new Map<string, PropertyValue>();
  for (const line of body.split("\n")) {
    if (line === "") continue;
    const sp = line.indexOf(" ");
    if (sp <= 0) return { ok: false, error: `malformed GetAll line ${JSON.stringify(line.slice(0, 80))}` };
    const name = line.slice(0, sp);
    const r = parsePropertyGet(unescapeGetAll(line.slice(sp + 1)));
    if (!r.ok) return { ok: false, error: `property ${name}: ${r.error}` };
    out.set(name, r.value);
  }
  return { ok: true, value: out };
}

export type VmListEntry = {
  name: string;
  klass: string;
  state: string;
  /** Absent on R4.2, which sends no uuid= field. */
  uuid?: string;
};

/** Parses admin.vm.List lines `<name> class=<c> state=<s>[ uuid=<u>]` (other key=value fields tolerated). */
export function parseVmList(body: string): Parsed<VmListEntry[]> {
  const out: VmListEntry[] = [];
  for (const line of body.split("\n")) {
    if (line === "") continue;
    const [name, ...fields] = line.split(" ");
    const kv = new Map<string, string>();
    for (const f of fields) {
      const eq = f.indexOf("=");
      if (eq <= 0) return { ok: false, error: `malformed vm.List line ${JSON.stringify(line.slice(0, 120))}` };
      kv.set(f.slice(0, eq), f.slice(eq + 1));
    }
    const klass = kv.get("class");
    const state = kv.get("state");
    if (!name || klass === undefined || state === undefined) {
      return { ok: false, error: `vm.List line lacks class= or state=: ${JSON.stringify(line.slice(0, 120))}` };
    }
    const uuid = kv.get("uuid");
    out.push(uuid === undefined ? { name, klass, state } : { name, klass, state, uuid });
  }
  return { ok: true, value: out };
}

/** Parses `key=value` lines (pool.Info, volume.Info). */
export function parseKeyValueLines(body: string): Parsed<Map<string, string>> {
  const out = new Map<string, string>();
  for (const line of body.split("\n")) {
    if (line === "") continue;
    const eq = line.indexOf("=");
    if (eq <= 0) return { ok: false, error: `malformed key=value line ${JSON.stringify(line.slice(0, 120))}` };
    out.set(line.slice(0, eq), line.slice(eq + 1));
  }
  return { ok: true, value: out };
}

export const parseLines = (body: string): string[] => body.split("\n").filter((l) => l !== "");
