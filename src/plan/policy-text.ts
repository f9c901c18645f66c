// The statements of a policy file as read from dom0, for the plan: what the loosening analysis
// evaluates (old against new), whether a removal takes away deny or ask rules (which needs the
// typed confirmation), and whether content a saved plan would write still parses. A reading at
// the level of columns and keywords (qrexec/policy/parser.py, QubesOS/qubes-core-qrexec); the
// full validation of what the config writes is the config loader's (src/config/policy/). Pure.

import { POLICY_PARAM_TEXT, type PolicyParams, type PolicyStatement, type PolicySyntax } from "../model/qrexec-policy.js";

export type { PolicySyntax };

export type ReadStatements = { statements: PolicyStatement[]; /** 1-based lines that are no statement qrexec knows. */ unparsed: number[] };

const PARAM_BY_TEXT = new Map(Object.entries(POLICY_PARAM_TEXT).map(([k, v]) => [v, k as keyof PolicyParams]));
const ACTIONS = new Set(["allow", "deny", "ask"]);

/** Reads every statement of `text`; `syntax` `service` for include files read by `!include-service` (3 leading columns). */
export function readStatements(text: string, syntax: PolicySyntax = "policy"): ReadStatements {
  const statements: PolicyStatement[] = [];
  const unparsed: number[] = [];
  for (const [i, raw] of text.split("\n").entries()) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) continue;
    const cols = line.split(/\s+/);
    const s = statementOf(cols, syntax);
    if (s === undefined) unparsed.push(i + 1);
    else statements.push(s);
  }
  return { statements, unparsed };
}

function statementOf(cols: string[], syntax: PolicySyntax): PolicyStatement | undefined {
  const [head = "", a = "", b = "", c = ""] = cols;
  if (head === "!include" && cols.length === 2) return { kind: "include", path: a };
  if (head === "!include-dir" && cols.length === 2) return { kind: "include-dir", path: a };
  if (head === "!include-service" && cols.length === 4) return { kind: "include-service", service: a, argument: b, path: c };
  if (head.startsWith("!")) return undefined;
  const lead = syntax === "service" ? ["*", "*", ...cols] : cols;
  if (lead.length < 5) return undefined;
  const [service, argument, source, target, action] = lead as [string, string, string, string, string];
  if (!ACTIONS.has(action)) return undefined;
  const params: PolicyParams = {};
  for (const p of lead.slice(5)) {
    const eq = p.indexOf("=");
    const key = PARAM_BY_TEXT.get(p.slice(0, eq));
    if (eq <= 0 || key === undefined) return undefined;
    const v = p.slice(eq + 1);
    if (key === "autostart" || key === "notify") {
      if (v !== "yes" && v !== "no") return undefined;
      params[key] = v === "yes";
    } else params[key] = v;
  }
  return { kind: "rule", service, argument, source, target, action: action as "allow" | "deny" | "ask", params };
}

/** Whether removing these statements may loosen isolation: they hold a deny or an ask rule, or include other files. */
export const holdsRestrictions = (statements: readonly PolicyStatement[]): boolean => statements.some((s) => s.kind !== "rule" || s.action !== "allow");
