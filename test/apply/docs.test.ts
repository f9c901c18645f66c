// docs/apply.md and the code stay in step: every apply and export diagnostic code with its
// meaning, and every JSON event type apply emits.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { APPLY_CODES } from "../../src/apply/codes.js";
import { EXPORT_CODES } from "../../src/export/codes.js";
import { repoRoot } from "../helpers/shared.js";

const doc = readFileSync(join(repoRoot, "docs", "apply.md"), "utf8");
const rows = (codes: Record<string, string>) => Object.entries(codes).map(([code, meaning]) => `| ${code} | ${meaning} |`);

describe("docs/apply.md", () => {
  it("lists every code with its meaning, and no other", () => {
    const all = [...rows(APPLY_CODES), ...rows(EXPORT_CODES)];
    for (const row of all) expect(doc).toContain(row);
    const documented = [...doc.matchAll(/^\| (QIAC-[EW]2\d\d|QIAC-[EW]3\d\d) \|/gm)].map((m) => m[1]);
    expect(documented.sort()).toEqual([...Object.keys(APPLY_CODES), ...Object.keys(EXPORT_CODES)].sort());
  });

  it("documents every JSON event type the views emit", () => {
    const sources = ["view-json.ts"].map((f) => readFileSync(join(repoRoot, "src", "apply", f), "utf8")).join("") + readFileSync(join(repoRoot, "src", "cli", "commands", "apply.ts"), "utf8");
    const emitted = new Set([...sources.matchAll(/sink\("([a-z_]+)"/g)].map((m) => m[1]));
    expect([...emitted].sort()).toEqual(["apply_complete", "apply_start", "op_note", "op_resolved", "op_unknown", "plan", "prior_state_changed", "step_done", "step_failed", "step_skipped", "step_start", "volume_copy_done", "volume_copy_start"]);
    for (const t of emitted) expect(doc).toContain(`| \`${t}\` |`);
  });
});
