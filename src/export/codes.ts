// The stable diagnostic codes of export (3xx); docs/apply.md lists them and a test keeps the two in step.

import type { Diagnostic } from "../model/diagnostics.js";

export const EXPORT_CODES = {
  "QIAC-E301": "a label the owner manages cannot be exported: qubesd does not tell its colour until it restarts",
  "QIAC-W301": "a custom label left out: qubesd does not tell its colour until it restarts",
  "QIAC-W302": "a qube of the inventory left out: it lacks its ownership marker (ownership drift) or its adopt was interrupted",
  "QIAC-W303": "a value left out: the config format cannot hold it as read",
} as const;

export type ExportCode = keyof typeof EXPORT_CODES;

export function exportDiagnostic(code: ExportCode, message: string, address: string, hint?: string): Diagnostic {
  const d: Diagnostic = { severity: code.startsWith("QIAC-E") ? "error" : "warning", code, message, address };
  if (hint !== undefined) d.hint = hint;
  return d;
}
