// Reads one YAML config text into plain data plus the source span of every node, addressed by
// JSON pointer (the same paths ajv reports). Owns YAML-level mistakes: syntax errors, duplicate
// keys, aliases (bounded: an alias bomb fails fast) and merge keys (`<<: *base`). Pure: text in,
// data and diagnostics out; it knows nothing of the config's meaning.

import { LineCounter, isAlias, isMap, isScalar, isSeq, parseDocument, type Document, type Node } from "yaml";
import type { Diagnostic, SourceLocation } from "../model/diagnostics.js";
import { diagnostic } from "./codes.js";
import { childPointer } from "./_paths.js";

/** Where a node was written: its value, and its key when it is a mapping entry. */
export type Span = {
  value: SourceLocation;
  key?: SourceLocation;
  /** Source text of a scalar as written (`0xff00ff` for what YAML reads as an integer). */
  raw?: string;
};

export type WrittenFile = {
  file: string;
  /** The document as plain data (objects, arrays, strings, numbers, booleans, null). */
  value: unknown;
  spans: ReadonlyMap<string, Span>;
  /** Line 1, column 1 of the file. */
  start: SourceLocation;
};

/** The yaml library's own guard against alias bombs (count of alias expansions, weighted by nesting). */
const MAX_ALIAS_COUNT = 10_000;
/**
 * Our own bound on the data that aliases produce once expanded (merge keys included). Nodes
 * written out in the file do not count: their cost is that of the text, which is already read.
 */
const MAX_EXPANDED_NODES = 200_000;

class TooLarge extends Error {}

export function readYaml(file: string, text: string): { written?: WrittenFile; diagnostics: Diagnostic[] } {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, uniqueKeys: false, prettyErrors: false, keepSourceTokens: false });
  const at = (from: number, to: number): SourceLocation => {
    const a = lines.linePos(from);
    const b = lines.linePos(Math.max(from, to));
    return { file, line: a.line, column: a.col, endLine: b.line, endColumn: b.col };
  };
  const start: SourceLocation = { file, line: 1, column: 1, endLine: 1, endColumn: 2 };
  // Errors found at the end of the input (an unclosed list) are shown just after the last text.
  const afterText = (offset: number): number => {
    let o = Math.min(offset, text.length);
    if (text.slice(o).trim() !== "") return offset;
    while (o > 0 && /\s/.test(text[o - 1]!)) o--;
    return o;
  };
  const diagnostics: Diagnostic[] = [];

  for (const e of doc.errors) {
    const multiple = e.code === "MULTIPLE_DOCS";
    diagnostics.push(
      diagnostic(
        "QIAC-E003",
        multiple ? "a config file holds one YAML document, but this one has several" : `YAML syntax error: ${firstLine(e.message)}`,
        at(afterText(e.pos[0]), Math.max(afterText(e.pos[0]) + 1, e.pos[1] === e.pos[0] ? 0 : afterText(e.pos[1]))),
        multiple ? "put each document (after ---) in its own file of the config directory" : "fix the YAML syntax at this spot",
      ),
    );
  }
  for (const w of doc.warnings) {
    diagnostics.push(diagnostic("QIAC-W001", firstLine(w.message), at(w.pos[0], w.pos[1]), "qubes-iac ignores YAML tags: remove it"));
  }
  if (doc.errors.length > 0) return { diagnostics };

  // Expanding the whole document to find an alias bomb costs as much as reading it: not done
  // when the text has no anchor (no `&` anywhere), since an alias then expands to nothing.
  const bomb = text.includes("&") ? aliasBomb(doc) : undefined;
  if (bomb !== undefined) {
    const loc = bomb.range ? at(bomb.range[0], bomb.range[1]) : start;
    diagnostics.push(
      diagnostic("QIAC-E005", "YAML aliases expand to too much data", loc, "use fewer levels of aliases that repeat other aliases"),
    );
    return { diagnostics };
  }

  const spans = new Map<string, Span>();
  /** How deep in alias expansions the conversion is, and how many nodes they produced. */
  let inAlias = 0;
  let expanded = 0;
  const nodeAt = (n: Node): SourceLocation => (n.range ? at(n.range[0], n.range[1]) : start);
  /** Made without spreads: this runs once per node, 60 000 times for a 1 000-qube config. */
  const spanOf = (value: SourceLocation, key: SourceLocation | undefined, raw?: string): Span => {
    const span: Span = { value };
    if (key !== undefined) span.key = key;
    if (raw !== undefined) span.raw = raw;
    return span;
  };

  const convert = (node: Node | null | undefined, ptr: string, key?: SourceLocation): unknown => {
    if (inAlias > 0 && ++expanded > MAX_EXPANDED_NODES) throw new TooLarge();
    if (node === null || node === undefined) {
      spans.set(ptr, spanOf(key ?? start, key));
      return null;
    }
    if (isAlias(node)) {
      const target = node.resolve(doc);
      if (target === undefined) {
        diagnostics.push(diagnostic("QIAC-E006", `alias *${node.source} refers to no anchor defined before it`, nodeAt(node), `define &${node.source} earlier in this file`));
        spans.set(ptr, spanOf(nodeAt(node), key));
        return null;
      }
      inAlias++;
      const value = convert(target, ptr, key);
      inAlias--;
      // The alias itself is where this value was used; its parts stay located at the anchor.
      spans.set(ptr, { ...spans.get(ptr), value: nodeAt(node), ...(key ? { key } : {}) });
      return value;
    }
    if (isScalar(node)) {
      const raw = node.range ? text.slice(node.range[0], node.range[1]) : String(node.value);
      spans.set(ptr, spanOf(nodeAt(node), key, raw));
      return node.value === undefined ? null : node.value;
    }
    if (isSeq(node)) {
      spans.set(ptr, spanOf(nodeAt(node), key));
      return node.items.map((item, i) => convert(item as Node | null, childPointer(ptr, i)));
    }
    if (isMap(node)) {
      const own = spanOf(nodeAt(node), key);
      spans.set(ptr, own);
      const out: Record<string, unknown> = {};
      const seen = new Map<string, SourceLocation>();
      const merges: Node[] = [];
      const explicit: Array<[string, SourceLocation, Node | null]> = [];
      for (const pair of node.items) {
        const k = pair.key as Node | null;
        const v = pair.value as Node | null;
        if (!isScalar(k)) {
          diagnostics.push(diagnostic("QIAC-E006", "mapping keys must be plain strings", k ? nodeAt(k) : nodeAt(node), "write the key as a plain word"));
          continue;
        }
        const keyText = typeof k.value === "string" ? k.value : k.range ? text.slice(k.range[0], k.range[1]) : String(k.value);
        const keyLoc = nodeAt(k);
        if (keyText === "<<" && k.type === "PLAIN") {
          if (v) merges.push(v);
          continue;
        }
        const first = seen.get(keyText);
        if (first) {
          diagnostics.push(
            diagnostic("QIAC-E004", `key '${keyText}' appears twice in this mapping (first at line ${first.line})`, keyLoc, "keep one of the two entries"),
          );
          continue;
        }
        seen.set(keyText, keyLoc);
        explicit.push([keyText, keyLoc, v]);
      }
      // Merge keys: explicit keys win over merged ones, and earlier merge sources over later ones.
      const sources = merges.flatMap((m) => mergeSources(m));
      for (const source of sources.reverse()) {
        if (source === undefined) continue;
        const target = isAlias(source) ? source.resolve(doc) : source;
        if (isAlias(source) && target === undefined) {
          diagnostics.push(diagnostic("QIAC-E006", `alias *${source.source} refers to no anchor defined before it`, nodeAt(source), `define &${source.source} earlier in this file`));
          continue;
        }
        if (!isMap(target)) {
          diagnostics.push(diagnostic("QIAC-E006", "a merge key (<<) needs a mapping or a list of mappings", nodeAt(source), "merge an alias of a mapping, like <<: *base"));
          continue;
        }
        if (isAlias(source)) inAlias++;
        const merged = convert(target, ptr, key) as Record<string, unknown>;
        if (isAlias(source)) inAlias--;
        for (const [k, v] of Object.entries(merged)) defineKey(out, k, v);
      }
      for (const [k, keyLoc, v] of explicit) defineKey(out, k, convert(v, childPointer(ptr, k), keyLoc));
      // Merged sources were converted at this same pointer: the mapping's own span goes back.
      if (sources.length > 0) spans.set(ptr, own);
      return out;
    }
    return null;
  };

  const mergeSources = (m: Node): Array<Node | undefined> => {
    if (isSeq(m)) return m.items.map((i) => (i ?? undefined) as Node | undefined);
    return [m];
  };

  let value: unknown;
  try {
    value = doc.contents === null ? {} : convert(doc.contents as Node, "");
    if (value === null) value = {};
    if (!spans.has("")) spans.set("", { value: start });
  } catch (e) {
    if (!(e instanceof TooLarge)) throw e;
    diagnostics.push(diagnostic("QIAC-E005", "YAML aliases and merge keys expand to too much data", start, "use fewer levels of aliases that repeat other aliases"));
    return { diagnostics };
  }
  return { written: { file, value, spans, start }, diagnostics };
}

/** Keys like `__proto__` are valid feature names: define them as own data, never through a setter. */
function defineKey(obj: Record<string, unknown>, key: string, value: unknown): void {
  // Only `__proto__` has a setter on a plain object; plain assignment is much cheaper for the rest.
  if (key === "__proto__") Object.defineProperty(obj, key, { value, enumerable: true, writable: true, configurable: true });
  else obj[key] = value;
}

/** Runs the yaml library's alias-count guard; returns the first alias when it trips. */
function aliasBomb(doc: Document): Node | undefined {
  try {
    doc.toJS({ maxAliasCount: MAX_ALIAS_COUNT, mapAsMap: true });
    return undefined;
  } catch (e) {
    if (e instanceof ReferenceError && /resource exhaustion/.test(e.message)) return firstAlias(doc.contents as Node | null);
    return undefined;
  }
}

function firstAlias(node: Node | null | undefined): Node | undefined {
  if (!node) return undefined;
  if (isAlias(node)) return node;
  if (isMap(node)) {
    for (const p of node.items) {
      const found = firstAlias(p.key as Node | null) ?? firstAlias(p.value as Node | null);
      if (found) return found;
    }
  }
  if (isSeq(node)) {
    for (const i of node.items) {
      const found = firstAlias(i as Node | null);
      if (found) return found;
    }
  }
  return undefined;
}

const firstLine = (s: string): string => s.split("\n")[0]!.replace(/ at line \d+, column \d+:?$/, "");
