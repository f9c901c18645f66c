// Diagnostics: everything a user should read about their config or their system, as values.
// Collected and shown all at once (never thrown one at a time). Rendering to text lives here
// too because it is pure: it takes the source text as input and returns a string.

import { printable } from "../util/printable.js";

export type Severity = "error" | "warning";

/** 1-based line and column; `file` is the path exactly as the user gave it. */
export type SourceLocation = {
  file: string;
  line: number;
  column: number;
  endLine?: number;
  endColumn?: number;
};

export type Diagnostic = {
  severity: Severity;
  /** Stable code, e.g. `QIAC-E021`; tests and users match on it, never on the message. */
  code: string;
  message: string;
  /** What to do about it. */
  hint?: string;
  location?: SourceLocation;
  /** Address of the resource in the state, e.g. `qube.work.netvm`, when the location is not a file. */
  address?: string;
};

export const hasErrors = (ds: readonly Diagnostic[]): boolean => ds.some((d) => d.severity === "error");

/**
 * Renders one diagnostic in the compiler style:
 *   x.yaml:12:5: error QIAC-E021: label 'magneta' does not exist
 *      12 |     label: magneta
 *         |            ^^^^^^^
 *     hint: ...
 */
/** The last source split into lines: a file's many diagnostics split it once, not once each. */
let split: { text: string; lines: string[] } | undefined;
function linesOf(text: string): string[] {
  if (split?.text !== text) split = { text, lines: text.split(/\r?\n/) };
  return split.lines;
}

export function renderDiagnostic(d: Diagnostic, sourceOf: (file: string) => string | undefined): string {
  // Messages quote config values, names and qubesd's answers: escaped, one line each.
  const where = d.location ? `${printable(d.location.file)}:${d.location.line}:${d.location.column}: ` : d.address ? `${printable(d.address)}: ` : "";
  const lines = [`${where}${d.severity} ${d.code}: ${printable(d.message)}`];
  const src = d.location ? sourceOf(d.location.file) : undefined;
  if (d.location && src !== undefined) {
    const text = linesOf(src)[d.location.line - 1];
    if (text !== undefined) {
      const num = String(d.location.line);
      const pad = " ".repeat(num.length);
      const startCol = Math.max(1, d.location.column);
      const width =
        d.location.endLine === d.location.line && d.location.endColumn && d.location.endColumn > startCol
          ? d.location.endColumn - startCol
          : 1;
      // The caret goes under the escaped text: columns count what is shown.
      const shown = (t: string): string => printable(t.replace(/\t/g, " "));
      const visible = shown(text);
      const col = shown(text.slice(0, startCol - 1)).length + 1;
      const span = shown(text.slice(startCol - 1, startCol - 1 + width)).length;
      lines.push(`  ${num} | ${visible}`);
      lines.push(`  ${pad} | ${" ".repeat(col - 1)}${"^".repeat(Math.min(Math.max(1, span), Math.max(1, visible.length - col + 1)))}`);
    }
  }
  if (d.hint) lines.push(`  hint: ${printable(d.hint)}`);
  return lines.join("\n");
}
