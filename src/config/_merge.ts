// Merges the parts of a config given as several files into one desired state. `version` and
// `owner` may repeat only with the same value; any other entry defined twice is an error that
// names both places. Also where a key required of the whole config (not of each file) is missing.

import { CONFIG_VERSION, type DesiredState, type PropertyValue, type TopField } from "../model/desired.js";
import type { Diagnostic, SourceLocation } from "../model/diagnostics.js";
import { diagnostic } from "./codes.js";
import type { ConfigPart, Located } from "./_normalize.js";

const place = (l: SourceLocation): string => `${l.file}:${l.line}:${l.column}`;

/**
 * `complete` is false when some file could not be read or parsed: then a missing `version` or
 * `owner` may just be in that file, and is not reported.
 */
export function mergeParts(parts: readonly ConfigPart[], complete: boolean): { state: DesiredState; diagnostics: Diagnostic[] } {
  const diagnostics: Diagnostic[] = [];
  const first = parts[0];
  const at = first?.start ?? { file: "qubes.yaml", line: 1, column: 1 };

  const single = <T>(key: "version" | "owner", pick: (p: ConfigPart) => Located<T> | undefined): Located<T> | undefined => {
    let kept: Located<T> | undefined;
    for (const p of parts) {
      const v = pick(p);
      if (v === undefined) continue;
      if (kept === undefined) kept = v;
      else if (kept.value !== v.value) {
        diagnostics.push(
          diagnostic("QIAC-E020", `${key} ${JSON.stringify(v.value)} differs from ${key} ${JSON.stringify(kept.value)} at ${place(kept.at)}`, v.at, `use one ${key} in every file`),
        );
      }
    }
    return kept;
  };
  const version = single("version", (p) => p.version);
  const owner = single("owner", (p) => p.owner);
  if (complete && version === undefined) {
    diagnostics.push(diagnostic("QIAC-E011", "the config lacks the required key 'version'", at, `add version: ${CONFIG_VERSION}`));
  }
  if (complete && owner === undefined) {
    diagnostics.push(diagnostic("QIAC-E011", "the config lacks the required key 'owner'", at, "add owner: <name>; qubes-iac tags what it owns managed-by-<name>"));
  }

  const union = <V extends { at: SourceLocation }>(what: string, pick: (p: ConfigPart) => ReadonlyMap<string, V>): Map<string, V> => {
    const out = new Map<string, V>();
    for (const p of parts) {
      for (const [name, v] of pick(p)) {
        const earlier = out.get(name);
        if (earlier) {
          diagnostics.push(diagnostic("QIAC-E021", `${what} '${name}' is already defined at ${place(earlier.at)}`, v.at, "define it in one place only"));
        } else out.set(name, v);
      }
    }
    return out;
  };
  const labels = union("label", (p) => p.labels);
  const pools = union("pool", (p) => p.pools);
  const qubes = union("qube", (p) => p.qubes);
  const globals = union("global property", (p) => p.properties);
  const guests = union("guest", (p) => {
    // A qube's guest comes with the qube: a second definition of the qube is reported once, as the qube.
    const own = new Map([...p.guests].filter(([, g]) => g.qube === undefined || qubes.get(g.qube) === p.qubes.get(g.qube)));
    return own;
  });

  const policies = union("policy file", (p) => p.policies);

  const locations = new Map<TopField, SourceLocation>();
  if (version) locations.set("version", version.at);
  if (owner) locations.set("owner", owner.at);
  const properties = new Map<string, PropertyValue>();
  for (const [name, v] of globals) {
    properties.set(name, v.value);
    locations.set(`properties.${name}`, v.at);
  }
  return {
    state: { version: CONFIG_VERSION, owner: owner?.value ?? "", labels, pools, properties, qubes, guests, policies, at, locations },
    diagnostics,
  };
}
