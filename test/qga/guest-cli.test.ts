// `qubes-iac guest fsfreeze` where freezing is impossible: the command must not run, and the
// user is told why. (Freezing for real, with the thaw on success, failure and signals, runs in the
// VM test: a host-mode agent must never freeze the host.)
import { existsSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { guestFsfreeze, guestThaw } from "../../src/cli/commands/guest.js";
import { QEMU_GA, startTestAgent, type TestAgent } from "./helpers/agent.js";
import { testIO } from "./helpers/io.js";

describe.skipIf(!QEMU_GA)("guest fsfreeze when the agent cannot freeze", () => {
  let agent: TestAgent;
  beforeAll(async () => {
    agent = await startTestAgent();
  });
  afterAll(async () => {
    await agent?.stop();
  });

  test("freeze disabled in the agent: the command is not run, and the message says why", async () => {
    const t = testIO(agent.dir);
    const marker = join(agent.dir, "ran");
    await expect(guestFsfreeze(t.io, agent.spec, ["touch", marker])).rejects.toThrow(
      /cannot freeze the filesystems in socket .*: .*guest-fsfreeze-freeze.*disabled.*; the command was not run/,
    );
    expect(existsSync(marker)).toBe(false);
  });

  test("an unreachable agent: nothing frozen, nothing run", async () => {
    const t = testIO(agent.dir);
    const marker = join(agent.dir, "ran-2");
    await expect(guestFsfreeze(t.io, { kind: "socket", path: join(agent.dir, "absent.sock") }, ["touch", marker], { timeoutMs: 300 })).rejects.toThrow(
      /cannot reach the guest agent .*no such socket.*nothing was frozen/,
    );
    expect(existsSync(marker)).toBe(false);
  });

  test("guest thaw where thawing is disabled says so", async () => {
    const t = testIO(agent.dir);
    await expect(guestThaw(t.io, agent.spec)).rejects.toThrow(/guest-fsfreeze-thaw .*disabled/);
  });

  test("an empty command is a usage error", async () => {
    const t = testIO(agent.dir);
    await expect(guestFsfreeze(t.io, agent.spec, [])).rejects.toThrow(/needs a command/);
  });
});
