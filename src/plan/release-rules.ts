// What the plan does differently by Qubes release, read from the release the state reader
// detected (src/model/release.ts holds the table): when a change needs the qube halted, which
// properties a new qube cannot be given, and the release named in what the user reads. Pure.

import type { ActualState } from "../model/actual.js";
import { locate, TEMPLATE_BASED_CLASSES, type DesiredQube, type QubeClass } from "../model/desired.js";
import { describeRelease, releaseOf, rulesFor, UNDETECTED, type DetectedRelease, type PropertyListHolder, type ReleaseId, type ReleaseRules } from "../model/release.js";
import type { DiffContext } from "./_context.js";
import { planDiagnostic } from "./codes.js";

export const detectedRelease = (actual: ActualState): DetectedRelease => actual.release ?? UNDETECTED;

export const releaseRules = (actual: ActualState): ReleaseRules => rulesFor(detectedRelease(actual));

/**
 * When Qubes takes a change of a running qube: `any` time, only while `halted` (refused
 * otherwise), or accepted now but used from the `next-start` (reference §5.3; maxmem per release).
 */
export type ChangeTiming = "any" | "halted" | "next-start";

export function changeTiming(actual: ActualState, key: string, klass: string): ChangeTiming {
  if (key === "template" && TEMPLATE_BASED_CLASSES.has(klass as QubeClass)) return "halted";
  // A PCI device is attached when the qube starts (qubes/ext/pci.py on_domain_pre_start): a change needs it halted.
  if (key.startsWith("devices.pci.")) return "halted";
  if (key === "properties.maxmem") return releaseRules(actual).maxmemWhileRunning === "next-start" ? "next-start" : "halted";
  return "any";
}

/** `: R4.2's AppVM has no bootmode` when the detected release lacks the property, else "". */
export function lackedBy(actual: ActualState, holder: PropertyListHolder, property: string, klass?: string): string {
  const d = detectedRelease(actual);
  if (!rulesFor(d).lacks(holder, property, klass)) return "";
  const whose = holder === "global" ? " has no global property" : `'s ${holder === "dom0" ? "dom0" : (klass ?? "qube")} has no`;
  return `: ${describeRelease(d)}${whose} ${property}`;
}

/**
 * A qube to create with a property its release does not have (by the table, or as a qube of
 * the same class read in full shows): refused in the plan, so that the property is never sent
 * after the Create (which would leave a half-made qube).
 */
export function checkNewQubeProperties(ctx: DiffContext, q: DesiredQube, klass: string): void {
  // A qube of the same class read in full shows what a new one will have, on any release.
  const sameClass = [...ctx.actual.qubes.values()].find((x) => x.klass === klass && x.name !== q.name && x.tags !== undefined);
  for (const p of q.properties.keys()) {
    const why = releaseRules(ctx.actual).lacks("qube", p, klass)
      ? lackedBy(ctx.actual, "qube", p, klass)
      : sameClass !== undefined && !sameClass.properties.has(p)
        ? `: ${klass} ${sameClass.name} has none on this system`
        : undefined;
    if (why === undefined) continue;
    const key = `properties.${p}` as const;
    ctx.diagnostics.push(
      planDiagnostic("QIAC-E108", `qube ${q.name} (${klass}) cannot have property '${p}'${why}`, {
        location: locate(q, key),
        address: `qube.${q.name}`,
        hint: `remove ${p} from the config for this system`,
      }),
    );
  }
}

/** The release as the JSON plan states it. */
export type PlanRelease = { detected: ReleaseId | null; candidates: ReleaseId[]; evidence: string[] };

export function planRelease(actual: ActualState): PlanRelease {
  const d = detectedRelease(actual);
  return { detected: releaseOf(d) ?? null, candidates: [...d.candidates], evidence: [...d.evidence] };
}

/** The reason a step sets maxmem on a running qube without restarting it. */
export function nextStartReason(actual: ActualState, keys: readonly string[], vm: string): string {
  return `${describeRelease(detectedRelease(actual))} takes ${keys.map((k) => k.replace(/^properties\./, "")).join(", ")} of a running qube but uses it only from its next start: restart ${vm} for it to count now (or plan with --allow-restart)`;
}

/** Why a running qube must halt for maxmem, on the release seen ("" for other keys). */
export function haltNote(actual: ActualState, keys: readonly string[]): string {
  if (!keys.includes("properties.maxmem")) return "";
  const d = detectedRelease(actual);
  return releaseOf(d) === "main"
    ? ` (${describeRelease(d)} takes maxmem of a running qube only when it hot-plugs memory)`
    : ` (the release is not known exactly: ${describeRelease(d)}; R4.2 and R4.3 would take maxmem for the next start)`;
}
