// The guest diff as pure data: readings in, changes, steps, planned guests and diagnostics out.
// Configs are real files in a temp dir (loaded as the CLI loads them, so `source:` is checked);
// readings are built by hand — what a guest reader would have seen.
import { mkdtempSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { inlineContentAt, loadConfig, nodeConfigIO } from "../../src/config/index.js";
import type { ActualState, ListedQube } from "../../src/model/actual.js";
import { parseAddress } from "../../src/model/address.js";
import type { DesiredState } from "../../src/model/desired.js";
import type { Digest, GuestFacts, GuestObservation, ObservedFile } from "../../src/model/guest.js";
import { diffGuests, guestReadMode, NO_GUEST_READINGS, type GuestReadings } from "../../src/plan/diff-guests.js";
import { readGuests, type GuestReader } from "../../src/plan/guest-reader.js";
import { toJsonPlan } from "../../src/plan/json.js";
import { buildPlan, guestInScope } from "../../src/plan/plan.js";
import { renderHumanPlan } from "../../src/plan/render.js";
import { expectValidPlanJson } from "../plan/_helpers.js";
import { sha256Of } from "./helpers.js";

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "qiac-guest-diff-"));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const SECRET = "MARKER-7f3e-never-shown";

function load(yaml: string, files: Record<string, string> = {}): DesiredState {
  for (const [name, text] of Object.entries(files)) {
    mkdirSync(join(dir, name, ".."), { recursive: true });
    writeFileSync(join(dir, name), text);
  }
  const path = join(dir, "qubes.yaml");
  writeFileSync(path, `version: 1\nowner: t\n${yaml}`);
  const r = loadConfig([path], nodeConfigIO);
  if (!r.config) throw new Error(r.diagnostics.map((d) => `${d.code} ${d.message}`).join("\n"));
  return r.config;
}

function actual(listing: Array<[string, string, string]> = []): ActualState {
  return {
    listing: new Map(listing.map(([name, klass, power]): [string, ListedQube] => [name, { name, klass, power }])),
    qubes: new Map(),
    scanned: false,
    dom0FeatureNames: new Set(),
    dom0Features: new Map(),
    pools: new Map(),
  };
}

const facts: GuestFacts = {
  agentVersion: "7.2.0",
  os: { id: "debian", name: "Debian GNU/Linux", prettyName: "Debian GNU/Linux 12 (bookworm)", version: "12", versionId: "12", kernelRelease: "6.1.0", kernelVersion: "#1", machine: "x86_64" },
  hostname: "vm1",
  interfaces: [
    { name: "lo", hardwareAddress: null, addresses: [{ address: "127.0.0.1", type: "ipv4", prefix: 8 }] },
    { name: "eth0", hardwareAddress: "52:54:00:12:34:56", addresses: [{ address: "10.0.2.15", type: "ipv4", prefix: 24 }] },
  ],
  missing: [],
};

const present = (text: string): ObservedFile => ({ kind: "present", ...digest(text) });
const digest = (text: string): Digest => ({ size: Buffer.byteLength(text), sha256: sha256Of(text) });

function readings(observations: Record<string, GuestObservation>, sources: Record<string, Digest | { error: string }> = {}): GuestReadings {
  return { observations: new Map(Object.entries(observations)), sources: new Map(Object.entries(sources)) };
}

const answering = (files: Record<string, ObservedFile>): GuestObservation => ({ kind: "answering", facts, files: new Map(Object.entries(files)) });

const VM1 = (body: string): string => `guests:\n  vm1:\n    agent: {socket: /run/vm1.sock}\n${body}`;

describe("a top-level guest", () => {
  it("files with the wanted content are no change; others are written, absent ones created", () => {
    const d = load(VM1(`    files:\n      /etc/same: "same\\n"\n      /etc/other: "${SECRET} new\\n"\n      /etc/new: "${SECRET}\\n"\n`));
    const r = diffGuests(d, actual(), readings({ "guest.vm1": answering({ "/etc/same": present("same\n"), "/etc/other": present("old\n"), "/etc/new": { kind: "absent" } }) }), [], [], () => true);
    expect(r.diagnostics).toEqual([]);
    expect(r.changes).toEqual([
      expect.objectContaining({
        address: "guest.vm1",
        type: "guest",
        name: "vm1",
        action: "update",
        before: { "files./etc/same": "5 bytes, sha256 " + sha256Of("same\n").slice(0, 12), "files./etc/other": "4 bytes, sha256 " + sha256Of("old\n").slice(0, 12), "files./etc/new": null },
        after: {
          "files./etc/same": "5 bytes, sha256 " + sha256Of("same\n").slice(0, 12),
          "files./etc/other": expect.stringMatching(/^\d+ bytes, sha256 [0-9a-f]{12}$/),
          "files./etc/new": expect.stringMatching(/^\d+ bytes, sha256 [0-9a-f]{12}$/),
        },
      }),
    ]);
    expect(r.steps).toHaveLength(1);
    const step = r.steps[0]!;
    expect(step).toMatchObject({ id: "update:guest.vm1", address: "guest.vm1", kind: "update", uses: [] });
    expect(step.ops.map((o) => (o.op === "guest.file.write" ? o.path : o.op))).toEqual(["/etc/other", "/etc/new"]);
    expect(step.ops[1]).toEqual({
      op: "guest.file.write",
      guest: "guest.vm1",
      agent: { kind: "socket", path: "/run/vm1.sock" },
      path: "/etc/new",
      ...digest(`${SECRET}\n`),
      content: { kind: "inline", file: expect.stringMatching(/\/qubes\.yaml$/), pointer: "/guests/vm1/files/~1etc~1new" },
    });
    // The op refers to the content; the content itself is nowhere in the plan.
    expect(JSON.stringify(r)).not.toContain(SECRET);
    expect(r.guests).toEqual([
      {
        address: "guest.vm1",
        agent: { kind: "socket", path: "/run/vm1.sock" },
        read: "answering",
        facts,
        files: [
          { path: "/etc/same", observed: digest("same\n") },
          { path: "/etc/other", observed: digest("old\n") },
          { path: "/etc/new", observed: { absent: true } },
        ],
      },
    ]);
  });

  it("the pointer in a write op finds the inline content again in the config file", () => {
    const d = load(VM1(`    files:\n      /etc/motd: |\n        ${SECRET}\n        line two\n`));
    const r = diffGuests(d, actual(), readings({ "guest.vm1": answering({ "/etc/motd": { kind: "absent" } }) }), [], [], () => true);
    const op = r.steps[0]!.ops[0]!;
    if (op.op !== "guest.file.write" || op.content.kind !== "inline") throw new Error("expected an inline write");
    const found = inlineContentAt(op.content.file, readFileSync(op.content.file, "utf8"), op.content.pointer);
    expect(found).toEqual({ text: `${SECRET}\nline two\n` });
    expect(digest(`${SECRET}\nline two\n`)).toEqual({ size: op.size, sha256: op.sha256 });
  });

  it("source content is compared by the digest the reader computed; a source it could not read is QIAC-E126 at the file", () => {
    const d = load(VM1(`    files:\n      /etc/a.conf: {source: files/a.conf}\n      /etc/b.conf: {source: files/b.conf}\n`), { "files/a.conf": "a\n", "files/b.conf": "b\n" });
    const a = [...d.guests.values()][0]!.files.get("/etc/a.conf")!.content;
    const b = [...d.guests.values()][0]!.files.get("/etc/b.conf")!.content;
    if (a.kind !== "source" || b.kind !== "source") throw new Error("expected sources");
    const r = diffGuests(d, actual(), readings({ "guest.vm1": answering({ "/etc/a.conf": present("a\n"), "/etc/b.conf": { kind: "absent" } }) }, { [a.path]: digest("a\n"), [b.path]: { error: `cannot read ${b.path}: EACCES` } }), [], [], () => true);
    expect(r.diagnostics.map((x) => [x.code, x.location?.line, x.address])).toEqual([["QIAC-E126", 8, "guest.vm1"]]);
    expect(r.steps).toEqual([]);
  });

  it("a file the agent cannot open is QIAC-E125 at the file's entry", () => {
    const d = load(VM1(`    files:\n      /etc/shadow: "x"\n`));
    const r = diffGuests(d, actual(), readings({ "guest.vm1": answering({ "/etc/shadow": { kind: "unreadable", reason: "failed to open file '/etc/shadow' (mode: 'r'): Permission denied" } }) }), [], [], () => true);
    expect(r.diagnostics.map((x) => [x.code, x.location?.line, x.location?.column])).toEqual([["QIAC-E125", 7, 7]]);
    expect(r.diagnostics[0]!.message).toContain("Permission denied");
  });

  it("an agent that does not answer is QIAC-E123 at agent:, with a hint; a failed one too", () => {
    const d = load(VM1(`    files: {/etc/motd: x}\n`));
    for (const obs of [
      { kind: "not-answering", reason: "socket /run/vm1.sock: no such socket (the VM or its agent channel is not up)" },
      { kind: "failed", reason: "socket /run/vm1.sock: permission denied; run as the socket's owner or root" },
    ] as const) {
      const r = diffGuests(d, actual(), readings({ "guest.vm1": obs }), [], [], () => true);
      expect(r.diagnostics.map((x) => [x.code, x.location?.line, x.location?.column, x.message])).toEqual([["QIAC-E123", 5, 12, `guest.vm1: ${obs.reason}`]]);
      expect(r.changes).toEqual([]);
      expect(r.guests[0]).toMatchObject({ read: obs.kind, reason: obs.reason });
    }
  });

  it("state: shutdown — an agent that answers: files first, then guest-shutdown, in one step", () => {
    const d = load(VM1(`    state: shutdown\n    files: {/etc/motd: "x"}\n`));
    const r = diffGuests(d, actual(), readings({ "guest.vm1": answering({ "/etc/motd": { kind: "absent" } }) }), [], [], () => true);
    expect(r.steps[0]!.ops.map((o) => o.op)).toEqual(["guest.file.write", "guest.shutdown"]);
    expect(r.changes[0]).toMatchObject({ action: "update", before: { state: "running" }, after: { state: "shutdown" } });
    expectValidPlanJson(toJsonPlan(buildPlan(d, actual(), { allowRestart: false, targets: [], excludes: [] }, readings({ "guest.vm1": answering({ "/etc/motd": { kind: "absent" } }) })), { version: "test" }));
  });

  it("state: shutdown — an agent that does not answer is a guest that is off: no change, files not read", () => {
    const d = load(VM1(`    state: shutdown\n    wait: {timeout: 60s}\n    files: {/etc/motd: "x"}\n`));
    const g = [...d.guests.values()][0]!;
    // Never waited for: an agent that does not answer at once means the guest is off.
    expect(guestReadMode(g, actual())).toEqual({ read: true });
    const r = diffGuests(d, actual(), readings({ "guest.vm1": { kind: "not-answering", reason: "no such socket" } }), [], [], () => true);
    expect(r.diagnostics).toEqual([]);
    expect(r.steps).toEqual([]);
    expect(r.changes[0]).toMatchObject({ action: "no-op", before: { state: "shutdown" }, after: { state: "shutdown" } });
    expect(r.guests[0]).toMatchObject({ read: "not-answering", files: [{ path: "/etc/motd", observed: null }] });
  });

  it("state: running with nothing to change is no change; wait is passed on to the ops and the reader", () => {
    const d = load(VM1(`    state: running\n    wait: {timeout: 2m}\n    files: {/etc/motd: "x"}\n`));
    expect(guestReadMode([...d.guests.values()][0]!, actual())).toEqual({ read: true, waitMs: 120_000 });
    const same = diffGuests(d, actual(), readings({ "guest.vm1": answering({ "/etc/motd": present("x") }) }), [], [], () => true);
    expect(same.changes[0]).toMatchObject({ action: "no-op", before: { state: "running" }, after: { state: "running" } });
    expect(same.steps).toEqual([]);
    const other = diffGuests(d, actual(), readings({ "guest.vm1": answering({ "/etc/motd": present("y") }) }), [], [], () => true);
    expect(other.steps[0]!.ops[0]).toMatchObject({ wait_ms: 120_000 });
  });

  it("a guest out of scope is neither read nor planned; a guest that should have been read and was not is a bug", () => {
    const d = load(VM1(`    files: {/etc/motd: "x"}\n`));
    expect(diffGuests(d, actual(), NO_GUEST_READINGS, [], [], () => false)).toEqual({ changes: [], steps: [], guests: [], diagnostics: [] });
    expect(() => diffGuests(d, actual(), NO_GUEST_READINGS, [], [], () => true)).toThrow(/internal: guest guest.vm1 was not read/);
  });
});

const QUBE = (state: string, guest: string): string =>
  `qubes:\n  app:\n    class: AppVM\n    template: fedora-40\n    label: green\n${state}    guest:\n${guest}`;
const TEMPLATE: [string, string, string] = ["fedora-40", "TemplateVM", "Halted"];

describe("a qube's guest", () => {
  it("a qube this plan creates: its files are written after the qube's step, without comparing; no wait: QIAC-W103", () => {
    const d = load(QUBE("    state: running\n", `      agent: {socket: /run/app.sock}\n      files: {/rw/x: "x"}\n`));
    const a = actual([TEMPLATE]);
    expect(guestReadMode(d.guests.get("guest.qube.app")!, a)).toEqual({ read: false, reason: "qube app does not exist yet" });
    const plan = buildPlan(d, a, { allowRestart: false, targets: [], excludes: [] }, NO_GUEST_READINGS);
    const json = toJsonPlan(plan, { version: "test" });
    expect(json.steps.map((s) => [s.id, s.wave, s.depends_on])).toEqual([
      ["setup:ownership", 1, []],
      ["create:qube.app", 2, ["setup:ownership"]],
      ["update:guest.qube.app", 3, ["create:qube.app"]],
    ]);
    const change = json.resource_changes.find((c) => c.address === "guest.qube.app")!;
    expect(change).toMatchObject({ action: "update", before: {}, after: { "files./rw/x": "1 byte, sha256 " + sha256Of("x").slice(0, 12) } });
    expect(change.reasons).toEqual(["qube app does not exist yet: its files are written once apply has it running, without comparing"]);
    expect(json.diagnostics.map((x) => x.code)).toEqual(["QIAC-W103"]);
    expect(json.guests).toEqual([
      { address: "guest.qube.app", qube: "app", agent: { kind: "socket", path: "/run/app.sock" }, wait_ms: null, read: "not-read", reason: "qube app does not exist yet", facts: null, files: [{ path: "/rw/x", observed: null }] },
    ]);
    expectValidPlanJson(json);
    const human = renderHumanPlan(json, { color: false });
    expect(human).toContain("   ~ guest.qube.app\n      files./rw/x: 1 byte, sha256 " + sha256Of("x").slice(0, 12) + "\n");
    expect(human).toContain("update:guest.qube.app  1 call  after create:qube.app\n            guest-file-write\n");
  });

  it("with wait: no warning, and the ops wait for the agent", () => {
    const d = load(QUBE("    state: running\n", `      agent: {socket: /run/app.sock}\n      wait: {timeout: 30s}\n      files: {/rw/x: "x"}\n`));
    const json = toJsonPlan(buildPlan(d, actual([TEMPLATE]), { allowRestart: false, targets: [], excludes: [] }), { version: "test" });
    expect(json.diagnostics).toEqual([]);
    expect(json.steps.at(-1)!.ops[0]).toMatchObject({ op: "guest.file.write", wait_ms: 30_000 });
  });

  it("a halted qube whose state is not managed: its guest files are QIAC-E124 at guest:", () => {
    const d = load(`qubes:\n  app:\n    adopt: true\n    guest:\n      agent: {socket: /run/app.sock}\n      files: {/rw/x: "x"}\n`);
    const r = diffGuests(d, actual([["app", "AppVM", "Halted"]]), NO_GUEST_READINGS, [], [], () => true);
    expect(r.diagnostics.map((x) => [x.code, x.location?.line, x.location?.column, x.message])).toEqual([
      ["QIAC-E124", 6, 5, "qube app is halted, and its guest files are reached only while it runs"],
    ]);
  });

  it("a running qube is read and compared; a plan that restarts it writes without comparing", () => {
    const d = load(QUBE("    state: running\n", `      agent: {socket: /run/app.sock}\n      wait: {timeout: 30s}\n      files: {/rw/x: "x"}\n`));
    const a = actual([TEMPLATE, ["app", "AppVM", "Running"]]);
    const obs = readings({ "guest.qube.app": answering({ "/rw/x": present("x") }) });
    const same = diffGuests(d, a, obs, [], [], () => true);
    expect(same.steps).toEqual([]);
    expect(same.changes[0]).toMatchObject({ action: "no-op" });
    const restart = [{ id: "update:qube.app", address: "qube.app", kind: "update" as const, ops: [{ op: "vm.shutdown" as const, vm: "app" }, { op: "vm.start" as const, vm: "app" }], uses: [], unreferences: [], after: [] }];
    const again = diffGuests(d, a, obs, [], restart, () => true);
    expect(again.steps[0]).toMatchObject({ id: "update:guest.qube.app", uses: ["qube.app"], ops: [{ op: "guest.file.write", path: "/rw/x" }] });
    expect(again.changes[0]!.reasons[0]).toMatch(/^apply stops or recreates qube app/);
    expect(again.guests[0]).toMatchObject({ read: "answering", facts });
  });
});

describe("scope and reading", () => {
  it("--target guest.NAME reads and plans that guest only; --exclude leaves one out", async () => {
    const d = load(`guests:\n  vm1: {agent: {socket: /run/1.sock}, files: {/a: "a"}}\n  vm2: {agent: {socket: /run/2.sock}, files: {/b: {source: b.txt}}}\n`, { "b.txt": "b" });
    const asked: string[] = [];
    const digested: string[] = [];
    const reader: GuestReader = {
      observe: async (agent, paths) => {
        asked.push(`${agent.kind === "socket" ? agent.path : "?"} ${paths.join(",")}`);
        return answering(Object.fromEntries(paths.map((p) => [p, { kind: "absent" } as ObservedFile])));
      },
      digestFile: async (path) => {
        digested.push(path);
        return digest("b");
      },
    };
    const target = { allowRestart: false, targets: [parseAddress("guest.vm1")].map((p) => (p.ok ? p.address : null)!), excludes: [] };
    const r1 = await readGuests(reader, d, actual(), { parallelism: 4, inScope: guestInScope(target) });
    expect(asked).toEqual(["/run/1.sock /a"]);
    expect(digested).toEqual([]);
    const p1 = toJsonPlan(buildPlan(d, actual(), target, r1), { version: "test" });
    expect(p1.steps.map((s) => s.id)).toEqual(["update:guest.vm1"]);
    expect(p1.guests?.map((g) => g.address)).toEqual(["guest.vm1"]);

    asked.length = 0;
    const exclude = { allowRestart: false, targets: [], excludes: [parseAddress("guest.vm1")].map((p) => (p.ok ? p.address : null)!) };
    const r2 = await readGuests(reader, d, actual(), { parallelism: 4, inScope: guestInScope(exclude) });
    expect(asked).toEqual(["/run/2.sock /b"]);
    expect(digested).toEqual([join(dir, "b.txt")]);
    expect(toJsonPlan(buildPlan(d, actual(), exclude, r2), { version: "test" }).steps.map((s) => s.id)).toEqual(["update:guest.vm2"]);
  });

  it("guest addresses parse, and a qube's guest is its own address", () => {
    expect(parseAddress("guest.vm1")).toEqual({ ok: true, address: { type: "guest", name: "vm1" } });
    expect(parseAddress("guest.qube.my.vm")).toEqual({ ok: true, address: { type: "guest", name: "qube.my.vm" } });
    expect(parseAddress("guest.")).toMatchObject({ ok: false });
  });

  it("the human plan shows one line of facts (escaped), sizes and hash prefixes, never content", () => {
    const d = load(VM1(`    files: {/etc/motd: "${SECRET}"}\n`));
    const hostile: GuestFacts = { ...facts, hostname: "evil\u001b[2J\nname", os: { ...facts.os!, prettyName: "Evil\u0007OS" } };
    const obs = readings({ "guest.vm1": { kind: "answering", facts: hostile, files: new Map([["/etc/motd", present("old")]]) } });
    const json = toJsonPlan(buildPlan(d, actual(), { allowRestart: false, targets: [], excludes: [] }, obs), { version: "test" });
    expectValidPlanJson(json);
    const human = renderHumanPlan(json, { color: false });
    expect(human).toContain("  # guest: Evil\\x07OS; hostname evil\\x1b[2J\\x0aname; addresses 10.0.2.15/24; qemu-ga 7.2.0\n");
    expect(human).toContain(`      files./etc/motd: 3 bytes, sha256 ${sha256Of("old").slice(0, 12)} → ${SECRET.length} bytes, sha256 ${sha256Of(SECRET).slice(0, 12)}\n`);
    expect(human).not.toContain(SECRET);
    expect(human).not.toMatch(/[\u0000-\u0009\u000b-\u001f]/);
  });
});
