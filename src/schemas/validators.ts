// The compiled validators of our two JSON Schemas: the config file's (built from the catalog by
// src/config/schema.ts) and the saved plan's (schemas/plan.schema.json). Run from source (tsx,
// vitest), ajv compiles each at its first use. The single-file build puts in place of this
// module the same validators compiled at build time (`./standalone.ts`, ajv's standalone code;
// see scripts/build.mjs): compiling the config schema costs 130–180 ms, which every run of the
// CLI that loads a config would otherwise pay.

import { Ajv, type Options, type ValidateFunction } from "ajv";
import planSchema from "../../schemas/plan.schema.json" with { type: "json" };
import { buildSchema } from "../config/schema.js";

/** One set of options for both ways of compiling, so that both report the same errors. */
export const AJV_OPTIONS: Readonly<Options> = { allErrors: true, verbose: true, strict: true, allowUnionTypes: true };

/** The schemas, by the name of the function that returns their validator. */
export const SCHEMAS = { configValidator: buildSchema, planValidator: () => planSchema } as const;

const compiled = new Map<string, ValidateFunction>();
const compile = (name: keyof typeof SCHEMAS): ValidateFunction => {
  let v = compiled.get(name);
  if (v === undefined) {
    v = new Ajv({ ...AJV_OPTIONS }).compile(SCHEMAS[name]());
    compiled.set(name, v);
  }
  return v;
};

export const configValidator = (): ValidateFunction => compile("configValidator");
export const planValidator = (): ValidateFunction => compile("planValidator");
