// `npm run bench` entry: bundles bench/main.ts (and the sources it measures) with esbuild, a
// dev dependency, into bench/.main.mjs beside it, and runs that.
//
// Bundled rather than loaded through tsx: tsx keeps function names by wrapping every function
// it creates at run time (esbuild's keepNames), which made the simulator that serves the
// measured CLI from this process up to five times slower per call than `qubes-iac sim serve`
// (the single-file build, which does not keep names), and so slowed every figure it serves.
import { build } from "esbuild";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

const here = (p) => fileURLToPath(new URL(p, import.meta.url));
const pkg = JSON.parse(readFileSync(here("../package.json"), "utf8"));

await build({
  entryPoints: [here("./main.ts")],
  // Beside main.ts, so that the paths it takes from import.meta.url stay right.
  outfile: here("./.main.mjs"),
  bundle: true,
  platform: "node",
  target: "node20",
  format: "esm",
  packages: "external",
  define: { __QUBES_IAC_VERSION__: JSON.stringify(pkg.version) },
  logLevel: "warning",
});
await import("./.main.mjs");
