// The loosening markers (src/plan/loosening.ts) against the simulator's default fixture: a test per
// kind, each with the change that loosens (marked) beside one that narrows or keeps the same effect
// (not marked); the firewall judged by effect (pure); the human plan's `!` lines and closing line;
// `plan --deny-loosening` exit codes; `show PLANFILE` showing the markers of a saved plan.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { readerFromClient } from "../../src/apply/admin-api.js";
import { toJsonPlan, type JsonPlan } from "../../src/plan/json.js";
import { LOOSENING_KIND_CODES } from "../../src/plan/loosening.js";
import { firewallWidening } from "../../src/plan/loosening-firewall.js";
import { buildPlan } from "../../src/plan/plan.js";
import { readActualState } from "../../src/plan/reader.js";
import { renderHumanPlan } from "../../src/plan/render.js";
import { runCliInProcess } from "./_cli.js";
import { converge, desiredFromYaml, expectValidPlanJson, planWith, startSession, TEST_VERSION, type SimSession } from "./_helpers.js";

const config = (body: string): string => `version: 1\nowner: t\n${body}`;

/** The plan's loosenings as `address kind` lines. */
async function loosenings(s: SimSession, yaml: string): Promise<string[]> {
  const { json } = await planWith(s, desiredFromYaml(config(yaml)));
  expectValidPlanJson(json);
  return json.resource_changes.flatMap((c) => (c.loosens ?? []).map((l) => `${c.address} ${l.kind}`));
}

describe("a marker per kind, against the simulator", () => {
  let s: SimSession;
  beforeEach(async () => {
    s = await startSession();
  });
  afterEach(async () => {
    await s.stop();
  });

  it("netvm-gained: a qube without a netvm gets one; moving between network qubes or to none is not marked", async () => {
    expect(await loosenings(s, "qubes:\n  vault: {adopt: true, properties: {netvm: sys-firewall}}\n")).toEqual(["qube.vault netvm-gained"]);
    expect(await loosenings(s, "qubes:\n  vault: {adopt: true, properties: {netvm: null}}\n")).toEqual([]);
    expect(await loosenings(s, "qubes:\n  work: {adopt: true, properties: {netvm: sys-net}}\n")).toEqual([]);
    expect(await loosenings(s, "qubes:\n  work: {adopt: true, properties: {netvm: null}}\n")).toEqual([]);
  });

  it("netvm-gained: a qube reset to its default netvm gains it, named when the plan read the globals", async () => {
    const { json } = await planWith(s, desiredFromYaml(config('qubes:\n  vault: {adopt: true, properties: {netvm: "*default*"}}\n')));
    const vault = json.resource_changes.find((c) => c.address === "qube.vault");
    expect(vault?.loosens).toEqual([{ kind: "netvm-gained", attribute: "properties.netvm", detail: "gains a netvm: none → the default netvm (it follows default_netvm)" }]);
    const named = await planWith(s, desiredFromYaml(config('properties:\n  default_netvm: sys-net\nqubes:\n  vault: {adopt: true, properties: {netvm: "*default*"}}\n')));
    expect(named.json.resource_changes.find((c) => c.address === "qube.vault")?.loosens?.[0]?.detail).toBe("gains a netvm: none → sys-net (it follows default_netvm)");
  });

  it("provides-network: turned on (on an existing qube and on one the plan creates), not when it stays off", async () => {
    expect(await loosenings(s, "qubes:\n  work: {adopt: true, properties: {provides_network: true}}\n")).toEqual(["qube.work provides-network"]);
    expect(await loosenings(s, "qubes:\n  work: {adopt: true, properties: {provides_network: false}}\n")).toEqual([]);
    expect(await loosenings(s, "qubes:\n  sys-x: {class: AppVM, template: fedora-40, label: red, properties: {provides_network: true}}\n")).toEqual(["qube.sys-x provides-network"]);
    expect(await loosenings(s, "qubes:\n  app-x: {class: AppVM, template: fedora-40, label: red, properties: {netvm: sys-firewall}}\n")).toEqual([]);
  });

  it("firewall-wider: a list that accepts more than before, judged by effect after an apply", async () => {
    const base = "qubes:\n  work:\n    adopt: true\n    firewall:\n";
    const rules = (...r: string[]): string => base + r.map((x) => `      - ${x}\n`).join("");
    // From Qubes' default (accept everything) to a narrow list: narrowing.
    expect(await loosenings(s, rules("{action: accept, dsthost: 10.1.0.0/16, proto: tcp, dstports: 443}", "{action: drop}"))).toEqual([]);
    await converge(s, desiredFromYaml(config(rules("{action: accept, dsthost: 10.1.0.0/16, proto: tcp, dstports: 443}", "{action: drop}"))));
    // A new accept, a wider host range, a wider port range, a drop removed: marked.
    expect(await loosenings(s, rules("{action: accept, dsthost: 10.1.0.0/16, proto: tcp, dstports: 443}", "{action: accept, proto: udp, dstports: 53}", "{action: drop}"))).toEqual(["qube.work firewall-wider"]);
    expect(await loosenings(s, rules("{action: accept, dsthost: 10.0.0.0/8, proto: tcp, dstports: 443}", "{action: drop}"))).toEqual(["qube.work firewall-wider"]);
    expect(await loosenings(s, rules("{action: accept, dsthost: 10.1.0.0/16, proto: tcp, dstports: 443-444}", "{action: drop}"))).toEqual(["qube.work firewall-wider"]);
    expect(await loosenings(s, rules("{action: accept, dsthost: 10.1.0.0/16, proto: tcp, dstports: 443}"))).toEqual([]);
    // The same effect in other lines, and a narrower range: not marked.
    expect(await loosenings(s, rules("{action: accept, dsthost: 10.1.0.0/17, proto: tcp, dstports: 443}", "{action: accept, dsthost: 10.1.128.0/17, proto: tcp, dstports: 443}", "{action: drop}"))).toEqual([]);
    expect(await loosenings(s, rules("{action: accept, dsthost: 10.1.2.0/24, proto: tcp, dstports: 443}", "{action: drop}"))).toEqual([]);
  });

  it("global-default: default_netvm and default_dispvm moves, with the count of the qubes that follow; a move to none is not marked", async () => {
    const { json } = await planWith(s, desiredFromYaml(config("properties:\n  default_netvm: sys-net\n  default_dispvm: work\n")));
    const globals = json.resource_changes.find((c) => c.address === "properties");
    // Followers of default_netvm: work, personal, untrusted, default-dvm (sys-net and vault say none,
    // sys-firewall names sys-net, fedora-40 is a template); of default_dispvm: every qube but work itself.
    expect(globals?.loosens).toEqual([
      { kind: "global-default", attribute: "default_dispvm", detail: "default_dispvm: default-dvm → work moves 8 qubes that follow it", affects: { qubes: 8, at_least: false } },
      { kind: "global-default", attribute: "default_netvm", detail: "default_netvm: sys-firewall → sys-net moves 4 qubes that follow it", affects: { qubes: 4, at_least: false } },
    ]);
    expect(await loosenings(s, "properties:\n  default_netvm: null\n")).toEqual([]);
    // A follower the same plan pins is not moved.
    const pinned = await planWith(s, desiredFromYaml(config("properties:\n  default_netvm: sys-net\nqubes:\n  work: {adopt: true, properties: {netvm: sys-firewall}}\n")));
    expect(pinned.json.resource_changes.find((c) => c.address === "properties")?.loosens?.[0]?.affects).toEqual({ qubes: 3, at_least: false });
  });

  it("global-default: from a connection that sees only what its policy lists, the count is a lower bound", async () => {
    const desired = desiredFromYaml(config("properties:\n  default_netvm: sys-net\n"));
    const actual = await readActualState(readerFromClient(s.client), desired, { parallelism: 4, visibility: "policy" });
    const json = toJsonPlan(buildPlan(desired, actual, { allowRestart: false, targets: [], excludes: [] }), { version: TEST_VERSION });
    const l = json.resource_changes.find((c) => c.address === "properties")?.loosens?.[0];
    expect(l?.affects).toEqual({ qubes: 4, at_least: true });
    expect(l?.detail).toBe("default_netvm: sys-firewall → sys-net moves at least 4 qubes that follow it");
    expect(renderHumanPlan(json, { color: false })).toContain("1 change loosens isolation: properties (moves what qubes follow: at least 4).\n");
  });
});

describe("firewall lists judged by effect (first match, then drop)", () => {
  const w = (before: string[], after: string[]): string | undefined => firewallWidening(before, after)?.example;
  it("a drop moved below an accept it shadowed is wider", () => {
    expect(w(["action=drop dst4=10.0.0.0/8", "action=accept"], ["action=accept", "action=drop dst4=10.0.0.0/8"])).toBe("tcp port 0 to 10.0.0.0");
  });
  it("a reordering that changes nothing, and removing an accept, are not wider", () => {
    expect(w(["action=accept proto=tcp dstports=80-80", "action=accept proto=udp dstports=53-53"], ["action=accept proto=udp dstports=53-53", "action=accept proto=tcp dstports=80-80"])).toBeUndefined();
    expect(w(["action=accept proto=tcp dstports=80-80", "action=drop"], ["action=drop"])).toBeUndefined();
    expect(w(["action=accept specialtarget=dns"], ["action=accept specialtarget=dns", "action=drop"])).toBeUndefined();
  });
  it("IPv6 ranges, ICMP types, DNS names and specialtarget", () => {
    expect(w(["action=accept dst6=2001:db8::/64"], ["action=accept dst6=2001:db8::/48"])).toBe("tcp port 0 to 2001:db8:0:1::");
    expect(w(["action=accept proto=icmp icmptype=8"], ["action=accept proto=icmp"])).toBe("icmp to 0.0.0.0");
    expect(w(["action=accept dsthost=a.example"], ["action=accept dsthost=b.example"])).toBe("tcp port 0 to b.example");
    expect(w(["action=drop"], ["action=accept specialtarget=dns"])).toBe("tcp port 53 to 10.139.1.1");
    expect(w(["action=accept proto=udp dstports=53-53"], ["action=accept specialtarget=dns"])).toBe("tcp port 53 to 10.139.1.1");
    expect(w(["action=accept"], ["action=accept specialtarget=dns"])).toBeUndefined();
  });
});

describe("output and the CI gate", () => {
  let s: SimSession;
  let dir: string;
  beforeEach(async () => {
    s = await startSession();
    dir = mkdtempSync(join(tmpdir(), "qiac-loosen-"));
  });
  afterEach(async () => {
    await s.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  const write = (name: string, yaml: string): string => {
    const p = join(dir, name);
    writeFileSync(p, config(yaml));
    return p;
  };
  const plan = (...args: string[]) => runCliInProcess(["plan", "--connect", `qubesd:${s.sim.socketPath}`, ...args], { env: { NO_COLOR: "1" } });

  it("marks the lines with `!`, lists each loosening and closes with the summary line, strongest first", async () => {
    const p = write("q.yaml", "properties:\n  default_netvm: sys-net\nqubes:\n  vault: {adopt: true, properties: {netvm: sys-firewall}}\n  work: {adopt: true, properties: {provides_network: true}}\n");
    const r = await plan(p);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("  # loosens isolation (netvm-gained): gains a netvm: none → sys-firewall\n!  ~ qube.vault\n!     properties.netvm: none → sys-firewall\n");
    expect(r.stdout).toContain("!  ~ qube.work\n!     properties.provides_network: false (default) → true\n");
    expect(r.stdout).toContain("!     default_netvm: sys-firewall → sys-net\n");
    expect(r.stdout).toContain("\n3 changes loosen isolation: qube.work (provides network), qube.vault (gains a netvm), properties (moves what qubes follow: 4).\n");
    // The tags line of an adopted qube is not a loosening.
    expect(r.stdout).not.toMatch(/^!\s+tags:/m);
  });

  it("--deny-loosening exits 3 when a change loosens (also with --detailed-exitcode), 1 wins on an error, and narrowing gives 0 / 2", async () => {
    const loosen = write("loosen.yaml", "qubes:\n  vault: {adopt: true, properties: {netvm: sys-firewall}}\n");
    const narrow = write("narrow.yaml", "qubes:\n  work: {adopt: true, properties: {netvm: null}}\n");
    const broken = write("broken.yaml", "qubes:\n  vault: {adopt: true, properties: {netvm: no-such-qube}}\n  work: {adopt: true, properties: {provides_network: true}}\n");
    expect((await plan("--deny-loosening", loosen)).code).toBe(3);
    expect((await plan("--deny-loosening", "--detailed-exitcode", loosen)).code).toBe(3);
    expect((await plan("--detailed-exitcode", loosen)).code).toBe(2);
    expect((await plan(loosen)).code).toBe(0);
    expect((await plan("--deny-loosening", narrow)).code).toBe(0);
    expect((await plan("--deny-loosening", "--detailed-exitcode", narrow)).code).toBe(2);
    expect((await plan("--deny-loosening", broken)).code).toBe(1);
  });

  it("the JSON plan carries the kind per change, and show PLANFILE shows the markers of a saved plan", async () => {
    const p = write("q.yaml", "qubes:\n  vault: {adopt: true, properties: {netvm: sys-firewall}}\n");
    const out = join(dir, "plan.json");
    expect((await plan("--out", out, p)).code).toBe(0);
    const saved = JSON.parse(readFileSync(out, "utf8")) as JsonPlan;
    expectValidPlanJson(saved);
    expect(saved.resource_changes.find((c) => c.address === "qube.vault")?.loosens?.map((l) => l.kind)).toEqual(["netvm-gained"]);
    const show = await runCliInProcess(["show", out], { env: { NO_COLOR: "1" } });
    expect(show.stdout).toContain("!     properties.netvm: none → sys-firewall\n");
    expect(show.stdout).toContain("1 change loosens isolation: qube.vault (gains a netvm).\n");
  });

  it("apply shows the markers in the plan it asks approval for", async () => {
    const p = write("q.yaml", "qubes:\n  vault: {adopt: true, properties: {netvm: sys-firewall}}\n");
    const r = await runCliInProcess(["apply", "--connect", `qubesd:${s.sim.socketPath}`, "--auto-approve", p], { env: { NO_COLOR: "1" } });
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("!     properties.netvm: none → sys-firewall\n");
    expect(r.stdout).toContain("1 change loosens isolation: qube.vault (gains a netvm).\n");
  });

  it("docs/plan.md lists every kind, strongest first, and no other", () => {
    const doc = readFileSync(join(__dirname, "..", "..", "docs", "plan.md"), "utf8");
    const section = doc.slice(doc.indexOf("## What loosens isolation"), doc.indexOf("## Semantics worth knowing"));
    expect([...section.matchAll(/^\| `([a-z-]+)` \|/gm)].map((m) => m[1])).toEqual(LOOSENING_KIND_CODES);
  });

  it("the plan schema's kinds are the module's", () => {
    const schema = JSON.parse(readFileSync(join(__dirname, "..", "..", "schemas", "plan.schema.json"), "utf8")) as {
      definitions: { resourceChange: { properties: { loosens: { items: { properties: { kind: { enum: string[] } } } } } } };
    };
    expect(schema.definitions.resourceChange.properties.loosens.items.properties.kind.enum).toEqual(LOOSENING_KIND_CODES);
  });
});
