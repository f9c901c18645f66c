// The targets of issue 12 that the benchmark's report derives from the validate figures: per-qube
// growth from 1 000 to 10 000 qubes, 1 000 qubes against `--version`, 10 000 under 10 s.
import { describe, expect, it } from "vitest";
import { validateTargets } from "../../bench/report.js";
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
