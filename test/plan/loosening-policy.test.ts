// The qrexec policy kinds of the loosening analysis, judged by effect over old and new rule sets
// (first match across files in name order, src/model/qrexec-eval.ts), files qubes-iac does not
// manage included: each case with a change that loosens (marked) and one that does not.
import { describe, expect, it } from "vitest";
import type { EvalPolicyFile, EvalQube, EvalSystem } from "../../src/model/qrexec-eval.js";
import type { PolicyRule, PolicyStatement } from "../../src/model/qrexec-policy.js";
import { policyLoosening, type PolicyFileChange } from "../../src/plan/loosening-policy.js";

/** `service argument source target action [target=X] …` as a rule (the tests' own tiny reader). */
function rule(line: string): PolicyRule {
  const [service = "", argument = "", source = "", target = "", action = "", ...params] = line.split(/\s+/);
  const p: PolicyRule["params"] = {};
  for (const kv of params) {
    const [k, v = ""] = kv.split("=");
    if (k === "target") p.redirect = v;
    if (k === "default_target") p.default_target = v;
  }
  return { kind: "rule", service, argument, source, target, action: action as PolicyRule["action"], params: p };
}
const rules = (...lines: string[]): PolicyStatement[] => lines.map(rule);

const qube = (type: string, tags: string[] = [], o: Partial<EvalQube> = {}): EvalQube => ({ type, tags, template_for_dispvms: false, default_dispvm: null, ...o });
const SYSTEM: EvalSystem = {
  qubes: new Map([
    ["dom0", qube("AdminVM")],
    ["work", qube("AppVM", ["office"])],
    ["personal", qube("AppVM")],
    ["vault", qube("AppVM")],
    ["mgmt", qube("AppVM")],
    ["default-dvm", qube("AppVM", [], { template_for_dispvms: true })],
  ]),
};

/** The kinds marked on `policy.NAME` when file NAME goes from `before` to `after`, with `others` unchanged. */
function judge(name: string, before: PolicyStatement[] | null, after: PolicyStatement[] | null, others: EvalPolicyFile[] = []) {
  const change: PolicyFileChange = { address: `policy.${name}`, scope: "policy", name, before, after };
  const files = [...others, ...(before === null ? [] : [{ name, statements: before }])];
  return policyLoosening({ files, changes: [change], system: SYSTEM }).get(`policy.${name}`) ?? [];
}
const kinds = (...a: Parameters<typeof judge>): string[] => judge(...a).map((l) => l.kind);

describe("policy-wider: a call let through where it was not", () => {
  it("a new allow, where nothing allowed it; a new deny is not", () => {
    const l = judge("30-gpg", null, rules("qubes.Gpg * work vault allow"));
    expect(l).toEqual([{ kind: "policy-wider", detail: "lets through what it did not: qubes.Gpg from work to vault: deny (no rule) → allow (to vault) (30-gpg.policy)" }]);
    expect(kinds("30-gpg", null, rules("qubes.Gpg * work vault deny"))).toEqual([]);
  });

  it("a deny removed lets a later file's allow decide (a file qubes-iac does not manage)", () => {
    const later = [{ name: "50-user", statements: rules("qubes.Filecopy * @anyvm @anyvm ask") }];
    const l = judge("30-deny", rules("qubes.Filecopy * @anyvm vault deny"), rules(), later);
    expect(l.map((x) => x.kind)).toEqual(["policy-wider"]);
    expect(l[0]?.detail).toMatch(/^lets through what it did not: qubes\.Filecopy from work to vault: deny \(30-deny\.policy\) → ask \(50-user\.policy\)/);
    // The same deny removed while an earlier file denies those calls anyway: nothing changes.
    const earlier = [{ name: "10-deny", statements: rules("qubes.Filecopy * @anyvm vault deny") }, ...later];
    expect(kinds("30-deny", rules("qubes.Filecopy * @anyvm vault deny"), rules(), earlier)).toEqual([]);
  });

  it("a deny moved below the allow it shadowed; a reordering that decides every call the same is not marked", () => {
    expect(kinds("30-x", rules("qubes.Gpg * work vault deny", "qubes.Gpg * @anyvm vault allow"), rules("qubes.Gpg * @anyvm vault allow", "qubes.Gpg * work vault deny"))).toEqual(["policy-wider"]);
    expect(kinds("30-x", rules("qubes.Gpg * work vault allow", "qubes.Gpg * personal vault deny"), rules("qubes.Gpg * personal vault deny", "qubes.Gpg * work vault allow"))).toEqual([]);
  });

  it("an ask turned into an allow, and an allow sent elsewhere; an allow turned into an ask is not", () => {
    expect(kinds("30-x", rules("qubes.Gpg * work vault ask"), rules("qubes.Gpg * work vault allow"))).toEqual(["policy-wider"]);
    expect(kinds("30-x", rules("qubes.Gpg * work @default allow target=vault"), rules("qubes.Gpg * work @default allow target=personal"))).toEqual(["policy-wider"]);
    expect(kinds("30-x", rules("qubes.Gpg * work vault allow"), rules("qubes.Gpg * work vault ask"))).toEqual([]);
  });

  it("a file that an earlier file's deny shadows entirely is not marked (files in name order)", () => {
    const earlier = [{ name: "20-lock", statements: rules("qubes.Gpg * @anyvm @anyvm deny") }];
    expect(kinds("50-late", null, rules("qubes.Gpg * work vault allow"), earlier)).toEqual([]);
  });

  it("a broader source or target (a tag, @anyvm) is marked even when no qube matches it yet", () => {
    expect(judge("30-x", null, rules("qubes.Gpg * @tag:nobody-has-it vault allow"))).toEqual([
      { kind: "policy-wider", detail: "a new rule allows qubes.Gpg from @tag:nobody-has-it to vault: a broad source or target, whatever qubes match it now" },
    ]);
    expect(kinds("30-x", null, rules("qubes.Gpg * @tag:office vault allow"))).toEqual(["policy-wider"]);
  });

  it("an include file changed: the files that include it decide differently", () => {
    const main = [{ name: "30-inc", statements: [{ kind: "include", path: "include/gpg" } as PolicyStatement] }];
    const inc = new Map<string, PolicyStatement[]>([["gpg", rules("qubes.Gpg * work vault deny")]]);
    const include = (path: string) => inc.get(path.replace(/^include\//, ""));
    const change: PolicyFileChange = { address: "policy.include.gpg", scope: "include", name: "gpg", before: rules("qubes.Gpg * work vault deny"), after: rules("qubes.Gpg * work vault allow") };
    expect(policyLoosening({ files: main, include, changes: [change], system: SYSTEM }).get("policy.include.gpg")?.map((l) => l.kind)).toEqual(["policy-wider"]);
  });
});

describe("policy-admin: a qube may rewrite policy (the strongest loosening)", () => {
  it("policy.Replace granted to the management qube, or every service on dom0", () => {
    expect(kinds("30-mgmt", null, rules("policy.Replace * mgmt @adminvm allow target=dom0"))).toEqual(["policy-admin"]);
    const all = judge("30-all", null, rules("* * @anyvm @adminvm allow"));
    expect(all.map((l) => l.kind)).toEqual(["policy-admin", "policy-wider"]);
    expect(all[0]?.detail).toMatch(/^lets a qube rewrite qrexec policy: policy\.Replace from work to @adminvm: deny \(no rule\) → allow \(to dom0\)/);
  });
  it("not when an earlier deny keeps deciding, nor for reading policy only", () => {
    const earlier = [{ name: "10-no-policy", statements: rules("policy.Replace * @anyvm @adminvm deny") }];
    expect(kinds("30-mgmt", null, rules("policy.Replace * mgmt @adminvm allow target=dom0"), earlier)).toEqual([]);
    expect(kinds("30-mgmt", null, rules("policy.Get * mgmt @adminvm allow target=dom0"))).toEqual(["policy-admin"]);
  });
});

describe("too many calls to decide each: judged by the lines", () => {
  const many: EvalSystem = { qubes: new Map([["dom0", qube("AdminVM")], ...Array.from({ length: 300 }, (_, i) => [`q${i}`, qube("AppVM")] as [string, EvalQube])]) };
  const judgeMany = (before: PolicyStatement[] | null, after: PolicyStatement[] | null) =>
    policyLoosening({ files: before === null ? [] : [{ name: "30-x", statements: before }], changes: [{ address: "policy.30-x", scope: "policy", name: "30-x", before, after }], system: many }).get("policy.30-x") ?? [];
  it("a deny over every pair of qubes removed, and a new broad allow, are marked; adding a deny is not", () => {
    expect(judgeMany(rules("* * @anyvm @anyvm deny"), rules())[0]?.detail).toBe("a rule that denied or asked is gone or changed (* * @anyvm @anyvm deny; too many calls to decide each: judged by its lines)");
    expect(judgeMany(null, rules("qubes.Filecopy * @anyvm @anyvm allow")).map((l) => l.kind)).toEqual(["policy-wider"]);
    expect(judgeMany(null, rules("* * @anyvm @anyvm deny"))).toEqual([]);
  });
});
