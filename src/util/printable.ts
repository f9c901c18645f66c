// Text from a config, a saved plan, qubesd or a guest made safe to print: control characters
// (C0, DEL, C1, line and paragraph separators, bidirectional overrides) are written as escapes,
// so nothing read can move the cursor, recolour, clear or reorder what a person reads.

const CONTROL = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;
/** The same but for tab and newline, which YAML text keeps as its own structure. */
export const CONTROL_BUT_TAB_AND_NEWLINE = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;

/** One control character as `\xNN` (up to U+00FF) or `\uNNNN`: the escapes of JavaScript and of YAML's double-quoted strings. */
export const escapeControl = (ch: string): string => {
  const c = ch.charCodeAt(0);
  return c <= 0xff ? `\\x${c.toString(16).padStart(2, "0")}` : `\\u${c.toString(16).padStart(4, "0")}`;
};

/** `s` with every control character escaped (`\x1b`, `\u202e`); the rest as it is. */
export const printable = (s: string): string => s.replace(CONTROL, escapeControl);

/** A copy of plain data (a JSON plan, a shown state) with every string in it made printable. */
export function printableDeep<T>(v: T): T {
  if (typeof v === "string") return printable(v) as T;
  if (Array.isArray(v)) return v.map((x: unknown) => printableDeep(x)) as T;
  if (v !== null && typeof v === "object") {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) out[printable(k)] = printableDeep(x);
    return out as T;
  }
  return v;
}
