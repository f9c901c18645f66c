// `qubes-iac show` against the simulator: what the config manages, as read now — absent before an
// apply, every managed attribute after it, qubes the owner does not manage marked so — in text
// and as JSON. It never changes anything.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { isMutating, startTestSim, type TestSim } from "../helpers/sim.js";
import { runIn } from "../apply/_cli.js";

let sim: TestSim;
beforeEach(async () => {
  sim = await startTestSim();
});
afterEach(async () => {
  await sim.stop();
});

const run = (cmd: string, args: string[]) => runIn([cmd, "--connect", `qubesd:${sim.socketPath}`, ...args]);

describe("show", () => {
  it("before an apply: what exists and what does not, with the values the config would change", async () => {
    const r = await run("show", ["examples/reference.yaml"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(
      [
        "label.magenta: absent",
        "pool.fast: absent",
        "properties",
        "    default_netvm: sys-firewall",
        "    default_dispvm: default-dvm",
        "qube.dev: absent",
        "qube.keys: absent",
        "qube.sys-firewall (AppVM, halted, not managed)",
        "    properties.memory: 400 (default)",
        "    tags: (none)",
        "qube.sys-vpn: absent",
        "",
      ].join("\n"),
    );
    expect(sim.calls.filter((c) => isMutating(c.method))).toEqual([]);
  });

  it("after an apply: every managed attribute as read", async () => {
    expect((await run("apply", ["--auto-approve", "examples/reference.yaml"])).code).toBe(0);
    const from = sim.calls.length;
    const r = await run("show", ["examples/reference.yaml"]);
    expect(r.stdout).toContain(
      [
        "qube.dev (AppVM, running, managed by laptop)",
        "    class: AppVM",
        "    label: magenta",
        "    template: fedora-40",
        "    properties.netvm: sys-vpn",
        "    properties.maxmem: 8000",
        "    properties.kernelopts: swiotlb=2048 (default)",
        "    features.service.cups: 1",
        "    features.service.crond: (absent)",
        "    tags: dev, managed-by-laptop",
        "    firewall:",
        "      action=accept dsthost=example.com proto=tcp dstports=443",
        "      action=accept specialtarget=dns",
        "      action=drop",
        "    volumes.private.size: 20GiB",
        "    protect: true",
        "    state: running",
        "",
      ].join("\n"),
    );
    expect(r.stdout).toContain("label.magenta\n    colour: unknown (qubesd tells a new label's colour only after it restarts)\n");
    expect(sim.calls.slice(from).filter((c) => isMutating(c.method))).toEqual([]);
  });

  it("booleans read true/false in plan and show, a pool's bool parameter too (qubesd stores True/False)", async () => {
    const dir = mkdtempSync(join(tmpdir(), "qiac-show-"));
    try {
      const config = join(dir, "q.yaml");
      writeFileSync(config, "version: 1\nowner: o\npools:\n  p1: {driver: file, dir_path: /var/lib/p1, ephemeral_volatile: true}\nqubes:\n  sys-firewall: {adopt: true, properties: {autostart: true}}\n");
      const plan = await run("plan", [config]);
      expect(plan.stdout).toContain("      params.ephemeral_volatile: true\n");
      expect(plan.stdout).toContain("      properties.autostart: false (default) → true\n");
      expect((await run("apply", ["--auto-approve", config])).code).toBe(0);
      const show = await run("show", [config]);
      expect(show.stdout).toContain("    params.ephemeral_volatile: true\n");
      expect(show.stdout).toContain("    properties.autostart: true\n");
      expect(`${plan.stdout}${show.stdout}`).not.toMatch(/True|False/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("PLANFILE: a saved plan, recognised by its content, printed as plan printed it, with nothing read", async () => {
    const dir = mkdtempSync(join(tmpdir(), "qiac-show-"));
    try {
      const file = join(dir, "tonight");
      const planned = await run("plan", ["--out", file, "examples/reference.yaml"]);
      expect(planned.code).toBe(0);
      const from = sim.calls.length;
      const r = await run("show", [file]);
      expect(r.code).toBe(0);
      const printed = planned.stdout.slice(0, planned.stdout.indexOf("\nSaved the plan to"));
      expect(r.stdout).toBe(`Saved plan ${file}, made by qubes-iac 0.1.0 for laptop:\n${printed}`);
      expect(JSON.parse((await run("show", ["--json", file])).stdout)).toEqual(JSON.parse(readFileSync(file, "utf8")));
      expect(sim.calls.slice(from)).toEqual([]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("--json: a versioned document; a qube of the config that is not the owner's is shown as not managed", async () => {
    const r = await run("show", ["--json", "test/plan/fixtures/not-ours.yaml"]);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({
      format: "qubes-iac-state",
      format_version: 1,
      qubes_iac_version: "0.1.0",
      owner: "intruder",
      resources: [
        { address: "qube.extra", type: "qube", name: "extra", exists: false, attributes: {}, default_attributes: [], ownership: "absent" },
        { address: "qube.work", type: "qube", name: "work", exists: true, class: "AppVM", power: "Halted", ownership: "not managed", attributes: {}, default_attributes: [] },
      ],
    });
  });

  it("an invalid config exits 1 without connecting", async () => {
    const r = await run("show", ["test/plan/fixtures/does-not-exist.yaml"]);
    expect(r.code).toBe(1);
    expect(sim.calls).toEqual([]);
  });
});
