// The Qubes releases qubes-iac knows (R4.2, R4.3, the development head) as one table of what
// differs between them, and how to tell which one answers from what it lists: the property names
// of dom0, of the global object and of qubes (test/conformance/recordings/qubesd-r4.{2,3}/README.md,
// differences.jsonl rows 18-29). Never from a version string, never from a refused call (from a
// management qube an absent method and a denied one look the same). Pure data and functions.

import type { AssignmentMode } from "./devices.js";

export type ReleaseId = "r4.2" | "r4.3" | "main";

export const RELEASE_IDS: readonly ReleaseId[] = ["r4.2", "r4.3", "main"];

/** Where a property list comes from: dom0 (`admin.vm.property.List` to dom0), the globals, or a qube of a class. */
export type PropertyListHolder = "dom0" | "global" | "qube";

export type ReleaseInfo = {
  /** What the user reads. */
  title: string;
  /**
   * How qubesd answers a ProtocolError or PermissionDenied (qubes/api/__init__.py
   * `QubesDaemonProtocol.respond`): in an exception frame (main: `send_exception(exc)`), or by
   * closing with no bytes, as for an unhandled exception (release4.2, release4.3: logged, then
   * `transport.abort()`).
   */
  refusals: "named" | "empty";
  /**
   * `maxmem` set on a running qube: refused unless the qube hot-plugs memory (main,
   * qubes/vm/qubesvm.py `on_property_pre_set_maxmem` raises QubesVMNotHaltedError), or accepted
   * and used from its next start (release4.2, release4.3: a plain property, no handler).
   */
  maxmemWhileRunning: "halted-only" | "next-start";
  /**
   * `admin.label.Get` of a label created since qubesd started: an empty reply (main:
   * qubes/api/admin.py label_create keeps the colour as bytes, label_get returns them and the
   * reply fails to encode; transcripts.jsonl row 8), or the colour (release4.2, release4.3).
   */
  newLabelColour: "empty" | "readable";
  /**
   * Device assignments (src/model/devices.ts): by port, identity and mode (`assignment`: release4.3
   * and main qubes/api/admin.py vm_device_assign/unassign/set_required, Assigned/Attached), or
   * as persistent attachments by port (`persistent`: release4.2 vm_device_attach/detach/list,
   * no modes but one, no identity, no denied list); `removeWhileRunning`: whether qubesd drops
   * an assignment of a running qube (release4.2 devices.py `detach` refuses: QubesVMNotHaltedError).
   */
  devices: { api: "assignment" | "persistent"; modes: readonly AssignmentMode[]; identity: boolean; denied: boolean; removeWhileRunning: boolean };
  /** Properties this release does not have, per holder: `qube` holds those of every qube class, a class name those of that class only. */
  absent: { dom0: readonly string[]; global: readonly string[]; qube: readonly string[]; byClass: Readonly<Record<string, readonly string[]>> };
};

const ASSIGNMENTS: ReleaseInfo["devices"] = { api: "assignment", modes: ["required", "auto-attach", "ask-to-attach"], identity: true, denied: true, removeWhileRunning: true };

export const RELEASES: Readonly<Record<ReleaseId, ReleaseInfo>> = {
  "r4.2": {
    title: "R4.2",
    refusals: "empty",
    maxmemWhileRunning: "next-start",
    newLabelColour: "readable",
    devices: { api: "persistent", modes: ["required", "auto-attach"], identity: false, denied: false, removeWhileRunning: false },
    absent: {
      dom0: ["devices_denied", "maxmem"],
      global: ["maxmem", "no_cpus"],
      qube: ["bootmode", "devices_denied", "stubdom_uuid"],
      byClass: { TemplateVM: ["appvm_default_bootmode"], DispVM: ["is_preload"] },
    },
  },
  "r4.3": {
    title: "R4.3",
    refusals: "empty",
    maxmemWhileRunning: "next-start",
    newLabelColour: "readable",
    devices: ASSIGNMENTS,
    absent: { dom0: ["maxmem"], global: ["maxmem", "no_cpus"], qube: [], byClass: {} },
  },
  main: {
    title: "main (the development head)",
    refusals: "named",
    maxmemWhileRunning: "halted-only",
    newLabelColour: "empty",
    devices: ASSIGNMENTS,
    absent: { dom0: [], global: [], qube: [], byClass: {} },
  },
};

/**
 * The property names whose presence tells releases apart, per holder. A qube's list says R4.2 or
 * not (`bootmode`); dom0's tells all three (`devices_denied`, `maxmem`); the globals' main or not.
 */
const MARKERS: Readonly<Record<PropertyListHolder, readonly string[]>> = {
  dom0: ["devices_denied", "maxmem"],
  global: ["maxmem"],
  qube: ["bootmode"],
};

/** Whether `release` lists `property` on `holder` (a qube of class `klass`). */
export function releaseHasProperty(release: ReleaseId, holder: PropertyListHolder, property: string, klass?: string): boolean {
  const a = RELEASES[release].absent;
  const absent = holder === "qube" ? [...a.qube, ...(klass === undefined ? [] : (a.byClass[klass] ?? []))] : a[holder];
  return !absent.includes(property);
}

/** One property list that was read, as evidence. */
export type PropertyListSeen = { holder: PropertyListHolder; name: string; properties: ReadonlySet<string> };

/**
 * What was learned: the releases consistent with every list seen (all three when nothing was
 * seen; none when no known release fits, e.g. a newer one), and the lists that told.
 */
export type DetectedRelease = { candidates: ReleaseId[]; evidence: string[] };

export function detectRelease(seen: readonly PropertyListSeen[]): DetectedRelease {
  let candidates = [...RELEASE_IDS];
  const evidence: string[] = [];
  for (const s of seen) {
    const before = candidates.length;
    for (const m of MARKERS[s.holder]) {
      const present = s.properties.has(m);
      candidates = candidates.filter((r) => releaseHasProperty(r, s.holder, m) === present);
    }
    if (candidates.length < before || evidence.length === 0) {
      const what = s.holder === "global" ? "the global properties" : s.holder === "dom0" ? "dom0's properties" : `the properties of ${s.name}`;
      const has = MARKERS[s.holder].map((m) => `${s.properties.has(m) ? "with" : "without"} ${m}`).join(", ");
      evidence.push(`${what} (${has})`);
    }
  }
  return { candidates, evidence };
}

/** `d` narrowed by more lists seen (what a plan read besides dom0's list). */
export function refineRelease(d: DetectedRelease, seen: readonly PropertyListSeen[]): DetectedRelease {
  const more = detectRelease(seen);
  const candidates = d.candidates.filter((r) => more.candidates.includes(r));
  const evidence = candidates.length < d.candidates.length || d.evidence.length === 0 ? [...d.evidence, ...more.evidence] : d.evidence;
  return { candidates, evidence };
}

/** The one release detected, or undefined when the lists left several (or none). */
export const releaseOf = (d: DetectedRelease): ReleaseId | undefined => (d.candidates.length === 1 ? d.candidates[0] : undefined);

/** How the user reads it: `R4.2`, or `R4.3 or the development head`, or `an unknown release`. */
export function describeRelease(d: DetectedRelease): string {
  if (d.candidates.length === 0) return "a release qubes-iac does not know";
  return d.candidates.map((r) => RELEASES[r].title).join(" or ");
}

/**
 * The rules to plan by when the release is not known exactly: the safe side of every candidate
 * (a property is missing only if every candidate lacks it; maxmem needs a halt if any candidate
 * requires it; refusals may be empty if any candidate sends them so).
 */
export type ReleaseRules = {
  refusals: ReleaseInfo["refusals"];
  maxmemWhileRunning: ReleaseInfo["maxmemWhileRunning"];
  newLabelColour: ReleaseInfo["newLabelColour"];
  lacks(holder: PropertyListHolder, property: string, klass?: string): boolean;
  /** The device API of every candidate, when they all share one; undefined when they differ (or none is known). */
  devices: ReleaseInfo["devices"] | undefined;
};

export function rulesFor(d: DetectedRelease): ReleaseRules {
  const infos = d.candidates.map((r) => RELEASES[r]);
  return {
    refusals: infos.length === 0 || infos.some((i) => i.refusals === "empty") ? "empty" : "named",
    maxmemWhileRunning: infos.length > 0 && infos.every((i) => i.maxmemWhileRunning === "next-start") ? "next-start" : "halted-only",
    newLabelColour: infos.length > 0 && infos.every((i) => i.newLabelColour === "readable") ? "readable" : "empty",
    lacks: (holder, property, klass) => d.candidates.length > 0 && d.candidates.every((r) => !releaseHasProperty(r, holder, property, klass)),
    devices: infos.length > 0 && infos.every((i) => i.devices.api === infos[0]?.devices.api) ? sharedDevices(infos.map((i) => i.devices)) : undefined,
  };
}

/** What every one of several device APIs of the same kind allows. */
function sharedDevices(all: ReadonlyArray<ReleaseInfo["devices"]>): ReleaseInfo["devices"] {
  const [first, ...rest] = all as [ReleaseInfo["devices"], ...ReleaseInfo["devices"][]];
  return rest.reduce(
    (a, b) => ({
      api: a.api,
      modes: a.modes.filter((m) => b.modes.includes(m)),
      identity: a.identity && b.identity,
      denied: a.denied && b.denied,
      removeWhileRunning: a.removeWhileRunning && b.removeWhileRunning,
    }),
    first,
  );
}

/**
 * Why a plan made for `planned` must not be applied to a system that answers as `now`: the
 * releases the plan allowed for and those still possible share none (a saved plan moved to
 * another system, or dom0 upgraded since); undefined when they agree.
 */
export function releaseMismatch(planned: readonly ReleaseId[], now: DetectedRelease): string | undefined {
  if (now.candidates.some((r) => planned.includes(r))) return undefined;
  const d = (c: readonly ReleaseId[]): string => describeRelease({ candidates: [...c], evidence: [] });
  return `the plan was made on Qubes ${d(planned)}; this system answers as ${d(now.candidates)}`;
}

/** Nothing seen: every release is possible. */
export const UNDETECTED: DetectedRelease = { candidates: [...RELEASE_IDS], evidence: [] };
