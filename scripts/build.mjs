// Bundles the CLI into one ES module (dist/qubes-iac.mjs) with no runtime node_modules,
// so the tool can be copied into a management qube or template that has no network.
import { build } from "esbuild";
import { readFileSync } from "node:fs";

const pkg = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8"));

await build({
  entryPoints: [new URL("../src/cli/main.ts", import.meta.url).pathname],
  outfile: new URL("../dist/qubes-iac.mjs", import.meta.url).pathname,
  bundle: true,
  platform: "node",
  target: "node20",
  format: "esm",
  sourcemap: false,
  legalComments: "inline",
  define: { __QUBES_IAC_VERSION__: JSON.stringify(pkg.version) },
  banner: {
    js: "import { createRequire as __qiacCreateRequire } from 'node:module'; const require = __qiacCreateRequire(import.meta.url);",
  },
  logLevel: "warning",
});
