// The client's clone calls over the simulator's socket: CloneFrom answers a token of qubesd's
// shape, CloneTo takes it once, a token of another shape is refused before it is sent, and the
// CloneTo's timeout is the slow calls' one plus the copy's size at the slowest rate.
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { CLONE_TOKEN_RE } from "../../src/model/clone.js";
import { copyTimeoutMs, createAdminClient, type AdminClient } from "../../src/providers/qubes/client.js";
import { createSocketTransport } from "../../src/providers/qubes/transport-socket.js";
import type { Transport } from "../../src/providers/qubes/transport.js";
import { startTestSim, type TestSim } from "../helpers/sim.js";

let sim: TestSim;
let client: AdminClient;
const timeouts: Array<[string, number | undefined]> = [];
beforeEach(async () => {
  sim = await startTestSim();
  timeouts.length = 0;
  const socket = createSocketTransport(sim.socketPath, { timeoutMs: 10_000 });
  const seeing: Transport = {
    ...socket,
    call: (c, o) => {
      timeouts.push([c.method, o?.timeoutMs]);
      return socket.call(c, o);
    },
  };
  client = createAdminClient(seeing, { slowTimeoutMs: 60_000, timeoutMs: 5_000 });
});
afterEach(async () => {
  await sim.stop();
});

describe("volume.cloneFrom / cloneTo", () => {
  it("copies work's private volume into personal with a one-use token", async () => {
    await client.volume.resize("work", "private", 5n * 1024n ** 3n);
    const token = await client.volume.cloneFrom("work", "private");
    expect(token).toMatch(CLONE_TOKEN_RE);
    await client.volume.cloneTo("personal", "private", token, 5n * 1024n ** 3n);
    expect((await client.volume.info("personal", "private")).size).toBe(5n * 1024n ** 3n);
    await expect(client.volume.cloneTo("personal", "private", token)).rejects.toThrow(/QubesVolumeCopyTokenNotFoundError|empty reply/);
  });

  it("a running source in a file pool is refused as qubesd refuses it (qubes/storage/file.py: export of a running volume)", async () => {
    await client.vm.start("work");
    const token = await client.volume.cloneFrom("work", "private");
    await expect(client.volume.cloneTo("personal", "private", token)).rejects.toMatchObject({ qubesClass: "StoragePoolException", message: expect.stringContaining("file pool cannot export running volumes") });
  });

  it("refuses a token of another shape before sending it", async () => {
    const before = sim.calls.length;
    await expect(client.volume.cloneTo("personal", "private", "not-a-token\n")).rejects.toMatchObject({ code: "invalid-request" });
    expect(sim.calls.length).toBe(before);
  });

  it("gives CloneTo the slow timeout plus the copy's time at 20 MiB/s", async () => {
    const token = await client.volume.cloneFrom("work", "private");
    await client.volume.cloneTo("personal", "private", token, 10n * 1024n ** 3n);
    expect(copyTimeoutMs(60_000, 10n * 1024n ** 3n)).toBe(60_000 + 512_000);
    expect(timeouts.filter(([m]) => m.startsWith("admin.vm.volume.Clone"))).toEqual([
      ["admin.vm.volume.CloneFrom", 5_000],
      ["admin.vm.volume.CloneTo", 572_000],
    ]);
  });
});
