// Golden plans: the human output (stdout, stderr, exit code) and the JSON plan of `qubes-iac plan`
// for every example against the simulator's default fixture, and for scenarios that start from
// test/plan/fixtures/lab-v1.yaml applied: a delete and a replace (lab-v2), a blocked halted-only
// change and a protected qube (lab-v3), and the same halted-only change with --allow-restart.
// UPDATE_GOLDEN=1 rewrites the files; review the diff before committing.
import { join } from "node:path";
import { POLICY_STANDIN_DIR } from "../reliability/_qrexec.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCliInProcess } from "./_cli.js";
import { expectGolden } from "./_golden.js";
import { converge, expectValidPlanJson, loadDesired, startSession, type SimSession } from "./_helpers.js";

const EXAMPLES: Array<[string, string]> = [
  ["minimal", "examples/minimal.yaml"],
  ["workstation", "examples/workstation.yaml"],
  ["reference", "examples/reference.yaml"],
  ["offline-vault", "examples/offline-vault.yaml"],
  ["vpn", "examples/vpn.yaml"],
  ["split-config", "examples/split-config"],
  ["templates", "examples/templates.yaml"],
  ["split-gpg", "examples/split-gpg.yaml"],
];

async function planOutputs(s: SimSession, args: string[]): Promise<{ human: string; json: string; code: number }> {
  const connect = ["--connect", `qubesd:${s.sim.socketPath}`];
  // As from dom0: policy files through the stand-in of dom0's qubes-rpc-multiplexer, on the simulator's policy directory.
  const env = { QUBES_IAC_RPC_MULTIPLEXER: join(POLICY_STANDIN_DIR, "qubes-rpc-multiplexer"), QIAC_STANDIN_SOCKET: s.sim.socketPath };
  const human = await runCliInProcess(["plan", ...connect, "--detailed-exitcode", ...args], { env: { NO_COLOR: "1", ...env } });
  const json = await runCliInProcess(["plan", ...connect, "--json", ...args], { env });
  const parsed = JSON.parse(json.stdout) as { qubes_iac_version: string; errored: boolean };
  expectValidPlanJson(parsed);
  expect(json.code).toBe(parsed.errored ? 1 : 0);
  const hide = (t: string): string => t.split(s.sim.dir).join("<sim>");
  // The simulator gives a new qube a random UUID: numbered in order of appearance, records and checks stay comparable.
  const uuids = new Map<string, string>();
  const hideUuids = (t: string): string => t.replace(/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/g, (u) => uuids.get(u) ?? (uuids.set(u, `<uuid-${uuids.size + 1}>`), uuids.get(u) as string));
  const text = [`$ qubes-iac plan --detailed-exitcode ${args.join(" ")}`, `exit ${human.code}`, "--- stdout", human.stdout, "--- stderr", hide(human.stderr)].join("\n");
  return { human: hideUuids(text), json: hideUuids(`${JSON.stringify({ ...parsed, qubes_iac_version: "<version>" }, null, 2)}\n`), code: human.code };
}

describe("golden plans of the examples against the default fixture", () => {
  for (const [name, path] of EXAMPLES) {
    it(name, async () => {
      const s = await startSession();
      try {
        const out = await planOutputs(s, [path]);
        expect(out.code).toBe(2);
        expectGolden(`plan/${name}.txt`, out.human);
        expectGolden(`plan/${name}.json`, out.json);
      } finally {
        await s.stop();
      }
    });
  }
});

describe("golden plans refused at their config lines", () => {
  it("empty-disks: TemplateVM and StandaloneVM without clone: or root: empty, a template and a clone source that exist nowhere", async () => {
    const s = await startSession();
    try {
      const out = await planOutputs(s, ["test/plan/fixtures/empty-disks.yaml"]);
      expect(out.code).toBe(1);
      expectGolden("plan/empty-disks.txt", out.human);
    } finally {
      await s.stop();
    }
  });
});

describe("golden plans against the laptop fixture", () => {
  const LAPTOP: Array<[string, string, string]> = [
    ["laptop", "examples/laptop.yaml", "the whole-system example (clones, a standalone, the controllers, a new HVM with one)"],
    ["devices", "test/plan/fixtures/devices.yaml", "sys-net's and sys-usb's controllers as they are, new qubes with PCI, USB, block and mic devices"],
  ];
  for (const [name, path, what] of LAPTOP) {
    it(`${name}: ${what}`, async () => {
      const s = await startSession({ fixture: "laptop" });
      try {
        const out = await planOutputs(s, [path]);
        expect(out.code).toBe(2);
        expectGolden(`plan/${name}.txt`, out.human);
        expectGolden(`plan/${name}.json`, out.json);
      } finally {
        await s.stop();
      }
    });
  }
});

describe("golden plans of changes to an applied config", () => {
  let s: SimSession;
  beforeAll(async () => {
    s = await startSession();
    await converge(s, loadDesired("test/plan/fixtures/lab-v1.yaml"));
  });
  afterAll(async () => {
    await s.stop();
  });

  it("lab-v2: a delete after the reference to it is moved, and a replace", async () => {
    const out = await planOutputs(s, ["test/plan/fixtures/lab-v2.yaml"]);
    expect(out.code).toBe(2);
    expectGolden("plan/lab-v2.txt", out.human);
    expectGolden("plan/lab-v2.json", out.json);
  });

  it("lab-v3: a blocked halted-only change and a protected qube: exit 1, printed in full", async () => {
    const out = await planOutputs(s, ["test/plan/fixtures/lab-v3.yaml"]);
    expect(out.code).toBe(1);
    expectGolden("plan/lab-v3.txt", out.human);
    expectGolden("plan/lab-v3.json", out.json);
  });

  it("lab-v3 with --allow-restart: the halted-only change shuts the qube down and starts it again", async () => {
    const out = await planOutputs(s, ["--allow-restart", "test/plan/fixtures/lab-v3.yaml"]);
    expect(out.code).toBe(1);
    expectGolden("plan/lab-v3-allow-restart.txt", out.human);
    expectGolden("plan/lab-v3-allow-restart.json", out.json);
  });

  it("lab-v1 again: no changes, exit 0 with --detailed-exitcode", async () => {
    const out = await planOutputs(s, ["test/plan/fixtures/lab-v1.yaml"]);
    expect(out.code).toBe(0);
    expectGolden("plan/lab-v1-no-changes.txt", out.human);
  });
});

describe("golden plans of volumes and notes", () => {
  it("volumes-notes: sizes, revisions_to_keep, ephemeral, the pools of a new qube's volumes, notes", async () => {
    const s = await startSession();
    try {
      const out = await planOutputs(s, ["test/plan/fixtures/volumes-notes.yaml"]);
      expect(out.code).toBe(2);
      expectGolden("plan/volumes-notes.txt", out.human);
      expectGolden("plan/volumes-notes.json", out.json);
    } finally {
      await s.stop();
    }
  });

  it("volumes-refused: a shrink, a file pool's revisions limit, a new volume below its creation size: exit 1", async () => {
    const s = await startSession();
    try {
      const out = await planOutputs(s, ["test/plan/fixtures/volumes-refused.yaml"]);
      expect(out.code).toBe(1);
      expectGolden("plan/volumes-refused.txt", out.human);
    } finally {
      await s.stop();
    }
  });
});
