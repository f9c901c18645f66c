// The client against the REAL qemu-ga (host mode, unix-listen, unprivileged, host-safe block
// list): sync and resync, every command of the seed schema, agent errors, disabled and unknown
// commands refused before sending. The agent's own debug log is the call log: what it read.
import { readFileSync, truncateSync, writeFileSync } from "node:fs";
import { hostname } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { connectAgent, type QgaClient } from "../../src/providers/qga/client.js";
import { QgaError } from "../../src/providers/qga/errors.js";
import { readGuestFacts } from "../../src/providers/qga/facts.js";
import { QEMU_GA, commandsIn, rawConnection, sleep, startTestAgent, type TestAgent } from "./helpers/agent.js";

const INT64_MAX = (1n << 63n) - 1n;

describe.skipIf(!QEMU_GA)("real qemu-ga, host mode", () => {
  let agent: TestAgent;
  beforeAll(async () => {
    agent = await startTestAgent({ verbose: true });
  });
  afterAll(async () => {
    await agent?.stop();
  });

  const connect = (timeoutMs = 3000, extra: { maxReplyBytes?: number } = {}): Promise<QgaClient> => connectAgent(agent.spec, { timeoutMs, callTimeoutMs: 5000, ...extra });

  /** Runs `body` with a fresh client and returns what the agent read meanwhile. */
  const session = async (body: (c: QgaClient) => Promise<void>, extra: { maxReplyBytes?: number } = {}): Promise<string> => {
    const before = agent.received().length;
    const c = await connect(3000, extra);
    try {
      await body(c);
    } finally {
      await c.close();
    }
    await sleep(20);
    return agent.received().slice(before);
  };

  const rejection = async (p: Promise<unknown>): Promise<QgaError> => {
    const e = await p.then(
      () => null,
      (err: unknown) => err,
    );
    if (!(e instanceof QgaError)) throw new Error(`expected a QgaError, got ${e === null ? "success" : String(e)}`);
    return e;
  };

  describe("sync", () => {
    test("a connection starts with 0xFF + guest-sync-delimited with a random positive int64 id, then guest-info", async () => {
      const first = await session((c) => c.ping());
      const second = await session((c) => c.ping());
      const m1 = /^\xff\{"execute":"guest-sync-delimited","arguments":\{"id":(\d+)\}\}/.exec(first);
      const m2 = /^\xff\{"execute":"guest-sync-delimited","arguments":\{"id":(\d+)\}\}/.exec(second);
      expect(m1, first.slice(0, 120)).not.toBeNull();
      expect(m2).not.toBeNull();
      for (const m of [m1!, m2!]) {
        const id = BigInt(m[1]!);
        expect(id > 0n && id <= INT64_MAX).toBe(true);
      }
      expect(m1![1]).not.toBe(m2![1]);
      expect(commandsIn(first)).toEqual(["guest-sync-delimited", "guest-info", "guest-ping"]);
    });

    test.each([
      ["an object cut inside its arguments", '{"execute":"guest-get-host-name","arguments":'],
      ["an object missing its closing brace (swallows balanced requests)", '{"execute":"guest-get-host-name"'],
      ["an unterminated string", '{"execute":"guest-ping'],
    ])("resync after a previous client left %s", async (_, stale) => {
      const a = await rawConnection(agent.socket);
      a.write(stale);
      await sleep(50);
      a.close();
      await sleep(50);
      const c = await connect();
      try {
        await c.ping();
        expect(await c.getHostName()).toBe(hostname());
      } finally {
        await c.close();
      }
    });

    test("without the 0xFF preamble the same stale input swallows a request (why every connection resyncs)", async () => {
      const a = await rawConnection(agent.socket);
      a.write('{"execute":"guest-get-host-name"');
      await sleep(50);
      a.close();
      await sleep(50);
      const b = await rawConnection(agent.socket);
      b.write('{"execute":"guest-ping"}');
      const got = await b.readUntil((all) => all.includes(0x0a), 300);
      b.close();
      expect(got.length).toBe(0);
      // Leave the agent clean for the next test.
      const c = await connect();
      await c.close();
    });

    test("a half-sent request of our own (a call that timed out mid-reply) is followed by a resync, not a wrong answer", async () => {
      const big = join(agent.dir, "big-sparse.bin");
      writeFileSync(big, "");
      truncateSync(big, 40 * 1024 * 1024);
      const received = await session(
        async (c) => {
          const h = await c.fileOpen(big, "r");
          const slow = await rejection(c.fileRead(h, 40 * 1024 * 1024, { timeoutMs: 5 }));
          expect(slow.code).toBe("timeout");
          expect(slow.details.maybeDelivered).toBe(true);
          // The 54 MB reply is still coming; the next call must not take it for its own.
          expect(await c.getHostName()).toBe(hostname());
          await c.fileClose(h);
        },
        { maxReplyBytes: 64 * 1024 * 1024 },
      );
      const cmds = commandsIn(received);
      const read = cmds.indexOf("guest-file-read");
      expect(cmds.slice(read, read + 3)).toEqual(["guest-file-read", "guest-sync-delimited", "guest-get-host-name"]);
    });

    test("an explicit resync uses a fresh id each time", async () => {
      const received = await session(async (c) => {
        await c.resync();
        await c.resync();
      });
      const ids = [...received.matchAll(/"guest-sync-delimited","arguments":\{"id":(\d+)\}/g)].map((m) => m[1]);
      expect(ids).toHaveLength(3);
      expect(new Set(ids).size).toBe(3);
    });
  });

  describe("commands", () => {
    test("guest-sync echoes int64 ids exactly, including above 2^53", async () => {
      await session(async (c) => {
        expect(await c.syncPlain(9007199254740993n)).toBe(9007199254740993n);
        expect(await c.syncPlain(-5n)).toBe(-5n);
        expect(await c.syncPlain(INT64_MAX)).toBe(INT64_MAX);
        const e = await rejection(c.syncPlain((1n << 64n) - 1n));
        expect(e).toMatchObject({ code: "agent", details: { agentClass: "GenericError", agentDesc: "Invalid parameter type for 'id', expected: integer" } });
      });
    });

    test("guest-ping and guest-info (blocked commands listed as disabled)", async () => {
      await session(async (c) => {
        await c.ping();
        const info = await c.info();
        expect(info.version).toMatch(/^\d+\.\d+/);
        const entry = (n: string) => info.commands.find((x) => x.name === n);
        expect(entry("guest-ping")).toEqual({ name: "guest-ping", enabled: true, successResponse: true });
        expect(entry("guest-shutdown")).toEqual({ name: "guest-shutdown", enabled: false, successResponse: false });
        expect(entry("guest-fsfreeze-freeze")?.enabled).toBe(false);
        expect(entry("guest-file-write")?.enabled).toBe(true);
      });
    });

    test("facts as plain data: OS, hostname, interfaces", async () => {
      await session(async (c) => {
        const facts = await readGuestFacts(c);
        expect(facts.agentVersion).toMatch(/^\d+\.\d+/);
        expect(facts.hostname).toBe(hostname());
        const osRelease = readFileSync("/etc/os-release", "utf8");
        expect(osRelease).toContain(`ID=${facts.os?.id}`);
        expect(facts.os?.machine).toBe("x86_64");
        const lo = facts.interfaces?.find((i) => i.name === "lo");
        expect(lo?.addresses).toContainEqual({ address: "127.0.0.1", type: "ipv4", prefix: 8 });
        expect(facts.missing).toEqual([]);
        expect(JSON.parse(JSON.stringify(facts))).toEqual(facts);
      });
    });

    test("guest-fsfreeze-status reads while freeze/thaw stay blocked", async () => {
      await session(async (c) => {
        expect(await c.fsfreezeStatus()).toBe("thawed");
      });
    });

    test("every file command: open, write, flush, seek (set/cur/end), read, close", async () => {
      const path = join(agent.dir, "every-command.bin");
      await session(async (c) => {
        const h = await c.fileOpen(path, "w+");
        expect(Number.isSafeInteger(h)).toBe(true);
        expect(await c.fileWrite(h, Buffer.from("hello world\n"))).toEqual({ count: 12, eof: false });
        expect(await c.fileWrite(h, Buffer.of(0, 1, 2, 0xff))).toEqual({ count: 4, eof: false });
        await c.fileFlush(h);
        expect(readFileSync(path)).toEqual(Buffer.concat([Buffer.from("hello world\n"), Buffer.of(0, 1, 2, 0xff)]));
        expect(await c.fileSeek(h, 0, "set")).toEqual({ position: 0, eof: false });
        expect(await c.fileRead(h, 5)).toEqual({ count: 5, bytes: Buffer.from("hello"), eof: false });
        expect(await c.fileSeek(h, 1, "cur")).toEqual({ position: 6, eof: false });
        expect(await c.fileRead(h, 4096)).toEqual({ count: 10, bytes: Buffer.concat([Buffer.from("world\n"), Buffer.of(0, 1, 2, 0xff)]), eof: true });
        expect(await c.fileRead(h, 4096)).toEqual({ count: 0, bytes: Buffer.alloc(0), eof: true });
        expect(await c.fileSeek(h, -2, "end")).toEqual({ position: 14, eof: false });
        expect(await c.fileRead(h, 0)).toEqual({ count: 0, bytes: Buffer.alloc(0), eof: false });
        expect(await c.fileRead(h, 2)).toEqual({ count: 2, bytes: Buffer.of(2, 0xff), eof: false });
        await c.fileClose(h);
        const again = await rejection(c.fileClose(h));
        expect(again).toMatchObject({ code: "agent", details: { agentDesc: `handle '${h}' has not been found` } });
      });
    });

    test("file command errors come back typed with the agent's text", async () => {
      await session(async (c) => {
        const missing = join(agent.dir, "no-such-dir", "x");
        expect(await rejection(c.fileOpen(missing))).toMatchObject({
          code: "agent",
          details: { command: "guest-file-open", agentClass: "GenericError", agentDesc: `failed to open file '${missing}' (mode: 'r'): No such file or directory` },
        });
        expect(await rejection(c.fileRead(424242, 10))).toMatchObject({ code: "agent", details: { agentDesc: "handle '424242' has not been found" } });
        expect(await rejection(c.execute("guest-file-open", { path: join(agent.dir, "x"), mode: "zz" }))).toMatchObject({
          code: "agent",
          details: { agentDesc: "invalid file open mode 'zz'" },
        });
        expect(await rejection(c.execute("guest-sync", {}))).toMatchObject({ code: "agent", details: { agentDesc: "Parameter 'id' is missing" } });
        expect(await rejection(c.execute("guest-ping", { x: 1 }))).toMatchObject({ code: "agent", details: { agentDesc: "Parameter 'x' is unexpected" } });
        // The client is still in step after errors.
        await c.ping();
      });
    });

    test.skipIf(process.getuid?.() !== 0)("the agent runs unprivileged: root-owned files outside the temp dir are out of reach", async () => {
      await session(async (c) => {
        const e = await rejection(c.fileOpen("/etc/shadow", "r"));
        expect(e.details.agentDesc).toMatch(/Permission denied/);
      });
    });

    test("guest-network-get-interfaces", async () => {
      await session(async (c) => {
        const ifs = await c.networkGetInterfaces();
        expect(ifs.find((i) => i.name === "lo")?.addresses).toContainEqual({ address: "::1", type: "ipv6", prefix: 128 });
      });
    });

    test("guest-get-osinfo and guest-get-host-name", async () => {
      await session(async (c) => {
        expect(await c.getHostName()).toBe(hostname());
        expect((await c.getOsInfo()).prettyName).toMatch(/\S/);
      });
    });
  });

  describe("refusals before sending", () => {
    test("commands guest-info reports disabled fail with code disabled and never reach the agent", async () => {
      const blocked: Array<[string, (c: QgaClient) => Promise<unknown>]> = [
        ["guest-fsfreeze-freeze", (c) => c.fsfreezeFreeze()],
        ["guest-fsfreeze-thaw", (c) => c.fsfreezeThaw()],
        ["guest-shutdown", (c) => c.shutdown({ timeoutMs: 1000 })],
        ["guest-suspend-disk", (c) => c.suspend("disk")],
        ["guest-suspend-ram", (c) => c.suspend("ram")],
        ["guest-suspend-hybrid", (c) => c.suspend("hybrid")],
      ];
      const received = await session(async (c) => {
        for (const [command, run] of blocked) {
          const e = await rejection(run(c));
          expect(e.code).toBe("disabled");
          expect(e.details).toMatchObject({ command, maybeDelivered: false });
          expect(e.message).toContain("disabled");
          expect(e.message).toContain("not sent");
        }
        await c.ping();
      });
      expect(commandsIn(received)).toEqual(["guest-sync-delimited", "guest-info", "guest-ping"]);
    });

    test("sent anyway (unchecked), the agent's own refusal maps to the same code", async () => {
      await session(async (c) => {
        const e = await rejection(c.execute("guest-fsfreeze-freeze", undefined, { unchecked: true }));
        expect(e).toMatchObject({
          code: "disabled",
          details: { agentClass: "CommandNotFound", agentDesc: "Command guest-fsfreeze-freeze has been disabled", maybeDelivered: true },
        });
      });
    });

    test("an unknown command: unsupported before sending; the agent says the same when sent", async () => {
      const received = await session(async (c) => {
        expect(await rejection(c.execute("guest-no-such-command"))).toMatchObject({ code: "unsupported", details: { maybeDelivered: false } });
        expect(await rejection(c.execute("guest-no-such-command", undefined, { unchecked: true }))).toMatchObject({
          code: "unsupported",
          details: { agentClass: "CommandNotFound", agentDesc: "The command guest-no-such-command has not been found" },
        });
      });
      expect(commandsIn(received)).toEqual(["guest-sync-delimited", "guest-info", "guest-no-such-command"]);
    });

    test("bad arguments are refused locally", async () => {
      const received = await session(async (c) => {
        expect((await rejection(c.fileOpen("relative/path"))).code).toBe("invalid-request");
        expect((await rejection(c.fileOpen(join(agent.dir, "a\0b")))).code).toBe("invalid-request");
        expect((await rejection(c.fileOpen(join(agent.dir, "x"), "zz" as "r"))).code).toBe("invalid-request");
        expect((await rejection(c.fileRead(1000, -1))).code).toBe("invalid-request");
        expect((await rejection(c.fileRead(1000, 48 * 1024 * 1024 + 1))).code).toBe("invalid-request");
        // Within the agent's cap but beyond what this client's reply limit (8 MiB) can hold.
        expect((await rejection(c.fileRead(1000, 7 * 1024 * 1024))).message).toContain("reply limit");
        expect((await rejection(c.fileWrite(-1, Buffer.from("x")))).code).toBe("invalid-request");
      });
      expect(commandsIn(received)).toEqual(["guest-sync-delimited"]);
    });
  });

  test("the client is closed for good after close(); later calls fail fast", async () => {
    const c = await connect();
    await c.close();
    expect(c.closed).toBe(true);
    expect((await rejection(c.ping())).code).toBe("closed");
  });

  test("the debug log is appended by the agent (sanity of the call log itself)", async () => {
    const before = agent.received().length;
    const a = await rawConnection(agent.socket);
    a.write('{"execute":"guest-ping"}');
    await a.readUntil((all) => all.includes(0x0a), 1000);
    a.close();
    expect(commandsIn(agent.received().slice(before))).toEqual(["guest-ping"]);
  });
});
