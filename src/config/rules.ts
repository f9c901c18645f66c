// Cross-field and cross-entry checks on the merged desired state, as a list of small named rules.
// Each decides only what the config alone can decide: a reference to a qube, label or pool that
// is not in the config is left to the planner, which sees the real system; a reference to an
// entry of the config that cannot fill its role is an error here.

import { agentKey, describeAgent } from "../model/guest.js";
import { DEFAULT_LABELS } from "../model/qubes-rules.js";
import type { Diagnostic } from "../model/diagnostics.js";
import { TEMPLATE_BASED_CLASSES, locate, type DesiredQube, type DesiredState, type QubeField, type TopField } from "../model/desired.js";
import { GLOBAL_PROPERTIES, QUBE_PROPERTIES, classesOf, type ReferenceRole } from "./catalog.js";
import { diagnostic } from "./codes.js";
import { suggester, type Suggester } from "./_suggest.js";
import { CLONE_RULES } from "./rules-clone.js";

export type Rule = (state: DesiredState) => Diagnostic[];

const a = (cls: string): string => `${/^[AEIOU]/.test(cls) ? "an" : "a"} ${cls}`;

/** A vm-typed property of a qube or of the system that names a qube, with where it was written. */
type VmReference = { from: string; property: string; target: string; role: ReferenceRole | undefined; at: ReturnType<typeof locate> };

function vmReferences(state: DesiredState): VmReference[] {
  const refs: VmReference[] = [];
  for (const q of state.qubes.values()) {
    for (const [name, v] of q.properties) {
      if (v.kind === "vm" && v.value !== null) {
        refs.push({ from: `qube '${q.name}'`, property: name, target: v.value, role: QUBE_PROPERTIES[name]?.role, at: locate(q, `properties.${name}`) });
      }
    }
  }
  for (const [name, v] of state.properties) {
    if (v.kind === "vm" && v.value !== null) {
      refs.push({ from: "the system", property: name, target: v.value, role: GLOBAL_PROPERTIES[name]?.role, at: locate(state, `properties.${name}` as TopField) });
    }
  }
  return refs;
}

/** A bool property as the config decides it: its value, `false` when a created qube leaves it at the default, or unknown. */
function boolProperty(q: DesiredQube, name: string): boolean | undefined {
  const v = q.properties.get(name);
  if (v?.kind === "bool") return v.value;
  if (v?.kind === "default") return false;
  return q.adopt ? undefined : false;
}

export const createdQubesAreComplete: Rule = (state) =>
  [...state.qubes.values()].flatMap((q) => {
    if (q.adopt || q.absent || q.release) return [];
    // A key that is written but invalid has its own diagnostic: only keys not written are missing.
    const missing = [q.locations.has("class") ? undefined : "class", q.locations.has("label") ? undefined : "label"];
    if (q.class !== undefined && TEMPLATE_BASED_CLASSES.has(q.class) && !q.locations.has("template")) missing.push("template");
    const keys = missing.filter((m): m is string => m !== undefined);
    if (keys.length === 0) return [];
    return [
      diagnostic(
        "QIAC-E050",
        `qube '${q.name}' cannot be created without ${keys.join(", ")}`,
        q.at,
        `add ${keys.map((k) => `${k}:`).join(" and ")}, or adopt: true if the qube already exists`,
      ),
    ];
  });

export const templateOnlyForTemplateBasedClasses: Rule = (state) =>
  [...state.qubes.values()].flatMap((q) =>
    q.class !== undefined && q.template !== undefined && !TEMPLATE_BASED_CLASSES.has(q.class)
      ? [diagnostic("QIAC-E051", `${a(q.class)} is not based on a template`, locate(q, "template"), `remove template: from qube '${q.name}'`)]
      : [],
  );

export const propertiesExistForClass: Rule = (state) =>
  [...state.qubes.values()].flatMap((q) => {
    const cls = q.class;
    if (cls === undefined) return [];
    return [...q.properties.keys()].flatMap((name) => {
      const spec = QUBE_PROPERTIES[name];
      if (!spec || classesOf(spec).includes(cls)) return [];
      return [
        diagnostic("QIAC-E042", `${a(cls)} has no property '${name}'`, locate(q, `properties.${name}`), `'${name}' exists for ${classesOf(spec).join(", ")}`),
      ];
    });
  });

export const volumesCanBeSized: Rule = (state) =>
  [...state.qubes.values()].flatMap((q) => {
    const fixed = q.class === "AppVM" ? ["root"] : q.class === "DispVM" ? ["root", "private"] : [];
    return fixed
      .filter((v) => q.volumes.has(v as "root" | "private"))
      .map((v) =>
        diagnostic(
          "QIAC-E047",
          `the ${v} volume of ${a(q.class ?? "")} comes from its template`,
          locate(q, `volumes.${v}` as QubeField),
          q.template ? `set the ${v} volume of '${q.template}' instead` : "set it on the template",
        ),
      );
  });

export const templatesCanServe: Rule = (state) =>
  [...state.qubes.values()].flatMap((q) => {
    const target = q.template === undefined ? undefined : state.qubes.get(q.template);
    if (!target || q.class === undefined) return [];
    const at = locate(q, "template");
    const what = `template of qube '${q.name}'`;
    if (q.class === "AppVM" && target.class !== undefined && target.class !== "TemplateVM") {
      return [diagnostic("QIAC-E052", `${what}: '${target.name}' is ${a(target.class)}, not a TemplateVM`, at, "an AppVM is based on a TemplateVM")];
    }
    if (q.class === "DispVM") return disposableTemplateProblem(target, at, what);
    return [];
  });

function disposableTemplateProblem(target: DesiredQube, at: ReturnType<typeof locate>, what: string): Diagnostic[] {
  if (target.class !== undefined && target.class !== "AppVM" && target.class !== "StandaloneVM") {
    return [diagnostic("QIAC-E052", `${what}: '${target.name}' is ${a(target.class)}, which cannot be a disposable template`, at, "use an AppVM with template_for_dispvms: true")];
  }
  if (boolProperty(target, "template_for_dispvms") === false) {
    return [
      diagnostic("QIAC-E052", `${what}: '${target.name}' is not a disposable template`, at, `set template_for_dispvms: true in the properties of '${target.name}'`),
    ];
  }
  return [];
}

export const referencesCanServe: Rule = (state) =>
  vmReferences(state).flatMap((ref) => {
    const what = `${ref.property} of ${ref.from}`;
    if (ref.role === "netvm" && ref.target === "dom0") {
      return [diagnostic("QIAC-E052", `${what}: dom0 does not provide network`, ref.at, "name a qube with provides_network: true, or null for no network")];
    }
    const target = state.qubes.get(ref.target);
    if (!target) return [];
    switch (ref.role) {
      case "netvm":
        return boolProperty(target, "provides_network") === false
          ? [diagnostic("QIAC-E052", `${what}: '${target.name}' does not provide network`, ref.at, `set provides_network: true in the properties of '${target.name}'`)]
          : [];
      case "dispvm-template":
        return disposableTemplateProblem(target, ref.at, what);
      case "template":
        return target.class !== undefined && target.class !== "TemplateVM"
          ? [diagnostic("QIAC-E052", `${what}: '${target.name}' is ${a(target.class)}, not a TemplateVM`, ref.at)]
          : [];
      case undefined:
        return [];
      default: {
        const never: never = ref.role;
        return never;
      }
    }
  });

/** Each netvm chain is walked once (a qube already walked ends the walk), so a long chain costs its length, not its square. */
export const noNetworkLoops: Rule = (state) => {
  const netvmOf = (q: DesiredQube): string | undefined => {
    const v = q.properties.get("netvm");
    return v?.kind === "vm" && v.value !== null ? v.value : undefined;
  };
  const order = new Map([...state.qubes.keys()].map((name, i) => [name, i]));
  const walked = new Set<string>();
  const loops: string[][] = [];
  for (const start of state.qubes.values()) {
    const path: string[] = [];
    const onPath = new Map<string, number>();
    let current: DesiredQube | undefined = start;
    while (current && !walked.has(current.name)) {
      walked.add(current.name);
      onPath.set(current.name, path.length);
      path.push(current.name);
      const next = netvmOf(current);
      current = next === undefined ? undefined : state.qubes.get(next);
    }
    const from = current ? onPath.get(current.name) : undefined;
    if (from === undefined) continue;
    const loop = path.slice(from);
    // Told from the loop's qube that comes first in the config, as the chain a reader follows.
    const first = loop.reduce((best, name, i) => (order.get(name)! < order.get(loop[best]!)! ? i : best), 0);
    loops.push([...loop.slice(first), ...loop.slice(0, first)]);
  }
  return loops
    .sort((x, y) => order.get(x[0]!)! - order.get(y[0]!)!)
    .map((chain) =>
      diagnostic(
        "QIAC-E053",
        `network loop: ${[...chain, chain[0]].join(" -> ")}`,
        locate(state.qubes.get(chain[0]!)!, "properties.netvm"),
        "Qubes refuses loops in the network; end the chain at a qube with no netvm (like sys-net)",
      ),
    );
};

/** Whether two names differ only in digits (fedora-40 vs fedora-41): versions, not typos. */
const differOnlyInDigits = (a: string, b: string): boolean => a.replace(/[0-9]+/g, "#") === b.replace(/[0-9]+/g, "#");

function nearMiss(name: string, suggest: Suggester): string | undefined {
  const c = suggest(name);
  return c !== undefined && !differOnlyInDigits(name, c) ? c : undefined;
}

export const referencesLookIntended: Rule = (state) => {
  const out: Diagnostic[] = [];
  const warn = (kind: string, name: string, suggestion: string, at: ReturnType<typeof locate>): void => {
    out.push(
      diagnostic("QIAC-W012", `${kind} '${name}' is not defined in this config, so it must already exist on the system`, at, `did you mean '${suggestion}'?`),
    );
  };
  const qubeNames = suggester(state.qubes.keys());
  const checkQube = (name: string, at: ReturnType<typeof locate>): void => {
    if (state.qubes.has(name) || name === "dom0") return;
    const s = nearMiss(name, qubeNames);
    if (s) warn("qube", name, s, at);
  };
  const labels = new Set([...DEFAULT_LABELS.map(([n]) => n), ...state.labels.keys()]);
  const labelNames = suggester(labels);
  const pools = suggester(state.pools.keys());
  const checkPool = (name: string, at: ReturnType<typeof locate>): void => {
    if (state.pools.has(name)) return;
    const s = nearMiss(name, pools);
    if (s) warn("pool", name, s, at);
  };
  for (const q of state.qubes.values()) {
    if (q.template !== undefined) checkQube(q.template, locate(q, "template"));
    if (q.label !== undefined && !labels.has(q.label)) {
      const s = nearMiss(q.label, labelNames);
      if (s) warn("label", q.label, s, locate(q, "label"));
    }
    if (q.pool !== undefined) checkPool(q.pool, locate(q, "pool"));
  }
  for (const ref of vmReferences(state)) checkQube(ref.target, ref.at);
  for (const [name, v] of state.properties) {
    if (GLOBAL_PROPERTIES[name]?.pool && v.kind === "str") checkPool(v.value, locate(state, `properties.${name}` as TopField));
  }
  return out;
};

export const qubeGuestsNeedRunningQubes: Rule = (state) =>
  [...state.guests.values()].flatMap((g) => {
    const q = g.qube === undefined ? undefined : state.qubes.get(g.qube);
    if (q === undefined || (q.state !== "halted" && q.state !== "paused")) return [];
    return [
      diagnostic("QIAC-E067", `qube '${q.name}' is kept ${q.state}, but its guest is reached only while it runs`, g.at, `set state: running on qube '${q.name}', or remove its guest:`),
    ];
  });

export const guestsReachDistinctAgents: Rule = (state) => {
  // By key, so that many guests cost one lookup each.
  const seen = new Map<string, string>();
  const out: Diagnostic[] = [];
  for (const g of state.guests.values()) {
    const key = agentKey(g.agent);
    const earlier = seen.get(key);
    if (earlier !== undefined) {
      out.push(
        diagnostic("QIAC-E063", `${g.address} reaches the same agent as ${earlier} (${describeAgent(g.agent)})`, g.locations.get("agent") ?? g.at, "an agent serves one client at a time: manage each VM once"),
      );
    } else seen.set(key, g.address);
  }
  return out;
};

/** `absent: true` destroys, `release: true` lets go, `protect: true` forbids destroying: at most one of them. */
export const lifecycleKeysAgree: Rule = (state) =>
  [...state.qubes.values()].flatMap((q) => {
    const set = (["absent", "release", "protect"] as const).filter((k) => (k === "absent" ? q.absent : k === "release" ? q.release : q.protect) === true);
    if (set.length < 2) return [];
    return [
      diagnostic("QIAC-E070", `qube '${q.name}' has ${set.map((k) => `${k}: true`).join(" and ")}, which contradict each other`, locate(q, set[1] as QubeField), "keep the one you mean"),
    ];
  });

export const RULES: readonly Rule[] = [
  createdQubesAreComplete,
  lifecycleKeysAgree,
  templateOnlyForTemplateBasedClasses,
  propertiesExistForClass,
  volumesCanBeSized,
  templatesCanServe,
  referencesCanServe,
  noNetworkLoops,
  referencesLookIntended,
  qubeGuestsNeedRunningQubes,
  guestsReachDistinctAgents,
  ...CLONE_RULES,
];

export const checkRules = (state: DesiredState): Diagnostic[] => RULES.flatMap((rule) => rule(state));
