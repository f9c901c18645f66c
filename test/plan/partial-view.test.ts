// A plan read through a connection that shows only some qubes (a management qube's qrexec
// policy: Transport.visibility "policy") never calls a removal safe from references it could not
// see: a delete or replace that no visible qube uses carries QIAC-W110 at its address; read in
// dom0 (everything visible) the same plan has no such warning.
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { readerFromClient } from "../../src/apply/admin-api.js";
import { buildPlan } from "../../src/plan/plan.js";
import { readActualState } from "../../src/plan/reader.js";
import { converge, desiredFromYaml, startSession, type SimSession } from "./_helpers.js";

let s: SimSession;
beforeEach(async () => {
  s = await startSession();
});
afterEach(async () => {
  await s.stop();
});

const yaml = (body: string): string => `version: 1\nowner: o\nqubes:\n${body}`;

describe("removals seen through a policy", () => {
  it("a delete and a replace that no visible qube uses are warned about, and only then", async () => {
    await converge(
      s,
      desiredFromYaml(yaml("  sys-vpn: {class: AppVM, template: fedora-40, label: orange, properties: {provides_network: true}}\n  dev: {class: AppVM, template: fedora-40, label: blue}\n")),
    );
    // sys-vpn becomes a StandaloneVM (a replace), dev is dropped (a delete).
    const desired = desiredFromYaml(yaml("  sys-vpn: {class: StandaloneVM, root: empty, label: orange, properties: {provides_network: true}}\n"));
    const warnings = async (visibility: "all" | "policy") => {
      const actual = await readActualState(readerFromClient(s.client), desired, { parallelism: 4, visibility });
      const plan = buildPlan(desired, actual, { allowRestart: false, targets: [], excludes: [] });
      expect(plan.diagnostics.filter((d) => d.severity === "error")).toEqual([]);
      return plan.diagnostics.filter((d) => d.code === "QIAC-W110").map((d) => [d.address, d.message.split(":")[0]]);
    };
    expect(await warnings("all")).toEqual([]);
    expect(await warnings("policy")).toEqual([
      ["qube.sys-vpn", "qube sys-vpn is to be replaced"],
      ["qube.dev", "qube dev is to be deleted"],
    ]);
  });

  it("a removal a visible qube blocks is the error it always was, with no warning beside it", async () => {
    await converge(s, desiredFromYaml(yaml("  sys-vpn: {class: AppVM, template: fedora-40, label: orange, properties: {provides_network: true}}\n")));
    await s.client.property.set({ vm: "untrusted" }, "netvm", "sys-vpn");
    const desired = desiredFromYaml(yaml("  keep: {class: AppVM, template: fedora-40, label: blue}\n"));
    const actual = await readActualState(readerFromClient(s.client), desired, { parallelism: 4, visibility: "policy" });
    const plan = buildPlan(desired, actual, { allowRestart: false, targets: [], excludes: [] });
    expect(plan.diagnostics.filter((d) => d.address === "qube.sys-vpn").map((d) => d.code)).toEqual(["QIAC-E104"]);
  });
});
