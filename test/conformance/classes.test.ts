// Replays classes.jsonl (creating each VM class, then reading every property, tag, feature,
// firewall rule and volume, plus inheritance and in-use errors) against a fresh simulator, in
// order, comparing byte for byte; UUIDs, dispid and its 10.138.x.y address by shape.

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { call, tempSim, type TempSim } from "../simulator/wire.js";
import { fixtureUuids, normalise, payloadOf, readRows, replyOf } from "./recordings.js";

const rows = readRows("classes.jsonl");
const uuids = fixtureUuids();

describe("recorded class defaults", () => {
  let sim: TempSim;
  beforeAll(async () => {
    sim = await tempSim();
  });
  afterAll(async () => {
    await sim.stop();
  });

  it("gives every class the recorded properties, volumes, tags and errors", async () => {
    const mismatches: string[] = [];
    for (const [i, row] of rows.entries()) {
      const got = await call(sim.socketPath, row.method, row.arg, row.dest, payloadOf(row));
      const want = normalise(row.method, replyOf(row), uuids);
      const have = normalise(row.method, got, uuids);
      if (want !== have) mismatches.push(`#${i} ${row.method}+${row.arg} ${row.dest}\n  want ${JSON.stringify(want)}\n  have ${JSON.stringify(have)}`);
    }
    console.info(`classes: ${rows.length} compared, ${rows.length - mismatches.length} matched`);
    expect(mismatches).toEqual([]);
    expect(rows.length).toBe(81);
  });
});
