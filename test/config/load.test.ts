// loadConfig as a library: where diagnostics point, what the normalised values are, how files
// and directories combine, and the security rules (every value checked before dom0 sees it).
// Files come from memory through ConfigIO; the corpus tests cover the catalogue of mistakes.
import { readFileSync } from "node:fs";
import { describe, expect, test } from "vitest";
import { loadConfig, MAX_CONFIG_FILE_BYTES, type ConfigIO } from "../../src/config/index.js";
import { locate, propertyValueText, type DesiredState } from "../../src/model/desired.js";
import { renderDiagnostic, type Diagnostic } from "../../src/model/diagnostics.js";

function memoryIO(files: Record<string, string>): ConfigIO {
  const asDir = (p: string): string => (p.endsWith("/") ? p : `${p}/`);
  const isDirectory = (p: string): boolean => Object.keys(files).some((f) => f.startsWith(asDir(p)));
  return {
    readFile: (p) => {
      const text = files[p];
      if (text === undefined) throw new Error(`ENOENT: no such file, open '${p}'`);
      return text;
    },
    readDir: (p) => [...new Set(Object.keys(files).filter((f) => f.startsWith(asDir(p))).map((f) => f.slice(asDir(p).length).split("/")[0]!))],
    isDirectory,
    exists: (p) => p in files || isDirectory(p),
  };
}

const HEAD = "version: 1\nowner: laptop\n";
const load = (text: string, path = "x.yaml") => loadConfig([path], memoryIO({ [path]: text }));
const codes = (ds: Diagnostic[]): string[] => ds.map((d) => `${d.code} ${d.location?.line}:${d.location?.column}`);
const validState = (text: string): DesiredState => {
  const r = load(text);
  expect(r.diagnostics.filter((d) => d.severity === "error")).toEqual([]);
  expect(r.config).toBeDefined();
  return r.config!;
};

describe("where diagnostics point", () => {
  test("the path exactly as given, 1-based line and column, and a caret under the value", () => {
    const text = `${HEAD}qubes:\n  notes:\n    class: AppVM\n    template: fedora-40\n    label: magneta\n    properties: {memory: 0}\n`;
    const r = loadConfig(["./cfg/x.yaml"], memoryIO({ "./cfg/x.yaml": text }));
    expect(r.config).toBeUndefined();
    const d = r.diagnostics.find((x) => x.code === "QIAC-E043")!;
    expect(d.location).toEqual({ file: "./cfg/x.yaml", line: 8, column: 26, endLine: 8, endColumn: 27 });
    expect(renderDiagnostic(d, (f) => r.sources.get(f))).toBe(
      [
        "./cfg/x.yaml:8:26: error QIAC-E043: property 'memory' of qube 'notes': memory must be positive",
        "  8 |     properties: {memory: 0}",
        `    | ${" ".repeat(25)}^`,
      ].join("\n"),
    );
    expect(r.sources.get("./cfg/x.yaml")).toBe(text);
  });

  test("an unknown key is underlined whole, with a suggestion", () => {
    const r = load(`${HEAD}qubes:\n  notes: {class: AppVM, tempalte: fedora-40, label: green}\n`);
    const d = r.diagnostics.find((x) => x.code === "QIAC-E010")!;
    expect(d.location).toMatchObject({ line: 4, column: 25, endLine: 4, endColumn: 33 });
    expect(d.hint).toBe("did you mean 'template'?");
  });

  test("with no path, the config is qubes.yaml in the current directory", () => {
    const r = loadConfig([], memoryIO({ "qubes.yaml": `${HEAD}qubes: {notes: {class: AppVM, template: fedora-40, label: green}}\n` }));
    expect(r.diagnostics).toEqual([]);
    expect([...r.config!.qubes.keys()]).toEqual(["notes"]);
    const missing = loadConfig([], memoryIO({}));
    expect(missing.diagnostics.map((d) => d.code)).toEqual(["QIAC-E001"]);
    expect(missing.diagnostics[0]!.message).toContain("qubes.yaml");
    expect(missing.diagnostics[0]!.hint).toContain("qubes-iac validate");
  });

  test("ten different mistakes give ten diagnostics in one run", () => {
    const path = "test/config/invalid/43-ten-mistakes.yaml";
    const r = loadConfig([path], memoryIO({ [path]: readFileSync(path, "utf8") }));
    expect(r.diagnostics).toHaveLength(10);
    expect(new Set(r.diagnostics.map((d) => d.location!.line)).size).toBe(10);
    expect(r.diagnostics.every((d) => d.severity === "error" && d.message !== "" && d.location!.file === path)).toBe(true);
  });

  test("diagnostics are sorted by file, then line and column", () => {
    const r = loadConfig(
      ["b.yaml", "a.yaml"],
      memoryIO({
        "a.yaml": "qubes:\n  x y: {adopt: true}\n  p+q: {adopt: true}\n",
        "b.yaml": `${HEAD}qubes:\n  "1st": {adopt: true}\n`,
      }),
    );
    expect(r.diagnostics.map((d) => `${d.location!.file}:${d.location!.line}`)).toEqual(["b.yaml:4", "a.yaml:2", "a.yaml:3"]);
  });
});

describe("alias bombs", () => {
  test("a billion laughs fails fast with one located diagnostic", () => {
    const lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol","lol"]'];
    const names = "abcdefghijklmnop";
    for (let i = 1; i < names.length; i++) lines.push(`${names[i]}: &${names[i]} [${Array(10).fill(`*${names[i - 1]}`).join(", ")}]`);
    const r = load(`${lines.join("\n")}\n`);
    expect(codes(r.diagnostics)).toEqual(["QIAC-E005 2:8"]);
  });

  test("a large file written out in full is not a bomb: only what aliases expand to is bounded", () => {
    // 210 000 values, more than aliases may expand to, and no alias.
    const r = load(`${HEAD}x-data: [${Array(210_000).fill("0").join(", ")}]\nqubes:\n  work: {adopt: true}\n`);
    expect(r.diagnostics).toEqual([]);
    expect(r.config?.qubes.has("work")).toBe(true);
  });

  test("ordinary reuse of anchors is not mistaken for a bomb", () => {
    const qubes = Array.from({ length: 300 }, (_, i) => `  q${i}: {<<: *base, label: green}`).join("\n");
    const state = validState(`${HEAD}x-base: &base {class: AppVM, template: fedora-40, tags: [bulk]}\nqubes:\n${qubes}\n`);
    expect(state.qubes.size).toBe(300);
    expect(state.qubes.get("q299")!.tags).toEqual(new Set(["bulk"]));
  });
});

describe("size and scale", () => {
  test("a file over 16 MiB is refused before it is read, with its own code", () => {
    let read = false;
    const io: ConfigIO = { ...memoryIO({ "big.yaml": HEAD }), size: () => MAX_CONFIG_FILE_BYTES + 1, readFile: () => ((read = true), HEAD) };
    const r = loadConfig(["big.yaml"], io);
    expect(read).toBe(false);
    expect(r.config).toBeUndefined();
    expect(r.diagnostics.map((d) => `${d.code} ${d.location?.file}:${d.location?.line}`)).toEqual(["QIAC-E007 big.yaml:1"]);
  });

  test("without a size from the I/O, the text read is measured; a file at the limit is read", () => {
    const padding = (n: number): string => `# ${"x".repeat(n - HEAD.length - 3)}\n`;
    expect(codes(load(`${HEAD}${padding(MAX_CONFIG_FILE_BYTES + 1)}`).diagnostics)).toEqual(["QIAC-E007 1:1"]);
    expect(load(`${HEAD}${padding(MAX_CONFIG_FILE_BYTES)}`).diagnostics).toEqual([]);
  });

  test("the same anyOf broken by many qubes is explained in full for each", () => {
    const qubes = Array.from({ length: 3 }, (_, i) => `  q${i}: {adopt: true, properties: {memory: lots}}`).join("\n");
    const r = load(`${HEAD}qubes:\n${qubes}\n`);
    expect(r.diagnostics.map((d) => d.message)).toEqual(
      [0, 1, 2].map((i) => `Property 'memory' of qube 'q${i}' must be an integer or "*default*", not "lots"`),
    );
  });

  test("a long netvm chain into a loop: the loop once, told from its qube written first", () => {
    const chain = Array.from({ length: 3000 }, (_, i) => `  q${i}: {adopt: true, properties: {netvm: ${i === 2999 ? "la" : `q${i + 1}`}}}`);
    const loop = ["  lb: {adopt: true, properties: {netvm: la}}", "  la: {adopt: true, properties: {netvm: lc}}", "  lc: {adopt: true, properties: {netvm: lb}}"];
    const r = load(`${HEAD}qubes:\n${[...chain, ...loop].join("\n")}\n`);
    expect(r.diagnostics.map((d) => [d.code, d.message, d.location?.line])).toEqual([["QIAC-E053", "network loop: lb -> la -> lc -> lb", 3004]]);
  });

  test('version: "1" is a quoted 1, not a missing version', () => {
    const r = load('version: "1"\nowner: laptop\n');
    expect(r.diagnostics.map((d) => [d.code, d.message, d.hint])).toEqual([["QIAC-E013", `'version' must be 1, not "1"`, '1 in quotes is a string: write 1 without quotes']]);
  });
});

describe("normalised values", () => {
  const state = validState(`${HEAD}labels:
  magenta: 0xFF00FF
pools:
  fast: {driver: file, dir_path: /var/lib/qubes-fast, revisions_to_keep: 1, ephemeral_volatile: true}
properties:
  default_netvm: sys-firewall
  default_dispvm: null
  default_qrexec_timeout: "*default*"
qubes:
  dev:
    class: AppVM
    template: fedora-40
    label: magenta
    pool: fast
    state: running
    protect: true
    properties:
      netvm: null
      memory: 800
      debug: false
      kernelopts: "*default*"
      virt_mode: PVH
      shiny_new: 7
    features: {a: "1", b: true, c: false, d: 3, e: null, f: ""}
    tags: [dev, work]
    firewall:
      - {action: accept, dsthost: example.com, proto: tcp, dstports: 443}
      - {action: accept, dsthost: 10.1.2.3, proto: udp, dstports: "1000-2000", comment: "lan sync"}
      - {action: accept, dsthost: "2001:db8::/32", proto: icmp, icmptype: 128}
      - {action: accept, specialtarget: dns}
      - {action: drop, expire: 2000000000}
    volumes: {private: {size: 20GiB}, volatile: {size: 536870912}}
  offline:
    class: AppVM
    template: fedora-40
    label: black
    firewall: []
  sys-firewall:
    adopt: true
`);
  const dev = state.qubes.get("dev")!;

  test("top level", () => {
    expect(state.version).toBe(1);
    expect(state.owner).toBe("laptop");
    expect(state.labels.get("magenta")!.colour).toBe("0xff00ff");
    expect(state.pools.get("fast")).toMatchObject({ driver: "file" });
    expect([...state.pools.get("fast")!.params]).toEqual([
      ["dir_path", "/var/lib/qubes-fast"],
      ["revisions_to_keep", "1"],
      ["ephemeral_volatile", "True"],
    ]);
    expect([...state.properties]).toEqual([
      ["default_netvm", { kind: "vm", value: "sys-firewall" }],
      ["default_dispvm", { kind: "vm", value: null }],
      ["default_qrexec_timeout", { kind: "default" }],
    ]);
  });

  test("qube fields and typed properties, with unknown ones passed through", () => {
    expect(dev).toMatchObject({ name: "dev", class: "AppVM", template: "fedora-40", label: "magenta", pool: "fast", state: "running", protect: true, adopt: false });
    expect([...dev.properties]).toEqual([
      ["netvm", { kind: "vm", value: null }],
      ["memory", { kind: "int", value: 800 }],
      ["debug", { kind: "bool", value: false }],
      ["kernelopts", { kind: "default" }],
      ["virt_mode", { kind: "str", value: "pvh" }],
      ["shiny_new", { kind: "int", value: 7 }],
    ]);
    expect([...dev.properties.values()].map(propertyValueText)).toEqual(["", "800", "False", undefined, "pvh", "7"]);
    expect(state.qubes.get("sys-firewall")).toMatchObject({ adopt: true, protect: false });
    expect(state.qubes.get("sys-firewall")!.class).toBeUndefined();
  });

  test("features are strings as qubesd stores them; null means absent", () => {
    expect([...dev.features]).toEqual([
      ["a", "1"],
      ["b", "1"],
      ["c", ""],
      ["d", "3"],
      ["e", null],
      ["f", ""],
    ]);
    expect(dev.tags).toEqual(new Set(["dev", "work"]));
  });

  test("firewall rules in qubesd's canonical form; [] allows nothing; no key leaves it unmanaged", () => {
    expect(dev.firewall).toEqual([
      "action=accept dsthost=example.com proto=tcp dstports=443-443",
      "action=accept dst4=10.1.2.3/32 proto=udp dstports=1000-2000 comment=lan sync",
      "action=accept dst6=2001:db8::/32 proto=icmp icmptype=128",
      "action=accept specialtarget=dns",
      "action=drop expire=2000000000",
    ]);
    expect(state.qubes.get("offline")!.firewall).toEqual(["action=drop"]);
    expect(state.qubes.get("sys-firewall")!.firewall).toBeUndefined();
  });

  test("sizes in bytes", () => {
    expect([...dev.volumes]).toEqual([
      ["private", { size: 20 * 2 ** 30 }],
      ["volatile", { size: 512 * 2 ** 20 }],
    ]);
  });

  test("every field keeps where it was written", () => {
    const at = (field: Parameters<typeof locate<string>>[1]) => {
      const l = locate(dev, field as never);
      return `${l.line}:${l.column}`;
    };
    expect(`${dev.at.line}:${dev.at.column}`).toBe("12:3");
    expect(at("template")).toBe("14:15");
    expect(at("properties.netvm")).toBe("20:14");
    expect(at("features.b")).toBe("26:27");
    expect(at("tags.work")).toBe("27:17");
    expect(at("firewall.1")).toBe("30:9");
    expect(at("volumes.private")).toBe("34:24");
    expect(at("volumes.private.size")).toBe("34:31");
    expect(at("properties.vcpus")).toBe("12:3");
    expect(locate(state.qubes.get("offline")!, "firewall.0")).toMatchObject({ line: 39, column: 15 });
    expect(locate(state, "properties.default_netvm")).toMatchObject({ line: 8, column: 18 });
    expect(locate(state.labels.get("magenta")!, "colour")).toMatchObject({ line: 4, column: 12 });
  });
});

describe("security: every name and value checked against Qubes' rule before anything reaches dom0", () => {
  const qube = (body: string): string => `${HEAD}qubes:\n  work:\n    adopt: true\n${body}`;

  test("NUL or newline in a feature value", () => {
    const r = load(qube('    features: {a: "x\\0y", b: "x\\ny", c: "x\\ry"}\n'));
    expect(codes(r.diagnostics)).toEqual(["QIAC-E037 6:19", "QIAC-E037 6:30", "QIAC-E037 6:41"]);
  });

  test("a space or + in a qube name or a tag", () => {
    const r = load(`${HEAD}qubes:\n  "my vm": {adopt: true}\n  a+b: {adopt: true, tags: ["x y", x+y]}\n`);
    expect(codes(r.diagnostics)).toEqual(["QIAC-E030 4:3", "QIAC-E030 5:3", "QIAC-E034 5:29", "QIAC-E034 5:36"]);
  });

  test("a space or + in a qube reference", () => {
    const r = load(qube('    properties: {netvm: "sys firewall", default_dispvm: a+b}\n'));
    expect(codes(r.diagnostics)).toEqual(["QIAC-E030 6:25", "QIAC-E030 6:57"]);
  });

  test("non-ASCII or non-printable characters in property values", () => {
    const r = load(qube('    properties: {kernelopts: "quiet \\u00e9", default_user: "\\u00fcser", shiny: "a\\x01b"}\n'));
    expect(r.diagnostics.map((d) => `${d.code} ${d.message}`)).toEqual([
      "QIAC-E043 property 'kernelopts' of qube 'work': Non-ASCII bytes in property value",
      "QIAC-E043 property 'default_user' of qube 'work': Non-ASCII bytes in property value",
      "QIAC-W010 unknown property 'shiny' of qube 'work': passed through as written",
      "QIAC-E043 property 'shiny' of qube 'work': Invalid characters in property value",
    ]);
  });

  test("values that would make one Admin API request exceed 64 KiB", () => {
    const big = "a".repeat(65536);
    const rules = Array.from({ length: 800 }, (_, i) => `      - {action: accept, dsthost: host-${i}.example.com, proto: tcp, dstports: 443, comment: rule number ${i}}`);
    const r = load(qube(`    properties: {shiny: "${big}"}\n    features: {f: "${big}"}\n    tags: [${"t".repeat(65010)}]\n    firewall:\n${rules.join("\n")}\n`));
    expect(r.diagnostics.filter((d) => d.code === "QIAC-E045").map((d) => `${d.location!.line}:${d.location!.column}`)).toEqual(["6:25", "7:19", "8:12", "9:5"]);
  });

  test("a value just under the limit passes", () => {
    const r = load(qube(`    features: {f: "${"a".repeat(65000)}"}\n`));
    expect(r.diagnostics).toEqual([]);
  });

  test("characters a field legitimately allows pass", () => {
    const state = validState(
      qube(
        '    properties: {kernelopts: "nopat swiotlb=2048 quiet", keyboard_layout: de+nodeadkeys+grp:alt_shift_toggle}\n' +
          "    firewall: [{action: accept, proto: tcp, dstports: 443, comment: \"web, office [floor 2]: ok\"}]\n",
      ),
    );
    const work = state.qubes.get("work")!;
    expect(work.properties.get("keyboard_layout")).toEqual({ kind: "str", value: "de+nodeadkeys+grp:alt_shift_toggle" });
    expect(work.firewall).toEqual(["action=accept proto=tcp dstports=443-443 comment=web, office [floor 2]: ok"]);
  });

  test("a feature called __proto__ is an ordinary feature", () => {
    const state = validState(qube('    features: {__proto__: "1", constructor: "2"}\n'));
    expect([...state.qubes.get("work")!.features]).toEqual([
      ["__proto__", "1"],
      ["constructor", "2"],
    ]);
    expect(({} as Record<string, unknown>).constructor).toBe(Object);
  });
});

describe("files and directories", () => {
  const files = {
    "cfg/10-qubes.yml": "qubes:\n  mail: {class: AppVM, template: fedora-40, label: blue}\n",
    "cfg/00-base.yaml": `${HEAD}labels: {magenta: "0xff00ff"}\n`,
    "cfg/notes.txt": "not: yaml: at all: [",
    "cfg/sub/ignored.yaml": "this: is not read\n",
    "more.yaml": "version: 1\nowner: laptop\nqubes:\n  notes: {class: AppVM, template: fedora-40, label: magenta}\n",
  };

  test("a directory's *.yaml and *.yml files merge in name order, not recursively", () => {
    const r = loadConfig(["cfg", "more.yaml"], memoryIO(files));
    expect(r.diagnostics).toEqual([]);
    expect([...r.sources.keys()]).toEqual(["cfg/00-base.yaml", "cfg/10-qubes.yml", "more.yaml"]);
    expect([...r.config!.qubes.keys()]).toEqual(["mail", "notes"]);
    expect(r.config!.qubes.get("mail")!.at.file).toBe("cfg/10-qubes.yml");
  });

  test("a path given twice is read once", () => {
    const r = loadConfig(["more.yaml", "more.yaml"], memoryIO(files));
    expect(r.diagnostics).toEqual([]);
  });

  test("a directory without config files, and a missing path", () => {
    const r = loadConfig(["cfg/sub/", "nope.yaml"], memoryIO({ "cfg/sub/x.txt": "" }));
    expect(r.diagnostics.map((d) => d.code)).toEqual(["QIAC-E002", "QIAC-E001"]);
    expect(r.config).toBeUndefined();
  });

  test("an entry defined in two files names both places", () => {
    const r = loadConfig(["a.yaml", "b.yaml"], memoryIO({ "a.yaml": `${HEAD}properties: {default_netvm: sys-firewall}\n`, "b.yaml": "properties:\n  default_netvm: sys-net\n" }));
    expect(r.diagnostics.map((d) => [d.code, d.location!.file, d.message])).toEqual([
      ["QIAC-E021", "b.yaml", "global property 'default_netvm' is already defined at a.yaml:3:29"],
    ]);
  });

  test("a missing owner is not reported when the file that may hold it could not be parsed", () => {
    const r = loadConfig(["a.yaml", "b.yaml"], memoryIO({ "a.yaml": "owner: [\n", "b.yaml": "version: 1\n" }));
    expect(r.diagnostics.map((d) => d.code)).toEqual(["QIAC-E003"]);
  });
});

describe("docs/config.md", () => {
  const doc = readFileSync("docs/config.md", "utf8");
  test("lists every diagnostic code with its meaning, and no other", async () => {
    const { CONFIG_CODES } = await import("../../src/config/index.js");
    const listed = [...doc.matchAll(/^\| `(QIAC-[EW]\d{3})` \| (.+) \|$/gm)].map((m) => [m[1], m[2]]);
    expect(listed).toEqual(Object.entries(CONFIG_CODES));
  });

  test("has a row for every property and pool driver the validator knows", async () => {
    const { GLOBAL_PROPERTIES, POOL_DRIVERS, QUBE_PROPERTIES } = await import("../../src/config/catalog.js");
    const rows = new Set([...doc.matchAll(/^\| `([a-z0-9_-]+)` \|/gm)].map((m) => m[1]));
    const known = [...Object.keys(QUBE_PROPERTIES), ...Object.keys(GLOBAL_PROPERTIES), ...Object.keys(POOL_DRIVERS)];
    expect(known.filter((k) => !rows.has(k))).toEqual([]);
  });
});
