// A system's policy texts, with a config's files laid over them, as qrexec would load them: the
// before and after that the plan's loosening analysis evaluates.
import { expect, test } from "vitest";
import { loadConfig, type ConfigIO } from "../../src/config/index.js";
import { policySet } from "../../src/config/policy/index.js";
import { evaluate, type EvalQube, type EvalSystem } from "../../src/model/qrexec-eval.js";

const q = (o: Partial<EvalQube> = {}): EvalQube => ({ type: "AppVM", tags: [], template_for_dispvms: false, default_dispvm: null, ...o });
const system: EvalSystem = { qubes: new Map([["dom0", q({ type: "AdminVM" })], ["work", q()], ["vault", q()], ["mgmt", q()]]) };
const io = (text: string): ConfigIO => ({ readFile: () => text, readDir: () => [], isDirectory: () => false, exists: () => true });
const gpg = { service: "qubes.Gpg", argument: "+", source: "work", target: "vault" };

const texts = {
  policies: new Map([
    ["90-default", "# Qubes' own\n* * @anyvm @anyvm deny\n"],
    ["30-gpg", "qubes.Gpg * work vault deny\n"],
    ["40-admin", "!include-service admin.vm.List * include/admin-ro\n"],
  ]),
  includes: new Map([["admin-ro", "mgmt @adminvm allow target=dom0\n"]]),
};

test("the system's files as they are", () => {
  const { set, diagnostics } = policySet(texts, "r4.3");
  expect(diagnostics).toEqual([]);
  expect(evaluate(set, gpg, system)).toMatchObject({ action: "deny", rule: { file: "30-gpg" } });
  // The include file is read the way the directive reads it.
  expect(evaluate(set, { service: "admin.vm.List", argument: "+", source: "mgmt", target: "dom0" }, system)).toMatchObject({ action: "allow", target: "dom0" });
});

test("a config's files laid over them: replaced, removed, released", () => {
  const replaced = loadConfig(["c.yaml"], io("version: 1\nowner: t\npolicies:\n  30-gpg:\n    - {service: qubes.Gpg, source: work, target: vault, action: allow}\n"));
  expect(evaluate(policySet(texts, "r4.3", replaced.config!.policies).set, gpg, system)).toMatchObject({ action: "allow", rule: { file: "30-gpg" } });
  const removed = loadConfig(["c.yaml"], io("version: 1\nowner: t\npolicies:\n  30-gpg: {absent: true}\n"));
  expect(evaluate(policySet(texts, "r4.3", removed.config!.policies).set, gpg, system)).toMatchObject({ action: "deny", rule: { file: "90-default" } });
  const released = loadConfig(["c.yaml"], io("version: 1\nowner: t\npolicies:\n  30-gpg: {release: true}\n"));
  expect(evaluate(policySet(texts, "r4.3", released.config!.policies).set, gpg, system)).toMatchObject({ action: "deny", rule: { file: "30-gpg" } });
});

test("a file that does not parse: qrexec loads no policy, every call is denied", () => {
  const broken = { policies: new Map([...texts.policies, ["10-broken", "qubes.Gpg * work\n"]]) };
  const { set, diagnostics } = policySet(broken, "main");
  expect(diagnostics.map((d) => `${d.code} ${d.location?.file}:${d.location?.line}`)).toEqual(["QIAC-E401 /etc/qubes/policy.d/10-broken.policy:1"]);
  expect(evaluate(set, gpg, system)).toMatchObject({ action: "deny", reason: "load" });
});

test("an include read in the syntax it does not have: no policy loads", () => {
  const wrong = { policies: new Map([["40-admin", "!include include/admin-ro\n"]]), includes: texts.includes };
  expect(evaluate(policySet(wrong, "main").set, { service: "admin.vm.List", argument: "+", source: "mgmt", target: "dom0" }, system)).toMatchObject({ action: "deny", reason: "load" });
});
