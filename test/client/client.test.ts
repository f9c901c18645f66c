// The typed client against the simulator over a real socket, and over the qrexec transport with
// a stand-in qrexec-client-vm on PATH that forwards to the same socket.
import { chmodSync, readFileSync } from "node:fs";
import { createConnection, createServer, type Server } from "node:net";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createAdminClient, type AdminClient } from "../../src/providers/qubes/client.js";
import { QubesApiError } from "../../src/providers/qubes/errors.js";
import { createQrexecTransport } from "../../src/providers/qubes/transport-qrexec.js";
import { createSocketTransport } from "../../src/providers/qubes/transport-socket.js";
import { repoRoot } from "../helpers/shared.js";
import { startTestSim, type TestSim } from "../helpers/sim.js";

const standinDir = join(repoRoot, "test", "fixtures", "bin");
chmodSync(join(standinDir, "qrexec-client-vm"), 0o755);

async function expectApiError(p: Promise<unknown>, code: string, qubesClass?: string): Promise<QubesApiError> {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(QubesApiError);
  const err = e as QubesApiError;
  expect(err.code, err.message).toBe(code);
  if (qubesClass) expect(err.qubesClass).toBe(qubesClass);
  return err;
}

describe("client over the qubesd socket", () => {
  let sim: TestSim;
  let client: AdminClient;
  beforeAll(async () => {
    sim = await startTestSim();
    client = createAdminClient(createSocketTransport(sim.socketPath, { timeoutMs: 5000 }));
  });
  afterAll(() => sim.stop());

  it("lists classes, qubes (by name and by uuid), labels and pools", async () => {
    expect(await client.vm.classes()).toEqual(["AdminVM", "AppVM", "DispVM", "RemoteVM", "StandaloneVM", "TemplateVM"]);
    const qubes = await client.vm.list();
    expect(qubes.map((q) => q.name)).toEqual(["dom0", "default-dvm", "fedora-40", "personal", "sys-firewall", "sys-net", "untrusted", "vault", "work"]);
    const work = qubes.find((q) => q.name === "work");
    expect(work).toEqual({ name: "work", klass: "AppVM", state: "Halted", uuid: "277aa8c6-3065-5bc7-bd24-1f4c5966b67d" });
    expect(await client.vm.list(`uuid:${work?.uuid}`)).toEqual([work]);
    expect(await client.label.list()).toEqual(["red", "orange", "yellow", "green", "gray", "blue", "purple", "black"]);
    expect(await client.label.get("red")).toBe("0xcc0000");
    expect(await client.label.index("black")).toBe(8);
    expect(await client.pool.list()).toEqual(["varlibqubes", "linux-kernel"]);
    expect((await client.pool.listDrivers()).get("file")).toEqual(["revisions_to_keep", "dir_path", "ephemeral_volatile"]);
    expect((await client.pool.info("varlibqubes")).get("driver")).toBe("file");
  });

  it("reads typed properties, defaults follow inheritance", async () => {
    const all = await client.property.getAll({ vm: "work" });
    expect(all.get("netvm")).toEqual({ isDefault: true, type: "vm", raw: "sys-firewall", value: "sys-firewall" });
    expect(all.get("label")).toMatchObject({ isDefault: false, type: "label", value: "blue" });
    expect(all.get("maxmem")).toMatchObject({ isDefault: true, type: "int", value: 4000 });
    expect(await client.property.get({ vm: "vault" }, "netvm")).toMatchObject({ isDefault: false, value: null });
    expect(await client.property.getDefault({ vm: "work" }, "netvm")).toEqual({ type: "vm", raw: "sys-firewall", value: "sys-firewall" });
    const globals = await client.property.getAll("global");
    expect(globals.get("default_netvm")).toMatchObject({ isDefault: false, value: "sys-firewall" });
    expect(client.getAllRefused).toBe(false);
  });

  it("creates, changes and removes a qube with its features, tags and firewall", async () => {
    await client.vm.create({ klass: "AppVM", name: "c-test", label: "green", template: "fedora-40" });
    expect(await client.tag.list("c-test")).toContain("created-by-dom0");
    await client.property.set({ vm: "c-test" }, "memory", "600");
    expect((await client.property.get({ vm: "c-test" }, "memory")).value).toBe(600);
    await client.property.set({ vm: "c-test" }, "netvm", null);
    expect((await client.property.get({ vm: "c-test" }, "netvm")).value).toBeNull();
    await client.property.reset({ vm: "c-test" }, "netvm");
    expect(await client.property.get({ vm: "c-test" }, "netvm")).toMatchObject({ isDefault: true, value: "sys-firewall" });
    await client.feature.set("c-test", "service.cups", "1");
    expect(await client.feature.getOptional("c-test", "service.cups")).toBe("1");
    expect(await client.feature.getOptional("c-test", "absent")).toBeUndefined();
    expect(await client.feature.checkWithTemplate("c-test", "os")).toBe("Linux");
    await client.feature.remove("c-test", "service.cups");
    await client.tag.set("c-test", "managed-by-test");
    expect(await client.tag.get("c-test", "managed-by-test")).toBe(true);
    await client.tag.remove("c-test", "managed-by-test");
    expect(await client.tag.get("c-test", "managed-by-test")).toBe(false);
    await client.firewall.set("c-test", ["action=accept proto=tcp dstports=443", "action=accept specialtarget=dns"]);
    expect(await client.firewall.get("c-test")).toEqual(["action=accept proto=tcp dstports=443-443", "action=accept specialtarget=dns"]);
    await client.firewall.set("c-test", []);
    expect(await client.firewall.get("c-test")).toEqual(["action=drop"]);
    expect(await client.volume.list("c-test")).toEqual(["root", "private", "volatile", "kernel"]);
    const priv = await client.volume.info("c-test", "private");
    await client.volume.resize("c-test", "private", priv.size * 2n);
    expect((await client.volume.info("c-test", "private")).size).toBe(priv.size * 2n);
    await client.vm.remove("c-test");
    expect((await client.vm.list()).some((q) => q.name === "c-test")).toBe(false);
  });

  it("drives power states and reports their errors as typed Qubes exceptions", async () => {
    await expectApiError(client.vm.shutdown("untrusted"), "exception", "QubesVMNotStartedError");
    await client.vm.start("untrusted");
    expect((await client.vm.list("untrusted"))[0]?.state).toBe("Running");
    await client.vm.pause("untrusted");
    await expectApiError(client.vm.remove("untrusted"), "exception", "QubesVMNotHaltedError");
    await client.vm.unpause("untrusted");
    await client.vm.shutdown("untrusted", { wait: true });
    expect((await client.vm.list("untrusted"))[0]?.state).toBe("Halted");
  });

  it("creates in a pool, and manages labels and pools", async () => {
    await client.pool.add("file", "test-pool", { dir_path: "/var/lib/qubes/test-pool" });
    expect(await client.pool.list()).toContain("test-pool");
    await client.vm.create({ klass: "AppVM", name: "in-pool", label: "red", template: "fedora-40", pool: "test-pool" });
    expect((await client.volume.info("in-pool", "private")).pool).toBe("test-pool");
    await client.vm.remove("in-pool");
    await client.pool.remove("test-pool");
    await client.label.create("teal", "0x008080");
    expect(await client.label.list()).toContain("teal");
    await client.label.remove("teal");
  });

  it("refuses bad requests before sending anything", async () => {
    const before = sim.calls.length;
    await expectApiError(client.feature.get("work", "a b"), "invalid-request");
    await expectApiError(client.vm.list("bad name"), "invalid-request");
    await expectApiError(client.call("admin.vm.notes.Set", "work", "", "x".repeat(70_000)), "invalid-request");
    await expectApiError(client.firewall.set("work", ["action=accept\naction=drop"]), "invalid-request");
    expect(sim.calls.length).toBe(before);
  });

  it("maps Qubes exceptions and the recorded empty replies to typed errors", async () => {
    await expectApiError(client.property.get({ vm: "no-such-vm" }, "netvm"), "exception", "QubesVMNotFoundError");
    await expectApiError(client.call("admin.vm.Frobnicate", "work"), "exception", "ProtocolError");
    const empty = await expectApiError(client.property.set({ vm: "work" }, "qid", "99"), "empty-reply");
    expect(empty.isDenied).toBe(true);
  });

  it("delivers events after connection-established, as an async iterator", async () => {
    const sub = await client.events();
    const other = createAdminClient(createSocketTransport(sim.socketPath, { timeoutMs: 5000 }));
    await other.property.set({ vm: "personal" }, "memory", "1000");
    const seen: string[] = [];
    for await (const ev of sub) {
      seen.push(`${ev.subject}:${ev.event}`);
      if (ev.event === "property-set:memory") {
        expect(ev.kwargs).toMatchObject({ name: "memory", newvalue: "1000" });
        break;
      }
    }
    expect(seen).toContain("personal:property-set:memory");
  });
});

describe("GetAll refused", () => {
  // A proxy in front of the simulator that refuses property.GetAll the way a given release does
  // and forwards every other call unchanged.
  async function refusingProxy(sim: TestSim, refusal: Buffer): Promise<{ path: string; server: Server }> {
    const path = join(sim.dir, `proxy-${refusal.length}.sock`);
    const server = createServer({ allowHalfOpen: true }, (sock) => {
      const chunks: Buffer[] = [];
      sock.on("data", (d: Buffer) => chunks.push(d));
      sock.on("error", () => {});
      sock.on("end", () => {
        const request = Buffer.concat(chunks);
        if (request.toString("latin1").startsWith("admin.vm.property.GetAll+")) {
          sock.end(refusal);
          return;
        }
        const upstream = createConnection(sim.socketPath, () => upstream.end(request));
        upstream.on("data", (d: Buffer) => sock.write(d));
        upstream.on("end", () => sock.end());
        upstream.on("error", () => sock.destroy());
      });
    });
    await new Promise<void>((r) => server.listen(path, r));
    return { path, server };
  }

  for (const [release, refusal] of [
    ["R4.3 (empty reply)", Buffer.alloc(0)],
    ["head (PermissionDenied)", Buffer.from("2\0PermissionDenied\0\0denied\0")],
  ] as const) {
    it(`falls back to List + Get on ${release} and remembers it for that qube`, async () => {
      const sim = await startTestSim();
      const { path, server } = await refusingProxy(sim, refusal);
      try {
        const client = createAdminClient(createSocketTransport(path, { timeoutMs: 5000 }));
        const viaFallback = await client.property.getAll({ vm: "work" });
        expect(client.getAllRefused).toBe(true);
        const direct = await createAdminClient(createSocketTransport(sim.socketPath, { timeoutMs: 5000 })).property.getAll({ vm: "work" });
        expect([...viaFallback.entries()]).toEqual([...direct.entries()]);
        const seen: string[] = [];
        const counting = createAdminClient(createSocketTransport(path, { timeoutMs: 5000 }), { onCall: (i) => seen.push(i.call.method) });
        await counting.property.getAll({ vm: "personal" });
        await counting.property.getAll({ vm: "personal" });
        await counting.property.getAll({ vm: "vault" });
        expect(counting.getAllRefusedFor({ vm: "personal" })).toBe(true);
        expect(counting.getAllRefusedFor("global")).toBe(false);
        expect(seen.filter((m) => m === "admin.vm.property.GetAll")).toHaveLength(2);
        expect(seen.filter((m) => m === "admin.vm.property.List")).toHaveLength(3);
      } finally {
        server.close();
        await sim.stop();
      }
    });
  }

  it("treats a qrexec refusal of GetAll as a refusal too", async () => {
    const sim = await startTestSim();
    try {
      const env = { ...process.env, PATH: `${standinDir}:${process.env.PATH}`, QIAC_STANDIN_SOCKET: sim.socketPath, QIAC_STANDIN_DENY: "admin.property.GetAll" };
      const client = createAdminClient(createQrexecTransport({ timeoutMs: 5000, env }));
      const globals = await client.property.getAll("global");
      expect(client.getAllRefused).toBe(true);
      expect(globals.get("default_netvm")).toMatchObject({ value: "sys-firewall" });
    } finally {
      await sim.stop();
    }
  });
});

describe("qrexec transport with a stand-in qrexec-client-vm", () => {
  let sim: TestSim;
  const log = () => join(sim.dir, "argv.jsonl");
  const env = (extra: Record<string, string> = {}) => ({
    ...process.env,
    PATH: `${standinDir}:${process.env.PATH}`,
    QIAC_STANDIN_SOCKET: sim.socketPath,
    QIAC_STANDIN_LOG: log(),
    ...extra,
  });
  beforeAll(async () => {
    sim = await startTestSim();
  });
  afterAll(() => sim.stop());

  it("runs qrexec-client-vm <dest> <method>[+<arg>] with the payload on stdin", async () => {
    const client = createAdminClient(createQrexecTransport({ timeoutMs: 5000, env: env() }));
    expect((await client.vm.list()).length).toBe(9);
    await client.feature.set("work", "qrexec-test", "hello world");
    expect(await client.feature.get("work", "qrexec-test")).toBe("hello world");
    const argv = readFileSync(log(), "utf8").trim().split("\n").map((l) => JSON.parse(l) as string[]);
    expect(argv).toEqual([
      ["dom0", "admin.vm.List"],
      ["work", "admin.vm.feature.Set+qrexec-test"],
      ["work", "admin.vm.feature.Get+qrexec-test"],
    ]);
  });

  it("turns exit 126 into a 'refused by qrexec policy' error naming the call", async () => {
    const client = createAdminClient(createQrexecTransport({ timeoutMs: 5000, env: env({ QIAC_STANDIN_DENY: "admin.vm.property.Set" }) }));
    const e = await expectApiError(client.property.set({ vm: "work" }, "memory", "500"), "refused");
    expect(e.message).toMatch(/admin\.vm\.property\.Set\+memory to work was refused by qrexec policy/);
    expect(e.isDenied).toBe(true);
  });

  it("reports a missing qrexec-client-vm as a transport error", async () => {
    const client = createAdminClient(createQrexecTransport({ timeoutMs: 5000, command: "/nonexistent/qrexec-client-vm" }));
    await expectApiError(client.vm.list(), "transport");
  });

  it("streams events over qrexec", async () => {
    const client = createAdminClient(createQrexecTransport({ timeoutMs: 5000, env: env() }));
    const sub = await client.events();
    sub.close();
  });
});

describe("bad bytes from a server", () => {
  // A server that answers every request with fixed bytes, or misbehaves on purpose.
  async function fakeServer(dir: string, behave: (sock: import("node:net").Socket) => void): Promise<{ path: string; server: Server }> {
    const path = join(dir, `bad-${Math.random().toString(36).slice(2)}.sock`);
    const server = createServer({ allowHalfOpen: true }, (sock) => {
      sock.on("error", () => {});
      sock.on("end", () => behave(sock));
      sock.resume();
    });
    await new Promise<void>((r) => server.listen(path, r));
    return { path, server };
  }
  let sim: TestSim;
  beforeAll(async () => {
    sim = await startTestSim();
  });
  afterAll(() => sim.stop());

  const cases: Array<[string, (s: import("node:net").Socket) => void, string]> = [
    ["truncated exception", (s) => s.end("2\0QubesException\0\0half"), "bad-reply"],
    ["unknown type byte", (s) => s.end("7\0hello"), "bad-reply"],
    ["garbage", (s) => s.end(Buffer.from([0xff, 0xfe, 0x00, 0x01])), "bad-reply"],
    ["connection dropped without a byte", (s) => s.destroy(), "empty-reply"],
    ["event where a reply was expected", (s) => s.end("1\0work\0domain-start\0\0"), "bad-reply"],
    ["no reply within the timeout", () => {}, "timeout"],
  ];
  for (const [name, behave, code] of cases) {
    it(`${name} → ${code}`, async () => {
      const { path, server } = await fakeServer(sim.dir, behave);
      try {
        const client = createAdminClient(createSocketTransport(path, { timeoutMs: 300 }));
        await expectApiError(client.vm.list(), code);
      } finally {
        server.close();
      }
    });
  }

  it("a missing socket is a transport error that says the request was not delivered", async () => {
    const client = createAdminClient(createSocketTransport(join(sim.dir, "absent.sock"), { timeoutMs: 300 }));
    const e = await expectApiError(client.vm.list(), "transport");
    expect(e.details.maybeDelivered).toBe(false);
  });
});
