// The stable diagnostic codes of apply (plan codes are 1xx, config codes below 100); docs/apply.md
// lists them and a test keeps the two in step. `E` codes are errors: apply changes nothing.

import type { Diagnostic } from "../model/diagnostics.js";

export const APPLY_CODES = {
  "QIAC-E201": "a value the plan relies on changed since the plan was made (apply refuses the plan)",
  "QIAC-E202": "a saved plan that does not match the plan format (schemas/plan.schema.json)",
  "QIAC-E203": "a saved plan written by a newer qubes-iac (unknown format_version)",
  "QIAC-E204": "a saved plan that holds errors and cannot be applied",
  "QIAC-E205": "an op the executor refuses before any call: it does not belong to its step's resource change, or acts on what the plan's owner does not own, create or adopt",
  "QIAC-E206": "a plan that takes over another owner's objects, applied without the same --take-ownership OWNER",
  "QIAC-E210": "a policy file changed since the plan was made (its token differs): it keeps the other edit, and apply changes nothing",
  "QIAC-E211": "a policy admin call (policy.*) was refused by qrexec policy in dom0",
  "QIAC-E212": "a saved plan's policy removal understates what the file holds (deny or ask rules) to skip the destroy approval",
} as const;

export type ApplyCode = keyof typeof APPLY_CODES;

export function applyDiagnostic(code: ApplyCode, message: string, o: { address?: string; hint?: string } = {}): Diagnostic {
  const d: Diagnostic = { severity: "error", code, message };
  if (o.hint !== undefined) d.hint = o.hint;
  if (o.address !== undefined) d.address = o.address;
  return d;
}
