import { describe, expect, it } from "vitest";
import { parsePropertyDefault, parsePropertyGet, parsePropertyGetAll, parseVmList, unescapeGetAll } from "../../src/providers/qubes/properties.js";
import { readJsonl, replyBytes } from "../helpers/shared.js";

describe("property values", () => {
  it("parses Get replies into default flag, type and typed value", () => {
    expect(parsePropertyGet("default=True type=vm sys-firewall")).toEqual({ ok: true, value: { isDefault: true, type: "vm", raw: "sys-firewall", value: "sys-firewall" } });
    expect(parsePropertyGet("default=False type=vm ")).toEqual({ ok: true, value: { isDefault: false, type: "vm", raw: "", value: null } });
    expect(parsePropertyGet("default=True type=int 4000")).toMatchObject({ ok: true, value: { value: 4000 } });
    expect(parsePropertyGet("default=True type=int ")).toMatchObject({ ok: true, value: { value: null } });
    expect(parsePropertyGet("default=True type=bool False")).toMatchObject({ ok: true, value: { value: false } });
    expect(parsePropertyGet("default=True type=str 10.139.1.1 10.139.1.2")).toMatchObject({ ok: true, value: { value: "10.139.1.1 10.139.1.2" } });
    expect(parsePropertyGet("default=False type=label purple")).toMatchObject({ ok: true, value: { type: "label", value: "purple" } });
    expect(parsePropertyGet("default=maybe type=int 1").ok).toBe(false);
    expect(parsePropertyGet("default=True type=list a").ok).toBe(false);
    expect(parsePropertyGet("default=True type=int x").ok).toBe(false);
    expect(parsePropertyGet("default=True type=bool yes").ok).toBe(false);
  });

  it("parses GetDefault, with an empty body meaning no default", () => {
    expect(parsePropertyDefault("type=vm sys-firewall")).toEqual({ ok: true, value: { type: "vm", raw: "sys-firewall", value: "sys-firewall" } });
    expect(parsePropertyDefault("")).toEqual({ ok: true, value: null });
  });

  it("unescapes GetAll's \\\\ and \\n (server test_027)", () => {
    expect(unescapeGetAll("opt1\\nopt2\\nopt3\\\\opt4")).toBe("opt1\nopt2\nopt3\\opt4");
    const all = parsePropertyGetAll("debug default=True type=bool False\nkernelopts default=False type=str opt1\\nopt2\\nopt3\\\\opt4\nnetvm default=True type=vm \n");
    expect(all.ok && all.value.get("kernelopts")?.value).toBe("opt1\nopt2\nopt3\\opt4");
    expect(all.ok && all.value.get("netvm")?.value).toBeNull();
  });

  it("parses every recorded GetAll of the real qubesd", () => {
    const rows = readJsonl("conformance/qubesd/fixture-state.jsonl").filter((r) => r.method.endsWith("property.GetAll"));
    expect(rows.length).toBeGreaterThan(5);
    for (const row of rows) {
      const r = parsePropertyGetAll(replyBytes(row).subarray(2).toString("utf8"));
      expect(r.ok, row.dest).toBe(true);
      if (r.ok) expect(r.value.size).toBeGreaterThan(5);
    }
  });
});

describe("vm.List", () => {
  it("parses lines with the uuid field (R4.3+) and without it (R4.2)", () => {
    expect(parseVmList("dom0 class=AdminVM state=Running uuid=00000000-0000-0000-0000-000000000000\nwork class=AppVM state=Halted uuid=277aa8c6-3065-5bc7-bd24-1f4c5966b67d\n")).toEqual({
      ok: true,
      value: [
        { name: "dom0", klass: "AdminVM", state: "Running", uuid: "00000000-0000-0000-0000-000000000000" },
        { name: "work", klass: "AppVM", state: "Halted", uuid: "277aa8c6-3065-5bc7-bd24-1f4c5966b67d" },
      ],
    });
    expect(parseVmList("work class=AppVM state=Running\n")).toEqual({ ok: true, value: [{ name: "work", klass: "AppVM", state: "Running" }] });
    expect(parseVmList("work AppVM Running\n").ok).toBe(false);
    expect(parseVmList("work state=Running\n").ok).toBe(false);
  });
});
