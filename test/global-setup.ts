// Builds the single-file CLI once per test run, so end-to-end tests exercise what users run.
// A failed build does not stop the run: end-to-end tests report it, unit tests still run.
import { execFileSync } from "node:child_process";
import type { TestProject } from "vitest/node";
import { repoRoot } from "./helpers/shared.js";

declare module "vitest" {
  export interface ProvidedContext {
    cliBuildError: string;
  }
}

export default function setup(project: TestProject): void {
  let error = "";
  try {
    execFileSync(process.execPath, ["scripts/build.mjs"], { cwd: repoRoot, stdio: "pipe" });
  } catch (e) {
    const err = e as { stderr?: Buffer; message: string };
    error = err.stderr?.toString() || err.message;
  }
  project.provide("cliBuildError", error);
}
