// The states a simulator starts from: the recorded default fixture, and generated systems of any
// size for benchmarks (`generated:N`, N qubes in all, dom0 included). Generation is pure and
// deterministic: a seeded PRNG per qube, never Date or Math.random, and qube i is the same for
// every N, so a larger system extends a smaller one. No I/O.

import fixtureDefault from "./fixture-default.json" with { type: "json" };
import { laptopFixture } from "./fixture-laptop.js";
import { buildFirewallRule, formatFirewallRule } from "../../../model/qubes-rules.js";
import { STATE_FORMAT, STATE_VERSION, type PowerState, type PropValue, type QubeDocument, type StateDocument } from "./state.js";

export type SimFixture = "default" | "laptop" | { generated: number };

export type FixtureParse = { ok: true; fixture: SimFixture } | { ok: false; error: string };

/** `default`, `laptop` or `generated:N`. */
export function parseFixture(text: string): FixtureParse {
  if (text === "default") return { ok: true, fixture: "default" };
  if (text === "laptop") return { ok: true, fixture: "laptop" };
  const m = /^generated:([0-9]+)$/.exec(text);
  if (!m) return { ok: false, error: `unknown fixture '${text}': use default, laptop or generated:N (N qubes in all, at least ${GENERATED_MIN_QUBES})` };
  const n = Number(m[1]);
  const error = checkGeneratedSize(n);
  return error ? { ok: false, error } : { ok: true, fixture: { generated: n } };
}

/** The state document a fixture starts from (a fresh object each time for generated ones). */
export function fixtureDocument(fixture: SimFixture): unknown {
  if (fixture === "default") return fixtureDefault;
  if (fixture === "laptop") return laptopFixture(generateFixtureState(GENERATED_MIN_QUBES));
  return generateFixtureState(fixture.generated);
}

// ---------------------------------------------------------------------------------------------
// Generated systems

const GIB = 1024 ** 3;
const KERNEL = "6.6.63-1.fc37";
const BOOT_TIME = 1735700000;
const LABELS = ["red", "orange", "yellow", "green", "gray", "blue", "purple", "black"] as const;
const LABEL_COLOURS = ["0xcc0000", "0xf57900", "0xedd400", "0x73d216", "0x555555", "0x3465a4", "0x75507b", "0x000000"] as const;

type Template = { name: string; distribution: string; version: string; services: string[]; tags?: string[] };
const TEMPLATES: readonly Template[] = [
  { name: "fedora-41", distribution: "fedora", version: "41", services: ["qubes-firewall", "network-manager", "crond"] },
  { name: "debian-12", distribution: "debian", version: "12", services: ["qubes-firewall", "network-manager", "cups"] },
  { name: "whonix-gateway-17", distribution: "whonix", version: "17", services: ["whonix-gateway"], tags: ["whonix-updatevm"] },
  { name: "whonix-workstation-17", distribution: "whonix", version: "17", services: ["whonix-workstation"], tags: ["whonix-updatevm"] },
];

type BaseQube = {
  name: string;
  template: string;
  label: string;
  props?: Record<string, PropValue>;
  features?: Array<[string, string]>;
  tags?: string[];
  firewall?: string[];
  running?: boolean;
};

const SERVICE_QUBES: readonly BaseQube[] = [
  {
    name: "sys-net",
    template: "fedora-41",
    label: "red",
    props: { netvm: null, provides_network: true, virt_mode: "hvm", memory: "425", maxmem: "0" },
    features: [["servicevm", "1"], ["service.clocksync", "1"], ["service.network-manager", "1"]],
    running: true,
  },
  {
    name: "sys-firewall",
    template: "fedora-41",
    label: "green",
    props: { netvm: "sys-net", provides_network: true, memory: "500" },
    features: [["servicevm", "1"], ["service.qubes-firewall", "1"], ["service.qubes-updates-proxy", "1"]],
    running: true,
  },
  {
    name: "sys-usb",
    template: "fedora-41",
    label: "red",
    props: { netvm: null, virt_mode: "hvm", memory: "300", maxmem: "0" },
    features: [["servicevm", "1"], ["service.qubes-input-sender", "1"]],
    running: true,
  },
  {
    name: "sys-whonix",
    template: "whonix-gateway-17",
    label: "black",
    props: { netvm: "sys-firewall", provides_network: true, memory: "500" },
    features: [["servicevm", "1"], ["service.whonix-gateway", "1"]],
    tags: ["anon-gateway"],
    running: true,
  },
  {
    name: "sys-vpn",
    template: "debian-12",
    label: "blue",
    props: { netvm: "sys-firewall", provides_network: true },
    features: [["servicevm", "1"], ["service.vpn-handler-openvpn", "1"]],
    firewall: ["action=accept dsthost=vpn.example.net proto=udp dstports=1194-1194", "action=accept specialtarget=dns", "action=drop"],
    running: true,
  },
];

const DISPOSABLE_TEMPLATES: readonly BaseQube[] = [
  { name: "default-dvm", template: "fedora-41", label: "red", features: [["appmenus-dispvm", "1"]] },
  { name: "debian-12-dvm", template: "debian-12", label: "red", features: [["appmenus-dispvm", "1"]] },
  {
    name: "whonix-workstation-17-dvm",
    template: "whonix-workstation-17",
    label: "red",
    props: { netvm: "sys-whonix" },
    features: [["appmenus-dispvm", "1"]],
    tags: ["anon-vm"],
  },
  { name: "default-mgmt-dvm", template: "fedora-41", label: "black", props: { netvm: null }, features: [["internal", "1"]] },
];

/** dom0, the templates, the service qubes and the disposable templates; every generated system has them. */
export const GENERATED_MIN_QUBES = 1 + TEMPLATES.length + SERVICE_QUBES.length + DISPOSABLE_TEMPLATES.length;
/** qubesd cannot give out more qids than this (the simulator's MAX_QID). */
export const GENERATED_MAX_QUBES = 10000;

function checkGeneratedSize(n: number): string | null {
  if (!Number.isSafeInteger(n) || n < GENERATED_MIN_QUBES || n > GENERATED_MAX_QUBES) {
    return `a generated fixture has from ${GENERATED_MIN_QUBES} qubes (dom0, ${TEMPLATES.length} templates, ${SERVICE_QUBES.length} service qubes, ${DISPOSABLE_TEMPLATES.length} disposable templates) to ${GENERATED_MAX_QUBES}, not ${String(n)}`;
  }
  return null;
}

const ROLES = ["work", "personal", "dev", "banking", "mail", "browser", "research", "media", "chat", "build", "docs", "shop", "travel", "lab", "admin"];
const SERVICES = [
  "cups",
  "crond",
  "network-manager",
  "meminfo-writer",
  "qubes-update-check",
  "updates-proxy-setup",
  "software-rendering",
  "shutdown-idle",
  "minimal-netvm",
  "qubes-firewall",
  "evolution-data-server",
  "pipewire",
];
const TAGS = ["project-a", "project-b", "project-c", "sensitive", "online", "offline", "backup", "team-red", "team-blue", "ephemeral", "client-x", "audit"];
const HOSTS = ["example.com", "updates.example.org", "mail.example.net", "git.example.com", "10.137.0.0/16", "192.168.1.10", "2001:db8::1", "203.0.113.0/24"];
const MEMORY = ["400", "600", "800", "1000", "1500", "2000", "4000"];
const MAXMEM = ["2000", "4000", "6000", "8000"];
const PRIVATE_GIB = [5, 10, 20, 50];
const NOTES = ["Managed by qubes-iac.", "Client project; keep offline.", "Scratch space.\nWiped monthly."];

/**
 * A realistic Qubes system of `n` qubes in all as a state document: dom0, a few templates
 * (fedora, debian, whonix gateway and workstation), service qubes (sys-net, sys-firewall,
 * sys-usb, sys-whonix, sys-vpn), disposable templates, and AppVMs with a spread of labels,
 * non-default memory/maxmem/vcpus/netvm/default_dispvm, 2-4 service.* features, 2-3 tags,
 * 0-5 firewall rules, some disposable templates among them and some running.
 */
export function generateFixtureState(n: number): StateDocument {
  const sizeError = checkGeneratedSize(n);
  if (sizeError) throw new RangeError(sizeError);
  const idRng = rng(0x51b0c0de);
  const qubes: QubeDocument[] = [{ name: "dom0", class: "AdminVM", props: { label: "black" }, features: [], tags: [], firewall: null, notes: "", volumes: [], power: "Running" }];
  let qid = 0;
  let xid = 0;
  const started = (): { power: PowerState; xid: number; start_time: string } => {
    xid++;
    return { power: "Running", xid, start_time: (BOOT_TIME + xid * 7).toFixed(2) };
  };

  for (const t of TEMPLATES) {
    qid++;
    qubes.push({
      name: t.name,
      class: "TemplateVM",
      props: { label: "black", name: t.name, qid: String(qid), uuid: uuidFrom(idRng) },
      features: [
        ["os", "Linux"],
        ["os-distribution", t.distribution],
        ["os-version", t.version],
        ["qrexec", "1"],
        ["gui", "1"],
        ...t.services.map((s): [string, string] => [`supported-service.${s}`, "1"]),
      ],
      tags: [...AUTO_TAGS, ...(t.tags ?? [])].sort(),
      firewall: null,
      notes: "",
      volumes: templateVolumes(),
      power: "Halted",
    });
  }
  for (const b of [...SERVICE_QUBES, ...DISPOSABLE_TEMPLATES]) {
    qid++;
    const props: Record<string, PropValue> = { label: b.label, name: b.name, qid: String(qid), uuid: uuidFrom(idRng), template: b.template, ...b.props };
    if (DISPOSABLE_TEMPLATES.includes(b)) props.template_for_dispvms = true;
    qubes.push({
      name: b.name,
      class: "AppVM",
      props,
      features: b.features ?? [],
      tags: [...AUTO_TAGS, ...(b.tags ?? [])].sort(),
      firewall: b.firewall ?? null,
      notes: "",
      volumes: appVolumes(2 * GIB),
      ...(b.running ? started() : { power: "Halted" as const }),
    });
  }

  const dvms = DISPOSABLE_TEMPLATES.filter((d) => d.name !== "default-mgmt-dvm").map((d) => d.name);
  for (let i = 0; qubes.length < n; i++) {
    qid++;
    const r = rng(hash32(i));
    const name = `${pick(r, ROLES)}-${i + 1}`;
    const roll = r();
    const template = roll < 0.55 ? "fedora-41" : roll < 0.9 ? "debian-12" : "whonix-workstation-17";
    const props: Record<string, PropValue> = { label: pick(r, LABELS), name, qid: String(qid), uuid: uuidFrom(r), template };
    const tags = [...AUTO_TAGS, ...sample(r, TAGS, 2 + Math.floor(r() * 2))];
    if (template === "whonix-workstation-17") {
      props.netvm = "sys-whonix";
      tags.push("anon-vm");
    } else {
      const net = r();
      if (net < 0.1) props.netvm = null;
      else if (net < 0.2) props.netvm = "sys-vpn";
      else if (net < 0.3) props.netvm = "sys-firewall";
    }
    if (r() < 0.35) props.memory = pick(r, MEMORY);
    if (r() < 0.25) props.maxmem = pick(r, MAXMEM.filter((m) => Number(m) >= Number(props.memory ?? "400")));
    if (r() < 0.1) props.vcpus = pick(r, ["1", "4"]);
    if (r() < 0.1) props.default_dispvm = pick(r, dvms);
    const features: Array<[string, string]> = sample(r, SERVICES, 2 + Math.floor(r() * 3)).map((s) => [`service.${s}`, r() < 0.8 ? "1" : ""]);
    if (r() < 0.03) {
      props.template_for_dispvms = true;
      features.push(["appmenus-dispvm", "1"]);
    }
    const firewall = firewallRules(r, Math.floor(r() * 6));
    const privateSize = r() < 0.6 ? 2 * GIB : pick(r, PRIVATE_GIB) * GIB;
    const notes = r() < 0.05 ? pick(r, NOTES) : "";
    qubes.push({
      name,
      class: "AppVM",
      props,
      features,
      tags: tags.sort(),
      firewall,
      notes,
      volumes: appVolumes(privateSize),
      ...(r() < 0.08 ? started() : { power: "Halted" as const }),
    });
  }

  return {
    format: STATE_FORMAT,
    version: STATE_VERSION,
    host: {
      memory_mib: "65536",
      cpus: 16,
      dom0_maxmem_mib: "4096",
      kernels: [KERNEL],
      pool_size: String(4096 * GIB),
      pool_usage: String(Math.min(4000, 20 + n) * GIB),
      lvm_thin_pools: [],
    },
    labels: LABELS.map((name, i) => ({ index: i + 1, name, color: LABEL_COLOURS[i] ?? "0x000000" })),
    pools: [
      { name: "varlibqubes", driver: "file", config: { dir_path: "/var/lib/qubes", ephemeral_volatile: "False", revisions_to_keep: "1" } },
      { name: "linux-kernel", driver: "linux-kernel", config: { dir_path: "/var/lib/qubes/vm-kernels" } },
    ],
    globals: {
      clockvm: "sys-net",
      default_dispvm: "default-dvm",
      default_kernel: KERNEL,
      default_netvm: "sys-firewall",
      default_pool: "varlibqubes",
      default_pool_kernel: "linux-kernel",
      default_template: "fedora-41",
      management_dispvm: "default-mgmt-dvm",
      updatevm: "sys-firewall",
    },
    qubes,
  };
}

/** Tags qubesd gives every qube whose audiovm and guivm are dom0 (the defaults). */
const AUTO_TAGS = ["audiovm-dom0", "guivm-dom0"];

type Vol = QubeDocument["volumes"][number];
const vol = (name: string, size: number, o: Partial<Vol> = {}): Vol => ({
  name,
  pool: name === "kernel" ? "linux-kernel" : "varlibqubes",
  size: String(size),
  rw: name !== "kernel",
  save_on_stop: false,
  snap_on_start: false,
  revisions_to_keep: "0",
  ephemeral: false,
  ...o,
});

const templateVolumes = (): Vol[] => [
  vol("root", 10 * GIB, { save_on_stop: true, revisions_to_keep: "1" }),
  vol("private", 2 * GIB, { save_on_stop: true, revisions_to_keep: "1" }),
  vol("volatile", 10 * GIB),
  vol("kernel", 0),
];

const appVolumes = (privateSize: number): Vol[] => [
  vol("root", 10 * GIB, { snap_on_start: true }),
  vol("private", privateSize, { save_on_stop: true, revisions_to_keep: "1" }),
  vol("volatile", 10 * GIB),
  vol("kernel", 0),
];

/** Accept rules in qubesd's canonical form, checked once: DNS, ICMP and TCP/UDP to a port. */
const ACCEPT_RULES: readonly string[] = [
  { action: "accept", specialtarget: "dns" },
  ...HOSTS.map((dsthost) => ({ action: "accept", dsthost, proto: "icmp" })),
  ...HOSTS.flatMap((dsthost) =>
    ["tcp", "udp"].flatMap((proto) => ["443", "80", "22", "993", "8000-8080"].map((dstports) => ({ action: "accept", dsthost, proto, dstports }))),
  ),
].map((fields) => {
  const built = buildFirewallRule(fields);
  if (!built.ok) throw new Error(`generated firewall rule ${JSON.stringify(fields)} is invalid: ${built.error}`);
  return formatFirewallRule(built.rule);
});

/** `count` rules, the last one `action=drop`; none = the default (accept everything). */
function firewallRules(r: Rng, count: number): string[] | null {
  if (count === 0) return null;
  const rules: string[] = [];
  for (let k = 0; k < count - 1; k++) rules.push(pick(r, ACCEPT_RULES));
  rules.push("action=drop");
  return rules;
}

// ---------------------------------------------------------------------------------------------
// Seeded randomness (mulberry32; seeds spread by a 32-bit integer hash)

type Rng = () => number;

function rng(seed: number): Rng {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function hash32(x: number): number {
  let h = (x + 0x9e3779b9) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x21f0aaad) >>> 0;
  h = Math.imul(h ^ (h >>> 15), 0x735a2d97) >>> 0;
  return (h ^ (h >>> 15)) >>> 0;
}

function pick<T>(r: Rng, items: readonly T[]): T {
  const item = items[Math.floor(r() * items.length)];
  if (item === undefined) throw new Error("pick from an empty list");
  return item;
}

/** `k` distinct items in list order. */
function sample<T>(r: Rng, items: readonly T[], k: number): T[] {
  const chosen = new Set<number>();
  while (chosen.size < Math.min(k, items.length)) chosen.add(Math.floor(r() * items.length));
  return [...chosen].sort((a, b) => a - b).map((i) => items[i] as T);
}

/** A version-4-shaped UUID from the generator. */
function uuidFrom(r: Rng): string {
  const hex = (bits: number) => Math.floor(r() * 2 ** bits).toString(16).padStart(bits / 4, "0");
  const variant = (8 + Math.floor(r() * 4)).toString(16);
  return `${hex(32)}-${hex(16)}-4${hex(12)}-${variant}${hex(12)}-${hex(24)}${hex(24)}`;
}
