// Generates the simulator's default fixture (src/providers/qubes/simulator/fixture-default.json)
// from the recorded dump ../shared/conformance/qubesd/fixture-state.jsonl, once, by a developer.
// The output is a state document (format qubes-iac-sim-state, version 1) that the simulator
// loads like any state file; the runtime never reads ../shared.
//
//   node scripts/gen-sim-fixture.mjs [path/to/fixture-state.jsonl]

import { readFileSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url));
const input = process.argv[2] ?? `${root}../shared/conformance/qubesd/fixture-state.jsonl`;
const output = `${root}src/providers/qubes/simulator/fixture-default.json`;

const rows = readFileSync(input, "utf8")
  .split("\n")
  .filter((l) => l.trim() !== "")
  .map((l) => JSON.parse(l));

/** The OK body of the recorded reply to (method, dest, arg). */
function reply(method, dest = "dom0", arg = "") {
  const row = rows.find((r) => r.method === method && r.dest === dest && r.arg === arg);
  if (!row) throw new Error(`fixture dump has no ${method}+${arg} to ${dest}`);
  const bytes = Buffer.from(row.reply_b64, "base64");
  if (bytes[0] !== 0x30 || bytes[1] !== 0) throw new Error(`${method}+${arg} to ${dest} did not succeed`);
  return bytes.subarray(2).toString("utf8");
}

const lines = (body) => body.split("\n").filter((l) => l !== "");
const keyValues = (body) => Object.fromEntries(lines(body).map((l) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 1)]));

/** `name default=<bool> type=<t> <value>` lines of GetAll, unescaped. */
function getAll(body) {
  return lines(body).map((line) => {
    const m = /^(\S+) default=(True|False) type=(\S+) (.*)$/.exec(line);
    if (!m) throw new Error(`unexpected GetAll line ${line}`);
    const value = m[4].replace(/\\(.)/g, (_, c) => (c === "n" ? "\n" : c));
    return { name: m[1], isDefault: m[2] === "True", type: m[3], value };
  });
}

/** A stored explicit value: ints as decimal strings, bools as booleans, empty vm as null. */
function storedValue(p) {
  switch (p.type) {
    case "bool":
      return p.value === "True";
    case "vm":
      return p.value === "" ? null : p.value;
    default:
      return p.value;
  }
}

const labels = lines(reply("admin.label.List")).map((name) => ({
  index: Number(reply("admin.label.Index", "dom0", name)),
  name,
  color: reply("admin.label.Get", "dom0", name),
}));

const pools = lines(reply("admin.pool.List")).map((name) => {
  const info = keyValues(reply("admin.pool.Info", "dom0", name));
  const config = {};
  for (const [k, v] of Object.entries(info)) {
    if (!["name", "driver", "size", "usage", "included_in"].includes(k)) config[k] = v;
  }
  return { name, driver: info.driver, config };
});
const mainPool = keyValues(reply("admin.pool.Info", "dom0", "varlibqubes"));

const globalsAll = getAll(reply("admin.property.GetAll"));
const globals = {};
for (const p of globalsAll) if (!p.isDefault) globals[p.name] = storedValue(p);
const globalDefault = (name) => globalsAll.find((p) => p.name === name).value;

const qubes = lines(reply("admin.vm.List")).map((line) => {
  const [name, klassField] = line.split(" ");
  const klass = klassField.slice("class=".length);
  const props = {};
  const all = getAll(reply("admin.vm.property.GetAll", name));
  for (const p of all) if (!p.isDefault) props[p.name] = storedValue(p);
  const features = lines(reply("admin.vm.feature.List", name)).map((f) => [f, reply("admin.vm.feature.Get", name, f)]);
  const tags = lines(reply("admin.vm.tag.List", name));
  const volumes = lines(reply("admin.vm.volume.List", name)).map((vol) => {
    const info = keyValues(reply("admin.vm.volume.Info", name, vol));
    return {
      name: vol,
      pool: info.pool,
      size: info.size,
      rw: info.rw === "True",
      save_on_stop: info.save_on_stop === "True",
      snap_on_start: info.snap_on_start === "True",
      revisions_to_keep: info.revisions_to_keep,
      ephemeral: info.ephemeral === "True",
    };
  });
  const qube = { name, class: klass, props, features, tags, volumes, power: klass === "AdminVM" ? "Running" : "Halted" };
  if (klass !== "AdminVM") {
    const firewall = lines(reply("admin.vm.firewall.Get", name));
    qube.firewall = firewall.length === 1 && firewall[0] === "action=accept" ? null : firewall;
    qube.notes = reply("admin.vm.notes.Get", name);
  }
  return { qid: klass === "AdminVM" ? 0 : Number(props.qid), qube };
});
qubes.sort((a, b) => a.qid - b.qid);

const dom0All = getAll(reply("admin.vm.property.GetAll", "dom0"));
const document = {
  format: "qubes-iac-sim-state",
  version: 1,
  host: {
    memory_mib: globalDefault("maxmem"),
    cpus: Number(globalDefault("no_cpus")),
    dom0_maxmem_mib: dom0All.find((p) => p.name === "maxmem").value,
    kernels: lines(reply("admin.pool.volume.List", "dom0", "linux-kernel")),
    pool_size: mainPool.size,
    pool_usage: mainPool.usage,
    lvm_thin_pools: [],
  },
  labels,
  pools,
  globals,
  qubes: qubes.map((q) => q.qube),
};

writeFileSync(output, JSON.stringify(document, null, 1) + "\n");
process.stdout.write(`wrote ${output}: ${labels.length} labels, ${pools.length} pools, ${qubes.length} qubes\n`);
