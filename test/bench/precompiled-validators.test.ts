// The single-file build checks configs and saved plans with validators that ajv generated at
// build time (src/schemas/standalone.ts, put in place of src/schemas/validators.ts by
// scripts/build.mjs). They must say exactly what the validators compiled at run time say:
// - the same ajv errors, on thousands of configs made by mutating the examples at random
//   (the generated module loaded in this process);
// - the same diagnostics from the built CLI as from loadConfig in-process, for every case of
//   the config corpus and every example;
// - the same refusal of a saved plan that breaks the plan schema.
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import type { ErrorObject, ValidateFunction } from "ajv";
import fc from "fast-check";
import { parse } from "yaml";
import { afterAll, beforeAll, describe, expect, it, test } from "vitest";
import { readSavedPlan } from "../../src/apply/saved-plan.js";
import { configIOAt } from "../../src/cli/commands/validate.js";
import { loadConfig } from "../../src/config/index.js";
import { standaloneValidatorsModule } from "../../src/schemas/standalone.js";
import { configValidator, planValidator } from "../../src/schemas/validators.js";
import { runBuiltCli } from "../helpers/cli.js";
import { repoRoot } from "../helpers/shared.js";

type Validators = { configValidator: () => ValidateFunction; planValidator: () => ValidateFunction };

let dir = "";
let generated: Validators;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "qiac-standalone-"));
  const file = join(dir, "validators.mjs");
  // The generated module expects the bundle's `require` (for ajv's runtime helpers).
  const prelude = `import { createRequire } from "node:module"; const require = createRequire(${JSON.stringify(join(repoRoot, "package.json"))});\n`;
  writeFileSync(file, prelude + standaloneValidatorsModule());
  generated = (await import(pathToFileURL(file).href)) as Validators;
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** What a diagnostic is built from: everything but the schema objects (compared by content). */
const errorsOf = (v: ValidateFunction, data: unknown): Array<Partial<ErrorObject>> | null => {
  v(data);
  return v.errors ? v.errors.map((e) => ({ ...e })) : null;
};

const examples = readdirSync(join(repoRoot, "examples"))
  .filter((f) => f.endsWith(".yaml"))
  .map((f) => parse(readFileSync(join(repoRoot, "examples", f), "utf8")) as unknown);

/** A path into a value, chosen at random among those it has. */
function pathsOf(value: unknown, prefix: Array<string | number> = []): Array<Array<string | number>> {
  const out: Array<Array<string | number>> = [prefix];
  if (Array.isArray(value)) value.forEach((v, i) => out.push(...pathsOf(v, [...prefix, i])));
  else if (typeof value === "object" && value !== null) for (const [k, v] of Object.entries(value)) out.push(...pathsOf(v, [...prefix, k]));
  return out;
}

function setAt(value: unknown, path: Array<string | number>, replacement: unknown, renameTo?: string): unknown {
  if (path.length === 0) return replacement;
  const [head, ...rest] = path as [string | number, ...Array<string | number>];
  if (Array.isArray(value)) return value.map((v, i) => (i === head ? setAt(v, rest, replacement, renameTo) : v));
  if (typeof value !== "object" || value === null) return value;
  const entries = Object.entries(value).map(([k, v]): [string, unknown] => (k === head ? [rest.length === 0 && renameTo !== undefined ? renameTo : k, rest.length === 0 && renameTo !== undefined ? v : setAt(v, rest, replacement, renameTo)] : [k, v]));
  return Object.fromEntries(entries);
}

const anyValue = fc.oneof(
  fc.constantFrom(null, true, false, 0, -1, 1.5, 65536, "", "*default*", "red", "AppVM", "sys-net", "yes", "accept", "tcp", "1-1024", "10.0.0.0/8"),
  fc.string({ maxLength: 12 }),
  fc.integer(),
  fc.array(fc.oneof(fc.string({ maxLength: 6 }), fc.integer(), fc.constant(null)), { maxLength: 3 }),
  fc.dictionary(fc.constantFrom("action", "proto", "template", "label", "memory", "x", "class", "name", "dsthost"), fc.oneof(fc.string({ maxLength: 6 }), fc.integer(), fc.boolean()), { maxKeys: 3 }),
);

/** An example config with one to four random changes: a value replaced, or a key renamed. */
const mutatedConfig = fc
  .tuple(fc.nat({ max: examples.length - 1 }), fc.array(fc.tuple(fc.nat(), fc.boolean(), anyValue, fc.constantFrom("lable", "tempalte", "netvm", "x-any", "qubes", "features", "firewall")), { minLength: 1, maxLength: 4 }))
  .map(([which, changes]) => {
    let value = examples[which];
    for (const [at, rename, replacement, newKey] of changes) {
      const paths = pathsOf(value).filter((p) => p.length > 0);
      const path = paths[at % paths.length];
      if (path === undefined) continue;
      value = rename && typeof path[path.length - 1] === "string" ? setAt(value, path, undefined, newKey) : setAt(value, path, replacement);
    }
    return value;
  });

describe("validators generated at build time", () => {
  test("report exactly the errors of the validators compiled at run time, on mutated examples", () => {
    let invalid = 0;
    fc.assert(
      fc.property(mutatedConfig, (config) => {
        const expected = errorsOf(configValidator(), config);
        if (expected) invalid++;
        expect(errorsOf(generated.configValidator(), config)).toEqual(expected);
      }),
      { seed: 7, numRuns: 2000 },
    );
    // The mutations must reach the schema's failures, or this test would show nothing.
    expect(invalid).toBeGreaterThan(1000);
  });

  test("accept every example, and report the same errors for a plan that breaks the plan schema", () => {
    for (const example of examples) expect(generated.configValidator()(example)).toBe(true);
    const notAPlan = { format_version: 1, steps: [{ id: 3, op: "nope" }], applyable: "yes" };
    expect(errorsOf(generated.planValidator(), notAPlan)).toEqual(errorsOf(planValidator(), notAPlan));
    expect(errorsOf(planValidator(), notAPlan)?.length).toBeGreaterThan(2);
  });
});

const corpus = ["invalid", "warnings", "valid"].flatMap((d) =>
  readdirSync(join(repoRoot, "test", "config", d))
    .filter((f) => !f.endsWith(".md"))
    .map((f) => join("test", "config", d, f)),
);
const exampleFiles = readdirSync(join(repoRoot, "examples")).map((f) => join("examples", f));

describe.concurrent("the built CLI's validate", () => {
  it.each([...corpus, ...exampleFiles])("gives the same diagnostics as loadConfig for %s", async (path) => {
    const built = await runBuiltCli(["validate", "--json", path], { cwd: repoRoot });
    const inProcess = loadConfig([path], configIOAt(repoRoot));
    expect(built.stderr).toBe("");
    expect(JSON.parse(built.stdout).diagnostics).toEqual(JSON.parse(JSON.stringify(inProcess.diagnostics)));
  });
});

test("the built CLI refuses a saved plan that breaks the plan schema as apply does in-process", async () => {
  const file = join(dir, "bad-plan.json");
  const text = JSON.stringify({ format: "qubes-iac-plan", format_version: 1, steps: [{ id: 3 }], applyable: "yes", errored: false });
  writeFileSync(file, text);
  const read = readSavedPlan(text, file);
  expect(read.kind).toBe("refused");
  const message = read.kind === "refused" ? read.diagnostics[0]?.message : undefined;
  expect(message).toMatch(/is not a valid plan: /);
  const built = await runBuiltCli(["apply", "--connect", `sim:${join(dir, "state.json")}`, file], { cwd: dir });
  expect(built.code).toBe(1);
  expect(built.stderr).toContain(message);
});
