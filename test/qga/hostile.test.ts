// A guest is untrusted: replies that break the protocol, exceed bounds, lie about sizes, or never
// come. A scripted misbehaving agent process (fixtures/hostile-agent.mjs, over the `command`
// transport) plays the guest; the client must fail with typed errors, never hang, and get back in
// step on the next call.
import { fileURLToPath } from "node:url";
import { describe, expect, test } from "vitest";
import { connectAgent, type QgaClient } from "../../src/providers/qga/client.js";
import { QgaError } from "../../src/providers/qga/errors.js";
import type { AgentSpec } from "../../src/providers/qga/spec.js";
import { waitForAgent } from "../../src/providers/qga/wait.js";
import { rejection } from "./helpers/agent.js";

const HOSTILE = fileURLToPath(new URL("./fixtures/hostile-agent.mjs", import.meta.url));
const spec: AgentSpec = { kind: "command", argv: [process.execPath, HOSTILE] };

type Reply = { line?: string; raw?: string; bigString?: number; silent?: true; exit?: number };
type Script = { sync?: "answer" | "noisy" | "silent" | "exit"; exitStatus?: number; replies?: Record<string, Reply[]> };

const env = (script: Script): NodeJS.ProcessEnv => ({ ...process.env, QGA_SCRIPT: JSON.stringify(script) });
const connect = (script: Script, timeoutMs = 5000): Promise<QgaClient> => connectAgent(spec, { timeoutMs, callTimeoutMs: 2000, env: env(script) });

const withClient = async (script: Script, body: (c: QgaClient) => Promise<void>): Promise<void> => {
  const c = await connect(script);
  try {
    await body(c);
  } finally {
    await c.close();
  }
};

describe("malformed replies", () => {
  test.each([
    ["a duplicate member", '{"return": {}, "return": {}}'],
    ["single quotes", "{'return': {}}"],
    ["trailing garbage", '{"return": {}} x'],
    ["both return and error", '{"return": {}, "error": {"class": "GenericError", "desc": "x"}}'],
    ["invalid UTF-8", '{"return": "\xc3\x28"}'],
  ])("%s is a bad reply, and the next call works", async (_, line) => {
    await withClient({ replies: { "guest-get-host-name": [{ line }, { line: '{"return": {"host-name": "ok"}}' }] } }, async (c) => {
      const e = await rejection(c.getHostName());
      expect(e.code).toBe("bad-reply");
      expect(e.message).not.toContain(line);
      expect(await c.getHostName()).toBe("ok");
    });
  });

  test("a reply line over the limit is dropped, memory stays bounded, and the client resyncs", async () => {
    await withClient({ replies: { "guest-get-host-name": [{ bigString: 9 * 1024 * 1024 }, { line: '{"return": {"host-name": "after"}}' }] } }, async (c) => {
      const before = process.memoryUsage().arrayBuffers;
      const e = await rejection(c.getHostName({ timeoutMs: 10_000 }));
      expect(e.code).toBe("bad-reply");
      expect(e.message).toContain("longer than 8388608 bytes");
      expect(process.memoryUsage().arrayBuffers - before).toBeLessThan(32 * 1024 * 1024);
      expect(await c.getHostName({ timeoutMs: 10_000 })).toBe("after");
    });
  });

  test("a stray 0xFF sentinel in place of a reply is a bad reply; the late line does not answer the next call", async () => {
    await withClient(
      { replies: { "guest-get-host-name": [{ raw: '\xff{"return": {"host-name": "stale"}}\n' }, { line: '{"return": {"host-name": "fresh"}}' }] } },
      async (c) => {
        expect((await rejection(c.getHostName())).code).toBe("bad-reply");
        expect(await c.getHostName()).toBe("fresh");
      },
    );
  });

  test("a reply with the wrong shape for its command is a bad reply", async () => {
    await withClient({ replies: { "guest-get-host-name": [{ line: '{"return": {"host-name": 42}}' }], "guest-file-open": [{ line: '{"return": 12345678901234567890}' }] } }, async (c) => {
      expect(await rejection(c.getHostName())).toMatchObject({ code: "bad-reply", message: expect.stringContaining("host-name is not a string") });
      expect(await rejection(c.fileOpen("/x"))).toMatchObject({ code: "bad-reply", message: expect.stringContaining("within ±2^53") });
    });
  });

  test.each([
    ["count larger than the data", '{"return": {"count": 5, "buf-b64": "YWJj", "eof": false}}', "not the base64 of count bytes"],
    ["more bytes than requested", '{"return": {"count": 8, "buf-b64": "YWFhYWFhYWE=", "eof": false}}', "outside 0..6"],
    ["invalid base64 characters", '{"return": {"count": 3, "buf-b64": "Y!Jj", "eof": false}}', "not the base64"],
    ["a negative count", '{"return": {"count": -1, "buf-b64": "", "eof": false}}', "outside 0..6"],
  ])("guest-file-read: %s is a bad reply", async (_, line, reason) => {
    await withClient({ replies: { "guest-file-read": [{ line }] } }, async (c) => {
      expect(await rejection(c.fileRead(1000, 6))).toMatchObject({ code: "bad-reply", message: expect.stringContaining(reason) });
    });
  });

  test("agent text with terminal escapes is shown escaped; the raw text stays in details", async () => {
    const desc = "\\u001b[2Jgone";
    await withClient({ replies: { "guest-get-host-name": [{ line: `{"error": {"class": "GenericError", "desc": "${desc}"}}` }] } }, async (c) => {
      const e = await rejection(c.getHostName());
      expect(e.code).toBe("agent");
      expect(e.message).toContain("\\u001b[2Jgone");
      expect(e.message).not.toContain("\u001b");
      expect(e.details.agentDesc).toBe("\u001b[2Jgone");
    });
  });
});

describe("sync", () => {
  test("near-miss sync replies (float, string, no sentinel, wrong id, error, cut short) are skipped, never crash", async () => {
    await withClient({ sync: "noisy" }, async (c) => {
      await c.ping();
      await c.resync();
      expect(await c.getHostName().catch((e: QgaError) => e.code)).toBe("unsupported");
    });
  });
});

describe("silence and deadlines", () => {
  test("a call with no reply times out; the next call resyncs and gets its own answer", async () => {
    await withClient({ replies: { "guest-get-host-name": [{ silent: true }, { line: '{"return": {"host-name": "second"}}' }] } }, async (c) => {
      const started = Date.now();
      expect(await rejection(c.getHostName({ timeoutMs: 200 }))).toMatchObject({ code: "timeout", details: { maybeDelivered: true } });
      expect(Date.now() - started).toBeLessThan(1500);
      expect(await c.getHostName()).toBe("second");
    });
  });

  test("an agent that never answers the sync: connect fails by its deadline, waitForAgent with not-ready", async () => {
    let started = Date.now();
    expect(await rejection(connect({ sync: "silent" }, 300))).toMatchObject({ code: "timeout", details: { command: "guest-sync-delimited" } });
    expect(Date.now() - started).toBeLessThan(2000);
    started = Date.now();
    const e = await rejection(waitForAgent(spec, { timeoutMs: 700, attemptMs: 200, env: env({ sync: "silent" }) }));
    const elapsed = Date.now() - started;
    expect(e.code).toBe("not-ready");
    expect(e.message).toMatch(/did not answer within 0\.7 s; last: .*no sync reply/);
    expect(elapsed).toBeGreaterThanOrEqual(690);
    expect(elapsed).toBeLessThan(3000);
  });

  test("a helper that exits before answering is 'not answering yet' until the deadline", async () => {
    const pending: string[] = [];
    // Long enough for several node start-ups on a loaded 2-core CI machine.
    const e = await rejection(waitForAgent(spec, { timeoutMs: 4000, retryDelayMs: 100, env: env({ sync: "exit", exitStatus: 3 }), onPending: (r) => pending.push(r) }));
    expect(e.code).toBe("not-ready");
    expect(e.message).toContain("exited with status 3");
    expect(pending.length).toBeGreaterThan(1);
  });

  test("a helper program that does not exist is a terminal error, not pending", async () => {
    const started = Date.now();
    const e = await rejection(waitForAgent({ kind: "command", argv: ["/nonexistent/qga-helper"] }, { timeoutMs: 5000 }));
    expect(e.code).toBe("transport");
    expect(e.message).toContain("ENOENT");
    expect(Date.now() - started).toBeLessThan(1000);
  });
});

describe("guest-shutdown (no success reply)", () => {
  test("success is the channel closing", async () => {
    const c = await connect({ replies: { "guest-shutdown": [{ exit: 0 }] } });
    await c.shutdown({ timeoutMs: 3000 });
    expect(c.closed).toBe(true);
  });
  test("an error reply rejects with the agent's text", async () => {
    await withClient({ replies: { "guest-shutdown": [{ line: '{"error": {"class": "GenericError", "desc": "child process has failed to shutdown"}}' }] } }, async (c) => {
      expect(await rejection(c.shutdown({ timeoutMs: 3000 }))).toMatchObject({ code: "agent", details: { agentDesc: "child process has failed to shutdown" } });
    });
  });
  test("a channel that stays open past the timeout is a timeout that says so", async () => {
    await withClient({ replies: { "guest-shutdown": [{ silent: true }] } }, async (c) => {
      const e = await rejection(c.shutdown({ timeoutMs: 300 }));
      expect(e.code).toBe("timeout");
      expect(e.message).toContain("did not close");
    });
  });
  test("a `stopped` signal (e.g. the VM process exited) also counts as success", async () => {
    await withClient({ replies: { "guest-shutdown": [{ silent: true }] } }, async (c) => {
      await c.shutdown({ timeoutMs: 5000, stopped: new Promise((r) => setTimeout(r, 100)) });
      expect(c.closed).toBe(true);
    });
  });
});
