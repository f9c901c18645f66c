// qubesd's framing and request checks: size cap, malformed headers, src/dest decoding, the
// HEAD decorator errors, and the R4.3/R4.2 compatibility options.

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { call, ok, requestBytes, sendRaw, tempSim, type TempSim } from "./wire.js";

const EMPTY = Buffer.alloc(0);
const exception = (cls: string, msg: string) => Buffer.from(`2\0${cls}\0\0${msg}\0`, "utf8");

describe("framing", () => {
  let s: TempSim;
  beforeAll(async () => {
    s = await tempSim();
  });
  afterAll(() => s.stop());

  it("accepts a request of exactly 65536 bytes and aborts one byte more without a reply", async () => {
    const header = requestBytes("admin.vm.notes.Set", "", "work");
    const fits = Buffer.concat([header, Buffer.alloc(65536 - header.length, 0x61)]);
    expect(await sendRaw(s.socketPath, fits)).toEqual(Buffer.from("0\0"));
    const tooBig = Buffer.concat([fits, Buffer.from("a")]);
    expect(await sendRaw(s.socketPath, tooBig)).toEqual(EMPTY);
    expect(s.calls.at(-1)).toMatchObject({ reply: "empty", exc_type: "request too long" });
    expect((await ok(s.socketPath, "admin.vm.notes.Get", "", "work")).length).toBe(65536 - header.length);
  });

  it("aborts malformed headers with no reply", async () => {
    for (const bytes of [
      "admin.vm.List+ dom0 name dom0",
      "admin.vm.List+ dom0 bogus dom0\0",
      "admin.vm.List dom0 name dom0\0",
      "admin.vm.List+ dom0 name\0",
      "admin.vm.List+ dom0 keyword dom0\0",
      "admin.vm.List+ dom0 name d\xe9m0\0",
    ]) {
      expect(await sendRaw(s.socketPath, Buffer.from(bytes, "latin1"))).toEqual(EMPTY);
    }
  });

  it("takes `keyword adminvm` as dom0 and uuid: destinations", async () => {
    const bytes = Buffer.from("admin.vm.List+ dom0 keyword adminvm\0", "latin1");
    expect((await sendRaw(s.socketPath, bytes)).toString("latin1")).toMatch(/^0\0dom0 class=AdminVM/);
    expect(await ok(s.socketPath, "admin.vm.List", "", "uuid:00000000-0000-0000-0000-000000000000")).toMatch(/^dom0 class=AdminVM/);
    expect(await call(s.socketPath, "admin.vm.List", "", "uuid:1234")).toEqual(exception("QubesVMInvalidUUIDError", "VM UUID is not valid: '1234'"));
    expect(await call(s.socketPath, "admin.vm.List", "", "uuid:00000000-0000-0000-0000-00000000000a")).toEqual(
      exception("QubesVMNotFoundError", "No such domain: 'uuid:00000000-0000-0000-0000-00000000000a'"),
    );
  });

  it("checks src like dest", async () => {
    expect(await call(s.socketPath, "admin.vm.List", "", "dom0", "", "ghost")).toEqual(exception("QubesVMNotFoundError", "No such domain: 'ghost'"));
    expect(await call(s.socketPath, "admin.vm.List", "", "dom0", "", "-bad")).toEqual(
      exception("QubesValueError", "VM name cannot start with hyphen, underscore, dot or numbers"),
    );
  });

  it("applies the decorator checks with HEAD's messages", async () => {
    const cases: Array<[string, string, string, string, string]> = [
      ["admin.vm.notes.Set", "", "work", "", "expected payload"],
      ["admin.vm.List", "", "dom0", "x", "unexpected payload"],
      ["admin.vm.property.Get", "", "work", "", "expected an argument"],
      ["admin.vm.List", "x", "dom0", "", "unexpected argument"],
      ["admin.label.List", "", "work", "", "expected destination to be AdminVM"],
      ["admin.vm.firewall.Get", "", "dom0", "", "expected destination to not be AdminVM"],
      ["admin.vm.Frobnicate", "", "work", "", "no such method: 'admin.vm.Frobnicate'"],
    ];
    for (const [method, arg, dest, payload, message] of cases) {
      expect(await call(s.socketPath, method, arg, dest, payload)).toEqual(exception("ProtocolError", message));
    }
  });
});

describe("compatibility options", () => {
  it("answers ProtocolError and PermissionDenied with the empty reply in R4.3 style", async () => {
    const s = await tempSim({ release: "r4.3" });
    try {
      expect(await call(s.socketPath, "admin.vm.List", "", "dom0", "junk")).toEqual(EMPTY);
      expect(await call(s.socketPath, "admin.pool.Info", "nosuch", "dom0")).toEqual(EMPTY);
      expect(await call(s.socketPath, "admin.vm.tag.Set", "bad!tag", "work")).toEqual(EMPTY);
      expect(await call(s.socketPath, "admin.vm.feature.Get", "nosuch", "work")).toEqual(
        exception("QubesFeatureNotFoundError", "Feature not set for domain work: nosuch"),
      );
      expect(s.calls.at(-2)).toMatchObject({ reply: "empty", exc_type: "QubesInvalidTagError" });
    } finally {
      await s.stop();
    }
  });

  it("lists qubes without uuid= for release r4.2", async () => {
    const s = await tempSim({ release: "r4.2" });
    try {
      expect(await ok(s.socketPath, "admin.vm.List", "", "work")).toBe("work class=AppVM state=Halted\n");
      expect(await call(s.socketPath, "admin.vm.List", "", "dom0", "junk")).toEqual(EMPTY);
    } finally {
      await s.stop();
    }
  });
});
