// First-match evaluation as qrexec decides a call (qrexec/policy/parser.py): files in name order,
// includes expanded in place, the first matching rule decides, none is a deny; the tokens, and
// what allow and ask resolve to.
import { describe, expect, test } from "vitest";
import { parsePolicyText, resolveIncludePath } from "../../src/config/policy/index.js";
import type { PolicySyntax } from "../../src/model/qrexec-policy.js";
import type { ReleaseId } from "../../src/model/release.js";
import { evaluate, expandPolicy, includeResolver, policyFileOrder, rulesForClass, type EvalQube, type EvalSystem, type PolicySet } from "../../src/model/qrexec-eval.js";

const parse = (text: string, syntax: PolicySyntax = "policy", release: ReleaseId = "main") => {
  const p = parsePolicyText(text, release, { file: "t", syntax });
  expect(p.diagnostics).toEqual([]);
  return p.statements;
};

const qube = (o: Partial<EvalQube> = {}): EvalQube => ({ type: "AppVM", tags: [], template_for_dispvms: false, default_dispvm: "dvm", power_state: "Halted", ...o });
const system = (release: ReleaseId = "main"): EvalSystem => ({
  release,
  qubes: new Map([
    ["dom0", qube({ type: "AdminVM", default_dispvm: null, uuid: "00000000-0000-0000-0000-000000000000", power_state: "Running" })],
    ["work", qube({ tags: ["work"], uuid: "11111111-1111-4111-8111-111111111111" })],
    ["personal", qube({ default_dispvm: null })],
    ["vault", qube({ power_state: "Running", uuid: "22222222-2222-4222-8222-222222222222" })],
    ["dvm", qube({ template_for_dispvms: true, tags: ["dvms"] })],
    ["other-dvm", qube({ template_for_dispvms: true })],
    ["fedora", qube({ type: "TemplateVM" })],
  ]),
});

const set = (files: Record<string, string>, includes: Record<string, { policy?: string; service?: string }> = {}): PolicySet => ({
  files: Object.entries(files).map(([name, text]) => ({ name, statements: parse(text) })),
  include: includeResolver(
    new Map(
      Object.entries(includes).map(([n, v]) => [
        n,
        { ...(v.policy !== undefined ? { policy: parse(v.policy) } : {}), ...(v.service !== undefined ? { service: parse(v.service, "service") } : {}) },
      ]),
    ),
    resolveIncludePath,
  ),
});

const req = (service: string, source: string, target: string, argument = "+") => ({ service, argument, source, target });
const decide = (s: PolicySet, r: ReturnType<typeof req>, sys = system()) => {
  const d = evaluate(s, r, sys);
  return { action: d.action, at: d.rule ? `${d.rule.file}:${d.rule.at?.line}` : d.reason, target: d.target };
};

describe("order", () => {
  test("the first matching rule across files in name order decides", () => {
    const s = set({ "90-default": "qubes.Gpg * @anyvm @anyvm deny\n", "30-gpg": "qubes.Gpg * work vault allow\n" });
    expect(decide(s, req("qubes.Gpg", "work", "vault"))).toEqual({ action: "allow", at: "30-gpg:1", target: "vault" });
    expect(decide(s, req("qubes.Gpg", "personal", "vault"))).toEqual({ action: "deny", at: "90-default:1", target: undefined });
  });

  test("a deny earlier in the order shadows a later allow", () => {
    const s = set({ "20-deny": "qubes.Gpg * @anyvm vault deny\n", "30-gpg": "qubes.Gpg * work vault allow\n" });
    expect(decide(s, req("qubes.Gpg", "work", "vault"))).toEqual({ action: "deny", at: "20-deny:1", target: undefined });
  });

  test("names sort with .policy: a-b before a (\"-\" sorts before \".\"), upper before lower", () => {
    expect(policyFileOrder([{ name: "a" }, { name: "a-b" }, { name: "B" }, { name: "10" }]).map((f) => f.name)).toEqual(["10", "B", "a-b", "a"]);
    const s = set({ a: "x * @anyvm @anyvm deny\n", "a-b": "x * @anyvm @anyvm allow target=vault\n" });
    expect(decide(s, req("x", "work", "vault")).at).toBe("a-b:1");
  });

  test("no matching rule: deny", () => {
    const d = evaluate(set({ "30-a": "qubes.Gpg * work vault allow\n" }), req("qubes.Other", "work", "vault"), system());
    expect(d).toMatchObject({ action: "deny", reason: "no-rule", message: "no matching rule found", notify: true });
  });

  test("service and argument: * matches any, +ARG only that argument, + only none", () => {
    const s = set({ "30-a": "qubes.Open +x work vault allow\nqubes.Open + work vault ask\n* * @anyvm @anyvm deny\n" });
    expect(decide(s, req("qubes.Open", "work", "vault", "+x")).action).toBe("allow");
    expect(decide(s, req("qubes.Open", "work", "vault", "+")).action).toBe("ask");
    expect(decide(s, req("qubes.Open", "work", "vault", "+y")).action).toBe("deny");
  });
});

describe("includes", () => {
  test("!include puts the include file's rules in place", () => {
    const s = set({ "30-a": "!include include/gpg\nqubes.Gpg * @anyvm @anyvm deny\n" }, { gpg: { policy: "qubes.Gpg * work vault allow\n" } });
    const d = evaluate(s, req("qubes.Gpg", "work", "vault"), system());
    expect(d.action).toBe("allow");
    expect(d.rule).toMatchObject({ file: "30-a", via: ["include/gpg"], index: 0 });
  });

  test("!include-service gives its lines the service and argument", () => {
    const s = set({ "30-admin": "!include-service admin.vm.List * include/ro\n" }, { ro: { service: "work @adminvm allow target=dom0\n" } });
    expect(decide(s, req("admin.vm.List", "work", "dom0"))).toEqual({ action: "allow", at: "30-admin:1", target: "dom0" });
    expect(decide(s, req("admin.vm.Remove", "work", "dom0")).action).toBe("deny");
    const r = expandPolicy(s).rules[0]!;
    expect([r.service, r.argument]).toEqual(["admin.vm.List", "*"]);
  });

  test("a missing include makes qrexec refuse every call (the policy does not load)", () => {
    const s = set({ "30-a": "qubes.Gpg * work vault allow\n", "40-b": "!include include/missing\n" });
    expect(evaluate(s, req("qubes.Gpg", "work", "vault"), system())).toMatchObject({ action: "deny", reason: "load" });
  });

  test("an include that includes itself is a load failure, not a loop", () => {
    const s = set({ "30-a": "!include include/loop\n" }, { loop: { policy: "!include include/loop\n" } });
    expect(evaluate(s, req("x", "work", "vault"), system())).toMatchObject({ action: "deny", reason: "load" });
  });
});

describe("tokens", () => {
  test("@anyvm is every qube but dom0; * includes dom0; dom0 and @adminvm are the same", () => {
    const s = set({ "30-a": "x * @anyvm @adminvm deny\nx * * dom0 allow\ny * dom0 @anyvm allow target=vault\n" });
    expect(decide(s, req("x", "work", "dom0")).at).toBe("30-a:1");
    expect(decide(s, req("x", "work", "@adminvm")).at).toBe("30-a:1");
    expect(decide(s, req("x", "dom0", "dom0")).at).toBe("30-a:2");
    expect(decide(s, req("y", "dom0", "work"))).toEqual({ action: "allow", at: "30-a:3", target: "vault" });
    expect(decide(s, req("y", "work", "vault")).action).toBe("deny");
  });

  test("@tag: and @type:", () => {
    const s = set({ "30-a": "x * @tag:work @type:TemplateVM allow\n" });
    expect(decide(s, req("x", "work", "fedora")).action).toBe("allow");
    expect(decide(s, req("x", "personal", "fedora")).action).toBe("deny");
    expect(decide(s, req("x", "work", "vault")).action).toBe("deny");
  });

  test("@dispvm:NAME matches @dispvm:NAME and @dispvm of a caller whose default_dispvm is NAME", () => {
    const s = set({ "30-a": "x * @anyvm @dispvm:dvm allow\n" });
    expect(decide(s, req("x", "work", "@dispvm:dvm"))).toEqual({ action: "allow", at: "30-a:1", target: "@dispvm:dvm" });
    expect(decide(s, req("x", "work", "@dispvm"))).toEqual({ action: "allow", at: "30-a:1", target: "@dispvm:dvm" });
    expect(decide(s, req("x", "work", "@dispvm:other-dvm")).action).toBe("deny");
    // No default_dispvm: @dispvm is not @dispvm:dvm.
    expect(decide(s, req("x", "personal", "@dispvm")).action).toBe("deny");
  });

  test("@dispvm:@tag: matches disposables of tagged disposable templates", () => {
    const s = set({ "30-a": "x * @anyvm @dispvm:@tag:dvms allow\n" });
    expect(decide(s, req("x", "work", "@dispvm")).target).toBe("@dispvm:dvm");
    expect(decide(s, req("x", "work", "@dispvm:other-dvm")).action).toBe("deny");
  });

  test("@dispvm:NAME as a source matches no caller (qrexec compares it with a name)", () => {
    const s = set({ "30-a": "x * @dispvm:dvm vault allow\n" });
    expect(decide(s, req("x", "dvm", "vault")).action).toBe("deny");
  });

  test("a target that does not exist is @default; @dispvm:NAME of a non-template is refused", () => {
    const s = set({ "30-a": "x * work @default ask default_target=vault\nx * work @anyvm allow\n" });
    expect(decide(s, req("x", "work", "no-such-qube")).at).toBe("30-a:1");
    expect(evaluate(s, req("x", "work", "@dispvm:vault"), system())).toMatchObject({ action: "deny", reason: "request", message: "not a template for dispvm: vault" });
  });

  test("uuid: names a qube from R4.3; in R4.2 it matches nothing", () => {
    const statements = parse("x * uuid:11111111-1111-4111-8111-111111111111 vault allow\n", "policy", "r4.3");
    const s: PolicySet = { files: [{ name: "30-a", statements }] };
    expect(evaluate(s, req("x", "work", "vault"), system("r4.3")).action).toBe("allow");
    expect(evaluate(s, req("x", "work", "vault"), system("r4.2")).action).toBe("deny");
    expect(evaluate(s, req("x", "work", "uuid:22222222-2222-4222-8222-222222222222"), system("main")).action).toBe("allow");
  });
});

describe("resolution", () => {
  test("allow to @default without target= is refused; with it, the call goes there", () => {
    const s = set({ "30-a": "x * work @default allow target=vault\nx * work @anyvm allow\n" });
    expect(decide(s, req("x", "work", ""))).toEqual({ action: "allow", at: "30-a:1", target: "vault" });
    const t = set({ "30-a": "x * work @anyvm allow\n" });
    expect(evaluate(t, req("x", "work", ""), system())).toMatchObject({ action: "deny", reason: "rule" });
  });

  test("autostart=no: allowed only to a running target", () => {
    const s = set({ "30-a": "x * work @anyvm allow autostart=no\n" });
    expect(decide(s, req("x", "work", "vault")).action).toBe("allow");
    expect(decide(s, req("x", "work", "personal")).action).toBe("deny");
    expect(decide(s, req("x", "work", "@dispvm")).action).toBe("deny");
  });

  test("notify: deny notifies unless told not to, allow does not unless told to", () => {
    const s = set({ "30-a": "x * work vault deny notify=no\ny * work vault deny\nz * work vault allow notify=yes\n" });
    expect(evaluate(s, req("x", "work", "vault"), system()).notify).toBe(false);
    expect(evaluate(s, req("y", "work", "vault"), system()).notify).toBe(true);
    expect(evaluate(s, req("z", "work", "vault"), system()).notify).toBe(true);
  });

  test("ask offers what later allow/ask rules reach, less what deny rules before them take away, and preselects default_target", () => {
    const s = set({ "30-a": "x * work @default ask default_target=vault\nx * work personal deny\nx * work @anyvm allow\n" });
    const d = evaluate(s, req("x", "work", ""), system());
    expect(d.action).toBe("ask");
    // personal is denied before the allow that reaches it; the caller itself and dom0 (not @anyvm) are never offered.
    expect(d.targetsForAsk).toEqual(["@dispvm:dvm", "@dispvm:other-dvm", "dvm", "fedora", "other-dvm", "vault"]);
    expect(d.defaultTarget).toBe("vault");
  });

  test("an ask whose own target is @anyvm offers every qube it names, whatever a later deny says", () => {
    const s = set({ "30-a": "x * work @anyvm ask\nx * work personal deny\n" });
    expect(evaluate(s, req("x", "work", "personal"), system()).targetsForAsk).toContain("personal");
  });
});

describe("rulesForClass", () => {
  test("the rules that can decide some call of the class, in order", () => {
    const s = set({ "30-a": "qubes.Gpg * work vault allow\nqubes.Gpg * @tag:x @anyvm ask\n* * @anyvm @anyvm deny\nqubes.Other * work vault allow\n" });
    expect(rulesForClass(s, { service: "qubes.Gpg", source: "work" }).map((r) => r.at?.line)).toEqual([1, 2, 3]);
    // With the system: work has no tag x.
    expect(rulesForClass(s, { service: "qubes.Gpg", source: "work" }, system()).map((r) => r.at?.line)).toEqual([1, 3]);
    expect(rulesForClass(s, { source: "dom0" }).map((r) => r.at?.line)).toEqual([2]);
  });
});

describe("first match (property)", () => {
  test("the deciding rule matches, and no rule before it does; no rule matching means deny", async () => {
    const fc = (await import("fast-check")).default;
    const { sourceMatches, targetMatches, verifyTarget } = await import("../../src/model/qrexec-eval.js");
    const names = ["work", "personal", "vault", "dvm", "fedora", "dom0"];
    const src = fc.constantFrom(...names, "@anyvm", "*", "@adminvm", "@tag:work", "@type:TemplateVm", "@type:AppVM", "@dispvm:dvm");
    const tgt = fc.constantFrom(...names, "@anyvm", "*", "@adminvm", "@default", "@dispvm", "@dispvm:dvm", "@dispvm:@tag:dvms", "@tag:work");
    const rule = fc
      .record({ svc: fc.constantFrom("a", "b", "*"), src, tgt, action: fc.constantFrom("allow target=vault", "deny", "ask", "allow") })
      .map((r) => `${r.svc} * ${r.src} ${r.tgt} ${r.action}`);
    const file = fc.array(rule, { minLength: 0, maxLength: 6 });
    const request = fc.record({
      service: fc.constantFrom("a", "b"),
      argument: fc.constant("+"),
      source: fc.constantFrom(...names),
      target: fc.constantFrom(...names, "", "@dispvm", "@dispvm:dvm", "@adminvm", "nosuch"),
    });
    fc.assert(
      fc.property(fc.array(file, { minLength: 1, maxLength: 3 }), request, (files, r) => {
        const s: PolicySet = { files: files.map((lines, i) => ({ name: `${i}0-f`, statements: parsePolicyText(lines.map((l) => `${l}\n`).join(""), "main", { file: "f" }).statements })) };
        const sys = system();
        const d = evaluate(s, r, sys);
        const v = verifyTarget(r.target, sys);
        if ("refused" in v) return expect(d.reason).toBe("request");
        const matches = (x: { service: string; rule: { source: string; target: string } }) =>
          (x.service === "*" || x.service === r.service) && sourceMatches(x.rule.source, r.source, sys) && targetMatches(x.rule.target, v.target, r.source, sys);
        const rules = expandPolicy(s).rules;
        const first = rules.findIndex(matches);
        if (first < 0) expect(d).toMatchObject({ action: "deny", reason: "no-rule" });
        else expect(d.rule?.index).toBe(first);
      }),
      { numRuns: 400 },
    );
  });
});
