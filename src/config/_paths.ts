// Config paths: JSON pointers (as ajv reports them and as the YAML reader indexes spans) and how
// to name the thing at a path in a message ("property 'memory' of qube 'dev'"). Pure.

import type { SourceLocation } from "../model/diagnostics.js";
import type { Span } from "./_yaml.js";

export const childPointer = (ptr: string, key: string | number): string =>
  `${ptr}/${String(key).replace(/~/g, "~0").replace(/\//g, "~1")}`;

export const pointerOf = (...segments: Array<string | number>): string => segments.reduce<string>((p, s) => childPointer(p, s), "");

export const pointerSegments = (ptr: string): string[] =>
  ptr === "" ? [] : ptr.slice(1).split("/").map((s) => s.replace(/~1/g, "/").replace(/~0/g, "~"));

/** Names what sits at a path, for messages. */
export function describePath(ptr: string): string {
  const s = pointerSegments(ptr);
  const [a, b, c, d, e] = s;
  if (a === undefined) return "the config";
  if (b === undefined) return `'${a}'`;
  switch (a) {
    case "qubes": {
      const q = `qube '${b}'`;
      if (c === undefined) return q;
      switch (c) {
        case "properties":
          return d === undefined ? `properties of ${q}` : `property '${d}' of ${q}`;
        case "features":
          return d === undefined ? `features of ${q}` : `feature '${d}' of ${q}`;
        case "tags":
          return d === undefined ? `tags of ${q}` : `tag ${Number(d) + 1} of ${q}`;
        case "firewall":
          if (d === undefined) return `firewall of ${q}`;
          return e === undefined ? `firewall rule ${Number(d) + 1} of ${q}` : `'${e}' of firewall rule ${Number(d) + 1} of ${q}`;
        case "volumes":
          if (d === undefined) return `volumes of ${q}`;
          return e === undefined ? `volume '${d}' of ${q}` : `${e} of volume '${d}' of ${q}`;
        case "guest":
          return describeGuestPath(`the guest of ${q}`, s.slice(3));
        default:
          return `'${c}' of ${q}`;
      }
    }
    case "labels":
      return `colour of label '${b}'`;
    case "pools":
      return c === undefined ? `pool '${b}'` : `'${c}' of pool '${b}'`;
    case "properties":
      return `global property '${b}'`;
    case "guests":
      return describeGuestPath(`guest '${b}'`, s.slice(2));
    case "policies":
    case "policy_includes": {
      const f = `${a === "policies" ? "policy file" : "include file"} '${b}'`;
      const [first, ...rest] = s.slice(2);
      if (first === undefined) return f;
      const [i, key] = first === "rules" ? rest : [first, rest[0]];
      if (first !== "rules" && !/^[0-9]+$/.test(first)) return `'${first}' of ${f}`;
      if (i === undefined) return `rules of ${f}`;
      return key === undefined ? `rule ${Number(i) + 1} of ${f}` : `'${key}' of rule ${Number(i) + 1} of ${f}`;
    }
    default:
      return `'${s.join(".")}'`;
  }
}

function describeGuestPath(guest: string, rest: string[]): string {
  const [field, key, sub] = rest;
  if (field === undefined) return guest;
  if (field === "files" && key !== undefined) return sub === undefined ? `guest file ${key} of ${guest}` : `${sub} of guest file ${key} of ${guest}`;
  if (field === "wait" && key !== undefined) return `wait ${key} of ${guest}`;
  if (key !== undefined) return `${field}.${key} of ${guest}`;
  return `${field} of ${guest}`;
}

/** Where a path was written: the value, or the key when `key` and the node is a mapping entry. */
export function locateIn(spans: ReadonlyMap<string, Span>, fallback: SourceLocation, ptr: string, key = false): SourceLocation {
  for (let p = ptr; ; p = p.slice(0, p.lastIndexOf("/"))) {
    const span = spans.get(p);
    if (span) return key && p === ptr ? (span.key ?? span.value) : span.value;
    if (p === "") return fallback;
  }
}
