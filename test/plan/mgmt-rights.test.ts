// From a management qube the plan refuses to write a policy file that holds management rights
// (QIAC-E186, located at the file's key); from dom0 it writes it. Pure, over the changes as the
// policy planner hands them over.
import { describe, expect, it } from "vitest";
import type { PolicyRule } from "../../src/model/qrexec-policy.js";
import { refuseRightsWrites, type PolicyFileChange } from "../../src/plan/mgmt-rights.js";

const rule = (service: string, action: PolicyRule["action"] = "allow"): PolicyRule => ({ kind: "rule", service, argument: "*", source: "mgmt", target: "@adminvm", action, params: { redirect: "dom0" } });
const at = { file: "qubes.yaml", line: 4, column: 3 };
const change = (name: string, before: PolicyFileChange["before"], after: PolicyFileChange["after"], scope: PolicyFileChange["scope"] = "policy"): PolicyFileChange => ({
  address: scope === "include" ? `policy.include.${name}` : `policy.${name}`,
  scope,
  name,
  before,
  after,
  at,
});

describe("QIAC-E186", () => {
  it("creating, changing or removing a rights file from a management qube is refused, located; from dom0 it is not", () => {
    const changes = [change("30-mine", null, [rule("admin.vm.List")]), change("30-old", [rule("policy.Replace")], null), change("30-gpg", null, [rule("qubes.Gpg")])];
    const d = refuseRightsWrites(changes, "policy", []);
    expect(d.map((x) => [x.code, x.address, x.location, x.message])).toEqual([
      ["QIAC-E186", "policy.30-mine", at, "policy.30-mine holds management rights (it allows admin.vm.List (mgmt → @adminvm)): a management qube may not create it, only dom0 may"],
      ["QIAC-E186", "policy.30-old", at, "policy.30-old holds management rights (it allows policy.Replace (mgmt → @adminvm)): a management qube may not remove it, only dom0 may"],
    ]);
    expect(d.every((x) => x.severity === "error")).toBe(true);
    expect(refuseRightsWrites(changes, "all", [])).toEqual([]);
    expect(refuseRightsWrites(changes, undefined, [])).toEqual([]);
  });
  it("a file that !includes one granting rights (followed through the resolver)", () => {
    const inc = change("30-inc", null, [{ kind: "include", path: "include/admin-extra" }]);
    expect(refuseRightsWrites([inc], "policy", [])).toEqual([]);
    const resolve = (path: string) => (path === "include/admin-extra" ? [rule("admin.vm.Start")] : undefined);
    expect(refuseRightsWrites([inc], "policy", [], resolve).map((x) => x.message)).toEqual([
      "policy.30-inc holds management rights (it allows admin.vm.Start (mgmt → @adminvm) (through include/admin-extra)): a management qube may not create it, only dom0 may",
    ]);
  });
  it("an include file read by an !include-service line of a rights service, found among the statements the plan read", () => {
    const inc = change("my-admin", [], [], "include");
    expect(refuseRightsWrites([inc], "policy", [])).toEqual([]);
    expect(refuseRightsWrites([inc], "policy", [{ kind: "include-service", service: "admin.vm.List", argument: "*", path: "include/my-admin" }]).map((x) => x.address)).toEqual(["policy.include.my-admin"]);
  });
});
