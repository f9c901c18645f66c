// The simulator as a server process: state kept across restarts, servers side by side, the
// state-file lock, refusing bad state files, and the call log.

import { spawnSync } from "node:child_process";
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { startSimulator, type SimulatorServer } from "../../src/providers/qubes/simulator/index.js";
import { call, ok, tempSim, type TempSim } from "./wire.js";

const cleanup: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

async function sim(opts = {}): Promise<TempSim> {
  const s = await tempSim(opts);
  cleanup.push(() => s.stop());
  return s;
}

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "qiac-sim-"));
  cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

describe("persistence", () => {
  it("keeps every kind of change across a restart", async () => {
    const s = await sim();
    await ok(s.socketPath, "admin.vm.property.Set", "memory", "work", "800");
    await ok(s.socketPath, "admin.vm.Create.AppVM", "fedora-40", "dom0", "name=kept label=green");
    await ok(s.socketPath, "admin.vm.feature.Set", "f1", "kept", "v1");
    await ok(s.socketPath, "admin.vm.tag.Set", "t1", "kept");
    await ok(s.socketPath, "admin.vm.firewall.Set", "", "kept", "action=drop proto=udp\naction=accept\n");
    await ok(s.socketPath, "admin.vm.notes.Set", "", "kept", "my notes");
    await ok(s.socketPath, "admin.property.Set", "default_qrexec_timeout", "dom0", "99");
    await ok(s.socketPath, "admin.vm.Start", "", "kept");
    const uuid = (await ok(s.socketPath, "admin.vm.List", "", "kept")).match(/uuid=(\S+)/)?.[1];
    const xid = await ok(s.socketPath, "admin.vm.property.Get", "xid", "kept");
    expect(xid).not.toBe("default=True type=int -1");

    await s.restart();

    expect(await ok(s.socketPath, "admin.vm.property.Get", "xid", "kept")).toBe(xid);
    expect(await ok(s.socketPath, "admin.vm.property.Get", "memory", "work")).toBe("default=False type=int 800");
    expect(await ok(s.socketPath, "admin.vm.List", "", "kept")).toBe(`kept class=AppVM state=Running uuid=${uuid}\n`);
    expect(await ok(s.socketPath, "admin.vm.feature.Get", "f1", "kept")).toBe("v1");
    expect(await ok(s.socketPath, "admin.vm.tag.List", "", "kept")).toBe("audiovm-dom0\ncreated-by-dom0\nguivm-dom0\nt1\n");
    expect(await ok(s.socketPath, "admin.vm.firewall.Get", "", "kept")).toBe("action=drop proto=udp\naction=accept\n");
    expect(await ok(s.socketPath, "admin.vm.notes.Get", "", "kept")).toBe("my notes");
    expect(await ok(s.socketPath, "admin.vm.property.Get", "qrexec_timeout", "kept")).toBe("default=True type=int 99");
  });

  it("saves exactly the in-memory state after every change (a copy of the file answers alike)", async () => {
    const s = await sim();
    const steps: Array<[string, string, string, string?]> = [
      ["admin.vm.Create.AppVM", "", "dom0", "name=a1 label=red"],
      ["admin.vm.CreateDisposable", "", "dom0"],
      ["admin.vm.Create.DispVM", "default-dvm", "dom0", "name=d1 label=green"],
      ["admin.vm.property.Set", "provides_network", "a1", "True"],
      ["admin.vm.property.Set", "netvm", "work", "a1"],
      ["admin.property.Set", "clockvm", "dom0", "a1"],
      ["admin.property.Set", "default_guivm", "dom0", "vault"],
      ["admin.vm.Start", "", "work"],
      ["admin.vm.Suspend", "", "work"],
      ["admin.vm.notes.Set", "", "personal", "silent change"],
      ["admin.vm.volume.Resize", "private", "untrusted", "4294967296"],
      ["admin.vm.volume.Set.rw", "root", "vault", "False"],
      ["admin.vm.tag.Set", "created-by-nobody", "vault"],
      ["admin.vm.device.denied.Add", "", "personal", "u******"],
      ["admin.label.Create", "teal", "dom0", "0x008080"],
      ["admin.pool.Add", "file", "dom0", "name=p2\ndir_path=/p2\n"],
    ];
    for (const [method, arg, dest, payload] of steps) await call(s.socketPath, method, arg, dest, payload ?? "");

    const copyDir = tempDir();
    copyFileSync(s.statePath, join(copyDir, "state.json"));
    const copy = await startSimulator({ socketPath: join(copyDir, "s.sock"), statePath: join(copyDir, "state.json") });
    cleanup.push(() => copy.close());
    expect(await dump(copy.socketPath)).toEqual(await dump(s.socketPath));
  });

  it("writes a versioned JSON document, replaced atomically", async () => {
    const s = await sim();
    await ok(s.socketPath, "admin.vm.property.Set", "vcpus", "work", "4");
    const doc = JSON.parse(readFileSync(s.statePath, "utf8")) as { format: string; version: number; qubes: Array<{ name: string; props: Record<string, unknown> }> };
    expect(doc.format).toBe("qubes-iac-sim-state");
    expect(doc.version).toBe(1);
    expect(doc.qubes.find((q) => q.name === "work")?.props.vcpus).toBe("4");
    expect(existsSync(`${s.statePath}.tmp-${process.pid}`)).toBe(false);
  });

  it("reseeds from the fixture on reset", async () => {
    const s = await sim();
    await ok(s.socketPath, "admin.vm.Remove", "", "untrusted");
    await s.restart({ reset: true });
    expect(await ok(s.socketPath, "admin.vm.List", "", "untrusted")).toContain("untrusted class=AppVM");
  });

  it("runs in memory when no state file is given", async () => {
    const dir = tempDir();
    const server = await startSimulator({ socketPath: join(dir, "s.sock") });
    cleanup.push(() => server.close());
    expect(server.statePath).toBeUndefined();
    await ok(server.socketPath, "admin.vm.Remove", "", "untrusted");
    expect((await call(server.socketPath, "admin.vm.List", "", "untrusted")).toString("latin1")).toContain("QubesVMNotFoundError");
  });
});

describe("several servers", () => {
  it("runs two servers with their own socket and state side by side", async () => {
    const a = await sim();
    const b = await sim();
    await ok(a.socketPath, "admin.vm.Remove", "", "untrusted");
    expect(await ok(b.socketPath, "admin.vm.List", "", "untrusted")).toContain("untrusted");
    expect((await call(a.socketPath, "admin.vm.List", "", "untrusted")).toString("latin1")).toContain("No such domain");
  });

  it("refuses a second server on a locked state file, naming the holder's pid", async () => {
    const a = await sim();
    const error = await startSimulator({ socketPath: join(a.dir, "other.sock"), statePath: a.statePath }).then(
      (s) => s.close().then(() => null),
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(Error);
    expect((error as Error).message).toContain(`pid ${process.pid}`);
    expect((error as Error).message).toContain(a.statePath);
    expect(await ok(a.socketPath, "admin.vm.List", "", "work")).toContain("work");
  });

  it("takes over a lock left by a process that is gone", async () => {
    const dir = tempDir();
    const statePath = join(dir, "state.json");
    const deadPid = spawnSync(process.execPath, ["-e", ""]).pid;
    writeFileSync(`${statePath}.lock`, JSON.stringify({ pid: deadPid, started: "2020-01-01T00:00:00.000Z" }));
    const server = await startSimulator({ socketPath: join(dir, "s.sock"), statePath });
    cleanup.push(() => server.close());
    expect(JSON.parse(readFileSync(`${statePath}.lock`, "utf8")).pid).toBe(process.pid);
  });

  it("releases the lock and the socket on close", async () => {
    const dir = tempDir();
    const statePath = join(dir, "state.json");
    const server: SimulatorServer = await startSimulator({ socketPath: join(dir, "s.sock"), statePath });
    await server.close();
    expect(existsSync(`${statePath}.lock`)).toBe(false);
    expect(existsSync(join(dir, "s.sock"))).toBe(false);
  });

  it("refuses a socket another server listens on", async () => {
    const a = await sim();
    await expect(startSimulator({ socketPath: a.socketPath })).rejects.toThrow(/in use/);
  });
});

describe("bad state files", () => {
  it("refuses a corrupt state file, naming it, and leaves it untouched", async () => {
    const dir = tempDir();
    const statePath = join(dir, "state.json");
    writeFileSync(statePath, "{ not json");
    await expect(startSimulator({ socketPath: join(dir, "s.sock"), statePath })).rejects.toThrow(statePath);
    expect(readFileSync(statePath, "utf8")).toBe("{ not json");
    expect(existsSync(`${statePath}.lock`)).toBe(false);
  });

  it("refuses a state file of another version or format", async () => {
    const dir = tempDir();
    const statePath = join(dir, "state.json");
    writeFileSync(statePath, JSON.stringify({ format: "qubes-iac-sim-state", version: 2 }));
    await expect(startSimulator({ socketPath: join(dir, "s.sock"), statePath })).rejects.toThrow(/version 2 is not supported/);
    writeFileSync(statePath, JSON.stringify({ format: "something-else", version: 1 }));
    await expect(startSimulator({ socketPath: join(dir, "s.sock"), statePath })).rejects.toThrow(/format is "something-else"/);
  });

  it("says where a structurally broken document is wrong", async () => {
    const dir = tempDir();
    const statePath = join(dir, "state.json");
    const s = await sim();
    const doc = JSON.parse(readFileSync(s.statePath, "utf8")) as { qubes: Array<{ volumes: Array<{ size: unknown }> }> };
    const first = doc.qubes[1]?.volumes[0];
    if (first) first.size = 12;
    writeFileSync(statePath, JSON.stringify(doc));
    await expect(startSimulator({ socketPath: join(dir, "s.sock"), statePath })).rejects.toThrow(/qubes\[1\]\.volumes\[0\]\.size/);
  });
});

describe("call log", () => {
  it("appends one JSON line per call with the required keys, without payload content", async () => {
    const dir = tempDir();
    const logPath = join(dir, "calls.log");
    const s = await sim({ logPath });
    await ok(s.socketPath, "admin.vm.notes.Set", "", "work", "top secret note");
    await call(s.socketPath, "admin.vm.feature.Get", "nosuch", "work");
    await call(s.socketPath, "admin.vm.property.Set", "qid", "work", "99");
    const text = readFileSync(logPath, "utf8");
    expect(text).not.toContain("top secret");
    const lines = text.trim().split("\n").map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines).toHaveLength(3);
    for (const l of lines) {
      expect(Object.keys(l).sort()).toEqual(expect.arrayContaining(["arg", "dest", "method", "ms", "payload_bytes", "reply", "src", "time"]));
      expect(typeof l.ms).toBe("number");
      expect(Number.isNaN(Date.parse(String(l.time)))).toBe(false);
    }
    expect(lines[0]).toMatchObject({ src: "dom0", method: "admin.vm.notes.Set", dest: "work", arg: "", payload_bytes: 15, reply: "ok" });
    expect(lines[1]).toMatchObject({ reply: "exception", exc_type: "QubesFeatureNotFoundError" });
    expect(lines[2]).toMatchObject({ reply: "empty", arg: "qid" });
    expect(s.calls).toEqual(lines);
  });
});

/** Everything the API shows of the state, call by call, for comparing two servers. */
async function dump(socketPath: string): Promise<string[]> {
  const out: string[] = [];
  const get = async (method: string, arg: string, dest: string) => {
    const r = (await call(socketPath, method, arg, dest)).toString("latin1");
    out.push(`${method}+${arg} ${dest} => ${r}`);
    return r.slice(2);
  };
  const lines = (t: string) => t.split("\n").filter((l) => l !== "");
  for (const m of ["admin.property.GetAll", "admin.label.List", "admin.pool.List"]) await get(m, "", "dom0");
  for (const line of lines(await get("admin.vm.List", "", "dom0"))) {
    const vm = line.split(" ")[0] ?? "";
    await get("admin.vm.property.GetAll", "", vm);
    await get("admin.vm.tag.List", "", vm);
    await get("admin.vm.device.denied.List", "", vm);
    for (const f of lines(await get("admin.vm.feature.List", "", vm))) await get("admin.vm.feature.Get", f, vm);
    for (const v of lines(await get("admin.vm.volume.List", "", vm))) await get("admin.vm.volume.Info", v, vm);
    if (vm !== "dom0") {
      await get("admin.vm.firewall.Get", "", vm);
      await get("admin.vm.notes.Get", "", vm);
    }
  }
  return out;
}
