// Golden files: compared byte for byte; rewritten instead when UPDATE_GOLDEN=1 is set.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { expect } from "vitest";
import { repoRoot } from "../helpers/shared.js";

export const goldenDir = join(repoRoot, "test", "golden");
const updating = process.env.UPDATE_GOLDEN === "1";

export function expectGolden(name: string, actual: string): void {
  const path = join(goldenDir, name);
  if (updating) {
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, actual);
    return;
  }
  if (!existsSync(path)) throw new Error(`golden file ${name} is missing: run the tests with UPDATE_GOLDEN=1 to create it, then review it`);
  expect(actual, `golden ${name} (UPDATE_GOLDEN=1 rewrites it)`).toBe(readFileSync(path, "utf8"));
}
