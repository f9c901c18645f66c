// The human plan, rendered from the JSON plan only: one block per changed resource with its
// symbol (+ ~ - -/+ .), attribute lines `name: old → new` (unchanged attributes hidden), rule
// lists as a line diff, then the steps in execution order and the summary line; a change that
// loosens isolation has `!` in the first column of its lines that loosen and a closing line
// lists them all. Returns a string; the CLI decides where it goes and whether it is coloured.

import { diffArrays } from "diff";
import { renderPolicyDiff } from "./render-policy.js";
import { actionPhrase, actionSymbol, isNoOp, type Action } from "./action.js";
import type { AttrValue } from "./changes.js";
import type { Diagnostic } from "../model/diagnostics.js";
import type { JsonGuest, JsonPlan, JsonPolicyFile, JsonResourceChange, JsonStep } from "./json.js";
import { LOOSENING_KINDS } from "./loosening.js";
import { stepOpMethod } from "./ops.js";
import { describeRelease, RELEASE_IDS } from "../model/release.js";
import { POOL_DRIVERS } from "../config/catalog.js";
import { printable, printableDeep } from "../util/printable.js";

export type RenderOptions = { color: boolean };

type Paint = (style: "add" | "change" | "remove" | "dim" | "bold", text: string) => string;

const ANSI: Record<Parameters<Paint>[0], string> = { add: "32", change: "33", remove: "31", dim: "2", bold: "1" };

function painter(color: boolean): Paint {
  return color ? (style, text) => `\x1b[${ANSI[style]}m${text}\x1b[0m` : (_style, text) => text;
}

function actionStyle(a: Action): Parameters<Paint>[0] {
  switch (a) {
    case "create":
      return "add";
    case "update":
      return "change";
    case "delete":
    case "replace":
      return "remove";
    case "release":
      return "change";
    case "forget":
    case "no-op":
      return "dim";
    default: {
      const never: never = a;
      return never;
    }
  }
}

const UNITS = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];

/** Bytes as `20 GiB` when exact in a binary unit, else as given. */
function showBytes(text: string): string {
  if (!/^[0-9]+$/.test(text)) return text;
  let n = BigInt(text);
  let unit = "bytes";
  for (const u of UNITS) {
    if (n === 0n || n % 1024n !== 0n) break;
    n /= 1024n;
    unit = u;
  }
  return unit === "bytes" ? `${text} bytes` : `${n} ${unit}`;
}

/** One value as a reviewer reads it. */
function showValue(key: string, v: AttrValue, isDefault: boolean): string {
  if (Array.isArray(v)) return v.length === 0 ? "(none)" : (key === "firewall" ? v.map(displayRule) : v).join(", ");
  if (v === null) {
    if (isDefault) return "(default)";
    return key.startsWith("properties.") || key === "template" ? "none" : "(absent)";
  }
  const text = v === "" ? '""' : key.endsWith(".size") ? showBytes(v) : key === "notes" ? showNotes(v) : v;
  return isDefault ? `${text} (default)` : text;
}

/**
 * Notes on one line, quoted (the plan is made printable first: a newline reads `\x0a`); a long
 * text is cut, with its length.
 */
function showNotes(v: string): string {
  const NOTES_SHOWN = 80;
  const chars = [...v];
  return chars.length <= NOTES_SHOWN ? `"${v}"` : `"${chars.slice(0, NOTES_SHOWN).join("")}…" (${chars.length} characters)`;
}

/**
 * A firewall rule line as a reviewer reads it: a one-port range `dstports=443-443` (the form
 * qubesd stores, which the plan keeps for comparing) as `dstports=443`.
 */
export const displayRule = (line: string): string => line.replace(/(^| )dstports=([0-9]+)-\2(?= |$)/, "$1dstports=$2");

/** A pool's bool parameter as a config writes it (`true`), not as qubesd stores it (`True`). */
export function displayPoolParam(driver: AttrValue | undefined, key: string, v: AttrValue): AttrValue {
  if (typeof driver !== "string" || !key.startsWith("params.") || (v !== "True" && v !== "False")) return v;
  return POOL_DRIVERS[driver]?.params[key.slice("params.".length)]?.type === "bool" ? v.toLowerCase() : v;
}

/** `c` with its pool parameters as displayed. */
function displayed(c: JsonResourceChange): JsonResourceChange {
  if (c.type !== "pool") return c;
  const show = (a: JsonResourceChange["before"]): JsonResourceChange["before"] =>
    a === null ? null : Object.fromEntries(Object.entries(a).map(([k, v]) => [k, displayPoolParam(a.driver, k, v)]));
  return { ...c, before: show(c.before), after: show(c.after) };
}

const sameValue = (a: AttrValue | undefined, b: AttrValue | undefined): boolean => JSON.stringify(a ?? null) === JSON.stringify(b ?? null);

/** Keys in a stable reading order: identity first, then the rest as the plan lists them. */
function attributeKeys(c: JsonResourceChange): string[] {
  const first = ["class", "template", "label", "pool", "driver", "colour", "state", "protect"];
  const keys = new Set([...Object.keys(c.before ?? {}), ...Object.keys(c.after ?? {})]);
  return [...first.filter((k) => keys.has(k)), ...[...keys].filter((k) => !first.includes(k))];
}

function renderListDiff(before: readonly string[], after: readonly string[], indent: string, paint: Paint): string[] {
  const out: string[] = [];
  for (const part of diffArrays([...before], [...after])) {
    for (const rule of part.value) {
      const line = displayRule(rule);
      if (part.added) out.push(paint("add", `${indent}+ ${line}`));
      else if (part.removed) out.push(paint("remove", `${indent}- ${line}`));
      else out.push(`${indent}  ${line}`);
    }
  }
  return out;
}

function renderAttributes(c: JsonResourceChange, paint: Paint): string[] {
  const lines: string[] = [];
  const ind = "      ";
  const halt = new Set(c.needs_halt);
  const copied = new Set(c.from_source?.attributes ?? []);
  for (const key of attributeKeys(c)) {
    const before = c.before?.[key];
    const after = c.after?.[key];
    const suffix = halt.has(key) ? paint("dim", "  (needs halt)") : copied.has(key) && key !== "tags" ? paint("dim", `  (from ${c.from_source?.qube ?? ""})`) : "";
    const bDefault = c.before_default.includes(key);
    const aDefault = c.after_default.includes(key);
    const isList = key === "firewall";
    // A new qube (create, or the new one of a replace) is shown in full.
    const showAll = c.before === null || c.action === "replace";
    if (c.after === null) {
      if (before !== undefined) lines.push(`${ind}${key}: ${showValue(key, before, bDefault)}`);
      continue;
    }
    if (after === undefined && c.action === "replace") continue;
    const unchanged = sameValue(before, after) && bDefault === aDefault;
    if (unchanged && !showAll) continue;
    if (before === undefined || unchanged) {
      if (isList && Array.isArray(after)) {
        lines.push(`${ind}${key}:${suffix}`);
        lines.push(...after.map(displayRule).map((r) => (before === undefined ? paint("add", `${ind}  + ${r}`) : `${ind}    ${r}`)));
      } else lines.push(`${ind}${key}: ${showValue(key, after ?? null, aDefault)}${suffix}`);
      continue;
    }
    if (isList && Array.isArray(before) && Array.isArray(after)) {
      lines.push(`${ind}${key}:${suffix}`);
      lines.push(...renderListDiff(before, after, `${ind}  `, paint));
      continue;
    }
    lines.push(`${ind}${key}: ${showValue(key, before, bDefault)} → ${showValue(key, after ?? null, aDefault)}${suffix}`);
  }
  return lines;
}

/** What a guest told about itself, as text a guest cannot use to write to the terminal. */
const guestText = (s: string): string => printable(s).slice(0, 80);

/** One line of a guest's facts: OS, hostname, addresses (loopback left out). */
export function factsLine(g: Pick<JsonGuest, "facts">): string | undefined {
  const f = g.facts;
  if (f === null) return undefined;
  const parts: string[] = [];
  const os = f.os?.pretty_name ?? f.os?.name ?? f.os?.id;
  if (os) parts.push(guestText(os));
  if (f.hostname !== null) parts.push(`hostname ${guestText(f.hostname)}`);
  const addresses = (f.interfaces ?? []).flatMap((i) => i.addresses.filter((a) => !/^(127\.|::1$)/.test(a.address)).map((a) => `${guestText(a.address)}/${a.prefix}`));
  if (addresses.length > 0) parts.push(`addresses ${addresses.slice(0, 4).join(", ")}${addresses.length > 4 ? ", …" : ""}`);
  parts.push(`qemu-ga ${guestText(f.agent_version)}`);
  return parts.join("; ");
}

/** `line` with its first column replaced by the loosening mark `!` (the indent keeps its width). */
const marked = (line: string): string => `!${line.slice(1)}`;

/** The attribute lines of `c`, those of a loosening attribute marked (a rule list: its first line). */
function markAttributes(lines: readonly string[], attributes: ReadonlySet<string>): string[] {
  const ind = "      ";
  return lines.map((l) => {
    if (!l.startsWith(ind) || l.startsWith(`${ind} `)) return l;
    // A key may hold a colon itself (`devices.usb.sys-usb:2-1`): matched with the `: ` that follows it.
    const text = l.slice(ind.length);
    return [...attributes].some((a) => text === `${a}:` || text.startsWith(`${a}: `) || text.startsWith(`${a}:\x1b`)) ? marked(l) : l;
  });
}

/**
 * A painter that also marks, in a loosening policy file's diff, the lines that can widen it: an
 * allow or ask rule added, a deny or ask rule removed (the judgement itself is by effect).
 */
function markLoosePolicyLines(paint: Paint): Paint {
  return (style, text) => {
    const line = text.trimStart();
    const widens = (line.startsWith("+") && !line.startsWith("+++") && /\s(allow|ask)(\s|$)/.test(line)) || (line.startsWith("-") && !line.startsWith("---") && /\s(deny|ask)(\s|$)/.test(line));
    return paint(style, widens ? marked(text) : text);
  };
}

function renderChange(written: JsonResourceChange, errors: readonly Diagnostic[], paint: Paint, guest?: JsonGuest, policy?: JsonPolicyFile): string[] {
  const c = displayed(written);
  const style = actionStyle(c.action);
  const loosens = c.loosens ?? [];
  const comment = [`# ${c.address} ${actionPhrase(c.action)}`];
  const facts = guest === undefined ? undefined : factsLine(guest);
  if (facts !== undefined) comment.push(`# guest: ${facts}`);
  if (c.destroys_data && c.type !== "policy") comment.push(c.type === "qube" ? "# its volumes (all of its data) are destroyed" : "# what it holds is destroyed");
  for (const r of c.reasons) comment.push(`# ${r}`);
  const head = `${actionSymbol(c.action).padStart(4)} ${c.address}`;
  const attributes = renderAttributes(c, paint);
  return [
    ...comment.map((l) => paint("dim", `  ${l}`)),
    ...loosens.map((l) => paint("change", `  # loosens isolation (${l.kind}): ${l.detail}`)),
    ...errors.map((d) => paint("remove", `  # refused, ${d.code}: ${d.message}`)),
    paint(style, loosens.length > 0 ? marked(head) : head),
    ...(loosens.length > 0 ? markAttributes(attributes, new Set(loosens.flatMap((l) => (l.attribute === undefined ? [] : [l.attribute])))) : attributes),
    ...(policy === undefined ? [] : renderPolicyDiff(policy, loosens.length > 0 ? markLoosePolicyLines(paint) : paint)),
    "",
  ];
}

function renderSteps(steps: readonly JsonStep[], paint: Paint): string[] {
  if (steps.length === 0) return [];
  const width = Math.max(...steps.map((s) => s.id.length));
  const lines = [paint("bold", "Steps, in order (the steps of one wave do not depend on each other):")];
  let wave = 0;
  for (const s of steps) {
    const head = s.wave !== wave ? `wave ${s.wave}`.padEnd(8) : " ".repeat(8);
    wave = s.wave;
    const calls = `${s.ops.length} call${s.ops.length === 1 ? "" : "s"}`;
    const methods = [...new Set(s.ops.map(stepOpMethod))];
    // The ownership setup precedes everything; naming it on every line would hide the real order.
    const deps = s.depends_on.filter((d) => !d.startsWith("setup:"));
    const after = deps.length > 0 ? `  after ${deps.join(", ")}` : "";
    lines.push(`  ${head}${s.id.padEnd(width)}  ${calls}${after}`);
    lines.push(paint("dim", `  ${" ".repeat(8)}  ${methods.join(" ")}`));
  }
  lines.push("");
  return lines;
}

/** `, on Qubes R4.2` when the plan knows the release (or narrowed it down), else "". */
function releaseNote(plan: JsonPlan): string {
  const c = plan.qubes_release?.candidates ?? [];
  if (c.length === 0 || c.length === RELEASE_IDS.length) return "";
  return `, on Qubes ${describeRelease({ candidates: c, evidence: [] })}`;
}

export function summaryLine(plan: JsonPlan): string {
  const { add, change, destroy, forget } = plan.summary;
  const release = plan.summary.release ?? 0;
  if (add + change + destroy + forget + release === 0) return "No changes.";
  return `Plan: ${add} to add, ${change} to change, ${destroy} to destroy${release > 0 ? `, ${release} to release` : ""}${forget > 0 ? `, ${forget} to forget` : ""}.`;
}

/**
 * `2 changes loosen isolation: qube.work (gains a netvm), properties (moves what qubes follow).`,
 * strongest first; undefined when nothing loosens.
 */
export function looseningLine(plan: Pick<JsonPlan, "resource_changes">): string | undefined {
  const loosening = plan.resource_changes.filter((c) => !isNoOp(c.action) && (c.loosens ?? []).length > 0);
  if (loosening.length === 0) return undefined;
  const strongest = (c: JsonResourceChange): number => Math.min(...(c.loosens ?? []).map((l) => LOOSENING_KINDS[l.kind].rank));
  const parts = [...loosening]
    .sort((a, b) => strongest(a) - strongest(b) || (a.address < b.address ? -1 : a.address > b.address ? 1 : 0))
    .map((c) => `${c.address} (${[...new Set((c.loosens ?? []).map((l) => (l.affects ? `${LOOSENING_KINDS[l.kind].summary}: ${l.affects.at_least ? "at least " : ""}${l.affects.qubes}` : LOOSENING_KINDS[l.kind].summary)))].join(", ")})`);
  return `${loosening.length} change${loosening.length === 1 ? " loosens" : "s loosen"} isolation: ${parts.join(", ")}.`;
}

export function renderHumanPlan(written: JsonPlan, o: RenderOptions): string {
  // Every string of the plan came from a config, qubesd, a guest or a saved plan's file.
  const plan = printableDeep(written);
  const paint = painter(o.color);
  const changed = plan.resource_changes.filter((c) => !isNoOp(c.action));
  const lines: string[] = [];
  if (changed.length > 0) {
    lines.push(`qubes-iac (owner ${plan.owner}${releaseNote(plan)}) will make these changes:`, "");
    // By address once: a plan of thousands of changes and diagnostics stays linear to print.
    const errorsAt = new Map<string, Diagnostic[]>();
    for (const d of plan.diagnostics) {
      if (d.severity !== "error" || d.address === undefined) continue;
      const at = errorsAt.get(d.address);
      if (at) at.push(d);
      else errorsAt.set(d.address, [d]);
    }
    const guestAt = new Map<string, JsonGuest>();
    for (const g of plan.guests ?? []) if (!guestAt.has(g.address)) guestAt.set(g.address, g);
    // Policy content from the plan as written: renderPolicyDiff makes each line printable itself.
    const policyAt = new Map((written.policies ?? []).map((p) => [p.address, p]));
    for (const c of changed) lines.push(...renderChange(c, errorsAt.get(c.address) ?? [], paint, guestAt.get(c.address), policyAt.get(c.address)));
    lines.push(...renderSteps(plan.steps, paint));
  }
  const takes = plan.options.take_ownership ?? [];
  if (takes.length > 0) lines.push(paint("change", `Takes over from ${takes.join(", ")} (--take-ownership): apply must be given the same --take-ownership.`));
  if (plan.options.targets.length > 0 || plan.options.excludes.length > 0) {
    const scope = [...plan.options.targets.map((t) => `--target ${t}`), ...plan.options.excludes.map((e) => `--exclude ${e}`)].join(" ");
    lines.push(paint("change", `Scope limited by ${scope}: other changes are not shown and will not be made.`));
  }
  lines.push(paint("bold", summaryLine(plan)));
  const loosening = looseningLine(plan);
  if (loosening !== undefined) lines.push(paint("change", loosening));
  const errors = plan.diagnostics.filter((d) => d.severity === "error").length;
  if (errors > 0) lines.push(paint("remove", `The plan holds ${errors} error${errors === 1 ? "" : "s"} (listed on stderr) and cannot be applied.`));
  return `${lines.join("\n")}\n`;
}
