// Policy files as managed state, end to end against the simulator's policy directory: planned
// in-process (read through policy.List/Get over the simulator's socket), saved, and applied by the
// built CLI through the embedded simulator's policy.* services; the token keeps a hand edit made
// between plan and apply; files the config does not name are never read nor touched; a saved
// plan that forges policy ops is refused before any call.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { destroyedByOps, ownershipProblems, planProblems } from "../../src/apply/enforce.js";
import { computePlan } from "../../src/cli/commands/plan.js";
import type { DesiredState } from "../../src/model/desired.js";
import { policyToken } from "../../src/model/qrexec-policy-admin.js";
import { policyAddress, policyHeader, type DesiredPolicyFile, type PolicyRule } from "../../src/model/qrexec-policy.js";
import type { JsonPlan } from "../../src/plan/json.js";
import { renderHumanPlan } from "../../src/plan/render.js";
import { createAdminClient, type AdminClient } from "../../src/providers/qubes/client.js";
import { createPolicyClient, type PolicyClient } from "../../src/providers/qubes/policy-client.js";
import { simServiceRunner } from "../../src/providers/qubes/service-runner.js";
import { startSimulator, type SimCallLogEntry } from "../../src/providers/qubes/simulator/index.js";
import { createSocketTransport } from "../../src/providers/qubes/transport-socket.js";
import { runBuiltCli } from "../helpers/cli.js";
import { repoRoot } from "../helpers/shared.js";
import { testRelease } from "../helpers/sim.js";
import { desiredFromYaml, expectValidPlanJson } from "../plan/_helpers.js";

const OWNER = "me";
const at = { file: "qubes.yaml", line: 3, column: 3 };

const rule = (service: string, source: string, target: string, action: PolicyRule["action"], params: PolicyRule["params"] = {}): PolicyRule => ({ kind: "rule", service, argument: "*", source, target, action, params });

function policyFile(name: string, statements: PolicyRule[], o: Partial<DesiredPolicyFile> = {}): DesiredPolicyFile {
  return { name, scope: "policy", syntax: "policy", form: "rules", statements, adopt: false, absent: false, release: false, at, ...o } as DesiredPolicyFile;
}

const withPolicies = (files: DesiredPolicyFile[]): DesiredState => ({ ...desiredFromYaml(`version: 1\nowner: ${OWNER}\n`), policies: new Map(files.map((f) => [policyAddress(f), f])) }) as DesiredState;

const GPG = policyFile("30-split-gpg", [rule("qubes.Gpg", "work", "vault", "allow"), rule("*", "@anyvm", "vault", "deny", { notify: false })]);

let dir: string;
let statePath: string;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "qiac-policy-files-"));
  statePath = join(dir, "state.json");
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

type Session = { client: AdminClient; policy: PolicyClient; calls: SimCallLogEntry[] };

/** Runs `use` against a simulator on the test's state file (the CLI uses the same file in between). */
async function withSim<T>(use: (s: Session) => Promise<T>): Promise<T> {
  const socketPath = join(dir, "qubesd.sock");
  const calls: SimCallLogEntry[] = [];
  const server = await startSimulator({ socketPath, statePath, release: testRelease(), onCall: (e) => calls.push(e) });
  const service = simServiceRunner(socketPath, { timeoutMs: 10_000 });
  const client = createAdminClient({ ...createSocketTransport(socketPath, { timeoutMs: 10_000 }), service });
  try {
    return await use({ client, policy: createPolicyClient(service), calls });
  } finally {
    await client.close();
    await server.close();
  }
}

const plan = (desired: DesiredState): Promise<JsonPlan> => withSim((s) => computePlan(s.client, desired, [], { parallelism: 4 }));

function savePlan(json: JsonPlan, name = "plan.json"): string {
  const p = join(dir, name);
  writeFileSync(p, JSON.stringify(json));
  return p;
}

const apply = (planPath: string, extra: string[] = []) =>
  runBuiltCli(["apply", planPath, "--connect", `sim:${statePath}`, "--auto-approve", ...extra], { cwd: repoRoot, timeoutMs: 60_000 });

/** The simulator's policy directory as the state file holds it. */
const policyDir = (): { files: Record<string, string>; include: Record<string, string> } =>
  (JSON.parse(readFileSync(statePath, "utf8")) as { policy?: { files: Record<string, string>; include: Record<string, string> } }).policy ?? { files: {}, include: {} };

const rendered = (f: DesiredPolicyFile): string => policyHeader(OWNER) + f.statements.map((s) => `${[(s as PolicyRule).service, (s as PolicyRule).argument, (s as PolicyRule).source, (s as PolicyRule).target, (s as PolicyRule).action].join(" ")}${(s as PolicyRule).params.notify === false ? " notify=no" : ""}\n`).join("");

describe("policy files: plan, diff, apply through policy.*, no changes", () => {
  it("creates a file, shows its diff and tokens, applies it through the simulator's policy.Replace, then plans No changes.", async () => {
    // A file qubes-iac does not manage, there before and after.
    const other = "qubes.Filecopy * @anyvm @anyvm ask\n";
    await withSim((s) => s.policy.replace("policy", "50-admin-own", "new", other));

    const json = await plan(withPolicies([GPG]));
    expectValidPlanJson(json);
    expect(json.diagnostics).toEqual([]);
    const change = json.resource_changes.find((c) => c.address === "policy.30-split-gpg");
    expect(change?.action).toBe("create");
    const file = json.policies?.find((p) => p.address === "policy.30-split-gpg");
    expect(file).toMatchObject({ old_token: null, old_content: null, new_content: rendered(GPG), new_token: policyToken(rendered(GPG)), lifecycle: "created" });
    expect(file?.new_statements.map((x) => x.kind === "rule" && x.action)).toEqual(["allow", "deny"]);
    expect(json.steps.find((s) => s.address === "policy.30-split-gpg")?.ops).toEqual([
      { op: "feature.set", vm: "dom0", name: "qubes-iac.me.policy.created.30-split-gpg", value: "1" },
      { op: "policy.replace", scope: "policy", name: "30-split-gpg", expected_token: "new", content: rendered(GPG) },
    ]);
    const human = renderHumanPlan(json, { color: false });
    expect(human).toContain("--- /dev/null");
    expect(human).toContain("+++ /etc/qubes/policy.d/30-split-gpg.policy");
    expect(human).toContain("+qubes.Gpg * work vault allow");
    expect(human).toContain("+* * @anyvm vault deny notify=no");

    const r = await apply(savePlan(json));
    expect(r.stderr).not.toContain("error");
    expect(r.code).toBe(0);
    expect(policyDir().files["30-split-gpg"]).toBe(rendered(GPG));
    expect(policyDir().files["50-admin-own"]).toBe(other);

    const again = await withSim(async (s) => {
      const j = await computePlan(s.client, withPolicies([GPG]), [], { parallelism: 4 });
      // Only the named file is read; the one the config does not name is never looked at.
      expect(s.calls.filter((c) => c.method.startsWith("policy.")).map((c) => `${c.method}+${c.arg}`)).toEqual(["policy.List+", "policy.Get+30-split-gpg"]);
      return j;
    });
    expect(again.steps).toEqual([]);
    expect(renderHumanPlan(again, { color: false })).toContain("No changes.");
  }, 90_000);

  it("a config and an inventory without policy files make no policy call", async () => {
    await withSim(async (s) => {
      await computePlan(s.client, withPolicies([]), [], { parallelism: 4 });
      expect(s.calls.filter((c) => c.method.startsWith("policy."))).toEqual([]);
    });
  });

  it("an edit since the plan is refused by its token, kept, and named; a file the config does not name stays byte-identical", async () => {
    const first = await plan(withPolicies([GPG]));
    expect((await apply(savePlan(first))).code).toBe(0);
    const untouched = "# by hand\nqubes.Filecopy * @anyvm @anyvm deny\n";
    await withSim((s) => s.policy.replace("policy", "60-by-hand", "new", untouched));

    const changed = policyFile("30-split-gpg", [rule("qubes.Gpg", "work", "vault", "ask", { default_target: "vault" })]);
    const json = await plan(withPolicies([changed]));
    expect(json.resource_changes.find((c) => c.address === "policy.30-split-gpg")?.action).toBe("update");
    const human = renderHumanPlan(json, { color: false });
    expect(human).toContain("-qubes.Gpg * work vault allow");
    expect(human).toContain("+qubes.Gpg * work vault ask default_target=vault");
    const saved = savePlan(json);

    // Someone edits the file in dom0 after the plan was saved.
    const edit = `${rendered(GPG)}qubes.Gpg * personal vault allow\n`;
    await withSim(async (s) => s.policy.replace("policy", "30-split-gpg", (await s.policy.get("policy", "30-split-gpg")).token, edit));

    const r = await apply(saved);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("QIAC-E210");
    expect(r.stderr).toContain("/etc/qubes/policy.d/30-split-gpg.policy changed since the plan was made");
    expect(r.stderr).toContain("nothing was changed");
    expect(policyDir().files["30-split-gpg"]).toBe(edit);
    expect(policyDir().files["60-by-hand"]).toBe(untouched);
  }, 90_000);

  it("the executor's compare-and-set keeps an edit made after apply's own re-check (R4.2/R4.3 report it as an internal error)", async () => {
    const { policyExecutor } = await import("../../src/apply/policy-files.js");
    await withSim(async (s) => {
      await s.policy.replace("policy", "30-split-gpg", "new", "qubes.Gpg * work vault allow\n");
      const { token } = await s.policy.get("policy", "30-split-gpg");
      await s.policy.replace("policy", "30-split-gpg", token, "qubes.Gpg * work vault deny\n");
      const out = await policyExecutor(s.policy).run({ op: "policy.replace", scope: "policy", name: "30-split-gpg", expected_token: token, content: rendered(GPG) });
      expect(out.kind).toBe("failed");
      if (out.kind !== "failed") return;
      expect(out.failure.code).toBe("token");
      expect(out.failure.message).toContain("/etc/qubes/policy.d/30-split-gpg.policy changed since the plan was made");
      expect((await s.policy.get("policy", "30-split-gpg")).content).toBe("qubes.Gpg * work vault deny\n");
    });
  });
});

describe("policy files: ownership", () => {
  it("an existing file the owner does not manage is a located error; adopt: true takes it over", async () => {
    await withSim((s) => s.policy.replace("policy", "30-split-gpg", "new", "qubes.Gpg * work vault ask\n"));
    const refused = await plan(withPolicies([GPG]));
    expect(refused.errored).toBe(true);
    expect(refused.diagnostics).toEqual([expect.objectContaining({ code: "QIAC-E190", location: at, address: "policy.30-split-gpg" })]);

    const adopted = await plan(withPolicies([{ ...GPG, adopt: true }]));
    expect(adopted.diagnostics).toEqual([]);
    const ops = adopted.steps.find((s) => s.address === "policy.30-split-gpg")?.ops;
    expect(ops?.[0]).toEqual({ op: "feature.set", vm: "dom0", name: "qubes-iac.me.policy.adopted.30-split-gpg", value: "1" });
    expect(ops?.[1]).toMatchObject({ op: "policy.replace", expected_token: policyToken("qubes.Gpg * work vault ask\n") });
    // A saved plan may not take a file over: only the config's adopt: true, planned and applied at once.
    const saved = await apply(savePlan(adopted));
    expect(saved.code).toBe(1);
    expect(saved.stderr).toContain("a saved plan may not take over policy file 30-split-gpg");
    expect(policyDir().files["30-split-gpg"]).toBe("qubes.Gpg * work vault ask\n");
    const config = join(dir, "qubes.yaml");
    writeFileSync(
      config,
      'version: 1\nowner: me\npolicies:\n  30-split-gpg:\n    adopt: true\n    rules:\n      - {service: qubes.Gpg, source: work, target: vault, action: allow}\n      - {service: "*", source: "@anyvm", target: vault, action: deny, notify: false}\n',
    );
    const fromConfig = await runBuiltCli(["apply", "--connect", `sim:${statePath}`, "--auto-approve", config], { cwd: repoRoot, timeoutMs: 60_000 });
    expect(fromConfig.stderr).not.toContain("QIAC-E");
    expect(fromConfig.code).toBe(0);
    expect(policyDir().files["30-split-gpg"]).toBe(rendered(GPG));

    // Dropped from the config: an adopted file is released, left as it is.
    const released = await plan(withPolicies([]));
    expect(released.resource_changes.find((c) => c.address === "policy.30-split-gpg")?.action).toBe("release");
    expect(released.steps.flatMap((s) => s.ops)).toEqual([{ op: "feature.remove", vm: "dom0", name: "qubes-iac.me.policy.adopted.30-split-gpg" }]);
    expect((await apply(savePlan(released))).code).toBe(0);
    expect(policyDir().files["30-split-gpg"]).toBe(rendered(GPG));
  }, 90_000);

  it("dropping a created file that holds deny rules removes it with its token, and only with the destroy approval", async () => {
    expect((await apply(savePlan(await plan(withPolicies([GPG]))))).code).toBe(0);
    const dropped = await plan(withPolicies([]));
    const change = dropped.resource_changes.find((c) => c.address === "policy.30-split-gpg");
    expect(change).toMatchObject({ action: "delete", destroys_data: true });
    expect(dropped.steps.find((s) => s.address === "policy.30-split-gpg")?.ops).toEqual([
      { op: "policy.remove", scope: "policy", name: "30-split-gpg", expected_token: policyToken(rendered(GPG)), restricts: true },
      { op: "feature.remove", vm: "dom0", name: "qubes-iac.me.policy.created.30-split-gpg" },
    ]);
    expect(destroyedByOps(dropped)).toEqual(["policy.30-split-gpg"]);
    const saved = savePlan(dropped);
    const without = await apply(saved);
    expect(without.code).toBe(1);
    expect(without.stderr).toContain("the plan destroys the deny and ask rules of policy.30-split-gpg (removing them may loosen isolation); --auto-approve alone never destroys data: add --allow-destroy");
    expect(policyDir().files["30-split-gpg"]).toBe(rendered(GPG));
    expect((await apply(saved, ["--allow-destroy"])).code).toBe(0);
    expect(policyDir().files["30-split-gpg"]).toBeUndefined();
  }, 90_000);

  it("a file that holds only allow rules is removed without the destroy approval", async () => {
    const allowOnly = policyFile("40-open", [rule("qubes.OpenInVM", "work", "@dispvm", "allow")]);
    expect((await apply(savePlan(await plan(withPolicies([allowOnly]))))).code).toBe(0);
    const dropped = await plan(withPolicies([]));
    expect(destroyedByOps(dropped)).toEqual([]);
    expect((await apply(savePlan(dropped))).code).toBe(0);
    expect(policyDir().files["40-open"]).toBeUndefined();
  }, 90_000);
});

describe("policy files: a saved plan cannot write what the inventory does not give", () => {
  const forgedStep = (ops: unknown[], address = "policy.50-evil", kind = "update") => ({ id: `${kind}:${address}`, address, kind, wave: 1, depends_on: [], ops });

  async function forged(json: JsonPlan): Promise<{ structure: string[]; ownership: string[] }> {
    const structure = planProblems(json).map((p) => p.why);
    const ownership = await withSim(async (s) => {
      const dom0 = new Set(await s.client.feature.list("dom0"));
      const none = async () => new Set<string>();
      const problems = await ownershipProblems(json, { listed: async () => false, dom0FeatureNames: async () => dom0, tags: none, featureNames: none, uuid: async () => undefined, labels: none, pools: none }, { takeOwnership: new Set() });
      return problems.map((p) => p.why);
    });
    return { structure, ownership };
  }

  it("refuses a write to a file the inventory does not list, content without the owner's header, content that does not parse, and a policy op in a qube's step", async () => {
    await withSim((s) => s.policy.replace("policy", "50-evil", "new", "qubes.Gpg * @anyvm vault deny\n"));
    const base = await plan(withPolicies([]));
    const token = policyToken("qubes.Gpg * @anyvm vault deny\n");
    const change = (address: string, action: string) => ({ address, type: "policy", name: address.slice(7), action, reasons: [], destroys_data: false, before: null, after: null, before_default: [], after_default: [], needs_halt: [] });
    const json = {
      ...base,
      applyable: true,
      resource_changes: [change("policy.50-evil", "update"), change("policy.51-bad", "update"), change("policy.52-garbage", "update"), change("policy.53-any", "update"), { ...change("qube.work", "update"), type: "qube", name: "work" }],
      steps: [
        forgedStep([{ op: "policy.replace", scope: "policy", name: "50-evil", expected_token: token, content: `${policyHeader(OWNER)}qubes.Gpg * @anyvm vault allow\n` }]),
        forgedStep([{ op: "policy.replace", scope: "policy", name: "51-bad", expected_token: "new", content: "qubes.Gpg * @anyvm vault allow\n" }], "policy.51-bad"),
        forgedStep([{ op: "policy.replace", scope: "policy", name: "52-garbage", expected_token: "new", content: `${policyHeader(OWNER)}this is not policy\n` }], "policy.52-garbage"),
        forgedStep([{ op: "policy.replace", scope: "policy", name: "53-any", expected_token: "any", content: `${policyHeader(OWNER)}qubes.Gpg * work vault allow\n` }], "policy.53-any"),
        forgedStep([{ op: "policy.remove", scope: "policy", name: "50-evil", expected_token: token, restricts: false }], "qube.work"),
      ],
    } as unknown as JsonPlan;
    const { structure, ownership } = await forged(json);
    expect(structure).toEqual([
      "its content does not start with the header of owner me",
      expect.stringMatching(/^its content does not parse as qrexec policy of (r4\.2|r4\.3|main) \(line 2\)$/),
      '"any" is not a token qubes-iac sends (new, or sha256:<hex>)',
      "it acts on policy file 50-evil, not on qube.work",
    ]);
    expect(ownership).toEqual([
      "the inventory of me does not list policy file 50-evil now, and the step does not adopt it",
      "the inventory of me does not list policy file 51-bad now, and the step does not create it",
      "the inventory of me does not list policy file 52-garbage now, and the step does not create it",
      "the inventory of me does not list policy file 53-any now, and the step does not adopt it",
    ]);

    // The built CLI refuses the forged plan before any call, and the file stays.
    const r = await apply(savePlan({ ...json, steps: json.steps.slice(0, 1) }));
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("QIAC-E205");
    expect(policyDir().files["50-evil"]).toBe("qubes.Gpg * @anyvm vault deny\n");
  }, 90_000);

  it("refuses a removal that says a file of deny rules holds none (to skip the approval)", async () => {
    expect((await apply(savePlan(await plan(withPolicies([GPG]))))).code).toBe(0);
    const dropped = await plan(withPolicies([]));
    const lying = {
      ...dropped,
      resource_changes: dropped.resource_changes.map((c) => ({ ...c, destroys_data: false })),
      steps: dropped.steps.map((s) => ({ ...s, ops: s.ops.map((o) => (o.op === "policy.remove" ? { ...o, restricts: false } : o)) })),
    };
    const r = await apply(savePlan(lying));
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("QIAC-E212");
    expect(policyDir().files["30-split-gpg"]).toBe(rendered(GPG));
  }, 90_000);
});
