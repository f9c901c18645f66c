// Every read of the recorded fixture dump (fixture-state.jsonl) must be answered identically,
// byte for byte, by a freshly seeded simulator: this is what "the default fixture is the
// recorded one" means. Pool size/usage are pinned to the dump's values, so nothing is normalised.

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { call, tempSim, type TempSim } from "../simulator/wire.js";
import { payloadOf, readRows, replyOf } from "./recordings.js";

const rows = readRows("fixture-state.jsonl");

describe("recorded fixture dump", () => {
  let sim: TempSim;
  beforeAll(async () => {
    sim = await tempSim();
  });
  afterAll(async () => {
    await sim.stop();
  });

  it("answers all reads of the dump identically", async () => {
    const mismatches: string[] = [];
    for (const [i, row] of rows.entries()) {
      const got = await call(sim.socketPath, row.method, row.arg, row.dest, payloadOf(row));
      const want = replyOf(row);
      if (!got.equals(want)) {
        mismatches.push(`#${i} ${row.method}+${row.arg} ${row.dest}\n  want ${JSON.stringify(want.toString("latin1"))}\n  have ${JSON.stringify(got.toString("latin1"))}`);
      }
    }
    console.info(`fixture-state: ${rows.length} compared, ${rows.length - mismatches.length} matched`);
    expect(mismatches).toEqual([]);
    expect(rows.length).toBe(140);
  });
});
