// The pure diff of policy files, case by case of docs/ownership.md ("Policy files"): what each
// combination of inventory entry, file in dom0 and config entry plans, and the located errors.
import { describe, expect, it } from "vitest";
import type { ActualPolicies } from "../../src/model/actual.js";
import { policyToken } from "../../src/model/qrexec-policy-admin.js";
import { policyHeader, type DesiredPolicyFile } from "../../src/model/qrexec-policy.js";
import { diffPolicies } from "../../src/plan/diff-policies.js";

const at = { file: "qubes.yaml", line: 4, column: 3 };
const OWNER = "me";
const file = (o: Partial<DesiredPolicyFile> = {}): DesiredPolicyFile =>
  ({ name: "30-x", scope: "policy", syntax: "policy", form: "text", text: "qubes.Gpg * work vault allow\n", statements: [], adopt: false, absent: false, release: false, at, ...o }) as DesiredPolicyFile;
const ours = `${policyHeader(OWNER)}qubes.Gpg * work vault allow\n`;
const read = (files: Record<string, string | null>): ActualPolicies => ({
  kind: "read",
  files: new Map(Object.entries(files).map(([a, c]) => [a, c === null ? { absent: true as const } : { token: policyToken(c), content: c }])),
});
const diff = (desired: DesiredPolicyFile[], dom0: string[], files: Record<string, string | null>, takeOwnership: string[] = []) =>
  diffPolicies(OWNER, new Map(desired.map((f) => [`policy.${f.name}`, f])), { dom0FeatureNames: new Set(dom0), policies: read(files) }, { takeOwnership, at });
const created = "qubes-iac.me.policy.created.30-x";

describe("diffPolicies", () => {
  it("nothing named: no change, no read needed", () => {
    expect(diffPolicies(OWNER, new Map(), { dom0FeatureNames: new Set() }, { at })).toEqual({ changes: [], steps: [], policies: [], diagnostics: [] });
  });

  it("a file written as rendered is a no-op; an edited one is written back with its token (QIAC-W190 when the header is gone)", () => {
    expect(diff([file()], [created], { "policy.30-x": ours }).steps).toEqual([]);
    const edited = "qubes.Gpg * work vault allow\nqubes.Gpg * @anyvm vault allow\n";
    const d = diff([file()], [created], { "policy.30-x": edited });
    expect(d.steps[0]?.ops).toEqual([{ op: "policy.replace", scope: "policy", name: "30-x", expected_token: policyToken(edited), content: ours }]);
    expect(d.diagnostics.map((x) => x.code)).toEqual(["QIAC-W190"]);
    expect(d.policies[0]?.beforeStatements).toHaveLength(2);
    expect(d.policies[0]?.afterStatements).toEqual([expect.objectContaining({ kind: "rule", service: "qubes.Gpg", argument: "*", source: "work", target: "vault", action: "allow", params: {} })]);
  });

  it("an inventoried file that is gone is written again (QIAC-W191); dropped, its entry is forgotten", () => {
    const again = diff([file()], [created], { "policy.30-x": null });
    expect(again.steps[0]).toMatchObject({ kind: "create", ops: [{ op: "policy.replace", expected_token: "new" }] });
    expect(again.diagnostics.map((x) => x.code)).toEqual(["QIAC-W191"]);
    const forgotten = diff([], [created], { "policy.30-x": null });
    expect(forgotten.changes[0]?.action).toBe("forget");
    expect(forgotten.steps[0]?.ops).toEqual([{ op: "feature.remove", vm: "dom0", name: created }]);
  });

  it("absent: true on a file the owner does not manage is a located error (QIAC-E192); on one it does, the file goes", () => {
    const refused = diff([file({ absent: true })], [], { "policy.30-x": "qubes.Gpg * work vault deny\n" });
    expect(refused.diagnostics).toEqual([expect.objectContaining({ code: "QIAC-E192", location: at })]);
    const removed = diff([file({ absent: true })], [created], { "policy.30-x": ours });
    expect(removed.steps[0]?.ops).toEqual([
      { op: "policy.remove", scope: "policy", name: "30-x", expected_token: policyToken(ours), restricts: false },
      { op: "feature.remove", vm: "dom0", name: created },
    ]);
    expect(removed.changes[0]).toMatchObject({ action: "delete", destroysData: false });
  });

  it("another owner's file is a located error (QIAC-E193) unless taken over, which removes that owner's entry", () => {
    const theirs = "qubes-iac.other.policy.created.30-x";
    const refused = diff([file()], [theirs], { "policy.30-x": ours });
    expect(refused.diagnostics).toEqual([expect.objectContaining({ code: "QIAC-E193", location: at })]);
    const taken = diff([file({ adopt: true })], [theirs], { "policy.30-x": ours }, ["other"]);
    expect(taken.diagnostics).toEqual([]);
    expect(taken.steps[0]?.ops).toEqual([
      { op: "feature.set", vm: "dom0", name: "qubes-iac.me.policy.adopted.30-x", value: "1" },
      { op: "feature.remove", vm: "dom0", name: theirs },
    ]);
  });

  it("release: true lets go of a created file without removing it; include files have their own entries", () => {
    const released = diff([file({ release: true })], [created], { "policy.30-x": ours });
    expect(released.changes[0]?.action).toBe("release");
    expect(released.steps[0]?.ops).toEqual([{ op: "feature.remove", vm: "dom0", name: created }]);
    const inc = diffPolicies(OWNER, new Map([["policy.include.30-x", file({ scope: "include" })]]), { dom0FeatureNames: new Set(), policies: read({ "policy.include.30-x": null }) }, { at });
    expect(inc.steps[0]?.ops[0]).toEqual({ op: "feature.set", vm: "dom0", name: "qubes-iac.me.policy.include.created.30-x", value: "1" });
  });

  it("files that cannot be read are one located error (QIAC-E191), with the rights to grant when qrexec refused", () => {
    const d = diffPolicies(OWNER, new Map([["policy.30-x", file()]]), { dom0FeatureNames: new Set(), policies: { kind: "failed", error: "policy.List to dom0 was refused by qrexec policy", refused: true } }, { at });
    expect(d.diagnostics).toEqual([expect.objectContaining({ code: "QIAC-E191", location: at, hint: expect.stringContaining("policy.List and policy.Get") })]);
  });
});

describe("policyDiagnosticsWithSystem", () => {
  it("judges the rules' qube names again with the system's qubes: a name only the system has is no warning, one nowhere stays (QIAC-W400)", async () => {
    const { policyDiagnosticsWithSystem } = await import("../../src/plan/policy-names.js");
    const { loadConfig } = await import("../../src/config/index.js");
    const text = "version: 1\nowner: me\npolicies:\n  30-x:\n    - {service: qubes.Gpg, source: work, target: ghost, action: allow}\n";
    const r = loadConfig(["qubes.yaml"], { readFile: () => text, readDir: () => [], isDirectory: () => false, exists: (p: string) => p === "qubes.yaml" });
    if (!r.config) throw new Error("config did not load");
    expect(r.diagnostics.filter((d) => d.code === "QIAC-W400").map((d) => d.message)).toEqual([
      "qube 'work' in a rule of policy.30-x is not defined in this config",
      "qube 'ghost' in a rule of policy.30-x is not defined in this config",
    ]);
    const listing = new Map([["work", { name: "work", klass: "AppVM", power: "Halted" }]]);
    const out = policyDiagnosticsWithSystem(r.config, { listing } as never, r.diagnostics);
    expect(out.filter((d) => d.code === "QIAC-W400")).toEqual([expect.objectContaining({ message: "qube 'ghost' in a rule of policy.30-x does not exist", location: expect.objectContaining({ file: "qubes.yaml", line: 5 }) })]);
  });
});

describe("policyDiagnosticsWithSystem: the answering release", () => {
  it("a problem only some releases have (uuid: tokens before R4.3) is an error when the system answers as such a release, none otherwise", async () => {
    const { policyDiagnosticsWithSystem } = await import("../../src/plan/policy-names.js");
    const { loadConfig } = await import("../../src/config/index.js");
    const text = "version: 1\nowner: me\npolicies:\n  30-x:\n    - {service: qubes.Gpg, source: 'uuid:5e1d3c2b-0a9f-4e8d-b7c6-1a2b3c4d5e6f', target: '@adminvm', action: allow}\n";
    const r = loadConfig(["qubes.yaml"], { readFile: () => text, readDir: () => [], isDirectory: () => false, exists: (p: string) => p === "qubes.yaml" });
    if (!r.config) throw new Error(`config did not load: ${JSON.stringify(r.diagnostics)}`);
    const on = (candidates: string[]) => policyDiagnosticsWithSystem(r.config as never, { listing: new Map(), release: { candidates, evidence: [] } } as never, r.diagnostics).filter((d) => d.severity === "error");
    expect(on(["r4.2"]).length).toBeGreaterThan(0);
    expect(on(["r4.2"])[0]?.location).toMatchObject({ file: "qubes.yaml", line: 5 });
    expect(on(["r4.3"])).toEqual([]);
    expect(on(["main"])).toEqual([]);
  });
});
