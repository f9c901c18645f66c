// Values qubesd rewrites when it stores them: a plan compares them in the stored form, so after
// an apply the next plan shows no changes; a value whose stored form is not what the user wrote
// (or differs by release) is refused before any call. Upstream (release4.2, release4.3, main):
// qubes/vm/mix/net.py _setter_mac (lower()), `ip6` typed ipaddress.IPv6Address (printed
// compressed), qubes/storage/file.py FilePool.__init__ (os.path.normpath(dir_path)),
// qubes/firewall.py DstHost (inet_pton: a dotted quad with leading zeros is a DNS name).
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { loadConfig } from "../../src/config/index.js";
import { errorCodes, desiredFromYaml, planOps, planWith, runOps, startSession, type SimSession } from "./_helpers.js";

const CONFIG = `version: 1
owner: canon
pools:
  slashed:
    driver: file
    dir_path: /var/lib//qubes-slashed/./
qubes:
  canon:
    class: AppVM
    template: fedora-40
    label: red
    properties:
      mac: "00:16:3E:AA:BB:CC"
      virt_mode: PVH
      ip6: "2001:DB8:0:0:0:0:0:A"
    firewall:
      - {action: accept, dsthost: "2001:DB8::1/64", proto: tcp, dstports: 443}
      - {action: accept, dsthost: 10.1.1.5/24}
      - {action: drop}
`;

describe("values qubesd rewrites converge", () => {
  let s: SimSession;
  beforeEach(async () => {
    s = await startSession();
  });
  afterEach(async () => {
    await s.stop();
  });

  it("mac, virt_mode, ip6, a pool's dir_path, firewall hosts and port ranges: apply, then plan again shows no changes", async () => {
    const desired = desiredFromYaml(CONFIG);
    const first = await planWith(s, desired);
    expect(errorCodes(first.json)).toEqual([]);
    const ops = planOps(first.json);
    // What is sent is the stored form.
    expect(ops).toContainEqual({ op: "property.set", holder: { vm: "canon" }, name: "mac", value: "00:16:3e:aa:bb:cc" });
    expect(ops).toContainEqual({ op: "property.set", holder: { vm: "canon" }, name: "ip6", value: "2001:db8::a" });
    expect(ops).toContainEqual({ op: "property.set", holder: { vm: "canon" }, name: "virt_mode", value: "pvh" });
    expect(ops).toContainEqual(expect.objectContaining({ op: "pool.add", params: { dir_path: "/var/lib/qubes-slashed" } }));
    expect(ops).toContainEqual({
      op: "firewall.set",
      vm: "canon",
      rules: ["action=accept dst6=2001:db8::/64 proto=tcp dstports=443-443", "action=accept dst4=10.1.1.0/24", "action=drop"],
    });
    await runOps(s.client, ops);
    const second = await planWith(s, desired);
    expect(second.json.diagnostics).toEqual([]);
    expect(second.json.steps).toEqual([]);
  });
});

function configErrors(text: string): Array<{ code: string; message: string; line?: number }> {
  const io = { readFile: () => text, readDir: () => [], isDirectory: () => false, exists: (p: string) => p === "qubes.yaml" };
  return loadConfig(["qubes.yaml"], io)
    .diagnostics.filter((d) => d.severity === "error")
    .map((d) => ({ code: d.code, message: d.message, ...(d.location ? { line: d.location.line } : {}) }));
}

describe("values whose stored form is not what was written are refused in validate", () => {
  const qube = (extra: string): string => `version: 1\nowner: canon\nqubes:\n  canon:\n    class: AppVM\n    template: fedora-40\n    label: red\n${extra}`;

  it("an ip with leading zeros (Python's IPv4Address refuses it)", () => {
    expect(configErrors(qube("    properties:\n      ip: 010.1.1.1\n"))).toEqual([expect.objectContaining({ code: "QIAC-E043", line: 9 })]);
  });

  it("an ip6 with an embedded IPv4 address (printed differently by R4.2's and R4.3's Python)", () => {
    expect(configErrors(qube("    properties:\n      ip6: \"::ffff:10.1.1.1\"\n"))).toEqual([expect.objectContaining({ code: "QIAC-E043", line: 9 })]);
  });

  it("a firewall host that is a dotted quad with leading zeros (a DNS name to qubesd)", () => {
    const errors = configErrors(qube("    firewall:\n      - {action: accept, dsthost: 010.1.1.1}\n"));
    expect(errors).toEqual([expect.objectContaining({ code: "QIAC-E048", line: 9 })]);
    expect(errors[0]?.message).toContain("DNS name");
  });

  it("a relative dir_path (reflink's abspath depends on qubesd's working directory)", () => {
    const errors = configErrors("version: 1\nowner: canon\npools:\n  p:\n    driver: file-reflink\n    dir_path: var/lib/p\n");
    expect(errors).toEqual([expect.objectContaining({ code: "QIAC-E040", line: 6 })]);
  });
});
