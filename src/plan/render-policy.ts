// The human plan's view of a policy file: a unified diff of its content before and after (the
// `diff` package), the file's path in dom0 in the headers and each line made printable (a policy
// file read from dom0, or a saved plan, may hold anything). Rendered from the JSON plan only.

import { structuredPatch } from "diff";
import { policyFilePath } from "../model/qrexec-policy-admin.js";
import type { JsonPolicyFile } from "./json.js";
import { printable } from "../util/printable.js";

export type PolicyPaint = (style: "add" | "remove" | "dim", text: string) => string;

/** The diff lines of a file, indented under its change; none when its content does not change. */
export function renderPolicyDiff(p: JsonPolicyFile, paint: PolicyPaint, indent = "      "): string[] {
  if (p.old_content === p.new_content) return [];
  const path = policyFilePath(p.scope, p.name);
  const patch = structuredPatch(p.old_content === null ? "/dev/null" : path, p.new_content === null ? "/dev/null" : path, p.old_content ?? "", p.new_content ?? "", undefined, undefined, { context: 3 });
  const lines = [paint("remove", `${indent}--- ${printable(patch.oldFileName ?? "")}`), paint("add", `${indent}+++ ${printable(patch.newFileName ?? "")}`)];
  for (const h of patch.hunks) {
    lines.push(paint("dim", `${indent}@@ -${h.oldStart},${h.oldLines} +${h.newStart},${h.newLines} @@`));
    for (const l of h.lines) {
      const text = `${indent}${printable(l)}`;
      lines.push(l.startsWith("+") ? paint("add", text) : l.startsWith("-") ? paint("remove", text) : l.startsWith("\\") ? paint("dim", text) : text);
    }
  }
  return lines;
}
