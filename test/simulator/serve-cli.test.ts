// `qubes-iac sim serve` option wiring, in process: --fixture, --latency-ms, --no-serial-writes
// and --fault reach the server (seen over its socket), and bad values are all reported at once.

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

  it("reports every bad option at once, each named, and exits 1", async () => {
    const dir = tempDir();
    const h = io(
      ["sim", "serve", "--socket", "q.sock", "--fixture", "generated:2", "--latency-ms", "fast", "--fault", "write@0=garbage", "--fault", "write@1=explode", "--fault", "read@1=garbage"],
      dir,
    );
    expect(await runCli(h.io)).toBe(1);
    expect(h.stderr()).toBe(
      [
        "qubes-iac: --fixture: a generated fixture has from 14 qubes (dom0, 4 templates, 5 service qubes, 4 disposable templates) to 10000, not 2",
        "--latency-ms: 'fast' is not a latency: use N or READ,WRITE (milliseconds, e.g. 5 or 2,40)",
        "--fault: fault rule 'write@0=garbage', column 7: call numbers start at 1",
        "--fault: fault rule 'write@1=explode', column 9: unknown action 'explode': use exception:CLASS[:MESSAGE], close-before, close-after, garbage, truncate[:BYTES], delay:MS or delay-before:MS",
        "",
      ].join("\n"),
    );
  });
});
