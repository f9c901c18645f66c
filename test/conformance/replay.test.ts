// Replays every recording of every release (test/conformance/recordings/qubesd{,-r4.3,-r4.2}:
// the fixture dump, the class defaults, the transcripts and the per-release differences) against
// a fresh simulator of that release, and requires every row to match except the ones
// recordings.ts EXCLUDED names. The figures go to the log: `npx vitest run test/conformance`.

import { describe, expect, it } from "vitest";
import { describeResult, RECORDING_FILES, RELEASES, readRows, replay } from "./recordings.js";

describe.each(RELEASES)("the simulator of $release answers as the recording in $dir", ({ release }) => {
  it.each(RECORDING_FILES)("%s: every row but the excluded ones matches", async (file) => {
    const r = await replay(release, file);
    console.info(describeResult(r));
    expect(r.mismatches).toEqual([]);
    expect(r.rows).toBe(readRows(file, release).length);
    expect(r.compared + r.excluded.length).toBe(r.rows);
    expect(r.matched).toBe(r.compared);
  });
});
