import { describe, expect, it } from "vitest";
import { checkLabelColour, checkTagName, checkVmName, formatFirewallRule, parseFirewallRule } from "../../src/model/qubes-rules.js";

describe("Qubes name rules", () => {
  it("checks VM names with qubesd's messages", () => {
    expect(checkVmName("work")).toBeNull();
    expect(checkVmName("sys-firewall")).toBeNull();
    expect(checkVmName("1bad")).toBe("VM name cannot start with hyphen, underscore, dot or numbers");
    expect(checkVmName("bad!name")).toBe("VM name contains illegal characters");
    expect(checkVmName("a b")).toBe("VM name contains illegal characters");
    expect(checkVmName("a+b")).toBe("VM name contains illegal characters");
    expect(checkVmName("x".repeat(32))).toBe("VM name must be shorter than 32 characters");
    expect(checkVmName("none")).toBe("VM name cannot be 'none' nor 'default'");
    expect(checkVmName("vm-dm")).toBe("VM name cannot end with -dm");
    expect(checkVmName("Domain-0")).toBe("VM name cannot be 'Domain-0'");
  });
  it("checks tags and label colours", () => {
    expect(checkTagName("managed-by-laptop")).toBeNull();
    expect(checkTagName("bad!tag")).toBe("disallowed characters");
    expect(checkTagName("")).toBe("tag cannot be empty");
    expect(checkLabelColour("0xff00ff")).toBeNull();
    expect(checkLabelColour("pink")).toBe("Label value must have length of 8");
  });
});

describe("firewall rules", () => {
  const canon = (s: string) => {
    const r = parseFirewallRule(s);
    return r.ok ? formatFirewallRule(r.rule) : `error: ${r.error}`;
  };
  it("prints rules in the server's canonical option order", () => {
    expect(canon("action=accept proto=tcp dstports=443")).toBe("action=accept proto=tcp dstports=443-443");
    expect(canon("proto=udp expire=2099450306 action=drop")).toBe("action=drop expire=2099450306 proto=udp");
    expect(canon("action=drop proto=icmp comment=No ICMP")).toBe("action=drop proto=icmp comment=No ICMP");
    expect(canon("action=accept dsthost=qubes-os.org")).toBe("action=accept dsthost=qubes-os.org");
    expect(canon("action=drop dst4=192.168.0.0/24")).toBe("action=drop dst4=192.168.0.0/24");
    expect(canon("action=drop dsthost=10.1.2.3")).toBe("action=drop dst4=10.1.2.3/32");
    expect(canon("action=drop dsthost=2001:db8::1")).toBe("action=drop dst6=2001:db8::1/128");
    expect(canon("specialtarget=dns action=accept")).toBe("action=accept specialtarget=dns");
  });
  it("rejects what qubesd rejects", () => {
    for (const bad of ["action=maybe", "proto=tcp", "action=accept dstports=80", "action=accept proto=udp icmptype=3", "action=accept action=drop", "action=accept foo=bar", "action=accept dsthost=Example.com", "action=accept dsthost=1.2.3.4/33", "action=accept proto=tcp dstports=90-80", "action=accept comment=a!b", "action=accept dsthost=ü"]) {
      expect(canon(bad), bad).toMatch(/^error: /);
    }
  });
});
