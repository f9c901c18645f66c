// Bundles the CLI into one ES module (dist/qubes-iac.mjs) with no runtime node_modules,
// so the tool can be copied into a management qube or template that has no network; it starts
// with a shebang and is executable, so it runs as `./qubes-iac.mjs` as well as `node qubes-iac.mjs`.
//
// Two things are done at build time to make each run start faster (see bench/README.md):
// - the JSON Schema validators (config and saved plan) are compiled now (ajv standalone code)
//   and put in place of src/schemas/validators.ts, which would compile them at every run;
// - Node built-ins are required where the module that uses them is first initialised, not
//   imported at the top of the bundle: esbuild hoists every `import … from "node:…"` to the top
//   of the one file, so `--version` would load `crypto`, `net` and `child_process` for commands
//   it does not run.
import { build, transformSync } from "esbuild";
import { chmodSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

const root = new URL("..", import.meta.url);
const pkg = JSON.parse(readFileSync(new URL("package.json", root), "utf8"));
/** `require` for the CommonJS code inside an ES module bundle (commander, ajv's helpers, built-ins). */
const requireBanner = { js: "import { createRequire as __qiacCreateRequire } from 'node:module'; const require = __qiacCreateRequire(import.meta.url);" };
/** The CLI's file runs as `./qubes-iac.mjs` too: a shebang first, and the executable bit. */
const cliBanner = { js: `#!/usr/bin/env node\n${requireBanner.js}` };

/** Runs src/schemas/standalone.ts (bundled to a temporary file) and returns the module it generates. */
async function standaloneValidator() {
  const dir = mkdtempSync(join(tmpdir(), "qubes-iac-build-"));
  try {
    const out = join(dir, "standalone.mjs");
    await build({
      entryPoints: [new URL("src/schemas/standalone.ts", root).pathname],
      outfile: out,
      bundle: true,
      platform: "node",
      target: "node20",
      format: "esm",
      banner: requireBanner,
      logLevel: "warning",
    });
    const { standaloneValidatorsModule } = await import(pathToFileURL(out).href);
    // The generated code is minified: nobody reads it, and the validating runs parse it.
    return standaloneValidatorsModule((code) => transformSync(code, { format: "cjs", minify: true, target: "node20" }).code);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const validatorSource = await standaloneValidator();

/** Puts the precompiled validators in place of the module that compiles them at run time. */
const validatorsModule = new URL("src/schemas/validators.ts", root).pathname;
const precompiledValidators = {
  name: "precompiled-schema-validators",
  setup(b) {
    b.onResolve({ filter: /\/validators\.js$/ }, (args) =>
      join(args.resolveDir, args.path.replace(/\.js$/, ".ts")) === validatorsModule ? { path: "validators", namespace: "precompiled" } : undefined,
    );
    b.onLoad({ filter: /.*/, namespace: "precompiled" }, () => ({ contents: validatorSource, loader: "js", resolveDir: new URL(".", root).pathname }));
  },
};

/** Turns `import … from "node:x"` into a CommonJS `require("node:x")` run when its importer is first needed. */
const lazyBuiltins = {
  name: "lazy-node-builtins",
  setup(b) {
    b.onResolve({ filter: /^node:/ }, (args) =>
      args.namespace === "builtin" ? { path: args.path, external: true } : { path: args.path, namespace: "builtin" },
    );
    b.onLoad({ filter: /.*/, namespace: "builtin" }, (args) => ({ contents: `module.exports = require(${JSON.stringify(args.path)});`, loader: "js" }));
  },
};

await build({
  entryPoints: [new URL("src/cli/main.ts", root).pathname],
  outfile: new URL("dist/qubes-iac.mjs", root).pathname,
  bundle: true,
  platform: "node",
  target: "node20",
  format: "esm",
  sourcemap: false,
  legalComments: "inline",
  define: { __QUBES_IAC_VERSION__: JSON.stringify(pkg.version) },
  banner: cliBanner,
  plugins: [precompiledValidators, lazyBuiltins],
  logLevel: "warning",
});
chmodSync(new URL("dist/qubes-iac.mjs", root), 0o755);
