// Which qrexec policy files hold a management qube's rights: the right to call the Admin API
// (`admin.*`) or qrexec's policy admin API (`policy.*`, QubesOS/qubes-core-qrexec
// qrexec/policy/admin.py) is the right to change any qube or to put any rule in any policy, so
// such a file may be written only from dom0 (the plan refuses it from a management qube, and
// `qubes-iac policy` never grants its writes). Pure: names and statements in, answers out.

import type { PolicyScope, PolicyStatement } from "./qrexec-policy.js";

/**
 * The include files Qubes' own policies route these services through: qubes-core-admin
 * qubes-rpc-policy/90-admin-default.policy.header (`admin-local-rwx`, `admin-local-ro`,
 * `admin-global-rwx`, `admin-global-ro`) and qubes-core-qrexec policy.d/90-admin-policy-default.policy
 * (`admin-policy-rwx`, `admin-policy-ro`). Their lines (`SOURCE TARGET ACTION`) name no service.
 */
export const RIGHTS_INCLUDES: ReadonlySet<string> = new Set(["admin-local-rwx", "admin-local-ro", "admin-global-rwx", "admin-global-ro", "admin-policy-rwx", "admin-policy-ro"]);

/** Services whose grant is management rights: every service (`*`), the Admin API, the policy admin API. */
export const isRightsService = (service: string): boolean => service === "*" || service.startsWith("admin.") || service.startsWith("policy.");

/** Services whose grant lets a qube rewrite policy: `*` and `policy.*` (what loosening calls `policy-admin`). */
export const isPolicyAdminService = (service: string): boolean => service === "*" || service.startsWith("policy.");

/** `include/NAME` (as qrexec resolves a relative include path in /etc/qubes/policy.d) → NAME. */
const includeName = (path: string): string | undefined => {
  const m = /^(?:\/etc\/qubes\/policy\.d\/)?include\/([A-Za-z0-9_-]+)$/.exec(path);
  return m?.[1];
};

/** Include files that `!include-service` lines of these statements route rights services through, and Qubes' own. */
export function rightsIncludes(statements: Iterable<PolicyStatement>): Set<string> {
  const out = new Set(RIGHTS_INCLUDES);
  for (const s of statements) {
    if (s.kind !== "include-service" || !isRightsService(s.service)) continue;
    const n = includeName(s.path);
    if (n !== undefined) out.add(n);
  }
  return out;
}

export type PolicyFileRef = { scope: PolicyScope; name: string; statements: readonly PolicyStatement[] };

/**
 * Why `file` holds management rights (a phrase), or undefined: it allows or asks a rights service,
 * routes one through `!include-service`, includes (`!include`) a file that does, or is an include
 * file such a line reads (`includes`, from rightsIncludes over every statement known). `resolve`
 * gives the statements of an `!include` path as qrexec reads it (policy syntax), when known.
 */
export function rightsReason(file: PolicyFileRef, includes: ReadonlySet<string>, resolve?: (path: string) => readonly PolicyStatement[] | undefined): string | undefined {
  if (file.scope === "include" && includes.has(file.name)) return `include/${file.name} is read by an !include-service line of the Admin API or policy admin services`;
  const walk = (statements: readonly PolicyStatement[], via: readonly string[]): string | undefined => {
    for (const s of statements) {
      const through = via.length > 0 ? ` (through ${via.join(" → ")})` : "";
      if (s.kind === "rule" && s.action !== "deny" && isRightsService(s.service)) return `it ${s.action === "allow" ? "allows" : "asks"} ${s.service === "*" ? "every service" : s.service} (${s.source} → ${s.target})${through}`;
      if (s.kind === "include-service" && isRightsService(s.service)) return `it routes ${s.service} through ${s.path}${through}`;
      if (s.kind === "include" && resolve !== undefined && !via.includes(s.path) && via.length < 8) {
        const inner = resolve(s.path);
        const why = inner === undefined ? undefined : walk(inner, [...via, s.path]);
        if (why !== undefined) return why;
      }
    }
    return undefined;
  };
  return walk(file.statements, []);
}
