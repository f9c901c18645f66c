// The targets of issue 12 that the benchmark's report derives from the validate figures: per-qube
// growth from 1 000 to 10 000 qubes, 1 000 qubes against `--version`, 10 000 under 10 s.
import { describe, expect, it } from "vitest";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { BEGIN, END, LAPTOP_PREFIX, renderReadme, validateTargets, type Results } from "../../bench/report.js";
import { repoRoot } from "../helpers/shared.js";
import type { ValidateFigure } from "../../bench/scenarios.js";

const figure = (qubes: number, medianMs: number, versionMedianMs = 80): ValidateFigure => ({ qubes, bytes: qubes * 560, runs: 3, medianMs, versionMedianMs, verdict: "valid" });

describe("validate targets", () => {
  it("met: linear, fast at 1 000 and under 10 s at 10 000", () => {
    expect(validateTargets([figure(1000, 600), figure(10_000, 5400)]).map((t) => [t.measured, t.met])).toEqual([
      ["0.540 vs 0.600 ms = 0.90×", true],
      ["600 ms / 80 ms = 7.50×", true],
      ["5400 ms", true],
    ]);
  });

  it("not met: quadratic growth, slow start, 10 000 over 10 s", () => {
    expect(validateTargets([figure(1000, 9000), figure(10_000, 170_000)]).map((t) => t.met)).toEqual([false, false, false]);
  });

  it("results from before issue 12 have no validate figures and no such rows", () => {
    expect(validateTargets([])).toEqual([]);
  });
});

describe("the apply of the laptop example in the report", () => {
  const saved = JSON.parse(readFileSync(join(repoRoot, "bench", "results.json"), "utf8")) as Results;
  const base = { ...saved, applies: saved.applies.filter((a) => !a.scenario.startsWith(LAPTOP_PREFIX)) };
  const laptop = (readMs: number, writeMs: number, wallMs: number, lowerBoundMs?: number): Results["applies"][number] => ({
    scenario: `${LAPTOP_PREFIX} from the laptop fixture`,
    latency: { readMs, writeMs },
    wallMs,
    maxRssMb: 66,
    calls: { ...(saved.applies[0] as Results["applies"][number]).calls, calls: 135, reads: 52, writes: 83 },
    ...(lowerBoundMs !== undefined ? { lowerBoundMs } : {}),
  });

  it("shows its rows and a line with its calls and wall against the lower bound", () => {
    const out = renderReadme(`${BEGIN}\n${END}\n`, { ...base, applies: [...base.applies, laptop(0, 0, 973), laptop(15, 37, 4997, 3176)] });
    expect(out).toContain("| examples/laptop.yaml from the laptop fixture | 15, 37 | 135 | 52 | 83 | 4997 ms |");
    expect(out).toContain("0/0 ms: 135 calls (83 writes), 973 ms; 15/37 ms: 135 calls (83 writes), 4997 ms against a lower bound of 3176 ms.");
  });

  it("results from before it render, saying it is missing", () => {
    const out = renderReadme(`${BEGIN}\n${END}\n`, base);
    expect(out).toContain("(no apply of `examples/laptop.yaml` in these results: they were measured before it was added)");
    expect(out).not.toContain("from the laptop fixture |");
  });
});
