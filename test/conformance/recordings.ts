// Access to the recorded qubesd replies (recordings/, the project's copy of ../shared/conformance)
// of every release, the one normaliser for values that depend on the recording host or on
// randomness (exactly the ones the recordings' READMEs list), the ONE list of rows that are not
// compared (EXCLUDED, also in src/providers/qubes/simulator/README.md), and the replay of a
// recording against a fresh simulator of its release.

import { readJsonl, replyBytes, type TranscriptRow } from "../helpers/shared.js";
import { call, openStream, sendRaw, tempSim, type Stream, type TempSim } from "../simulator/wire.js";
import type { SimRelease } from "../../src/providers/qubes/simulator/index.js";

export type Row = TranscriptRow & { kind?: "ok" | "exception" | "events" | "empty" };

export type RecordingFile = "transcripts.jsonl" | "fixture-state.jsonl" | "classes.jsonl" | "differences.jsonl";
export const RECORDING_FILES: readonly RecordingFile[] = ["fixture-state.jsonl", "classes.jsonl", "transcripts.jsonl", "differences.jsonl"];

/** Each release the simulator imitates and the directory of its recordings. */
export const RELEASES: ReadonlyArray<{ release: SimRelease; dir: string }> = [
  { release: "main", dir: "qubesd" },
  { release: "r4.3", dir: "qubesd-r4.3" },
  { release: "r4.2", dir: "qubesd-r4.2" },
];

const dirOf = (release: SimRelease): string => RELEASES.find((r) => r.release === release)?.dir ?? "qubesd";

export const readRows = (file: RecordingFile, release: SimRelease = "main"): Row[] => readJsonl<Row>(`conformance/${dirOf(release)}/${file}`);

export const replyOf: (row: Row) => Buffer = replyBytes;

/** Payloads are recorded as text; code points below 256 are the bytes sent. */
export const payloadOf = (row: Row): Buffer => Buffer.from(row.payload, "latin1");

/** UUIDs of the fixture's qubes: fixed, so compared exactly (R4.2's admin.vm.List has none: main's dump names the same qubes). */
export function fixtureUuids(): Set<string> {
  const list = readRows("fixture-state.jsonl").find((r) => r.method === "admin.vm.List" && r.dest === "dom0");
  if (!list) throw new Error("fixture dump has no admin.vm.List");
  return new Set([...replyOf(list).toString("latin1").matchAll(/uuid=([0-9a-f-]{36})/g)].map((m) => m[1] ?? ""));
}

const UUID_RE = /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/g;

/**
 * Host- and chance-dependent values compared by shape: UUIDs of qubes created during the run,
 * `disp<N>` names, dispid and the 10.138.x.y addresses derived from it, pool size/usage, the
 * directory prefix of volume paths, and the token of admin.vm.volume.CloneFrom.
 */
export function normalise(method: string, reply: Buffer, knownUuids: ReadonlySet<string>): string {
  // The 2-byte reply header stays out of the line-anchored patterns below.
  const header = reply.subarray(0, 2).toString("latin1");
  let s = reply.subarray(2).toString("latin1");
  s = s.replace(UUID_RE, (u) => (knownUuids.has(u) ? u : "<uuid>"));
  s = s.replace(/\bdisp[0-9]+\b/g, "disp<N>");
  s = s.replace(/^(dispid default=False type=int )[0-9]+$/gm, "$1<N>");
  s = s.replace(/\b10\.138\.[0-9]+\.[0-9]+\b/g, "10.138.<x>.<y>");
  if (method === "admin.pool.Info" || method === "admin.pool.UsageDetails") {
    s = s.replace(/^((?:data_)?(?:size|usage))=[0-9]+$/gm, "$1=<n>");
  }
  if (method === "admin.vm.volume.CloneFrom" && header === "0\0") s = s.replace(/^[A-Za-z0-9]{32}$/, "<token>");
  s = s.replace(/^path=\/.*\/(appvms|vm-templates|vm-kernels)\//gm, "path=<dir>/$1/");
  return header + s;
}

/**
 * The rows that are sent (so that the state follows the recording) but whose reply is not
 * compared, with the reason. This is the whole list; the simulator's README repeats it.
 * - hypervisor: the recordings were made offline (no Xen, no libvirt). `admin.vm.Start` answers
 *   empty there because nothing can start; `admin.vm.CurrentState` of dom0 fails for lack of a
 *   hypervisor (main: AttributeError, R4.2/R4.3: "VMM operations disabled in offline mode").
 *   The simulator really starts qubes and reports dom0's memory, as a real dom0 does.
 * - policy: a call from a qube other than dom0 is answered through the recording's qrexec policy
 *   (state/policy.d), which is not published; `admin.vm.List` from `work` is filtered by it.
 */
export function excludedReason(row: Row): "hypervisor" | "policy" | null {
  if (row.method === "admin.vm.Start") return "hypervisor";
  if (row.method === "admin.vm.CurrentState" && row.dest === "dom0") return "hypervisor";
  if ((row.src ?? "dom0") !== "dom0" && row.method === "admin.vm.List") return "policy";
  return null;
}

const CONNECTION_ESTABLISHED = Buffer.from("1\0\0connection-established\0\0", "latin1");
const isFraming = (r: Row): boolean => (r.note ?? "").startsWith("framing:");

/** The malformed bytes a framing row describes. */
function framingBytes(r: Row): Buffer {
  const header = `${r.method}+${r.arg} ${r.src ?? "dom0"} name ${r.dest}`;
  const note = r.note ?? "";
  if (note.includes("no NUL")) return Buffer.from(header, "latin1");
  if (note.includes("dest type")) return Buffer.from(`${r.method}+${r.arg} ${r.src ?? "dom0"} bogus ${r.dest}\0`, "latin1");
  throw new Error(`no bytes known for framing row: ${note}`);
}

export type ReplayResult = {
  release: SimRelease;
  file: RecordingFile;
  rows: number;
  compared: number;
  matched: number;
  excluded: Array<{ line: number; method: string; reason: string }>;
  mismatches: string[];
};

/**
 * Replays one recording in order against a fresh simulator of its release over a real socket
 * (restarting it, state kept, between phase 1 and phase 2) and compares every reply not in
 * EXCLUDED: byte for byte after `normalise`; event streams by the bytes the recording read.
 */
export async function replay(release: SimRelease, file: RecordingFile): Promise<ReplayResult> {
  const rows = readRows(file, release);
  const uuids = fixtureUuids();
  const result: ReplayResult = { release, file, rows: rows.length, compared: 0, matched: 0, excluded: [], mismatches: [] };
  const sim: TempSim = await tempSim({ release });
  let phase = rows[0]?.phase ?? 1;
  let captured: Stream | undefined;
  /** The CloneFrom token of the recording and the simulator's, so a CloneTo sends ours. */
  let token: { recorded: string; ours: string } | undefined;
  const compare = (i: number, row: Row, want: string, have: string): void => {
    result.compared++;
    if (want === have) result.matched++;
    else result.mismatches.push(`${file}:${i + 1} ${row.src ?? "dom0"} ${row.method}+${row.arg} ${row.dest}\n  want ${JSON.stringify(want)}\n  have ${JSON.stringify(have)}`);
  };
  try {
    for (const [i, row] of rows.entries()) {
      if (row.phase !== undefined && row.phase !== phase) {
        captured?.close();
        captured = undefined;
        await sim.restart();
        phase = row.phase;
      }
      const expected = replyOf(row);
      if ((row.note ?? "").startsWith("made while an admin.Events stream is open") && !captured) {
        captured = openStream(sim.socketPath, "admin.Events", "dom0");
        await captured.waitFor(CONNECTION_ESTABLISHED.length);
      }
      if (row.kind === "events") {
        let got: Buffer;
        if (captured && (row.note ?? "").includes("captured while")) {
          // The stream that was open while the calls above ran: exact bytes, kwargs order included.
          got = await captured.waitFor(expected.length);
          captured.close();
          captured = undefined;
        } else {
          const stream = openStream(sim.socketPath, row.method, row.dest);
          got = await stream.waitFor(expected.length);
          stream.close();
        }
        compare(i, row, expected.toString("latin1"), got.subarray(0, expected.length).toString("latin1"));
        continue;
      }
      let payload = payloadOf(row);
      if (row.method === "admin.vm.volume.CloneTo" && token && row.payload === token.recorded) payload = Buffer.from(token.ours, "latin1");
      const got = isFraming(row) ? await sendRaw(sim.socketPath, framingBytes(row)) : await call(sim.socketPath, row.method, row.arg, row.dest, payload, row.src ?? "dom0");
      if (row.method === "admin.vm.volume.CloneFrom" && expected.subarray(0, 2).toString("latin1") === "0\0") {
        token = { recorded: expected.subarray(2).toString("latin1"), ours: got.subarray(2).toString("latin1") };
      }
      if (row.method === "admin.vm.Start") await undoStart(sim);
      const reason = excludedReason(row);
      if (reason) {
        result.excluded.push({ line: i + 1, method: row.method, reason });
        continue;
      }
      compare(i, row, normalise(row.method, expected, uuids), normalise(row.method, got, uuids));
    }
  } finally {
    captured?.close();
    await sim.stop();
  }
  return result;
}

/** One line per replay for the test log: the figures the issue asks for. */
export function describeResult(r: ReplayResult): string {
  const reasons = new Map<string, number>();
  for (const e of r.excluded) reasons.set(e.reason, (reasons.get(e.reason) ?? 0) + 1);
  const why = [...reasons].map(([k, n]) => `${n} ${k}`).join(", ");
  return `${r.release} ${r.file}: ${r.rows} rows, ${r.compared} compared, ${r.matched} matched, ${r.excluded.length} excluded${why ? ` (${why})` : ""}`;
}

/**
 * The recording had no hypervisor, so its Start did nothing and the qube stayed Halted for the
 * calls after it. The simulator really starts the qube (and its netvm chain); kill what it
 * started so the rest of the recording sees the state the recording saw.
 */
async function undoStart(sim: TempSim): Promise<void> {
  const list = (await call(sim.socketPath, "admin.vm.List", "", "dom0")).subarray(2).toString("utf8");
  for (const line of list.split("\n")) {
    const m = /^(\S+) class=(\S+) state=Running/.exec(line);
    if (m && m[2] !== "AdminVM") await call(sim.socketPath, "admin.vm.Kill", "", m[1] ?? "");
  }
}
