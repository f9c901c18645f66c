import { describe, expect, it } from "vitest";
import { checkRequest, decodeReply, decodeRequest, encodeEvent, encodeException, encodeOk, encodeRequest, EventStreamDecoder } from "../../src/providers/qubes/codec.js";
import { readJsonl, replyBytes } from "../helpers/shared.js";

const req = (method: string, dest: string, arg = "", payload = "") => ({
  method,
  dest,
  arg,
  src: "dom0",
  payload: Buffer.from(payload, "latin1"),
});

describe("request encoding", () => {
  it("writes the exact header qubesadmin's QubesLocal writes", () => {
    expect(encodeRequest(req("some.method", "test-vm", "arg1", "payload")).toString("latin1")).toBe("some.method+arg1 dom0 name test-vm\0payload");
    expect(encodeRequest(req("some.method", "test-vm", "", "payload")).toString("latin1")).toBe("some.method+ dom0 name test-vm\0payload");
    expect(encodeRequest(req("admin.Events", "dom0")).toString("latin1")).toBe("admin.Events+ dom0 name dom0\0");
  });

  it("round-trips through the server-side decoder, arg splitting at the first +", () => {
    const f = decodeRequest(encodeRequest(req("admin.vm.Shutdown", "work", "force+wait")));
    expect(f).toEqual({ ok: true, destType: "name", request: { method: "admin.vm.Shutdown", arg: "force+wait", src: "dom0", dest: "work", payload: Buffer.alloc(0) } });
    const kw = decodeRequest(Buffer.from("admin.vm.List+ work keyword adminvm\0"));
    expect(kw.ok && kw.request.dest).toBe("dom0");
    expect(decodeRequest(Buffer.from("admin.vm.List+ dom0 name dom0")).ok).toBe(false);
    expect(decodeRequest(Buffer.from("admin.vm.List+ dom0 uuid dom0\0")).ok).toBe(false);
    expect(decodeRequest(Buffer.from("admin.vm.List dom0 name dom0\0")).ok).toBe(false);
  });

  it("refuses arguments outside the qrexec charset, bad destinations and oversized requests", () => {
    expect(checkRequest(req("admin.vm.feature.Get", "work", "os"))).toBeNull();
    expect(checkRequest(req("admin.vm.feature.Get", "work", "a b"))).toMatch(/qrexec set/);
    expect(checkRequest(req("admin.vm.feature.Get", "work", "x/y"))).toMatch(/qrexec set/);
    expect(checkRequest(req("admin.vm.feature.Get", "work", "é"))).toMatch(/qrexec set/);
    expect(checkRequest(req("admin.vm.List", "bad name"))).toMatch(/illegal characters/);
    expect(checkRequest(req("admin.vm.List", "uuid:277aa8c6-3065-5bc7-bd24-1f4c5966b67d"))).toBeNull();
    expect(checkRequest(req("admin.vm.List", "uuid:277AA8C6-3065-5bc7-bd24-1f4c5966b67d"))).toMatch(/UUID is not valid/);
    expect(checkRequest(req("admin.vm List", "dom0"))).toMatch(/not a valid qrexec service/);
    const header = "admin.vm.notes.Set+ dom0 name work\0".length;
    expect(checkRequest(req("admin.vm.notes.Set", "work", "", "x".repeat(65536 - header)))).toBeNull();
    expect(checkRequest(req("admin.vm.notes.Set", "work", "", "x".repeat(65537 - header)))).toMatch(/65537 bytes.*at most 65536/);
  });
});

describe("reply decoding", () => {
  it("decodes OK, EXCEPTION (with and without format fields) and the empty reply", () => {
    expect(decodeReply(Buffer.from("0\0"))).toEqual({ kind: "ok", body: Buffer.alloc(0) });
    expect(decodeReply(Buffer.from("0\x000xcc0000"))).toEqual({ kind: "ok", body: Buffer.from("0xcc0000") });
    expect(decodeReply(Buffer.from("2\0QubesVMNotFoundError\0\0No such domain: 'x'\0"))).toEqual({
      kind: "exception",
      qubesClass: "QubesVMNotFoundError",
      traceback: "",
      message: "No such domain: 'x'",
    });
    expect(decodeReply(Buffer.from("2\0QubesException\0\0An error occurred: %s, %s\0string\0other\0"))).toMatchObject({
      kind: "exception",
      message: "An error occurred: string, other",
    });
    expect(decodeReply(Buffer.alloc(0))).toEqual({ kind: "empty" });
  });

  it("turns garbage, unknown type bytes and truncated frames into malformed values", () => {
    for (const bad of ["x", "3\0abc", "0x", "2\0QubesException\0\0no terminator", "2\0\0\0msg\0", "2\0OnlyType\0", "1\0work\0domain-start\0"]) {
      expect(decodeReply(Buffer.from(bad, "latin1")).kind, JSON.stringify(bad)).toBe("malformed");
    }
  });

  it("decodes every recorded reply of the real qubesd to its recorded kind", () => {
    const rows = readJsonl("conformance/qubesd/transcripts.jsonl");
    for (const row of rows) {
      const r = decodeReply(replyBytes(row));
      const expected = row.kind === "events" ? "events" : row.kind;
      expect(r.kind, `${row.method} ${row.note}`).toBe(expected);
      if (r.kind === "exception") expect(r.qubesClass).toBe(row.exc_type);
    }
  });

  it("encodes replies the way qubesd frames them", () => {
    expect(encodeOk("a\nb").toString("latin1")).toBe("0\0a\nb");
    expect(encodeException("QubesException", "qubes-exception").toString("latin1")).toBe("2\0QubesException\0\0qubes-exception\0");
    expect(encodeEvent({ subject: "subject", event: "event", kwargs: { payload: "payload" } }).toString("latin1")).toBe("1\0subject\0event\0payload\0payload\0\0");
    expect(encodeEvent({ subject: null, event: "connection-established", kwargs: {} }).toString("latin1")).toBe("1\0\0connection-established\0\0");
  });
});

describe("event stream decoder", () => {
  const recorded = readJsonl("conformance/qubesd/transcripts.jsonl").filter((r) => r.kind === "events").map(replyBytes);
  const longest = recorded.reduce((a, b) => (b.length > a.length ? b : a));

  const decodeChunked = (bytes: Buffer, sizes: (i: number) => number) => {
    const d = new EventStreamDecoder();
    const events = [];
    for (let i = 0; i < bytes.length; ) {
      const n = Math.max(1, sizes(i));
      const r = d.push(bytes.subarray(i, i + n));
      expect(r.error).toBeUndefined();
      events.push(...r.events);
      i += n;
    }
    expect(d.pendingBytes).toBe(0);
    return events;
  };

  it("yields the same events for any chunking of a recorded stream", () => {
    const whole = decodeChunked(longest, () => longest.length);
    expect(whole[0]).toEqual({ subject: null, event: "connection-established", kwargs: {} });
    expect(whole.some((e) => e.event === "property-set:memory" && e.subject === "personal" && e.kwargs.newvalue === "1000")).toBe(true);
    expect(decodeChunked(longest, () => 1)).toEqual(whole);
    for (const size of [2, 3, 7, 13, 64]) expect(decodeChunked(longest, () => size)).toEqual(whole);
    let seed = 42;
    const random = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31), 1 + (seed % 17));
    expect(decodeChunked(longest, random)).toEqual(whole);
  });

  it("keeps empty values and an empty subject apart from the terminator", () => {
    const bytes = Buffer.from("1\0some-vm\0some-event\0arg_without_value\0\0arg2\0value\0\0", "latin1");
    expect(decodeChunked(bytes, () => 1)).toEqual([{ subject: "some-vm", event: "some-event", kwargs: { arg_without_value: "", arg2: "value" } }]);
  });

  it("reports a non-event or an exception on the stream as a sticky error", () => {
    const d = new EventStreamDecoder();
    expect(d.push(Buffer.from("1\0\0connection-established\0\0")).events).toHaveLength(1);
    expect(d.push(Buffer.from("0\0")).error).toMatch(/non-event/);
    expect(d.push(Buffer.from("1\0\0x\0\0")).error).toMatch(/non-event/);
    const e = new EventStreamDecoder();
    expect(e.push(Buffer.from("2\0PermissionDenied\0\0nope\0")).error).toBe("server sent PermissionDenied: nope");
  });
});
