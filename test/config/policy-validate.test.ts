// Policy validation both ways: real policy files (Qubes' defaults per release, qusal, SecureDrop
// Workstation, read from ../shared/corpus/policies when it is there, never copied) validate clean
// against their release, every file qubes-iac renders validates again to the same statements,
// and what differs by release is judged by each release (R4.2, R4.3, main).
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import fc from "fast-check";
import { describe, expect, test } from "vitest";
import { loadConfig, type ConfigIO } from "../../src/config/index.js";
import { parsePolicyText, policyProblemsFor, unknownPolicyQubes } from "../../src/config/policy/index.js";
import { renderPolicyFile, renderStatement, type PolicyStatement } from "../../src/model/qrexec-policy.js";
import { RELEASE_IDS, type ReleaseId } from "../../src/model/release.js";

/** The shared corpus: ../shared next to the checkout (as in CI), or QIAC_SHARED_DIR. */
const SHARED = process.env.QIAC_SHARED_DIR ?? "../shared";
const CORPUS = join(SHARED, "corpus", "policies");
const RELEASES_OF: Readonly<Record<string, readonly ReleaseId[]>> = {
  "qubes-release4.2": ["r4.2"],
  "qubes-release4.3": ["r4.3"],
  "qubes-main": ["main"],
  // The README says these were checked with all three parsers.
  qusal: RELEASE_IDS,
  "securedrop-workstation": RELEASE_IDS,
};

const memoryIO = (files: Record<string, string>): ConfigIO => ({
  readFile: (p) => {
    const t = files[p];
    if (t === undefined) throw new Error(`no such file: ${p}`);
    return t;
  },
  readDir: () => [],
  isDirectory: () => false,
  exists: (p) => p in files,
});

/** A statement without where it was written: what a re-parse must reproduce. */
const bare = (s: PolicyStatement): unknown => {
  const { at: _at, ...rest } = s as PolicyStatement & { fieldAt?: unknown };
  delete (rest as { fieldAt?: unknown }).fieldAt;
  return rest;
};

const nonComment = (text: string): number => text.split("\n").filter((l) => l.trim() !== "" && !l.trim().startsWith("#")).length;

describe.skipIf(!existsSync(CORPUS))("real policy files validate clean against their release", () => {
  const cases = Object.entries(RELEASES_OF).flatMap(([dir, releases]) =>
    existsSync(join(CORPUS, dir)) ? readdirSync(join(CORPUS, dir)).filter((f) => f.endsWith(".policy")).flatMap((f) => releases.map((r) => [`${dir}/${f}`, r] as const)) : [],
  );

  test("the corpus holds the files the README lists", () => {
    expect(cases.length).toBeGreaterThanOrEqual(17);
  });

  test.each(cases)("%s (%s)", (path, release) => {
    const text = readFileSync(join(CORPUS, path), "utf8");
    const parsed = parsePolicyText(text, release, { file: path });
    expect(parsed.diagnostics).toEqual([]);
    // Every line that is not a comment is a statement: nothing was skipped quietly.
    expect(parsed.statements.length).toBe(nonComment(text));
    // Rendered again, each statement reads back the same.
    const again = parsePolicyText(parsed.statements.map((s) => renderStatement(s) + "\n").join(""), release, { file: "again" });
    expect(again.diagnostics).toEqual([]);
    expect(again.statements.map(bare)).toEqual(parsed.statements.map(bare));
  });

  test.each(cases.filter(([, r]) => r === "main"))("%s as a config's text: block", (path) => {
    const text = readFileSync(join(CORPUS, path), "utf8");
    const name = path.split("/")[1]!.replace(/\.policy$/, "").toLowerCase().replace(/[^a-z0-9_-]/g, "-");
    const yaml = `version: 1\nowner: t\npolicies:\n  ${name}:\n    text: |\n${text
      .split("\n")
      .map((l) => (l === "" ? "" : `      ${l}`))
      .join("\n")}\n`;
    const r = loadConfig(["c.yaml"], memoryIO({ "c.yaml": yaml }));
    // Only the names of qubes the config does not define are warned about.
    expect(r.diagnostics.filter((d) => d.code !== "QIAC-W400")).toEqual([]);
    expect(r.config?.policies.get(`policy.${name}`)?.statements.length).toBe(nonComment(text));
  });
});

describe("release differences", () => {
  const rule = (line: string) => RELEASE_IDS.map((r) => [r, parsePolicyText(`${line}\n`, r, { file: "f" }).diagnostics.map((d) => d.code)]);

  test("uuid: tokens exist from R4.3: R4.2 reads them as a name no qube has", () => {
    expect(rule("qubes.Gpg * uuid:0b5c1a52-8f55-4a7e-9d43-1d0c5a2e7b11 vault allow")).toEqual([
      ["r4.2", ["QIAC-E414"]],
      ["r4.3", []],
      ["main", []],
    ]);
    expect(rule("qubes.Gpg * work @dispvm:uuid:0b5c1a52-8f55-4a7e-9d43-1d0c5a2e7b11 allow")).toEqual([
      ["r4.2", ["QIAC-E414"]],
      ["r4.3", []],
      ["main", []],
    ]);
  });

  test("dom0 stands for dom0 in every role and release", () => {
    for (const line of ["qubes.X * dom0 vault allow", "qubes.X * work dom0 allow", "qubes.X * work @default allow target=dom0", "qubes.X * work @default ask default_target=dom0"]) {
      expect(rule(line)).toEqual(RELEASE_IDS.map((r) => [r, []]));
    }
  });

  test("validate warns about a release-only problem; plan refuses it for that release only", () => {
    const yaml = [
      "version: 1",
      "owner: t",
      "qubes:",
      "  work: {class: AppVM, template: fedora-40, label: red}",
      "policies:",
      "  30-a:",
      "    text: |",
      "      qubes.Gpg * work uuid:0b5c1a52-8f55-4a7e-9d43-1d0c5a2e7b11 allow",
      "",
    ].join("\n");
    const r = loadConfig(["c.yaml"], memoryIO({ "c.yaml": yaml }));
    expect(r.diagnostics.map((d) => [d.code, d.location?.line, d.location?.column])).toEqual([["QIAC-W401", 8, 24]]);
    expect(r.diagnostics[0]!.message).toMatch(/^R4\.2 only \(QIAC-E414\)/);
    const policies = r.config!.policies;
    expect(policyProblemsFor(policies, "r4.2").map((d) => [d.code, d.severity, d.location?.line, d.location?.column])).toEqual([["QIAC-E414", "error", 8, 24]]);
    expect(policyProblemsFor(policies, "r4.3")).toEqual([]);
    expect(policyProblemsFor(policies, "main")).toEqual([]);
  });
});

describe("text: locations", () => {
  test("a quoted string cannot be mapped: reported at its start, naming the line", () => {
    const yaml = 'version: 1\nowner: t\npolicies:\n  30-a:\n    text: "qubes.Gpg * @anyvm @anyvm allow\\nqubes.Gpg * @anyvm\\n"\n';
    const r = loadConfig(["c.yaml"], memoryIO({ "c.yaml": yaml }));
    expect(r.diagnostics.map((d) => [d.code, d.location?.line, d.location?.column, d.message])).toEqual([["QIAC-E401", 5, 11, "line 2 of the text: wrong number of fields"]]);
  });

  test("a literal block: the line and column inside it, whatever the indentation", () => {
    const yaml = "version: 1\nowner: t\npolicies:\n  30-a:\n    text: |\n        qubes.Gpg * @anyvm @anyvm allow\n\n        qubes.Gpg * @anyvm @anyvm allow notify=perhaps\n";
    const r = loadConfig(["c.yaml"], memoryIO({ "c.yaml": yaml }));
    expect(r.diagnostics.map((d) => [d.code, d.location?.line, d.location?.column])).toEqual([["QIAC-E409", 8, 48]]);
  });

  test("a literal block with an indentation indicator: its spaces beyond it are text", () => {
    const yaml = "version: 1\nowner: t\npolicies:\n  30-a:\n    text: |2\n        qubes.Gpg * @anyvm @anyvm allow notify=perhaps\n";
    const r = loadConfig(["c.yaml"], memoryIO({ "c.yaml": yaml }));
    expect(r.diagnostics.map((d) => [d.code, d.location?.line, d.location?.column])).toEqual([["QIAC-E409", 6, 48]]);
  });

  test("every mistake of a file at once", () => {
    const parsed = parsePolicyText("a * b c allow\nq$ * b c allow\nx * b c allw\nx * @default c allow\n", "main", { file: "f" });
    expect(parsed.diagnostics.map((d) => `${d.code} ${d.location?.line}:${d.location?.column}`)).toEqual(["QIAC-E402 2:1", "QIAC-E407 3:9", "QIAC-E404 4:5"]);
    expect(parsed.statements).toHaveLength(1);
  });
});

describe("an !include-service file", () => {
  test("reads SOURCE TARGET ACTION[,PARAMS] and the R4.0 spellings ($, commas)", () => {
    const parsed = parsePolicyText("mgmt @adminvm allow,target=dom0\n$anyvm $adminvm deny\n$include:include/other\n", "r4.3", { file: "f", syntax: "service" });
    expect(parsed.diagnostics).toEqual([]);
    expect(parsed.statements.map(bare)).toEqual([
      { kind: "rule", service: "*", argument: "*", source: "mgmt", target: "@adminvm", action: "allow", params: { redirect: "dom0" } },
      { kind: "rule", service: "*", argument: "*", source: "@anyvm", target: "@adminvm", action: "deny", params: {} },
      { kind: "include", path: "include/other" },
    ]);
  });
});

describe("unknown qubes", () => {
  test("at plan, against the system's names too", () => {
    const yaml = "version: 1\nowner: t\npolicies:\n  30-a:\n    - {service: qubes.Gpg, source: work, target: vault, action: allow}\n    - {service: qubes.Gpg, source: work, target: '@dispvm:dvm', action: allow}\n";
    const r = loadConfig(["c.yaml"], memoryIO({ "c.yaml": yaml }));
    expect(r.diagnostics.map((d) => `${d.code} ${d.location?.line}:${d.location?.column}`)).toEqual(["QIAC-W400 5:36", "QIAC-W400 5:50", "QIAC-W400 6:36", "QIAC-W400 6:50"]);
    const left = unknownPolicyQubes(r.config!.policies, new Set(["work", "vault"]), "system");
    expect(left.map((d) => d.message)).toEqual(["qube 'dvm' in a rule of policy.30-a does not exist"]);
  });
});

// Every file qubes-iac renders reads back, in every release, as the statements it was rendered from.
const qube = fc.constantFrom("work", "vault", "personal", "sys-net", "dom0");
const token = (role: "source" | "target" | "redirect"): fc.Arbitrary<string> => {
  const common = [qube, fc.constantFrom("@adminvm", "@dispvm:default-dvm")];
  if (role === "redirect") return fc.oneof(...common, fc.constant("@dispvm"));
  const spec = [...common, fc.constantFrom("@anyvm", "*", "@tag:work", "@type:AppVM", "@dispvm:@tag:dvms")];
  return role === "target" ? fc.oneof(...spec, fc.constantFrom("@dispvm", "@default")) : fc.oneof(...spec);
};
const configRule = fc
  .record({
    service: fc.constantFrom("qubes.Gpg", "qubes.Filecopy", "*", "my-svc_1.x"),
    argument: fc.option(fc.constantFrom("*", "+", "+foo", "+a+b"), { nil: undefined }),
    source: token("source"),
    target: token("target"),
    action: fc.constantFrom("allow", "deny", "ask"),
    redirect: fc.option(token("redirect"), { nil: undefined }),
    default_target: fc.option(token("redirect"), { nil: undefined }),
    user: fc.option(fc.constantFrom("root", "user"), { nil: undefined }),
    autostart: fc.option(fc.boolean(), { nil: undefined }),
    notify: fc.option(fc.boolean(), { nil: undefined }),
  })
  .map((r) => {
    // Only the parameters each action takes (the validator's own rule, tested by the corpus).
    const out: Record<string, unknown> = { service: r.service, source: r.source, target: r.target, action: r.action };
    if (r.argument !== undefined && r.service !== "*") out.argument = r.argument;
    if (r.notify !== undefined) out.notify = r.notify;
    if (r.action !== "deny") {
      for (const k of ["redirect", "user", "autostart"] as const) if (r[k] !== undefined) out[k] = r[k];
      if (r.action === "ask" && r.default_target !== undefined) out.default_target = r.default_target;
      if (r.action === "allow" && r.target === "@default" && out.redirect === undefined) out.redirect = "vault";
    }
    return out;
  });

test("every file qubes-iac renders validates again, to the same statements (property)", () => {
  fc.assert(
    fc.property(fc.array(configRule, { minLength: 1, maxLength: 8 }), fc.array(fc.record({ source: token("source"), target: token("target").filter((t) => t !== "@default"), action: fc.constantFrom("allow", "deny") }), { minLength: 1, maxLength: 3 }), (rules, svcRules) => {
      const config = {
        version: 1,
        owner: "t",
        qubes: Object.fromEntries(["work", "vault", "personal", "sys-net", "default-dvm"].map((q) => [q, { class: "AppVM", template: "fedora-40", label: "red" }])),
        policies: { "30-gen": [...rules, { include: "include/gen" }, { include_service: "include/svc", service: "admin.vm.List", argument: "*" }] },
        policy_includes: { gen: rules.slice(0, 2), svc: svcRules },
      };
      const r = loadConfig(["c.yaml"], memoryIO({ "c.yaml": JSON.stringify(config) }));
      expect(r.diagnostics).toEqual([]);
      for (const file of r.config!.policies.values()) {
        const text = renderPolicyFile(file, "t");
        for (const release of RELEASE_IDS) {
          const again = parsePolicyText(text, release, { file: "rendered", syntax: file.syntax });
          expect(again.diagnostics).toEqual([]);
          expect(again.statements.map(bare)).toEqual(file.statements.map(bare));
        }
      }
    }),
    { numRuns: 150 },
  );
});

const configCases = [...readdirSync("test/config/valid").map((f) => join("test/config/valid", f)), ...readdirSync("examples").map((f) => join("examples", f))];

test.each(configCases)("every policy file %s renders validates again, in every release", async (path) => {
  const { nodeConfigIO } = await import("../../src/config/index.js");
  const r = loadConfig([path], nodeConfigIO);
  expect(r.config).toBeDefined();
  for (const file of r.config!.policies.values()) {
    for (const release of RELEASE_IDS) {
      const again = parsePolicyText(renderPolicyFile(file, r.config!.owner), release, { file: "rendered", syntax: file.syntax });
      expect(again.diagnostics).toEqual([]);
      expect(again.statements.map(bare)).toEqual(file.statements.map(bare));
    }
  }
});

test("the valid corpus has policy files to render", () => {
  const r = loadConfig(["test/config/valid/05-policies.yaml"], { readFile: (p) => readFileSync(p, "utf8"), readDir: () => [], isDirectory: () => false, exists: existsSync });
  expect([...r.config!.policies.keys()]).toEqual([
    "policy.30-split-gpg",
    "policy.31-raw",
    "policy.32-adopted",
    "policy.33-admin",
    "policy.34-old",
    "policy.35-let-go",
    "policy.36-admin-rules",
    "policy.include.admin-ro",
    "policy.include.clipboard",
    "policy.include.raw-include",
  ]);
  const adopted = r.config!.policies.get("policy.32-adopted")!;
  expect([adopted.adopt, adopted.absent, adopted.release, adopted.form]).toEqual([true, false, false, "rules"]);
  expect(r.config!.policies.get("policy.34-old")!.absent).toBe(true);
  expect(r.config!.policies.get("policy.35-let-go")!.release).toBe(true);
  expect(r.config!.policies.get("policy.include.admin-ro")!.syntax).toBe("service");
  expect(r.config!.policies.get("policy.include.clipboard")!.syntax).toBe("policy");
  // The issue's example, rule for rule.
  expect(renderPolicyFile(r.config!.policies.get("policy.30-split-gpg")!, "laptop").split("\n").slice(1)).toEqual([
    "qubes.Gpg * work vault allow",
    "qubes.Filecopy * @tag:work @anyvm ask default_target=vault",
    "qubes.OpenInVM + work @dispvm:default-dvm allow",
    "* * @anyvm vault deny notify=no",
    "",
  ]);
});

test("a config without policies has none", () => {
  const r = loadConfig(["c.yaml"], memoryIO({ "c.yaml": "version: 1\nowner: t\n" }));
  expect(r.config!.policies.size).toBe(0);
});
