// End to end with a REAL VM under QEMU (TCG): a Debian kernel + busybox guest running the host's
// qemu-ga, with an ext4 virtio disk. Readiness from a cold boot, resync across reconnects (the VM
// keeps unread replies), facts, guest files on the disk, a real fsfreeze (count > 0, status
// frozen, writes refused until the thaw) around a host command via the CLI — on success, failure
// and a signal — the suspend error path, and last, in the same boot, `plan`/`apply` of guest files
// on the disk (converging) and `state: shutdown` powering the VM off through guest-shutdown.
import { createHash } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { guestFsfreeze, guestThaw } from "../../src/cli/commands/guest.js";
import { connectAgent, type QgaClient } from "../../src/providers/qga/client.js";
import { readGuestFacts } from "../../src/providers/qga/facts.js";
import { readGuestFile, readGuestFileState, writeGuestFile } from "../../src/providers/qga/files.js";
import { withFrozenFilesystems } from "../../src/providers/qga/fsfreeze.js";
import { waitForAgent } from "../../src/providers/qga/wait.js";
import { runIn } from "../apply/_cli.js";
import { startSession } from "../plan/_helpers.js";
import { rawConnection, rejection, sleep } from "./helpers/agent.js";
import { testIO } from "./helpers/io.js";
import { GUEST_DATA, GUEST_HOSTNAME, VM_TOOLS_PRESENT, bootGuest, buildGuestImage, readFromDiskImage, type GuestImage, type TestVm } from "./helpers/vm.js";

const MiB = 1024 * 1024;
const sha256 = (b: Uint8Array): string => createHash("sha256").update(b).digest("hex");

describe.skipIf(!VM_TOOLS_PRESENT)("a real VM with qemu-ga inside", () => {
  let image: GuestImage;
  let vm: TestVm;
  let bootToAgentMs = 0;
  const timings: string[] = [];

  beforeAll(async () => {
    image = await buildGuestImage();
    timings.push(`guest image ready in ${(image.buildMs / 1000).toFixed(1)} s`);
    vm = await bootGuest(image);
    const started = Date.now();
    try {
      const c = await waitForAgent(vm.spec, { timeoutMs: 90_000 });
      bootToAgentMs = Date.now() - started;
      await c.close();
    } catch (e) {
      throw new Error(`${e instanceof Error ? e.message : String(e)}\n--- guest console ---\n${vm.console()}`);
    }
    timings.push(`agent answered ${(bootToAgentMs / 1000).toFixed(1)} s after QEMU started`);
  }, 330_000);

  afterAll(async () => {
    await vm?.destroy();
    console.log(`VM test: ${timings.join("; ")}`);
  });

  /** Runs `body` with a fresh client; the VM's channel serves one connection at a time. */
  const withClient = async <T>(body: (c: QgaClient) => Promise<T>): Promise<T> => {
    const c = await connectAgent(vm.spec, { timeoutMs: 20_000, callTimeoutMs: 20_000, resyncEveryMs: 1000 });
    try {
      return await body(c);
    } finally {
      await c.close();
    }
  };

  test("a reply left unread by a closed connection arrives on the next one; the client's resync discards it", async () => {
    // What a naive client would see: the previous connection's reply first.
    const a = await rawConnection(vm.socket);
    a.write('\xff{"execute":"guest-sync-delimited","arguments":{"id":1}}');
    await a.readUntil((all) => all.includes(Buffer.from('\xff{"return": 1}\n', "latin1")), 10_000);
    a.write('{"execute":"guest-get-osinfo"}');
    a.close();
    await sleep(200);
    const b = await rawConnection(vm.socket);
    b.write('{"execute":"guest-ping"}');
    const seen = (await b.readUntil((all) => all.toString().includes('{"return": {}}'), 10_000)).toString();
    b.close();
    expect(seen.indexOf("kernel-release")).toBeGreaterThanOrEqual(0);
    expect(seen.indexOf("kernel-release")).toBeLessThan(seen.indexOf('{"return": {}}'));

    // The same situation, then our client: it gets its own answer.
    const c1 = await rawConnection(vm.socket);
    c1.write('{"execute":"guest-get-osinfo"}');
    c1.close();
    await sleep(200);
    await withClient(async (c) => {
      expect(await c.getHostName()).toBe(GUEST_HOSTNAME);
    });
  });

  test("facts come from the guest, not the host", async () => {
    const facts = await withClient((c) => readGuestFacts(c));
    expect(facts.hostname).toBe(GUEST_HOSTNAME);
    expect(facts.os).toMatchObject({ id: "qiac-test-guest", prettyName: "qubes-iac test guest 1", machine: "x86_64" });
    expect(facts.os?.kernelRelease).toMatch(/cloud-amd64$/);
    expect(facts.interfaces?.map((i) => i.name)).toEqual(["lo"]);
  });

  test("guest files on the ext4 disk: write, read back by hash, overwrite shorter, stream", async () => {
    await withClient(async (c) => {
      const path = `${GUEST_DATA}/motd`;
      expect(await readGuestFileState(c, path)).toEqual({ kind: "absent" });
      const content = Buffer.from("managed by qubes-iac\n");
      expect(await writeGuestFile(c, path, content)).toEqual({ size: content.length, sha256: sha256(content) });
      expect(await readGuestFileState(c, path)).toEqual({ kind: "present", size: content.length, sha256: sha256(content) });

      const big = Buffer.alloc(3 * MiB);
      for (let i = 0; i < big.length; i += 4) big.writeUInt32LE(i, i);
      const bigPath = `${GUEST_DATA}/big.bin`;
      expect(await writeGuestFile(c, bigPath, big, { chunkBytes: 256 * 1024 })).toEqual({ size: big.length, sha256: sha256(big) });
      const chunks: Buffer[] = [];
      await readGuestFile(c, bigPath, (b) => void chunks.push(b), { chunkBytes: 512 * 1024 });
      expect(Buffer.concat(chunks).equals(big)).toBe(true);

      expect((await writeGuestFile(c, bigPath, Buffer.from("small now\n"))).size).toBe(10);
      expect(await readGuestFileState(c, bigPath)).toEqual({ kind: "present", size: 10, sha256: sha256(Buffer.from("small now\n")) });
    });
  }, 120_000);

  test("fsfreeze really freezes: count > 0, status frozen, file writes refused until the thaw", async () => {
    await withClient(async (c) => {
      const path = `${GUEST_DATA}/during-freeze.txt`;
      const handle = await c.fileOpen(path, "w");
      const outcome = await withFrozenFilesystems(c, async (frozen) => {
        expect(frozen).toBeGreaterThan(0);
        expect(await c.fsfreezeStatus()).toBe("frozen");
        // guest-info now lists the file commands as disabled, so the client refuses before sending…
        const write = await rejection(c.fileWrite(handle, Buffer.from("must not land")));
        expect(write).toMatchObject({ code: "disabled", details: { command: "guest-file-write", maybeDelivered: false } });
        const open = await rejection(c.fileOpen(`${GUEST_DATA}/other.txt`, "w"));
        expect(open).toMatchObject({ code: "disabled", details: { maybeDelivered: false } });
        // …and the agent itself refuses when asked anyway.
        const forced = await rejection(c.execute("guest-file-write", { handle, "buf-b64": Buffer.from("must not land").toString("base64") }, { unchecked: true }));
        expect(forced).toMatchObject({ code: "disabled", details: { agentClass: "CommandNotFound", maybeDelivered: true } });
        expect(forced.details.agentDesc).toMatch(/^Command guest-file-write has been disabled/);
        return "body ran";
      });
      expect(outcome).toMatchObject({ ok: true, value: "body ran" });
      expect(outcome.thawed).toBe(outcome.frozen);
      expect(await c.fsfreezeStatus()).toBe("thawed");
      expect(await c.fileWrite(handle, Buffer.from("after thaw\n"))).toEqual({ count: 11, eof: false });
      await c.fileClose(handle);
      expect(await readGuestFileState(c, path)).toEqual({ kind: "present", size: 11, sha256: sha256(Buffer.from("after thaw\n")) });
    });
  }, 60_000);

  test("`guest fsfreeze -- COMMAND`: runs the command frozen, thaws, reports counts, keeps the exit status", async () => {
    const t = testIO(vm.dir);
    const code = await guestFsfreeze(t.io, vm.spec, ["sh", "-c", "echo backup-running; exit 3"]);
    expect(code).toBe(3);
    expect(t.stdout()).toBe("backup-running\n");
    expect(t.stderr()).toMatch(/^qubes-iac: froze 1 filesystem in socket .*\nqubes-iac: thawed 1 filesystem in socket .*\n$/);
    expect(await withClient((c) => c.fsfreezeStatus())).toBe("thawed");
  }, 60_000);

  test("`guest fsfreeze`: a signal is forwarded to the command and the guest is still thawed", async () => {
    const t = testIO(vm.dir);
    const running = guestFsfreeze(t.io, vm.spec, ["sleep", "30"]);
    const deadline = Date.now() + 30_000;
    while (!t.stderr().includes("froze") && Date.now() < deadline) await sleep(20);
    expect(t.stderr()).toContain("froze 1 filesystem");
    const started = Date.now();
    t.interrupt("SIGTERM");
    expect(await running).toBe(143);
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(t.stderr()).toContain("thawed 1 filesystem");
    expect(await withClient((c) => c.fsfreezeStatus())).toBe("thawed");
  }, 60_000);

  test("a freeze left behind (a killed run): `guest fsfreeze` refuses to stack another, `guest thaw` recovers", async () => {
    expect(await withClient((c) => c.fsfreezeFreeze())).toBeGreaterThan(0);
    const t = testIO(vm.dir);
    await expect(guestFsfreeze(t.io, vm.spec, ["sh", "-c", "echo must-not-run"])).rejects.toThrow(/already frozen .*qubes-iac guest thaw/);
    expect(t.stdout()).toBe("");
    const u = testIO(vm.dir);
    expect(await guestThaw(u.io, vm.spec)).toBe(0);
    expect(u.stderr()).toMatch(/thawed 1 filesystem in socket/);
    expect(await withClient((c) => c.fsfreezeStatus())).toBe("thawed");
  }, 60_000);

  test("guest-suspend-* report their error path (this guest has no suspend support) and the channel stays in step", async () => {
    await withClient(async (c) => {
      for (const kind of ["disk", "ram", "hybrid"] as const) {
        const e = await rejection(c.suspend(kind, { timeoutMs: 10_000 }));
        expect(e).toMatchObject({ code: "agent", details: { command: `guest-suspend-${kind}`, agentDesc: "the requested suspend mode is not supported by the guest" } });
      }
      expect((await rejection(c.execute("guest-shutdown"))).message).toContain("never answers");
      await c.ping();
      expect(await c.getHostName()).toBe(GUEST_HOSTNAME);
    });
  }, 60_000);

  test("plan and apply of guest files on the ext4 disk converge; `state: shutdown` then powers the VM off through guest-shutdown", async () => {
    const session = await startSession();
    const cfg = mkdtempSync(join(tmpdir(), "qiac-vm-cfg-"));
    try {
      const cli = (command: string, ...args: string[]) => runIn([command, "--connect", `qubesd:${session.sim.socketPath}`, ...args], { cwd: cfg });
      const config = (state: string): void =>
        writeFileSync(
          join(cfg, "qubes.yaml"),
          `version: 1\nowner: vmtest\nguests:\n  testvm:\n    agent: {socket: ${vm.socket}}\n    wait: {timeout: 30s}\n    state: ${state}\n    files:\n` +
            `      ${GUEST_DATA}/app.conf: {source: app.conf}\n      ${GUEST_DATA}/motd: "managed by qubes-iac\\n"\n`,
        );
      writeFileSync(join(cfg, "app.conf"), "listen = 8080\n");
      config("running");
      const started = Date.now();
      const first = await cli("plan", "--detailed-exitcode", "qubes.yaml");
      expect(first.code).toBe(2);
      // motd was written by the file test above: only app.conf is new.
      expect(first.stdout).toContain(`   ~ guest.testvm\n      files.${GUEST_DATA}/app.conf: (absent) → 14 bytes, sha256 ${sha256(Buffer.from("listen = 8080\n")).slice(0, 12)}\n`);
      expect(first.stdout).toContain(`# guest: qubes-iac test guest 1; hostname ${GUEST_HOSTNAME}; qemu-ga `);
      expect((await cli("apply", "--auto-approve", "qubes.yaml")).code).toBe(0);
      expect(await cli("plan", "--detailed-exitcode", "qubes.yaml")).toMatchObject({ code: 0, stdout: "No changes.\n" });
      timings.push(`guest files planned, applied and planned again in ${((Date.now() - started) / 1000).toFixed(1)} s`);

      config("shutdown");
      const down = await cli("plan", "qubes.yaml");
      expect(down.stdout).toContain("   ~ guest.testvm\n      state: running → shutdown\n");
      expect(down.stdout).toContain("update:guest.testvm  1 call\n            guest-shutdown\n");
      const stopping = Date.now();
      const applied = await cli("apply", "--auto-approve", "qubes.yaml");
      expect(applied.code).toBe(0);
      const exit = await Promise.race([vm.exited, sleep(30_000).then(() => null)]);
      expect(exit).toEqual({ code: 0, signal: null });
      timings.push(`apply of state: shutdown took ${((Date.now() - stopping) / 1000).toFixed(1)} s`);
      // Off now: its agent does not answer, which is what shutdown asks for.
      expect(await cli("plan", "--detailed-exitcode", "qubes.yaml")).toMatchObject({ code: 0, stdout: "No changes.\n" });

      expect((await readFromDiskImage(vm.disk, "/app.conf"))?.toString()).toBe("listen = 8080\n");
      expect((await readFromDiskImage(vm.disk, "/motd"))?.toString()).toBe("managed by qubes-iac\n");
      expect((await readFromDiskImage(vm.disk, "/during-freeze.txt"))?.toString()).toBe("after thaw\n");
      expect(await readFromDiskImage(vm.disk, "/other.txt")).toBeNull();
    } finally {
      await session.stop();
      rmSync(cfg, { recursive: true, force: true });
    }
  }, 120_000);
});
