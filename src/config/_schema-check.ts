// Checks one file's data against the JSON Schema with ajv (all errors) and turns ajv's errors
// into diagnostics a person can act on: located at the offending YAML node, worded in the
// config's terms, with "did you mean" for misspelled keys, and without ajv's anyOf/if noise.

import type { ErrorObject } from "ajv";
import type { Diagnostic } from "../model/diagnostics.js";
import { diagnostic } from "./codes.js";
import { childPointer, describePath, locateIn, pointerSegments } from "./_paths.js";
import { configValidator } from "../schemas/validators.js";
import { didYouMean } from "./_suggest.js";
import type { WrittenFile } from "./_yaml.js";

/** One schema problem, after ajv's errors are folded together. */
type Issue =
  | { kind: "unknown-key"; ptr: string; key: string; allowed: string[] }
  | { kind: "missing"; ptr: string; key: string }
  | { kind: "type"; ptr: string; expected: string[]; data: unknown }
  | { kind: "enum"; ptr: string; allowed: unknown[]; data: unknown };

/** The ajv keywords whose failures this module translates; the schema uses no other that can fail. */
export const TRANSLATED_KEYWORDS: ReadonlySet<string> = new Set(["additionalProperties", "required", "type", "const", "enum", "anyOf", "oneOf", "if"]);

export function checkSchema(w: WrittenFile): Diagnostic[] {
  const validate = configValidator();
  if (validate(w.value)) return [];
  const issues = foldErrors([...(validate.errors ?? [])]);
  const seen = new Set<string>();
  const out: Diagnostic[] = [];
  for (const issue of issues) {
    const id = JSON.stringify(issue);
    if (seen.has(id)) continue;
    seen.add(id);
    out.push(toDiagnostic(issue, w));
  }
  return out;
}

/**
 * Drops `if` wrappers and replaces each failed anyOf by what its branches say together. A branch
 * error belongs to the innermost alternative above it in both the schema and the data (the same
 * anyOf fails once per qube that breaks it); found by looking up its prefixes, so a file with
 * thousands of errors folds in linear time.
 */
function foldErrors(errors: ErrorObject[]): Issue[] {
  const all = errors.filter((e) => e.keyword !== "if");
  const isAlternative = (e: ErrorObject): boolean => e.keyword === "anyOf" || e.keyword === "oneOf";
  const alternatives = all.filter(isAlternative).sort((a, b) => b.schemaPath.length - a.schemaPath.length);
  const altAt = new Map(alternatives.map((a) => [`${a.schemaPath}\0${a.instancePath}`, a]));
  const branchesOf = new Map<ErrorObject, ErrorObject[]>(alternatives.map((a) => [a, []]));
  const rest: ErrorObject[] = [];
  for (const e of all) {
    if (isAlternative(e)) continue;
    const owner = enclosingAlternative(e, altAt);
    if (owner) branchesOf.get(owner)!.push(e);
    else rest.push(e);
  }
  const folded: Issue[] = [];
  for (const alt of alternatives) {
    const branches = branchesOf.get(alt) ?? [];
    const deeper = branches.filter((e) => e.instancePath.length > alt.instancePath.length);
    if (deeper.length > 0) {
      // The value had the shape of some branch: what went wrong inside it is the useful part.
      folded.push(...deeper.map(toIssue));
      continue;
    }
    const expected = branches.flatMap((e) => {
      if (e.keyword === "type") return asList(e.params.type);
      if (e.keyword === "const") return [JSON.stringify(e.params.allowedValue)];
      if (e.keyword === "enum") return (e.params.allowedValues as unknown[]).map((v) => JSON.stringify(v));
      return [];
    });
    folded.push({ kind: "type", ptr: alt.instancePath, expected, data: alt.data });
  }
  return [...rest.map(toIssue), ...folded];
}

/** The alternative with the longest schema path strictly above `e`'s, at `e`'s data path or one above it. */
function enclosingAlternative(e: ErrorObject, altAt: ReadonlyMap<string, ErrorObject>): ErrorObject | undefined {
  for (let s = e.schemaPath.lastIndexOf("/"); s > 0; s = e.schemaPath.lastIndexOf("/", s - 1)) {
    const schema = e.schemaPath.slice(0, s);
    for (let i = e.instancePath.length; i >= 0; i = i === 0 ? -1 : e.instancePath.lastIndexOf("/", i - 1)) {
      const found = altAt.get(`${schema}\0${e.instancePath.slice(0, i)}`);
      if (found) return found;
    }
  }
  return undefined;
}

const asList = (t: unknown): string[] => (Array.isArray(t) ? t.map(String) : [String(t)]);

function toIssue(e: ErrorObject): Issue {
  switch (e.keyword) {
    case "additionalProperties": {
      const props = (e.parentSchema as { properties?: Record<string, unknown> } | undefined)?.properties ?? {};
      return { kind: "unknown-key", ptr: e.instancePath, key: String(e.params.additionalProperty), allowed: Object.keys(props) };
    }
    case "required":
      return { kind: "missing", ptr: e.instancePath, key: String(e.params.missingProperty) };
    case "type":
      return { kind: "type", ptr: e.instancePath, expected: asList(e.params.type), data: e.data };
    case "const":
      return { kind: "enum", ptr: e.instancePath, allowed: [e.params.allowedValue], data: e.data };
    case "enum":
      return { kind: "enum", ptr: e.instancePath, allowed: e.params.allowedValues as unknown[], data: e.data };
    default:
      throw new Error(`schema keyword '${e.keyword}' has no translation: this is a bug in qubes-iac, please report it`);
  }
}

function toDiagnostic(issue: Issue, w: WrittenFile): Diagnostic {
  const where = describePath(issue.ptr);
  switch (issue.kind) {
    case "unknown-key": {
      const loc = locateIn(w.spans, w.start, childPointer(issue.ptr, issue.key), true);
      const context = issue.ptr === "" ? "at the top level" : `in ${where}`;
      const hint = didYouMean(issue.key, issue.allowed) ?? (issue.allowed.length > 0 ? `allowed keys: ${issue.allowed.join(", ")}` : undefined);
      return diagnostic("QIAC-E010", `unknown key '${issue.key}' ${context}`, loc, hint);
    }
    case "missing": {
      const loc = locateIn(w.spans, w.start, issue.ptr, true);
      return diagnostic("QIAC-E011", `${capitalise(where)} lacks the required key '${issue.key}'`, loc, `add ${issue.key}: to ${where}`);
    }
    case "type": {
      const loc = locateIn(w.spans, w.start, issue.ptr);
      if (issue.data === null && isPropertyPath(issue.ptr)) {
        return diagnostic(
          "QIAC-E044",
          `${capitalise(where)} cannot be null: null means "none" only for properties that hold a qube`,
          loc,
          'write "*default*" to reset it to its default value',
        );
      }
      const yaml11 = typeof issue.data === "string" && /^(yes|no|on|off|y|n|true|false)$/i.test(issue.data) && issue.expected.includes("boolean");
      const hint = yaml11 ? "this is a string in YAML 1.2: write true or false, without quotes" : undefined;
      return diagnostic("QIAC-E012", `${capitalise(where)} must be ${expectedText(issue.expected)}, not ${valueText(issue.data)}`, loc, hint);
    }
    case "enum": {
      const loc = locateIn(w.spans, w.start, issue.ptr);
      const allowed = issue.allowed.map((v) => (typeof v === "string" ? v : JSON.stringify(v)));
      const hint = typeof issue.data === "string" ? (quotedHint(issue.data, issue.allowed) ?? didYouMean(issue.data, allowed)) : undefined;
      const choice = allowed.length === 1 ? allowed[0] : `one of ${allowed.join(", ")}`;
      return diagnostic("QIAC-E013", `${capitalise(where)} must be ${choice}, not ${valueText(issue.data)}`, loc, hint);
    }
    default: {
      const never: never = issue;
      return never;
    }
  }
}

/** `version: "1"`: the quotes make a string of what would be an allowed number or boolean. */
function quotedHint(data: string, allowed: readonly unknown[]): string | undefined {
  const meant = allowed.find((v) => typeof v !== "string" && JSON.stringify(v) === data);
  return meant === undefined ? undefined : `${data} in quotes is a string: write ${data} without quotes`;
}

const isPropertyPath = (ptr: string): boolean => {
  const s = pointerSegments(ptr);
  return (s.length === 4 && s[0] === "qubes" && s[2] === "properties") || (s.length === 2 && s[0] === "properties");
};

const TYPE_WORDS: Record<string, string> = {
  string: "a string",
  integer: "an integer",
  number: "a number",
  boolean: "true/false",
  null: "null",
  object: "a mapping",
  array: "a list",
};

function expectedText(expected: string[]): string {
  const words = [...new Set(expected.map((t) => TYPE_WORDS[t] ?? t))];
  return words.length <= 1 ? (words[0] ?? "something else") : `${words.slice(0, -1).join(", ")} or ${words[words.length - 1]}`;
}

export function valueText(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "a list";
  if (typeof v === "object") return "a mapping";
  if (typeof v === "string") return JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v);
  return String(v);
}

const capitalise = (s: string): string => s.charAt(0).toUpperCase() + s.slice(1);
