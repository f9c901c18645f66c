// Re-checks a plan's prior_state just before apply acts: every current value the plan relied on
// is read again (each list once, at most `parallelism` reads at once) and compared in the form
// the planner recorded it (ops.ts: checkedValue, poolFingerprint, firewallFingerprint). Returns
// what changed, as address + old → new; an empty list means the plan still holds.

import type { ListedQube } from "../model/actual.js";
import { checkedValue, devicesFingerprint, firewallFingerprint, poolFingerprint, type CheckedValue, type Check, type Holder } from "../plan/ops.js";
import type { QubesReader } from "../plan/reader.js";
import { createLimiter } from "../util/concurrency.js";

export type PriorStateChange = {
  /** What changed, e.g. `qube.work.properties.netvm`, `label.magenta`, `dom0.features.qubes-iac.me.format`. */
  address: string;
  expected: string;
  actual: string;
};

const memo = <T>(fn: (key: string) => Promise<T>): ((key: string) => Promise<T>) => {
  const cache = new Map<string, Promise<T>>();
  return (key) => {
    let p = cache.get(key);
    if (p === undefined) {
      p = fn(key);
      cache.set(key, p);
    }
    return p;
  };
};

function showChecked(v: CheckedValue): string {
  if ("value" in v) return JSON.stringify(v.value);
  if ("sha256" in v) return `sha256 ${v.sha256.slice(0, 12)}…`;
  if ("present" in v) return "present";
  return "absent";
}

const sameChecked = (a: CheckedValue, b: CheckedValue): boolean => JSON.stringify(a) === JSON.stringify(b);

function holderAddress(h: Holder, name: string): string {
  if (h === "global") return `properties.${name}`;
  return name === "label" || name === "template" ? `qube.${h.vm}.${name}` : `qube.${h.vm}.properties.${name}`;
}

const featureAddress = (vm: string, name: string): string => (vm === "dom0" ? `dom0.features.${name}` : `qube.${vm}.features.${name}`);

/** The qube a check reads from, when it needs the qube to exist. */
function checkedQube(c: Check): string | undefined {
  switch (c.check) {
    case "qube":
    case "qube-absent":
    case "label":
    case "pool":
    case "pool-volumes":
      return undefined;
    case "property":
      return c.holder === "global" ? undefined : c.holder.vm;
    case "feature":
    case "tag":
    case "firewall":
    case "volume-size":
    case "devices":
      return c.vm === "dom0" ? undefined : c.vm;
    default: {
      const never: never = c;
      return never;
    }
  }
}

function checkAddress(c: Check): string {
  switch (c.check) {
    case "qube":
    case "qube-absent":
      return `qube.${c.vm}`;
    case "property":
      return holderAddress(c.holder, c.name);
    case "feature":
      return featureAddress(c.vm, c.name);
    case "tag":
      return `qube.${c.vm}.tags.${c.name}`;
    case "firewall":
      return `qube.${c.vm}.firewall`;
    case "label":
      return `label.${c.name}`;
    case "pool":
      return `pool.${c.name}`;
    case "pool-volumes":
      return `pool.${c.name}.volumes`;
    case "volume-size":
      return `qube.${c.vm}.volumes.${c.volume}.size`;
    case "devices":
      return `qube.${c.vm}.devices.${c.devclass}`;
    default: {
      const never: never = c;
      return never;
    }
  }
}

/**
 * What apply reads of the current state, each list or value once however many checks need it, at
 * most `parallelism` reads at once; the prior-state re-check and the ownership guard (enforce.ts)
 * share one, so the guard costs no call the re-check makes anyway.
 */
export function createStateCache(reader: QubesReader, o: { parallelism: number }) {
  const limit = createLimiter(o.parallelism);
  const once = <T>(fn: (key: string) => Promise<T>) => memo((key: string) => limit(() => fn(key)));
  return {
    listing: once(async () => new Map((await reader.listQubes()).map((q) => [q.name, q] as const))),
    properties: once((vm) => reader.properties(vm === "" ? "global" : { vm })),
    tags: once(async (vm) => new Set(await reader.tags(vm))),
    featureNames: once(async (vm) => new Set(await reader.featureNames(vm))),
    feature: once((key) => {
      const [vm, name] = JSON.parse(key) as [string, string];
      return reader.feature(vm, name);
    }),
    firewall: once((vm) => reader.firewall(vm)),
    labels: once(async () => new Set(await reader.labels())),
    labelColour: once((name) => reader.labelColour(name)),
    pools: once(async () => new Set(await reader.pools())),
    pool: once((name) => reader.pool(name)),
    poolVolumes: once((name) => reader.poolVolumes(name)),
    volume: once((key) => {
      const [vm, v] = JSON.parse(key) as [string, string];
      return reader.volume(vm, v);
    }),
  };
}

export type StateCache = ReturnType<typeof createStateCache>;

export async function checkPriorState(reader: QubesReader, checks: readonly Check[], o: { parallelism: number; cache?: StateCache }): Promise<PriorStateChange[]> {
  const { listing, properties, tags, featureNames, feature, firewall, labels, labelColour, pools, pool, poolVolumes, volume } = o.cache ?? createStateCache(reader, o);

  const describeQube = (q: ListedQube | undefined): string => (q === undefined ? "absent" : `${q.klass}, ${q.power}`);

  /** What is there now, in the form the check recorded; undefined when it still holds. */
  const current = async (c: Check): Promise<{ expected: string; actual: string } | undefined> => {
    switch (c.check) {
      case "qube": {
        const q = (await listing("")).get(c.vm);
        const ok = q !== undefined && q.klass === c.class && (c.power === undefined || q.power === c.power);
        return ok ? undefined : { expected: c.power === undefined ? c.class : `${c.class}, ${c.power}`, actual: c.power === undefined && q !== undefined ? q.klass : describeQube(q) };
      }
      case "qube-absent": {
        const q = (await listing("")).get(c.vm);
        return q === undefined ? undefined : { expected: "absent", actual: `exists (${q.klass})` };
      }
      case "property": {
        const p = (await properties(c.holder === "global" ? "" : c.holder.vm)).get(c.name);
        if (p !== undefined && p.isDefault === c.default && p.raw === c.value) return undefined;
        const show = (raw: string, isDefault: boolean): string => `${JSON.stringify(raw)}${isDefault ? " (default)" : ""}`;
        return { expected: show(c.value, c.default), actual: p === undefined ? "no such property" : show(p.raw, p.isDefault) };
      }
      case "feature": {
        const have: CheckedValue =
          "present" in c.expect || "absent" in c.expect
            ? (await featureNames(c.vm)).has(c.name)
              ? { present: true }
              : { absent: true }
            : checkedValue(await feature(JSON.stringify([c.vm, c.name])));
        return sameChecked(have, c.expect) ? undefined : { expected: showChecked(c.expect), actual: showChecked(have) };
      }
      case "tag": {
        const has = (await tags(c.vm)).has(c.name);
        return has === c.present ? undefined : { expected: c.present ? "present" : "absent", actual: has ? "present" : "absent" };
      }
      case "firewall": {
        const rules = await firewall(c.vm);
        const have = firewallFingerprint(rules);
        return sameChecked(have, c.expect) ? undefined : { expected: `rules with ${showChecked(c.expect)}`, actual: `${rules.length} rule${rules.length === 1 ? "" : "s"} with ${showChecked(have)}` };
      }
      case "label": {
        const exists = (await labels("")).has(c.name);
        if ("absent" in c.expect || "present" in c.expect) {
          return exists === "present" in c.expect ? undefined : { expected: showChecked(c.expect), actual: exists ? "present" : "absent" };
        }
        if (!exists) return { expected: showChecked(c.expect), actual: "absent" };
        // A colour qubesd does not tell (created since it started) is only checked for existence.
        const colour = await labelColour(c.name);
        if (colour === undefined) return undefined;
        const have = checkedValue(colour.toLowerCase());
        const want = "value" in c.expect ? { value: c.expect.value.toLowerCase() } : c.expect;
        return sameChecked(have, want) ? undefined : { expected: showChecked(c.expect), actual: showChecked(have) };
      }
      case "pool": {
        const exists = (await pools("")).has(c.name);
        if ("absent" in c.expect || "present" in c.expect) {
          return exists === "present" in c.expect ? undefined : { expected: showChecked(c.expect), actual: exists ? "present" : "absent" };
        }
        if (!exists) return { expected: showChecked(c.expect), actual: "absent" };
        const p = await pool(c.name);
        const have = checkedValue(poolFingerprint(p.driver, p.params));
        const show = (v: CheckedValue): string => ("value" in v ? v.value.replace(/\n/g, " ") : showChecked(v));
        return sameChecked(have, c.expect) ? undefined : { expected: show(c.expect), actual: show(have) };
      }
      case "pool-volumes": {
        // A pool that is gone is the pool check's change, when the plan has one.
        if (!(await pools("")).has(c.name)) return undefined;
        const vids = [...(await poolVolumes(c.name))].sort();
        const have = checkedValue(vids.join("\n"));
        const show = (v: CheckedValue): string => ("value" in v ? (v.value === "" ? "empty" : v.value.split("\n").join(", ")) : showChecked(v));
        return sameChecked(have, c.expect) ? undefined : { expected: show(c.expect), actual: show(have) };
      }
      case "volume-size": {
        const v = await volume(JSON.stringify([c.vm, c.volume]));
        return v.size.toString() === c.size ? undefined : { expected: `${c.size} bytes`, actual: `${v.size} bytes` };
      }
      case "devices": {
        const list = await reader.deviceAssignments(c.vm, c.devclass, c.api);
        const have = devicesFingerprint(list);
        return sameChecked(have, c.expect) ? undefined : { expected: `${c.devclass} assignments with ${showChecked(c.expect)}`, actual: `${list.length} with ${showChecked(have)}` };
      }
      default: {
        const never: never = c;
        return never;
      }
    }
  };

  // A value of a qube that no longer exists cannot be read: the qube's absence is the one change,
  // reported by the qube's own check when the plan has one.
  const qubeChecked = new Set(checks.filter((c) => c.check === "qube").map((c) => c.vm));
  const changes = await Promise.all(
    checks.map(async (c): Promise<PriorStateChange | undefined> => {
      const vm = checkedQube(c);
      if (vm !== undefined && !(await listing("")).has(vm)) return qubeChecked.has(vm) ? undefined : { address: `qube.${vm}`, expected: "exists", actual: "absent" };
      const d = await current(c);
      return d === undefined ? undefined : { address: checkAddress(c), ...d };
    }),
  );
  const seen = new Set<string>();
  return changes.filter((c): c is PriorStateChange => {
    if (c === undefined) return false;
    const key = JSON.stringify(c);
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}
