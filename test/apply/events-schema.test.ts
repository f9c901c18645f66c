// schemas/apply-events.schema.json: every event type apply writes is in it, and it refuses what
// apply does not write (so that the tests that read apply's events through test/helpers/
// apply-events.ts, which checks every line against it, keep it exact).
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import eventsSchema from "../../schemas/apply-events.schema.json" with { type: "json" };
import { applyEvents } from "../helpers/apply-events.js";
import { repoRoot } from "../helpers/shared.js";

const sources = (dir: string): string[] =>
  readdirSync(dir).flatMap((f) => {
    const p = join(dir, f);
    return statSync(p).isDirectory() ? sources(p) : p.endsWith(".ts") ? [p] : [];
  });

const line = (event: Record<string, unknown>): string => JSON.stringify({ format_version: 1, ...event });
const done = { type: "step_done", step: "create:qube.work", elapsed_ms: 12 };
const failed = {
  type: "step_failed",
  step: "update:qube.work",
  elapsed_ms: 3,
  op_index: 1,
  call: "admin.vm.property.Set+memory → work",
  error: { code: "exception", class: "QubesValueError", message: "no" },
};

describe("the apply events' schema", () => {
  it("lists exactly the event types the source writes", () => {
    const written = new Set(sources(join(repoRoot, "src")).flatMap((f) => [...readFileSync(f, "utf8").matchAll(/\bsink\("([a-z_]+)"/g)].map((m) => m[1] as string)));
    expect([...written].sort()).toEqual([...eventsSchema.properties.type.enum].sort());
  });

  it("accepts events as apply writes them", () => {
    expect(applyEvents([line(done), line(failed), line({ ...failed, outcome: "unknown", detail: "no reply" })].join("\n")).map((e) => e.type)).toEqual([
      "step_done",
      "step_failed",
      "step_failed",
    ]);
  });

  it("accepts how a half-made qube was left, on step_failed and in apply_complete's failures", () => {
    const left = { qube: "offline1", state: "left", netvm: null, netvm_default: false, firewall: ["action=drop"], text: "offline1 left with netvm none, firewall drop" };
    const removed = { qube: "offline1", state: "removed", netvm: "sys-firewall", firewall: ["action=accept"], text: "offline1 removed again" };
    const { type: _t, elapsed_ms: _e, ...failure } = failed;
    const complete = { type: "apply_complete", ok: false, added: 0, changed: 0, destroyed: 0, forgotten: 0, applied: [], failed: [{ ...failure, left: removed }], skipped: [] };
    expect(applyEvents([line({ ...failed, left }), line(complete)].join("\n")).map((e) => e.type)).toEqual(["step_failed", "apply_complete"]);
  });

  it.each([
    ["an unknown type", { type: "step_paused", step: "x" }],
    ["another format_version", { ...done, format_version: 2 }],
    ["a field apply does not write", { ...done, note: "hi" }],
    ["a missing field", { type: "step_done", step: "create:qube.work" }],
    ["an error without its code", { ...failed, error: { message: "no" } }],
    ["a skip for no known reason", { type: "step_skipped", step: "x", reason: "bored", blocked_by: [] }],
    ["a plan that is not a plan", { type: "plan", saved: false, plan: { steps: "none" } }],
    ["a left state of no known kind", { ...failed, left: { qube: "offline1", state: "gone", text: "x" } }],
    ["a left state without its text", { ...failed, left: { qube: "offline1", state: "left", netvm: null, firewall: [] } }],
  ])("refuses %s", (_, event) => {
    expect(() => applyEvents(line(event))).toThrow(/does not match schemas\/apply-events\.schema\.json/);
  });
});
