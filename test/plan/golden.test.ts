// Golden plans: the human output (stdout, stderr, exit code) and the JSON plan of `qubes-iac plan`
// for every example against the simulator's default fixture, and for scenarios that start from
// test/plan/fixtures/lab-v1.yaml applied: a delete and a replace (lab-v2), a blocked halted-only
// change and a protected qube (lab-v3), and the same halted-only change with --allow-restart.
// UPDATE_GOLDEN=1 rewrites the files; review the diff before committing.
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
];

async function planOutputs(s: SimSession, args: string[]): Promise<{ human: string; json: string; code: number }> {
  const connect = ["--connect", `qubesd:${s.sim.socketPath}`];
  const human = await runCliInProcess(["plan", ...connect, "--detailed-exitcode", ...args], { env: { NO_COLOR: "1" } });
  const json = await runCliInProcess(["plan", ...connect, "--json", ...args]);
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

describe("golden plan of device assignments against the laptop fixture", () => {
  it("devices: sys-net's and sys-usb's controllers as they are, new qubes with PCI, USB, block and mic devices", async () => {
    const s = await startSession({ fixture: "laptop" });
    try {
      const out = await planOutputs(s, ["test/plan/fixtures/devices.yaml"]);
      expect(out.code).toBe(2);
      expectGolden("plan/devices.txt", out.human);
      expectGolden("plan/devices.json", out.json);
    } finally {
      await s.stop();
    }
  });
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
