// `qubes-iac sim serve` option wiring, in process: --fixture, --release, --latency-ms,
// --no-serial-writes and --fault reach the server (seen over its socket), and bad values are all reported at once.

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import { afterEach, describe, expect, it } from "vitest";
import type { CliIO } from "../../src/cli/io.js";
import { runCli } from "../../src/cli/run.js";
import { GARBAGE_REPLY } from "../../src/providers/qubes/simulator/index.js";
import { call, ok } from "./wire.js";

const cleanup: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

type Served = { socket: string; stderr: () => string; stop(): Promise<number> };

function io(argv: string[], cwd: string): { io: CliIO; stderr: () => string; interrupt: () => void } {
  let interrupt: () => void = () => {};
  const interrupted = new Promise<string>((resolve) => (interrupt = () => resolve("SIGINT")));
  const stderr = new PassThrough();
  const err: Buffer[] = [];
  stderr.on("data", (c: Buffer) => err.push(c));
  const stdin = new PassThrough();
  stdin.end();
  return {
    io: { argv, env: {}, cwd, stdin, stdout: new PassThrough(), stderr, interrupted },
    stderr: () => Buffer.concat(err).toString("utf8"),
    interrupt,
  };
}

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "qiac-serve-"));
  cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

async function serve(extra: string[]): Promise<Served> {
  const dir = tempDir();
  const h = io(["sim", "serve", "--socket", "q.sock", ...extra], dir);
  const exit = runCli(h.io);
  const deadline = Date.now() + 10_000;
  while (!h.stderr().includes("listening")) {
    if (Date.now() > deadline) throw new Error(`sim serve did not start: ${h.stderr()}`);
    const early = await Promise.race([exit, new Promise<null>((r) => setTimeout(() => r(null), 10))]);
    if (early !== null) throw new Error(`sim serve exited ${early}: ${h.stderr()}`);
  }
  const served: Served = {
    socket: join(dir, "q.sock"),
    stderr: h.stderr,
    stop: async () => {
      h.interrupt();
      return exit;
    },
  };
  cleanup.push(async () => void (await served.stop()));
  return served;
}

describe("qubes-iac sim serve options", () => {
  it("serves a generated system with latency and faults", async () => {
    const s = await serve(["--fixture", "generated:40", "--latency-ms", "1,2", "--fault", "admin.vm.property.Set@1=garbage", "--fault", "write@2=close-before"]);
    expect((await ok(s.socket, "admin.vm.List", "", "dom0")).trim().split("\n")).toHaveLength(40);
    expect(await call(s.socket, "admin.vm.property.Set", "memory", "sys-vpn", "800")).toEqual(GARBAGE_REPLY);
    expect(await call(s.socket, "admin.vm.property.Set", "memory", "sys-vpn", "900")).toEqual(Buffer.alloc(0));
    expect(await ok(s.socket, "admin.vm.property.Get", "memory", "sys-vpn")).toBe("default=False type=int 800");
    expect(await s.stop()).toBe(0);
  });

  it("accepts a single latency and --no-serial-writes", async () => {
    const s = await serve(["--latency-ms", "3", "--no-serial-writes"]);
    expect(await ok(s.socket, "admin.vm.property.Get", "label", "work")).toBe("default=False type=label blue");
  });

  it("serves the release --release names (head is main) and says which", async () => {
    const r42 = await serve(["--release", "r4.2"]);
    expect(r42.stderr()).toMatch(/^qubes-iac: simulator of Qubes r4\.2 listening on /);
    expect(await ok(r42.socket, "admin.vm.List", "", "work")).toBe("work class=AppVM state=Halted\n");
    const head = await serve(["--release", "head"]);
    expect(head.stderr()).toMatch(/^qubes-iac: simulator of Qubes main listening on /);
    expect(await ok(head.socket, "admin.vm.List", "", "work")).toBe("work class=AppVM state=Halted uuid=277aa8c6-3065-5bc7-bd24-1f4c5966b67d\n");
  });

  it("refuses a state file made for another release, naming both", async () => {
    const dir = tempDir();
    const first = io(["sim", "serve", "--socket", "a.sock", "--state", "st.json", "--release", "r4.3"], dir);
    const exit = runCli(first.io);
    while (!first.stderr().includes("listening")) await new Promise((r) => setTimeout(r, 10));
    first.interrupt();
    expect(await exit).toBe(0);
    const second = io(["sim", "serve", "--socket", "b.sock", "--state", "st.json", "--release", "r4.2"], dir);
    expect(await runCli(second.io)).toBe(1);
    expect(second.stderr()).toContain(`imitates release r4.3, not r4.2: serve it with release r4.3, or start a new state (reset, or another state file) for r4.2`);
  });

  it("reports every bad option at once, each named, and exits 1", async () => {
    const dir = tempDir();
    const h = io(
      ["sim", "serve", "--socket", "q.sock", "--fixture", "generated:2", "--release", "r5", "--latency-ms", "fast", "--fault", "write@0=garbage", "--fault", "write@1=explode", "--fault", "read@1=garbage"],
      dir,
    );
    expect(await runCli(h.io)).toBe(1);
    expect(h.stderr()).toBe(
      [
        "qubes-iac: --fixture: a generated fixture has from 14 qubes (dom0, 4 templates, 5 service qubes, 4 disposable templates) to 10000, not 2",
        "--release: unknown release 'r5': use r4.2, r4.3 or main (head is main)",
        "--latency-ms: 'fast' is not a latency: use N or READ,WRITE (milliseconds, e.g. 5 or 2,40)",
        "--fault: fault rule 'write@0=garbage', column 7: call numbers start at 1",
        "--fault: fault rule 'write@1=explode', column 9: unknown action 'explode': use exception:CLASS[:MESSAGE], close-before, close-after, garbage, truncate[:BYTES], delay:MS or delay-before:MS",
        "",
      ].join("\n"),
    );
  });
});
