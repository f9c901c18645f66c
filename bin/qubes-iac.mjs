#!/usr/bin/env node
// Entry point of the installed package: runs the single-file bundle built by `npm run build`.
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";

const bundle = fileURLToPath(new URL("../dist/qubes-iac.mjs", import.meta.url));
if (!existsSync(bundle)) {
  process.stderr.write("qubes-iac: dist/qubes-iac.mjs is missing; run `npm run build` first\n");
  process.exit(1);
}
await import(bundle);
