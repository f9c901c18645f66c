// `qubes-iac validate` judges policy files by all three releases, or by one with --release.
import { expect, test } from "vitest";
import { runCliInProcess } from "../plan/_cli.js";

const CASE = "test/config/warnings/80-policy.yaml";
const codes = (stderr: string): string[] => [...stderr.matchAll(/^\S+:(\d+):(\d+): (?:error|warning) (QIAC-\w+)/gm)].map((m) => `${m[3]} ${m[1]}:${m[2]}`);

test("without --release: a problem of R4.2 only is a warning naming it", async () => {
  const r = await runCliInProcess(["validate", CASE]);
  expect(r.code).toBe(0);
  expect(codes(r.stderr)).toContain("QIAC-W401 10:50");
  expect(r.stderr).toContain("R4.2 only (QIAC-E414)");
});

test("--release r4.2: it is an error; --release r4.3: it is not there", async () => {
  const r42 = await runCliInProcess(["validate", "--release", "r4.2", CASE]);
  expect(r42.code).toBe(1);
  expect(codes(r42.stderr)).toContain("QIAC-E414 10:50");
  const r43 = await runCliInProcess(["validate", "--release", "r4.3", CASE]);
  expect(r43.code).toBe(0);
  expect(codes(r43.stderr).filter((c) => /E414|W401/.test(c))).toEqual([]);
  // The file reads in R4.3: its other findings stay.
  expect(codes(r43.stderr)).toContain("QIAC-W400 9:50");
});

test("--release takes only the three releases", async () => {
  const r = await runCliInProcess(["validate", "--release", "r4.1", CASE]);
  expect(r.code).not.toBe(0);
  expect(r.stderr).toMatch(/Allowed choices are r4\.2, r4\.3, main/);
});
