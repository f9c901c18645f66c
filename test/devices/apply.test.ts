// Devices end to end against the simulator's laptop fixture, on the release under test (main,
// R4.3 or R4.2: test/helpers/sim.ts testRelease): a plan assigns what the config lists through
// that release's calls (and only those), claims an assignment that exists as written, converges
// to no changes, removes only what it assigned, refuses to change one it did not make, and the
// executor refuses a forged Unassign of a foreign assignment.
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { planProblems, ownershipProblems } from "../../src/apply/enforce.js";
import { readerFromClient } from "../../src/apply/admin-api.js";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { testRelease } from "../helpers/sim.js";
import { runIn } from "../apply/_cli.js";
import { converge, desiredFromYaml, errorCodes, expectValidPlanJson, planOps, planWith, runOps, startSession, type SimSession } from "../plan/_helpers.js";

const release = testRelease();
const assignApi = release !== "r4.2";

let s: SimSession;
/** Every call the client sent, with its payload (the simulator's log has only the payload's size). */
let sent: Array<{ method: string; dest: string; arg: string; payload: string }>;
beforeEach(async () => {
  sent = [];
  s = await startSession({ fixture: "laptop" }, (t) => ({
    ...t,
    description: t.description,
    source: t.source,
    visibility: t.visibility,
    call: (c, o) => {
      sent.push({ method: c.method, dest: c.dest, arg: c.arg ?? "", payload: c.payload === undefined ? "" : Buffer.from(c.payload).toString("latin1") });
      return t.call(c, o);
    },
    stream: (c) => t.stream(c),
    close: () => t.close(),
  }));
});
afterEach(async () => {
  await s.stop();
});

const CONFIG = `
version: 1
owner: lab
qubes:
  sys-net:
    adopt: true
    devices:
      pci:
        dom0:00_14.3: {options: [no-strict-reset]}
  sys-usb:
    adopt: true
    devices:
      pci:
        dom0:00_14.0:
  work:
    class: AppVM
    template: fedora-41
    label: blue
    devices:
      usb:
        sys-usb:2-1: {}
      block:
        sys-usb:sda1: {mode: required, options: {read-only: "yes"}}
      mic:
        dom0:mic:
`;

const deviceCalls = (): Array<{ method: string; dest: string; arg: string; payload: string }> =>
  sent.filter((c) => /^admin\.vm\.device\.(pci|usb|block|mic)\.(Assign|Unassign|Set\.\w+|Attach|Detach)$/.test(c.method));

describe(`devices on ${release}`, () => {
  it("assigns what the config lists, leaves what exists as written, then plans no changes", async () => {
    const desired = desiredFromYaml(CONFIG);
    const { json } = await planWith(s, desired);
    expectValidPlanJson(json);
    expect(errorCodes(json)).toEqual([]);
    // sys-net and sys-usb hold their controllers already: nothing is done there (and nothing claimed).
    const ops = planOps(json);
    expect(ops.filter((o) => o.op.startsWith("device.") && "vm" in o && o.vm !== "work")).toEqual([]);
    expect(ops.filter((o) => o.op === "record.set" && o.vm === "sys-net").map((o) => (o.op === "record.set" ? o.record : ""))).toEqual(["own"]);
    expect(ops.filter((o) => o.op === "record.set" && o.vm === "work").map((o) => (o.op === "record.set" ? o.record : ""))).toEqual(["own", "device.usb.sys-usb.2-1", "device.block.sys-usb.sda1", "device.mic.dom0.mic"]);
    await runOps(s.client, ops);
    const calls = deviceCalls();
    if (assignApi) {
      expect(calls).toEqual([
        {
          method: "admin.vm.device.usb.Assign",
          dest: "work",
          arg: "sys-usb+2-1+0781+5581+4C530001230517117153+u080650",
          payload: "device_id='0781:5581:4C530001230517117153:u080650' port_id='2-1' devclass='usb' backend_domain='sys-usb' mode='auto-attach' frontend_domain='work'",
        },
        {
          method: "admin.vm.device.block.Assign",
          dest: "work",
          arg: "sys-usb+sda1+0781+5581+4C530001230517117153+u080650+1",
          payload: "device_id='0781:5581:4C530001230517117153:u080650:1' port_id='sda1' devclass='block' backend_domain='sys-usb' mode='required' frontend_domain='work' _read-only='yes'",
        },
        { method: "admin.vm.device.mic.Assign", dest: "work", arg: "dom0+mic+dom0+mic++m000000", payload: "device_id='dom0:mic::m000000' port_id='mic' devclass='mic' backend_domain='dom0' mode='auto-attach' frontend_domain='work'" },
      ]);
    } else {
      expect(calls).toEqual([
        { method: "admin.vm.device.usb.Attach", dest: "work", arg: "sys-usb+2-1", payload: "persistent=True" },
        { method: "admin.vm.device.block.Attach", dest: "work", arg: "sys-usb+sda1", payload: "persistent=True read-only=yes" },
        { method: "admin.vm.device.mic.Attach", dest: "work", arg: "dom0+mic", payload: "persistent=True" },
      ]);
      expect(json.diagnostics.map((d) => d.code)).toContain("QIAC-W171");
    }
    const again = await planWith(s, desired);
    expect(errorCodes(again.json)).toEqual([]);
    expect(planOps(again.json)).toEqual([]);
  });

  it("removes only the assignments it made, and refuses to change one it did not make", async () => {
    await converge(s, desiredFromYaml(CONFIG));
    // work drops its block device; sys-net asks for its NIC without the option (a foreign assignment before the claim? no: claimed above).
    const dropped = desiredFromYaml(CONFIG.replace(/      block:\n.*\n/, ""));
    const { json } = await planWith(s, dropped);
    expect(errorCodes(json)).toEqual([]);
    const removal = planOps(json).filter((o) => o.op.startsWith("device."));
    expect(removal.map((o) => o.op)).toEqual([assignApi ? "device.unassign" : "device.detach"]);
    // R4.2 removes a persistent attachment only from a halted qube; work is halted.
    await runOps(s.client, planOps(json));
    expect(planOps((await planWith(s, dropped)).json)).toEqual([]);
  });

  it("never changes an assignment it did not make (sys-usb's controller with other options)", async () => {
    const desired = desiredFromYaml(`
version: 1
owner: lab
qubes:
  sys-usb:
    adopt: true
    devices:
      pci:
        dom0:00_14.0: {options: [permissive]}
`);
    const { json } = await planWith(s, desired, { allowRestart: true });
    expect(errorCodes(json)).toEqual(["QIAC-E176"]);
  });

  it("a PCI device dom0 does not offer is refused at its line; a PCI change of a running qube needs it halted", async () => {
    const missing = await planWith(s, desiredFromYaml("version: 1\nowner: lab\nqubes:\n  sys-net:\n    adopt: true\n    devices:\n      pci:\n        dom0:00_02.0: {}\n"));
    const e = missing.json.diagnostics.find((d) => d.code === "QIAC-E174");
    expect(e?.location?.line).toBe(8);
    const audio = desiredFromYaml("version: 1\nowner: lab\nqubes:\n  sys-net:\n    adopt: true\n    devices:\n      pci:\n        dom0:00_14.3: {options: [no-strict-reset]}\n        dom0:00_1f.3: {}\n");
    expect(errorCodes((await planWith(s, audio)).json)).toEqual(["QIAC-E105"]);
    const { json } = await planWith(s, audio, { allowRestart: true });
    expect(errorCodes(json)).toEqual([]);
    const kinds = planOps(json).filter((o) => "vm" in o && o.vm === "sys-net" && (o.op.startsWith("vm.") || o.op.startsWith("device."))).map((o) => o.op);
    expect(kinds).toEqual(["vm.shutdown", assignApi ? "device.assign" : "device.attach", "vm.start"]);
  });

  it("the executor refuses a forged Unassign of an assignment qubes-iac did not make", async () => {
    const desired = desiredFromYaml("version: 1\nowner: lab\nqubes:\n  sys-usb:\n    adopt: true\n    features: {x: '1'}\n");
    await converge(s, desired);
    const { json } = await planWith(s, desiredFromYaml("version: 1\nowner: lab\nqubes:\n  sys-usb:\n    adopt: true\n    features: {x: '2'}\n"));
    const step = json.steps.find((st) => st.address === "qube.sys-usb");
    expect(step).toBeDefined();
    const forged = assignApi
      ? { op: "device.unassign" as const, vm: "sys-usb", devclass: "pci" as const, backend: "dom0", port: "00_14.0", device_id: "8086:51ed::p0c0330" }
      : { op: "device.detach" as const, vm: "sys-usb", devclass: "pci" as const, backend: "dom0", port: "00_14.0" };
    step?.ops.push(forged);
    expect(planProblems(json)).toEqual([]);
    const reader = readerFromClient(s.client);
    const problems = await ownershipProblems(
      json,
      {
        listed: async (n) => (await reader.listQubes()).some((q) => q.name === n),
        dom0FeatureNames: async () => new Set(await reader.featureNames("dom0")),
        tags: async (vm) => new Set(await reader.tags(vm)),
        featureNames: async (vm) => new Set(await reader.featureNames(vm)),
        uuid: async (vm) => (await reader.properties({ vm })).get("uuid")?.raw,
        labels: async () => new Set(await reader.labels()),
        pools: async () => new Set(await reader.pools()),
      },
      { takeOwnership: new Set() },
    );
    expect(problems.map((p) => p.why)).toEqual([expect.stringMatching(/pci device dom0:00_14\.0 of qube sys-usb was not assigned by lab/) as unknown as string]);
  });

  it("export writes the devices, and the export plans No changes.", async () => {
    await converge(s, desiredFromYaml(CONFIG));
    const dir = mkdtempSync(join(tmpdir(), "qiac-devices-"));
    try {
      const file = join(dir, "lab.yaml");
      const connect = ["--connect", `qubesd:${s.sim.socketPath}`];
      const r = await runIn(["export", ...connect, "--owner", "lab", "-o", file]);
      expect(r.code).toBe(0);
      const text = readFileSync(file, "utf8");
      expect(text).toContain("dom0:00_14.3: {options: [no-strict-reset]}");
      // R4.2 keeps no mode: a persistent attachment reads as its class's default.
      expect(text).toContain(assignApi ? "sys-usb:sda1: {mode: required, options: {read-only: yes}}" : "sys-usb:sda1: {options: {read-only: yes}}");
      expect(text).toContain("dom0:mic: {}");
      const plan = await runIn(["plan", ...connect, file]);
      expect(plan.stdout).toBe("No changes.\n");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("the CLI applies the devices (the executor's guard lets its own ops through), then plans No changes.", async () => {
    const dir = mkdtempSync(join(tmpdir(), "qiac-devices-"));
    try {
      const file = join(dir, "lab.yaml");
      writeFileSync(file, CONFIG);
      const connect = ["--connect", `qubesd:${s.sim.socketPath}`];
      const r = await runIn(["apply", ...connect, "--auto-approve", file]);
      expect({ code: r.code, stderr: r.stderr.split("\n").filter((l) => /error/.test(l)) }).toEqual({ code: 0, stderr: [] });
      // The CLI makes its own connection: the simulator's call log names the methods.
      expect(s.sim.calls.map((c) => c.method).filter((m) => /^admin\.vm\.device\.\w+\.(Assign|Attach)$/.test(m))).toEqual(assignApi ? ["admin.vm.device.usb.Assign", "admin.vm.device.block.Assign", "admin.vm.device.mic.Assign"] : ["admin.vm.device.usb.Attach", "admin.vm.device.block.Attach", "admin.vm.device.mic.Attach"]);
      expect((await runIn(["plan", ...connect, file])).stdout).toBe("No changes.\n");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("a saved plan is refused when a qube's assignments changed since it was made", async () => {
    const dir = mkdtempSync(join(tmpdir(), "qiac-devices-"));
    try {
      const file = join(dir, "lab.yaml");
      const saved = join(dir, "lab.plan");
      writeFileSync(file, CONFIG);
      const connect = ["--connect", `qubesd:${s.sim.socketPath}`];
      expect((await runIn(["plan", ...connect, "--out", saved, file])).code).toBe(0);
      // Someone assigns the audio controller to sys-usb by hand in the meantime.
      await runOps(s.client, [
        assignApi
          ? { op: "device.assign", vm: "sys-usb", devclass: "pci", backend: "dom0", port: "00_1f.3", device_id: "8086:51c8::p040300", mode: "required", options: {} }
          : { op: "device.attach", vm: "sys-usb", devclass: "pci", backend: "dom0", port: "00_1f.3", options: {} },
      ]);
      const r = await runIn(["apply", ...connect, "--auto-approve", saved]);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain("qube.sys-usb.devices.pci");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  for (const kind of ["exception:QubesException", "close-before", "close-after"] as const) {
    it(`a fault (${kind}) at a device call: apply says what happened, the next apply finishes, then No changes.`, async () => {
      const dir = mkdtempSync(join(tmpdir(), "qiac-devices-"));
      try {
        const file = join(dir, "lab.yaml");
        writeFileSync(file, CONFIG);
        const connect = ["--connect", `qubesd:${s.sim.socketPath}`];
        await s.sim.faults.add(`admin.vm.device.usb.${assignApi ? "Assign" : "Attach"}@1=${kind}`);
        const first = await runIn(["apply", ...connect, "--auto-approve", file]);
        // close-after: the call ran and only its reply was lost; apply re-reads the assignments and settles it.
        expect(first.code).toBe(kind === "close-after" ? 0 : 1);
        const second = await runIn(["apply", ...connect, "--auto-approve", file]);
        expect(second.code).toBe(0);
        expect((await runIn(["plan", ...connect, file])).stdout).toBe("No changes.\n");
        // Never sent twice for one apply: once more only when the first did not run.
        const assigns = s.sim.calls.filter((c) => c.method === `admin.vm.device.usb.${assignApi ? "Assign" : "Attach"}`);
        expect(assigns.length).toBe(kind === "close-after" ? 1 : 2);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });
  }

  it("a new assignment to a port with nothing plugged in: refused when its identity is needed, noted otherwise", async () => {
    await runOps(s.client, [{ op: "vm.shutdown", vm: "sys-usb" }]);
    const present = await planWith(s, desiredFromYaml("version: 1\nowner: lab\nqubes:\n  work:\n    class: AppVM\n    template: fedora-41\n    label: blue\n    devices:\n      usb:\n        sys-usb:2-1:\n"));
    const any = await planWith(s, desiredFromYaml("version: 1\nowner: lab\nqubes:\n  work:\n    class: AppVM\n    template: fedora-41\n    label: blue\n    devices:\n      usb:\n        sys-usb:2-1: {device: any}\n"));
    if (assignApi) {
      expect(errorCodes(present.json)).toEqual(["QIAC-E175"]);
      expect(present.json.diagnostics.find((d) => d.code === "QIAC-E175")?.message).toContain("sys-usb is not running");
      expect(any.json.diagnostics.map((d) => d.code).sort()).toEqual(["QIAC-W170", "QIAC-W172"]);
    } else {
      // R4.2 needs no identity: the attachment by port is made, and said to accept any device.
      expect(errorCodes(present.json)).toEqual([]);
      expect(present.json.diagnostics.map((d) => d.code).sort()).toEqual(["QIAC-W170", "QIAC-W171"]);
    }
  });

  it("devices_denied (R4.3+) is a property: deduplicated and sorted as qubesd stores it, so it converges; R4.2 has none", async () => {
    const desired = desiredFromYaml("version: 1\nowner: lab\nqubes:\n  sys-usb:\n    adopt: true\n    properties:\n      devices_denied: u0e0100p0e0000u0e0100\n");
    const { json } = await planWith(s, desired);
    if (!assignApi) {
      expect(errorCodes(json)).toEqual(["QIAC-E108"]);
      return;
    }
    expect(planOps(json).filter((o) => o.op === "property.set")).toEqual([{ op: "property.set", holder: { vm: "sys-usb" }, name: "devices_denied", value: "p0e0000u0e0100" }]);
    await runOps(s.client, planOps(json));
    expect(planOps((await planWith(s, desired)).json)).toEqual([]);
  });

  it("dropping a USB device of a running qube: R4.2 detaches only from a halted qube, R4.3+ unassigns it running", async () => {
    await converge(s, desiredFromYaml(CONFIG));
    await runOps(s.client, [{ op: "vm.start", vm: "work" }]);
    const dropped = desiredFromYaml(CONFIG.replace(/      usb:\n.*\n/, ""));
    const { json } = await planWith(s, dropped);
    expect(errorCodes(json)).toEqual(assignApi ? [] : ["QIAC-E105"]);
    const restart = await planWith(s, dropped, { allowRestart: true });
    const kinds = planOps(restart.json).filter((o) => "vm" in o && o.vm === "work" && (o.op.startsWith("vm.") || o.op.startsWith("device."))).map((o) => o.op);
    expect(kinds).toEqual(assignApi ? ["device.unassign"] : ["vm.shutdown", "device.detach", "vm.start"]);
  });

  it("examples/laptop-devices.yaml applies from the laptop fixture, plans No changes., and its export too", async () => {
    const connect = ["--connect", `qubesd:${s.sim.socketPath}`];
    const r = await runIn(["apply", ...connect, "--auto-approve", "examples/laptop-devices.yaml"]);
    expect(r.code).toBe(0);
    const again = await runIn(["plan", ...connect, "examples/laptop-devices.yaml"]);
    expect(again.stdout).toBe("No changes.\n");
    const dir = mkdtempSync(join(tmpdir(), "qiac-devices-"));
    try {
      const file = join(dir, "export.yaml");
      expect((await runIn(["export", ...connect, "--owner", "laptop-devices", "-o", file])).code).toBe(0);
      expect((await runIn(["plan", ...connect, file])).stdout).toBe("No changes.\n");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
