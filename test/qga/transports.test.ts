// The three ways to reach an agent, each against the REAL qemu-ga, and readiness: pending while
// the agent is not answering (no socket, refused, another client served), terminal otherwise,
// and never past the deadline.
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { hostname, tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { connectAgent } from "../../src/providers/qga/client.js";
import { readGuestFileState, writeGuestFile } from "../../src/providers/qga/files.js";
import { DEFAULT_QREXEC_SERVICE, type AgentSpec } from "../../src/providers/qga/spec.js";
import { waitForAgent } from "../../src/providers/qga/wait.js";
import { QEMU_GA, rawConnection, sleep, startTestAgent, type TestAgent, rejection } from "./helpers/agent.js";

const BRIDGE = fileURLToPath(new URL("./fixtures/bridge.mjs", import.meta.url));
const QREXEC_STANDIN = fileURLToPath(new URL("./fixtures/bin/qrexec-client-vm", import.meta.url));

describe.skipIf(!QEMU_GA)("transports against real qemu-ga", () => {
  let agent: TestAgent;
  beforeAll(async () => {
    agent = await startTestAgent();
  });
  afterAll(async () => {
    await agent?.stop();
  });

  test("command: a process whose stdin/stdout carry the protocol", async () => {
    const spec: AgentSpec = { kind: "command", argv: [process.execPath, BRIDGE, agent.socket] };
    const c = await connectAgent(spec, { timeoutMs: 5000 });
    try {
      expect(await c.getHostName()).toBe(hostname());
      const path = join(agent.dir, "via-command.txt");
      const written = await writeGuestFile(c, path, Buffer.from("through a pipe\n"));
      expect(readFileSync(path, "utf8")).toBe("through a pipe\n");
      expect(await readGuestFileState(c, path)).toEqual({ kind: "present", ...written });
    } finally {
      await c.close();
    }
    // The helper exited when the channel closed: the agent is free for the next client.
    const again = await connectAgent(agent.spec, { timeoutMs: 2000 });
    await again.close();
  });

  test("qrexec: `qrexec-client-vm <qube> <service>` bridging to the qube's local agent", async () => {
    const dir = mkdtempSync(join(tmpdir(), "qiac-qrexec-"));
    const log = join(dir, "calls.jsonl");
    const spec: AgentSpec = { kind: "qrexec", qube: "work", service: DEFAULT_QREXEC_SERVICE };
    const c = await connectAgent(spec, { timeoutMs: 5000, qrexecClient: QREXEC_STANDIN, env: { ...process.env, QGA_STANDIN_SOCKET: agent.socket, QGA_STANDIN_LOG: log } });
    try {
      await c.ping();
      expect(c.description).toBe("qrexec service qubes-iac.GuestAgent in qube work");
    } finally {
      await c.close();
    }
    expect(readFileSync(log, "utf8")).toBe(`${JSON.stringify(["work", "qubes-iac.GuestAgent"])}\n`);
    rmSync(dir, { recursive: true, force: true });
  });

  test("a qrexec policy refusal is terminal: waitForAgent gives up at once with code refused", async () => {
    const started = Date.now();
    const e = await rejection(
      waitForAgent({ kind: "qrexec", qube: "work", service: DEFAULT_QREXEC_SERVICE }, { timeoutMs: 10_000, qrexecClient: QREXEC_STANDIN, env: { ...process.env, QGA_STANDIN_DENY: "1" } }),
    );
    expect(e.code).toBe("refused");
    expect(e.message).toContain("Request refused");
    expect(Date.now() - started).toBeLessThan(3000);
  });

  test("waitForAgent: pending while another client holds the agent, then succeeds once it lets go", async () => {
    const holder = await rawConnection(agent.socket);
    holder.write('{"execute":"guest-ping"}');
    await holder.readUntil((all) => all.includes(0x0a), 1000);
    const e = await rejection(waitForAgent(agent.spec, { timeoutMs: 800, attemptMs: 300 }));
    expect(e.code).toBe("not-ready");
    expect(e.message).toContain("serving another client");
    holder.close();
    const c = await waitForAgent(agent.spec, { timeoutMs: 3000 });
    await c.ping();
    await c.close();
  });
});

describe.skipIf(!QEMU_GA)("readiness with an agent that comes and goes", () => {
  test("socket missing at first: pending until the agent starts, then connected", async () => {
    const dir = mkdtempSync(join(tmpdir(), "qiac-qga-late-"));
    const spec: AgentSpec = { kind: "socket", path: join(dir, "qga.sock") };
    const pending: string[] = [];
    const started = Date.now();
    let late: TestAgent | undefined;
    const starting = sleep(400).then(async () => {
      late = await startTestAgent({ dir });
    });
    try {
      const c = await waitForAgent(spec, { timeoutMs: 10_000, retryDelayMs: 50, onPending: (r) => pending.push(r) });
      expect(Date.now() - started).toBeGreaterThanOrEqual(400);
      await c.ping();
      await c.close();
      expect(pending.some((r) => r.includes("no such socket"))).toBe(true);
    } finally {
      await starting;
      await late?.stop();
    }
  });

  test("nothing ever listens: not-ready right after the deadline, saying what was seen", async () => {
    const dir = mkdtempSync(join(tmpdir(), "qiac-qga-none-"));
    const started = Date.now();
    const e = await rejection(waitForAgent({ kind: "socket", path: join(dir, "qga.sock") }, { timeoutMs: 600 }));
    const elapsed = Date.now() - started;
    rmSync(dir, { recursive: true, force: true });
    expect(e.code).toBe("not-ready");
    expect(e.message).toMatch(/did not answer within 0\.6 s; last: .*no such socket/);
    expect(elapsed).toBeGreaterThanOrEqual(590);
    expect(elapsed).toBeLessThan(1500);
  });

  test("a stale socket file with no agent behind it (connection refused) is pending too", async () => {
    const gone = await startTestAgent();
    const socket = gone.socket;
    gone.process.kill("SIGTERM");
    await new Promise((r) => gone.process.once("exit", r));
    try {
      const e = await rejection(waitForAgent({ kind: "socket", path: socket }, { timeoutMs: 500 }));
      expect(e.code).toBe("not-ready");
      expect(e.message).toContain("connection refused");
    } finally {
      await gone.stop();
    }
  });
});
