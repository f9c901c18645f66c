// Value normalisation for comparison: a desired property value and the value qubesd printed are
// equal when they mean the same thing to Qubes (bool spellings, integer forms, `none` for "no
// qube"). Comparison is by meaning; the payload sent is the canonical text for qubesd's type.

import type { ActualProperty, ActualPropertyType } from "../model/actual.js";
import { propertyValueText, type PropertyValue } from "../model/desired.js";
import { parseQubesBool } from "../model/qubes-rules.js";

export type Normalized = { ok: true; text: string } | { ok: false; error: string };

/** Canonical text of `text` read as a value of qubesd type `type` (what property.Get would print). */
export function normalizeAs(type: ActualPropertyType, text: string): Normalized {
  switch (type) {
    case "bool": {
      if (text === "") return { ok: true, text: "" };
      const b = parseQubesBool(text);
      return b === null ? { ok: false, error: `'${text}' is not a boolean` } : { ok: true, text: b ? "True" : "False" };
    }
    case "int":
      if (text === "") return { ok: true, text: "" };
      return /^\s*-?[0-9]+\s*$/.test(text) ? { ok: true, text: BigInt(text.trim()).toString() } : { ok: false, error: `'${text}' is not an integer` };
    case "vm":
      return { ok: true, text: text.toLowerCase() === "none" ? "" : text };
    case "label":
    case "str":
      return { ok: true, text };
    default: {
      const never: never = type;
      return never;
    }
  }
}

/** The type a desired value has by itself, for qubes that do not exist yet. */
export function desiredType(v: Exclude<PropertyValue, { kind: "default" }>): ActualPropertyType {
  return v.kind;
}

export type PropertyComparison =
  | { kind: "equal" }
  /** Set `payload` (canonical for the actual type). */
  | { kind: "set"; payload: string }
  /** Reset to the default. */
  | { kind: "reset" }
  | { kind: "invalid"; error: string };

/** Decides what to do so that `actual` becomes `desired`. */
export function compareProperty(desired: PropertyValue, actual: ActualProperty): PropertyComparison {
  if (desired.kind === "default") return actual.isDefault ? { kind: "equal" } : { kind: "reset" };
  const want = normalizeAs(actual.type, propertyValueText(desired) ?? "");
  if (!want.ok) return { kind: "invalid", error: want.error };
  const have = normalizeAs(actual.type, actual.raw);
  // What qubesd printed always reads back; if not, compare the raw texts.
  const haveText = have.ok ? have.text : actual.raw;
  return want.text === haveText ? { kind: "equal" } : { kind: "set", payload: want.text };
}

/** The payload to set a desired value on a qube that does not exist yet (typed by the config). */
export function payloadOf(desired: Exclude<PropertyValue, { kind: "default" }>): string {
  return propertyValueText(desired) ?? "";
}

/**
 * How a property value reads in a plan and in show: `none` for no qube, a bool as `true`/`false`
 * as a config writes it (and as `protect` and `state` read), not qubesd's `True`/`False`; the
 * text otherwise. Display only: checks and ops keep what qubesd prints and takes.
 */
export function displayProperty(type: ActualPropertyType, raw: string): string | null {
  if (type === "bool") return raw === "True" ? "true" : raw === "False" ? "false" : raw;
  return type === "vm" && raw === "" ? null : raw;
}
