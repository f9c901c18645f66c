// The published schema file is exactly the schema the validator compiles (regenerate: vitest -u).
import { expect, test } from "vitest";
import { buildSchema } from "../../src/config/index.js";

test("schemas/qubes-iac.schema.json is the schema the validator uses", async () => {
  await expect(`${JSON.stringify(buildSchema(), null, 2)}\n`).toMatchFileSnapshot("../../schemas/qubes-iac.schema.json");
});

test("every schema keyword that can fail has a translation into a diagnostic", async () => {
  const { TRANSLATED_KEYWORDS } = await import("../../src/config/_schema-check.js");
  // Keywords that only annotate or combine (their failures surface as the inner keyword's).
  const silent = new Set(["$schema", "$id", "$ref", "title", "description", "examples", "definitions", "properties", "patternProperties", "items", "allOf", "then", "not"]);
  const used = new Set<string>();
  const walk = (node: unknown, inMap: boolean): void => {
    if (Array.isArray(node)) return node.forEach((n) => walk(n, false));
    if (typeof node !== "object" || node === null) return;
    for (const [key, value] of Object.entries(node)) {
      if (!inMap) used.add(key);
      walk(value, !inMap && ["properties", "patternProperties", "definitions"].includes(key));
    }
  };
  walk(buildSchema(), false);
  expect([...used].filter((k) => !silent.has(k) && !TRANSLATED_KEYWORDS.has(k))).toEqual([]);
});
