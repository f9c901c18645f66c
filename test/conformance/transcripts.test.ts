// Replays the 154 recorded qubesd calls in order against a freshly seeded simulator over a real
// Unix socket (restarting it, state kept, between phase 1 and phase 2) and compares every
// eligible reply byte for byte, host-dependent values by shape (recordings.ts normalise).

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { call, openStream, sendRaw, tempSim, type Stream, type TempSim } from "../simulator/wire.js";
import { fixtureUuids, normalise, payloadOf, readRows, replyOf, type Row } from "./recordings.js";

const rows = readRows("transcripts.jsonl");
const uuids = fixtureUuids();
const CONNECTION_ESTABLISHED = Buffer.from("1\0\0connection-established\0\0", "latin1");

/** Rows whose reply depends on a hypervisor, on qrexec policy, or on prose: sent, not compared. */
const NOT_COMPARED_METHODS = new Set(["admin.vm.Start", "admin.vm.Stats", "admin.vm.CurrentState", "admin.vm.Console"]);
const isFraming = (r: Row): boolean => (r.note ?? "").startsWith("framing:");
const eligible = (r: Row): boolean =>
  r.kind !== "events" &&
  !isFraming(r) &&
  r.src === "dom0" &&
  !NOT_COMPARED_METHODS.has(r.method) &&
  !r.method.endsWith(".property.Help");

/** The malformed bytes a framing row describes. */
function framingBytes(r: Row): Buffer {
  const header = `${r.method}+${r.arg} ${r.src ?? "dom0"} name ${r.dest}`;
  const note = r.note ?? "";
  if (note.includes("no NUL")) return Buffer.from(header, "latin1");
  if (note.includes("dest type")) return Buffer.from(`${r.method}+${r.arg} ${r.src ?? "dom0"} bogus ${r.dest}\0`, "latin1");
  throw new Error(`no bytes known for framing row: ${note}`);
}

describe("recorded qubesd transcripts", () => {
  let sim: TempSim;
  beforeAll(async () => {
    sim = await tempSim();
  });
  afterAll(async () => {
    await sim.stop();
  });

  it("answers every eligible recorded call byte for byte", async () => {
    let phase = rows[0]?.phase ?? 1;
    let compared = 0;
    let matched = 0;
    let framing = 0;
    const mismatches: string[] = [];
    let captured: Stream | undefined;

    for (const [i, row] of rows.entries()) {
      if (row.phase !== undefined && row.phase !== phase) {
        captured?.close();
        await sim.restart();
        phase = row.phase;
      }
      const expected = replyOf(row);

      if ((row.note ?? "").startsWith("made while an admin.Events stream is open") && !captured) {
        captured = openStream(sim.socketPath, "admin.Events", "dom0");
        await captured.waitFor(CONNECTION_ESTABLISHED.length);
      }
      if (row.kind === "events") {
        if (captured && (row.note ?? "").includes("captured while")) {
          // The stream that was open while the calls above ran: exact bytes, kwargs order included.
          const got = await captured.waitFor(expected.length);
          captured.close();
          captured = undefined;
          expect(got.toString("latin1")).toBe(expected.toString("latin1"));
        } else {
          const stream = openStream(sim.socketPath, row.method, row.dest);
          const got = await stream.waitFor(CONNECTION_ESTABLISHED.length);
          stream.close();
          expect(got.subarray(0, CONNECTION_ESTABLISHED.length)).toEqual(CONNECTION_ESTABLISHED);
        }
        continue;
      }
      if (isFraming(row)) {
        expect(await sendRaw(sim.socketPath, framingBytes(row))).toEqual(Buffer.alloc(0));
        framing++;
        continue;
      }

      const got = await call(sim.socketPath, row.method, row.arg, row.dest, payloadOf(row), row.src ?? "dom0");
      if (row.method === "admin.vm.Start") await undoStart(sim);
      if (!eligible(row)) continue;
      compared++;
      const want = normalise(row.method, expected, uuids);
      const have = normalise(row.method, got, uuids);
      if (want === have) matched++;
      else mismatches.push(`#${i} ${row.method}+${row.arg} ${row.dest}\n  want ${JSON.stringify(want)}\n  have ${JSON.stringify(have)}`);
    }

    console.info(`transcripts: ${compared} compared, ${matched} matched, ${framing} framing rows aborted`);
    expect(mismatches).toEqual([]);
    expect(compared).toBe(rows.filter(eligible).length);
    expect(matched).toBe(compared);
    expect(framing).toBe(rows.filter(isFraming).length);
  });
});

/**
 * The recording had no hypervisor, so its Start did nothing and the qube stayed Halted for the
 * calls after it. The simulator really starts the qube (and its netvm chain); kill what it
 * started so the rest of the transcript sees the state the recording saw.
 */
async function undoStart(sim: TempSim): Promise<void> {
  const list = (await call(sim.socketPath, "admin.vm.List", "", "dom0")).subarray(2).toString("utf8");
  for (const line of list.split("\n")) {
    const m = /^(\S+) class=(\S+) state=Running/.exec(line);
    if (m && m[2] !== "AdminVM") await call(sim.socketPath, "admin.vm.Kill", "", m[1] ?? "");
  }
}
