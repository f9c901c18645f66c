// The recordings the tests read are a copy of ../shared/conformance (so a clone without ../shared
// runs every test); when ../shared is beside the repository, as in CI, the copy must be
// byte-identical to it. The comparison is scripts/recordings.mjs's, the one `.ci/run` runs too.
import { existsSync, mkdtempSync, mkdirSync, writeFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { recordingsDir, sharedDir } from "../helpers/shared.js";
// @ts-expect-error: a plain .mjs script without types
import { differences } from "../../scripts/recordings.mjs";

const diff = differences as (shared?: string, copy?: string) => string[];
const shared = join(sharedDir, "conformance");

describe("the copy of the recordings", () => {
  it.skipIf(!existsSync(shared))("is byte-identical to ../shared/conformance", () => {
    expect(diff(shared, recordingsDir)).toEqual([]);
  });

  it("holds the recordings of every release the tests replay", () => {
    for (const f of ["qubesd", "qubesd-r4.3", "qubesd-r4.2"].flatMap((d) => ["transcripts.jsonl", "classes.jsonl", "fixture-state.jsonl", "differences.jsonl"].map((x) => `${d}/${x}`))) {
      expect(existsSync(join(recordingsDir, f)), f).toBe(true);
    }
    expect(existsSync(join(recordingsDir, "qga/transcripts.jsonl"))).toBe(true);
  });

  it("names a changed, a missing and an extra file", () => {
    const dir = mkdtempSync(join(tmpdir(), "qiac-rec-"));
    try {
      const a = join(dir, "a");
      const b = join(dir, "b");
      for (const d of [a, b]) mkdirSync(join(d, "x"), { recursive: true });
      writeFileSync(join(a, "x", "same.jsonl"), "1\n");
      writeFileSync(join(b, "x", "same.jsonl"), "1\n");
      writeFileSync(join(a, "x", "changed.jsonl"), "1\n");
      writeFileSync(join(b, "x", "changed.jsonl"), "2\n");
      writeFileSync(join(a, "x", "missing.jsonl"), "1\n");
      writeFileSync(join(b, "x", "extra.jsonl"), "1\n");
      expect(diff(a, b).sort()).toEqual([
        "x/changed.jsonl: differs from ../shared/conformance/x/changed.jsonl",
        "x/extra.jsonl: not in ../shared/conformance (extra)",
        "x/missing.jsonl: missing from the copy",
      ]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
