// Control characters read from qubesd (a feature value, an error message), from a config and from
// a saved plan are printed escaped everywhere a person reads them: plan, show, export, diagnostics
// and apply's progress. Raw, they could clear the screen, recolour it or fake a line of output.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { createHumanView } from "../../src/apply/view-human.js";
import type { JsonStep } from "../../src/plan/json.js";
import { fixtureDocument } from "../../src/providers/qubes/simulator/fixtures.js";
import type { StateDocument } from "../../src/providers/qubes/simulator/index.js";
import { readYaml } from "../../src/config/_yaml.js";
import { printable, printableDeep } from "../../src/util/printable.js";
import { runIn } from "../apply/_cli.js";
import { startTestSim, type TestSim } from "../helpers/sim.js";

/** Clears the screen, a C1 control sequence introducer, a right-to-left override, and a fake line. */
const HOSTILE = "x\x1b[2J\x9b31m\u202eevil\nqube.fake: done";
const RAW_CONTROL = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u202e]/;

let sim: TestSim;
let dir: string;
beforeEach(async () => {
  sim = await startTestSim();
  dir = mkdtempSync(join(tmpdir(), "qiac-ctl-"));
});
afterEach(async () => {
  await sim.stop();
  rmSync(dir, { recursive: true, force: true });
});

const run = (cmd: string, args: string[]) => runIn([cmd, "--connect", `qubesd:${sim.socketPath}`, ...args]);

/** qubesd itself refuses such a value: this is what a compromised or buggy qubesd would send. */
async function setHostileFeature(): Promise<void> {
  await sim.stop();
  const doc = structuredClone(fixtureDocument("default")) as StateDocument;
  doc.qubes.find((q) => q.name === "work")!.features.push(["hostile", HOSTILE]);
  const edited = join(dir, "hostile.json");
  writeFileSync(edited, JSON.stringify(doc));
  sim = await startTestSim({}, { stateFrom: edited });
}

describe("control characters are escaped", () => {
  it("the helper: escapes, one line, and the rest as it is", () => {
    expect(printable(HOSTILE)).toBe("x\\x1b[2J\\x9b31m\\u202eevil\\x0aqube.fake: done");
    expect(printable("fedora-40 élan → ✓")).toBe("fedora-40 élan → ✓");
    expect(printableDeep({ [`k\x1b`]: [HOSTILE, 1, null] })).toEqual({ "k\\x1b": [printable(HOSTILE), 1, null] });
  });

  it("from qubesd, in the plan, show and export's warning", async () => {
    await setHostileFeature();
    const config = join(dir, "q.yaml");
    writeFileSync(config, "version: 1\nowner: t\nqubes:\n  work:\n    adopt: true\n    features: {hostile: '1'}\n");
    const plan = await run("plan", [config]);
    expect(plan.stdout).toContain(`features.hostile: ${printable(HOSTILE)} → 1`);
    expect(plan.stdout).not.toMatch(RAW_CONTROL);

    const show = await run("show", [config]);
    expect(show.stdout).toContain(`features.hostile: ${printable(HOSTILE)}`);
    expect(show.stdout).not.toMatch(RAW_CONTROL);

    const exported = await run("export", ["--all", "--owner", "t"]);
    expect(exported.code).toBe(0);
    expect(exported.stdout).not.toMatch(RAW_CONTROL);
    expect(exported.stderr).toContain(`feature hostile: hostile value contains illegal characters`);
    expect(exported.stderr).not.toMatch(RAW_CONTROL);
  });

  it("in export's YAML: written as YAML escapes, and read back the same", async () => {
    await sim.stop();
    const doc = structuredClone(fixtureDocument("default")) as StateDocument;
    const odd = "a\x9bb\u202ec\x7fd";
    doc.qubes.find((q) => q.name === "work")!.props.kernelopts = odd;
    const edited = join(dir, "odd.json");
    writeFileSync(edited, JSON.stringify(doc));
    sim = await startTestSim({}, { stateFrom: edited });
    const exported = await run("export", ["--all", "--owner", "t"]);
    expect(exported.code).toBe(0);
    expect(exported.stdout).toContain('kernelopts: "a\\x9bb\\u202ec\\x7fd"');
    expect(exported.stdout).not.toMatch(RAW_CONTROL);
    const back = readYaml("export.yaml", exported.stdout).written?.value as { qubes: Record<string, { properties?: Record<string, string> }> };
    expect(back.qubes.work?.properties?.kernelopts).toBe(odd);
  });

  it("from a config, in diagnostics", async () => {
    const config = join(dir, "q.yaml");
    writeFileSync(config, 'version: 1\nowner: t\nqubes:\n  work: {adopt: true, label: "r\\e[2Jd"}\n');
    const r = await runIn(["validate", config]);
    expect(r.code).toBe(1);
    expect(r.stderr).not.toMatch(RAW_CONTROL);
    expect(r.stderr).toContain("label 'r\\x1b[2Jd'");
  });

  it("from qubesd's error and a saved plan's step, in apply's progress", () => {
    const lines: string[] = [];
    const view = createHumanView((l) => lines.push(l));
    const step = { id: `qube.work${HOSTILE}`, ops: [] } as unknown as JsonStep;
    view.onStepFailed(step, { opIndex: 0, op: { op: "feature.set" } as never, failure: { code: "exception", message: HOSTILE, call: "admin.vm.feature.Set" } }, 10);
    expect(lines).toHaveLength(1);
    expect(lines[0]).not.toMatch(/[\u0000-\u001f\u007f-\u009f\u202e]/);
    expect(lines[0]).toContain(printable(HOSTILE));
  });
});
