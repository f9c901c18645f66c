// `qubes-iac export` against the simulator: the exact config of the default fixture with --all,
// the round trips (an owner's export plans No changes.; --all plans only adoptions, and after
// applying them No changes.), choosing the owner, and what export refuses or leaves out.
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { runOp } from "../../src/apply/admin-api.js";
import { createAdminClient } from "../../src/providers/qubes/client.js";
import type { JsonPlan } from "../../src/plan/json.js";
import { startSimulator, type SimCallLogEntry, type SimulatorServer } from "../../src/providers/qubes/simulator/index.js";
import { createSocketTransport } from "../../src/providers/qubes/transport-socket.js";
import { isMutating } from "../helpers/sim.js";
import { runIn } from "../apply/_cli.js";

/** A simulator on a state file that can be restarted (qubesd tells a new label's colour only after a restart). */
type Sim = { socket: string; calls: SimCallLogEntry[]; restart(): Promise<void>; stop(): Promise<void> };

let dir: string;
let sim: Sim;

async function startSim(): Promise<Sim> {
  const socket = join(dir, "qubesd.sock");
  const statePath = join(dir, "state.json");
  const calls: SimCallLogEntry[] = [];
  const start = (): Promise<SimulatorServer> => startSimulator({ socketPath: socket, statePath, onCall: (e) => calls.push(e) });
  let server = await start();
  return {
    socket,
    calls,
    restart: async () => {
      await server.close();
      server = await start();
    },
    stop: () => server.close(),
  };
}

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), "qiac-export-"));
  sim = await startSim();
});
afterEach(async () => {
  await sim.stop();
  rmSync(dir, { recursive: true, force: true });
});

const connect = (): string[] => ["--connect", `qubesd:${sim.socket}`];
const run = (cmd: string, args: string[]) => runIn([cmd, ...connect(), ...args]);
const planJson = async (config: string): Promise<JsonPlan> => JSON.parse((await run("plan", ["--json", config])).stdout) as JsonPlan;
const op = async (o: Parameters<typeof runOp>[1]): Promise<void> => {
  const client = createAdminClient(createSocketTransport(sim.socket, { timeoutMs: 5000 }));
  await runOp(client, o);
  await client.close();
};

describe("export --all of the default fixture", () => {
  it("is the config a person would write for it: non-default values only, every qube to adopt", async () => {
    const r = await run("export", ["--all", "--owner", "me"]);
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/qubes-iac: exported 8 qubes, 0 labels, 2 pools, 6 global properties\n$/);
    await expect(r.stdout).toMatchFileSnapshot("golden/fixture-all.yaml");
  });

  it("pins what the host sets itself (dom0's kernel, its kernel pool) only with --host-values", async () => {
    await op({ op: "property.set", holder: { vm: "work" }, name: "kernel", value: "6.6.63-1.fc37" });
    const plain = await run("export", ["--all", "--owner", "me"]);
    expect(plain.stdout.split("\n").filter((l) => !l.startsWith("#") && /default_kernel|default_pool_kernel|kernel: /.test(l))).toEqual([]);
    expect(plain.stdout).toContain("# Left out as this host sets them (export --host-values keeps them): default_kernel, default_pool_kernel, the kernel of work.\n");
    const kept = await run("export", ["--all", "--owner", "me", "--host-values"]);
    expect(kept.stderr).toMatch(/8 global properties\n$/);
    expect(kept.stdout).toContain("  default_kernel: 6.6.63-1.fc37\n");
    expect(kept.stdout).toContain("  default_pool_kernel: linux-kernel\n");
    expect(kept.stdout).toMatch(/ {2}work:\n(?: {4}.*\n)*? {6}kernel: 6\.6\.63-1\.fc37\n/);
    expect(kept.stdout).not.toContain("Left out as this host sets them");
  });

  it("round trip: the first plan only adopts (tags and inventory, no attribute changes); after applying it, No changes.", async () => {
    const file = join(dir, "exported.yaml");
    expect((await run("export", ["--all", "--owner", "me", "-o", file])).code).toBe(0);
    expect(readFileSync(file, "utf8")).toMatch(/^# yaml-language-server: \$schema=\S*schemas\/qubes-iac\.schema\.json\n/);

    const plan = await planJson(file);
    expect(plan.diagnostics).toEqual([]);
    expect(plan.summary).toEqual({ add: 0, change: 8, destroy: 0, forget: 0, release: 0 });
    for (const c of plan.resource_changes) {
      if (c.type !== "qube") {
        expect({ address: c.address, action: c.action }).toEqual({ address: c.address, action: "no-op" });
        continue;
      }
      expect(c.reasons).toEqual(["adopt: qubes-iac takes over this existing qube (tag managed-by-me); dropping it from the config later releases it, never destroys it"]);
      const { tags: before, ...restBefore } = c.before ?? {};
      const { tags: after, ...restAfter } = c.after ?? {};
      expect({ address: c.address, attributes: restBefore }).toEqual({ address: c.address, attributes: restAfter });
      expect(after).toEqual([...((before as string[] | undefined) ?? []), "managed-by-me"].sort());
    }
    const ownershipOnly = plan.steps.flatMap((s) => s.ops).filter((o) => !((o.op === "feature.set" || o.op === "feature.remove") && o.vm === "dom0" && o.name.startsWith("qubes-iac.me.")) && !(o.op === "tag.set" && o.name === "managed-by-me") && !(o.op === "record.set" && o.record === "own"));
    expect(ownershipOnly).toEqual([]);
    expect(plan.steps.map((s) => s.id)).toEqual(["setup:ownership", ...["default-dvm", "fedora-40", "personal", "sys-firewall", "sys-net", "untrusted", "vault", "work"].map((q) => `update:qube.${q}`)]);

    expect((await run("apply", ["--auto-approve", file])).code).toBe(0);
    expect((await run("plan", [file])).stdout).toBe("No changes.\n");
    const before = sim.calls.length;
    expect((await run("apply", ["--auto-approve", file])).stdout).toBe("No changes.\n");
    expect(sim.calls.slice(before).filter((c) => isMutating(c.method))).toEqual([]);
  });
});

describe("export of an owner's resources plans No changes.", () => {
  for (const [example, owner] of [
    ["examples/minimal.yaml", "minimal"],
    ["examples/workstation.yaml", "workstation"],
    ["examples/reference.yaml", "laptop"],
    ["examples/offline-vault.yaml", "split-gpg"],
    ["examples/vpn.yaml", "vpn"],
    ["examples/split-config", "dev-box"],
    ["examples/templates.yaml", "templates"],
  ] as const) {
    it(`${example} (owner ${owner})`, async () => {
      expect((await run("apply", ["--auto-approve", example])).code).toBe(0);
      await sim.restart();
      const file = join(dir, `${owner}.yaml`);
      const r = await run("export", ["--owner", owner, "-o", file]);
      expect(r.stderr).not.toMatch(/warning|error/);
      expect(r.code).toBe(0);
      const plan = await run("plan", [file]);
      expect(plan.stderr).not.toMatch(/warning|error/);
      expect(plan.stdout).toBe("No changes.\n");
      // A clone is made once: what exists is exported as it is, never as a copy to make again.
      expect(readFileSync(file, "utf8")).not.toMatch(/^\s*clone(_devices)?:/m);
      if (example === "examples/reference.yaml") await expect(readFileSync(file, "utf8").replace(/\$schema=\S+/, "$schema=SCHEMA")).toMatchFileSnapshot("golden/reference-laptop.yaml");
    });
  }
});

describe("choosing the owner, and what export refuses", () => {
  it("without --owner: the one owner whose records dom0 holds, else an error naming them", async () => {
    const none = await run("export", []);
    expect(none.code).toBe(1);
    expect(none.stderr).toMatch(/no owner's records on this system: name the owner of the exported config with --owner NAME/);
    expect((await run("apply", ["--auto-approve", "examples/minimal.yaml"])).code).toBe(0);
    const one = await run("export", []);
    expect(one.code).toBe(0);
    expect(one.stdout).toMatch(/\nowner: minimal\nqubes:\n {2}notes:\n/);
    expect((await run("apply", ["--auto-approve", "examples/vpn.yaml"])).code).toBe(0);
    const two = await run("export", []);
    expect(two.code).toBe(1);
    expect(two.stderr).toMatch(/records of several owners \(minimal, vpn\): choose one with --owner NAME/);
  });

  it("never overwrites a file, and refuses a bad owner name before connecting", async () => {
    const file = join(dir, "there.yaml");
    writeFileSync(file, "keep me\n");
    const r = await run("export", ["--all", "--owner", "me", "-o", file]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/there\.yaml exists; export never overwrites a file/);
    expect(readFileSync(file, "utf8")).toBe("keep me\n");
    const bad = await run("export", ["--owner", "a.b"]);
    expect(bad.stderr).toMatch(/--owner 'a.b' is not an owner name/);
    expect(sim.calls).toEqual([]);
  });

  it("a label the owner manages whose colour qubesd does not tell yet: error, nothing written", async () => {
    expect((await run("apply", ["--auto-approve", "examples/reference.yaml"])).code).toBe(0);
    const file = join(dir, "laptop.yaml");
    const r = await run("export", ["--owner", "laptop", "-o", file]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/label\.magenta: error QIAC-E301: label magenta is managed by laptop, but qubesd does not tell its colour/);
    expect(existsSync(file)).toBe(false);
  });

  it("a qube of the inventory without its marker record (drift) is left out with a warning", async () => {
    expect((await run("apply", ["--auto-approve", "examples/minimal.yaml"])).code).toBe(0);
    const client = createAdminClient(createSocketTransport(sim.socket, { timeoutMs: 5000 }));
    const uuid = (await client.property.get({ vm: "notes" }, "uuid")).raw;
    await client.close();
    await op({ op: "feature.remove", vm: "notes", name: `qubes-iac.minimal.${uuid}.own` });
    const r = await run("export", ["--owner", "minimal"]);
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/qube\.notes: warning QIAC-W302: qube notes is in the inventory of minimal but lacks its ownership marker \(managed-by-minimal alone is no claim\): left out/);
    expect(r.stdout).not.toMatch(/notes:/);
  });
});
