// The package version: inlined by the bundler, read from package.json when run from source.
import { readFileSync } from "node:fs";

declare const __QUBES_IAC_VERSION__: string | undefined;

export function packageVersion(): string {
  if (typeof __QUBES_IAC_VERSION__ === "string") return __QUBES_IAC_VERSION__;
  const pkg = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as { version: string };
  return pkg.version;
}
