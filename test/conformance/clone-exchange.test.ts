// Apply's clone calls checked against the recorded CloneFrom/CloneTo exchange of each release
// (differences.jsonl: CloneFrom on `work`'s private volume, CloneTo into `personal` with its
// token, the same token again, an unknown token, an unknown volume): the ops `volume.clone-from`
// and `volume.clone-to`, run by apply's executor over a real socket, make the same requests, and
// the simulator answers as the recording — the token by its shape (32 letters and digits).
import { describe, expect, it } from "vitest";
import { runOp } from "../../src/apply/admin-api.js";
import { CLONE_TOKEN_RE } from "../../src/model/clone.js";
import { createAdminClient } from "../../src/providers/qubes/client.js";
import { decodeReply } from "../../src/providers/qubes/codec.js";
import { createSocketTransport } from "../../src/providers/qubes/transport-socket.js";
import type { AdminCall, Transport } from "../../src/providers/qubes/transport.js";
import { startTestSim } from "../helpers/sim.js";
import { readRows, RELEASES, replyOf, type Row } from "./recordings.js";

type Seen = { call: AdminCall; reply: Buffer };

/** The shape of an answer: its kind, the exception class, and a CloneFrom token as `<token>`. */
function shape(method: string, reply: Buffer): string {
  const r = decodeReply(reply);
  switch (r.kind) {
    case "ok": {
      const body = r.body.toString("latin1");
      return method === "admin.vm.volume.CloneFrom" && CLONE_TOKEN_RE.test(body) ? "ok <token>" : `ok ${JSON.stringify(body)}`;
    }
    case "exception":
      return `exception ${r.qubesClass}`;
    default:
      return r.kind;
  }
}

describe.each(RELEASES)("the clone exchange on $release", ({ release }) => {
  const rows: Row[] = readRows("differences.jsonl", release).filter((r) => r.method === "admin.vm.volume.CloneFrom" || r.method === "admin.vm.volume.CloneTo");

  it("apply's clone ops send the recorded requests and get the recorded answers", async () => {
    expect(rows.map((r) => r.method)).toEqual(["admin.vm.volume.CloneFrom", "admin.vm.volume.CloneTo", "admin.vm.volume.CloneTo", "admin.vm.volume.CloneTo", "admin.vm.volume.CloneFrom"]);
    const sim = await startTestSim({ release });
    const seen: Seen[] = [];
    const socket = createSocketTransport(sim.socketPath, { timeoutMs: 10_000 });
    const recording: Transport = {
      ...socket,
      call: async (c, o) => {
        const reply = await socket.call(c, o);
        seen.push({ call: c, reply: Buffer.from(reply) });
        return reply;
      },
    };
    try {
      const client = createAdminClient(recording);
      const tokens = new Map<string, string>();
      await runOp(client, { op: "volume.clone-from", vm: "work", volume: "private", to: "personal" }, new Map(), tokens);
      await runOp(client, { op: "volume.clone-to", vm: "personal", volume: "private", from: "work" }, new Map(), tokens);
      const [from, to] = seen;
      const [recFrom, recTo, again, unknown, noVolume] = rows as [Row, Row, Row, Row, Row];
      expect([from?.call.method, from?.call.dest, from?.call.arg, Buffer.from(from?.call.payload ?? []).toString("latin1")]).toEqual([recFrom.method, recFrom.dest, recFrom.arg, recFrom.payload]);
      expect(shape(recFrom.method, replyOf(recFrom))).toBe("ok <token>");
      expect(shape(recFrom.method, from?.reply ?? Buffer.alloc(0))).toBe("ok <token>");
      // CloneTo carries the token CloneFrom answered, as the recording's does.
      const token = (from?.reply ?? Buffer.alloc(0)).subarray(2).toString("latin1");
      expect(recTo.payload).toBe(replyOf(recFrom).subarray(2).toString("latin1"));
      expect([to?.call.method, to?.call.dest, to?.call.arg, Buffer.from(to?.call.payload ?? []).toString("latin1")]).toEqual([recTo.method, recTo.dest, recTo.arg, token]);
      expect(shape(recTo.method, to?.reply ?? Buffer.alloc(0))).toBe(shape(recTo.method, replyOf(recTo)));
      // The token is used up; an unknown one and an unknown volume are refused as recorded.
      const raw = async (method: string, dest: string, arg: string, payload: string): Promise<string> =>
        shape(method, Buffer.from(await socket.call({ method, dest, arg, payload: Buffer.from(payload, "latin1") })));
      expect(await raw(again.method, again.dest, again.arg, token)).toBe(shape(again.method, replyOf(again)));
      expect(await raw(unknown.method, unknown.dest, unknown.arg, unknown.payload)).toBe(shape(unknown.method, replyOf(unknown)));
      expect(await raw(noVolume.method, noVolume.dest, noVolume.arg, "")).toBe(shape(noVolume.method, replyOf(noVolume)));
    } finally {
      await sim.stop();
    }
  });
});
