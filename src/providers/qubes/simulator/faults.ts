// Fault injection: the rule type, its text syntax (`--fault RULE`, grammar in README.md) with
// located parse errors, and the live rule set a running server consults for each decoded
// request (one counter per rule, a record of every fault that fired). Pure: the server decides
// what each action does to the connection; nothing here touches a socket or the clock.

import { methodMutates, methodNames } from "./dispatch.js";
import { QREXEC_ARG_RE, checkDestination } from "../../../model/qubes-rules.js";

export type FaultAction =
  /** Answer with this Qubes exception instead of running the call: nothing changes. */
  | { kind: "exception"; qubesClass: string; message: string }
  /** Close the connection without running the call: nothing changes, the client reads no byte. */
  | { kind: "close-before" }
  /** Run the call (a change is made and saved), then close without a reply. */
  | { kind: "close-after" }
  /** Run the call, then answer with GARBAGE_REPLY instead of the reply. */
  | { kind: "garbage" }
  /** Run the call, then send only the first `bytes` bytes of the reply (absent: half, at least 1). */
  | { kind: "truncate"; bytes?: number }
  /** Run the call, then hold the reply back for `ms` before sending it. */
  | { kind: "delay"; ms: number }
  /** Hold the call for `ms`, then run it and reply as usual. */
  | { kind: "delay-before"; ms: number };

export type FaultKind = FaultAction["kind"];

export type FaultRule = {
  /** A method name, or `*` (any call), `read` (any read-only call), `write` (any mutating call). */
  method: string;
  /** The call's argument exactly; absent = any argument. */
  arg?: string;
  /** The call's destination as sent (a name or `uuid:...`); absent = any destination. */
  dest?: string;
  /** Which of the calls this rule matches it hits, counted from 1; `to: null` = no end. */
  calls: { from: number; to: number | null };
  action: FaultAction;
};

/** What a garbage fault sends: no valid reply starts with 0xde. */
export const GARBAGE_REPLY: Buffer = Buffer.from("\xde\xad\xbe\xef not a qubesd reply \xff\x00\x01", "latin1");

export const DEFAULT_FAULT_MESSAGE = "fault injected by the simulator";

const METHOD_SELECTORS = ["*", "read", "write"] as const;
const QUBES_CLASS_RE = /^[A-Za-z_][A-Za-z0-9_]*$/;
const METHOD_RE = /^[A-Za-z0-9_.-]+$/;

// ---------------------------------------------------------------------------------------------
// Text syntax

export type FaultRuleSyntaxIssue = {
  /** The rule as written. */
  rule: string;
  /** 1-based column of the part that is wrong. */
  column: number;
  message: string;
};

export class FaultRuleSyntaxError extends Error {
  override readonly name = "FaultRuleSyntaxError";
  constructor(readonly issue: FaultRuleSyntaxIssue) {
    super(describeFaultRuleIssue(issue));
  }
}

export type FaultRuleParse = { ok: true; rule: FaultRule } | { ok: false; issue: FaultRuleSyntaxIssue };

/** One line naming the rule, the column and what is wrong there. */
export function describeFaultRuleIssue(issue: FaultRuleSyntaxIssue): string {
  return `fault rule '${issue.rule}', column ${issue.column}: ${issue.message}`;
}

const SYNTAX_HINT = "expected METHOD[+ARG][/DEST]@WHICH=ACTION, e.g. admin.vm.property.Set+netvm/work@1=close-after";

/**
 * Parses `METHOD[+ARG][/DEST]@WHICH=ACTION`:
 *   WHICH  N | N-M | N- | *            (1-based, counting the calls this rule matches)
 *   ACTION exception:CLASS[:MESSAGE] | close-before | close-after | garbage | truncate[:BYTES]
 *          | delay:MS | delay-before:MS
 */
export function parseFaultRule(text: string): FaultRuleParse {
  const fail = (column: number, message: string): FaultRuleParse => ({ ok: false, issue: { rule: text, column, message } });
  const at = text.indexOf("@");
  if (at < 0) return fail(text.length + 1, `no '@' before the call number; ${SYNTAX_HINT}`);
  const eq = text.indexOf("=", at);
  if (eq < 0) return fail(text.length + 1, `no '=' before the action; ${SYNTAX_HINT}`);

  const select = text.slice(0, at);
  const slash = select.indexOf("/");
  const callPart = slash < 0 ? select : select.slice(0, slash);
  const plus = callPart.indexOf("+");
  const method = plus < 0 ? callPart : callPart.slice(0, plus);
  if (method === "") return fail(1, `no method before '${plus >= 0 ? "+" : slash >= 0 ? "/" : "@"}'; use a method name, *, read or write`);
  if (!(METHOD_SELECTORS as readonly string[]).includes(method)) {
    if (!METHOD_RE.test(method)) return fail(1, `'${method}' is not a method name (letters, digits, _ . - only)`);
    if (!methodNames().includes(method)) {
      const near = methodNames().find((m) => m.toLowerCase() === method.toLowerCase());
      return fail(1, `unknown method '${method}'${near ? ` (did you mean ${near}?)` : ""}; use a method the simulator serves, *, read or write`);
    }
  }
  const rule: FaultRule = { method, calls: { from: 1, to: null }, action: { kind: "close-before" } };
  if (plus >= 0) {
    const arg = callPart.slice(plus + 1);
    if (!QREXEC_ARG_RE.test(arg)) return fail(plus + 2, `argument '${arg}' has characters outside the qrexec set [A-Za-z0-9_.+-]`);
    rule.arg = arg;
  }
  if (slash >= 0) {
    const dest = select.slice(slash + 1);
    const destError = dest === "" ? "destination is empty" : checkDestination(dest);
    if (destError) return fail(slash + 2, `destination '${dest}': ${destError}`);
    rule.dest = dest;
  }

  const which = text.slice(at + 1, eq);
  const whichCol = at + 2;
  const range = /^([0-9]+)(?:(-)([0-9]*))?$/.exec(which);
  if (which === "*") {
    rule.calls = { from: 1, to: null };
  } else if (!range) {
    return fail(whichCol, `'${which}' is not a call number: use N, N-M, N- or *`);
  } else {
    const from = Number(range[1]);
    const to = range[2] === undefined ? from : range[3] === "" ? null : Number(range[3]);
    if (from < 1) return fail(whichCol, "call numbers start at 1");
    if (!Number.isSafeInteger(from) || (to !== null && !Number.isSafeInteger(to))) return fail(whichCol, "call number too large");
    if (to !== null && to < from) return fail(whichCol, `range ${which} ends before it starts`);
    rule.calls = { from, to };
  }

  const actionText = text.slice(eq + 1);
  const actionCol = eq + 2;
  const colon = actionText.indexOf(":");
  const name = colon < 0 ? actionText : actionText.slice(0, colon);
  const param = colon < 0 ? undefined : actionText.slice(colon + 1);
  const paramCol = actionCol + name.length + 1;
  const noParam = (kind: "close-before" | "close-after" | "garbage"): FaultRuleParse =>
    param === undefined ? ok({ kind }) : fail(paramCol - 1, `${kind} takes no parameter`);
  const ok = (action: FaultAction): FaultRuleParse => ({ ok: true, rule: { ...rule, action } });
  const millis = (kind: "delay" | "delay-before"): FaultRuleParse => {
    if (param === undefined || param === "") return fail(actionCol + name.length, `${kind} needs a time: ${kind}:MS`);
    if (!/^[0-9]+$/.test(param) || !Number.isSafeInteger(Number(param))) return fail(paramCol, `'${param}' is not a number of milliseconds`);
    return ok({ kind, ms: Number(param) });
  };
  switch (name) {
    case "exception": {
      if (param === undefined || param === "") return fail(actionCol + name.length, "exception needs a class: exception:CLASS[:MESSAGE]");
      const sep = param.indexOf(":");
      const qubesClass = sep < 0 ? param : param.slice(0, sep);
      const message = sep < 0 ? DEFAULT_FAULT_MESSAGE : param.slice(sep + 1);
      if (!QUBES_CLASS_RE.test(qubesClass)) return fail(paramCol, `'${qubesClass}' is not an exception class name (a Python identifier, e.g. QubesException)`);
      if (message.includes("\0")) return fail(paramCol + qubesClass.length + 1, "the message cannot contain NUL");
      return ok({ kind: "exception", qubesClass, message });
    }
    case "close-before":
    case "close-after":
    case "garbage":
      return noParam(name);
    case "truncate":
      if (param === undefined) return ok({ kind: "truncate" });
      if (!/^[0-9]+$/.test(param) || !Number.isSafeInteger(Number(param))) return fail(paramCol, `'${param}' is not a number of bytes`);
      return ok({ kind: "truncate", bytes: Number(param) });
    case "delay":
    case "delay-before":
      return millis(name);
    default:
      return fail(
        actionCol,
        `unknown action '${name}': use exception:CLASS[:MESSAGE], close-before, close-after, garbage, truncate[:BYTES], delay:MS or delay-before:MS`,
      );
  }
}

/** The text form of a rule; parseFaultRule reads it back to the same rule. */
export function formatFaultRule(rule: FaultRule): string {
  const { from, to } = rule.calls;
  const which = from === 1 && to === null ? "*" : to === from ? String(from) : `${from}-${to ?? ""}`;
  return `${rule.method}${rule.arg !== undefined ? `+${rule.arg}` : ""}${rule.dest !== undefined ? `/${rule.dest}` : ""}@${which}=${formatAction(rule.action)}`;
}

function formatAction(a: FaultAction): string {
  switch (a.kind) {
    case "exception":
      return a.message === DEFAULT_FAULT_MESSAGE ? `exception:${a.qubesClass}` : `exception:${a.qubesClass}:${a.message}`;
    case "close-before":
    case "close-after":
    case "garbage":
      return a.kind;
    case "truncate":
      return a.bytes === undefined ? "truncate" : `truncate:${a.bytes}`;
    case "delay":
    case "delay-before":
      return `${a.kind}:${a.ms}`;
    default:
      return unreachable(a);
  }
}

function unreachable(x: never): never {
  throw new Error(`unhandled fault action ${JSON.stringify(x)}`);
}

/** Parses a rule or checks a structured one (by its text form); throws FaultRuleSyntaxError. */
export function toFaultRule(rule: FaultRule | string): FaultRule {
  const parsed = parseFaultRule(typeof rule === "string" ? rule : formatFaultRule(rule));
  if (!parsed.ok) throw new FaultRuleSyntaxError(parsed.issue);
  return parsed.rule;
}

// ---------------------------------------------------------------------------------------------
// The live rule set

/** A call as faults see it: the decoded request's header. */
export type FaultCall = { src: string; method: string; arg: string; dest: string };

export type FiredFault = {
  /** The rule in its text form. */
  rule: string;
  action: FaultAction;
  call: FaultCall;
  /** This call was the rule's nth match. */
  n: number;
  /**
   * What the call did before the fault decided the reply: "not-run" (exception, close-before,
   * or a delay-before still waiting), else the call's own outcome, so a fault matrix can tell
   * whether a change was made although the client heard nothing.
   */
  outcome: "not-run" | "ok" | "exception" | "empty";
};

/** The handle a running server exposes as `server.faults`. */
export type FaultControl = {
  /** Adds a rule (text or structured) with its own call counter from 0; returns it parsed. */
  add(rule: FaultRule | string): FaultRule;
  /** Removes every rule and forgets what fired. */
  clear(): void;
  rules(): FaultRule[];
  /** Every fault that fired, in order (copies). */
  fired(): FiredFault[];
};

export type FaultSet = FaultControl & {
  /** Counts the call against every matching rule; returns the record of the first that fires. */
  match(call: FaultCall): FiredFault | null;
};

export function createFaultSet(initial: ReadonlyArray<FaultRule | string> = []): FaultSet {
  let entries: Array<{ rule: FaultRule; text: string; count: number }> = [];
  let fired: FiredFault[] = [];
  const set: FaultSet = {
    add(rule) {
      const parsed = toFaultRule(rule);
      entries.push({ rule: parsed, text: formatFaultRule(parsed), count: 0 });
      return parsed;
    },
    clear() {
      entries = [];
      fired = [];
    },
    rules: () => entries.map((e) => e.rule),
    fired: () => fired.map((f) => ({ ...f, call: { ...f.call } })),
    match(call) {
      let hit: FiredFault | null = null;
      for (const e of entries) {
        if (!selects(e.rule, call)) continue;
        e.count++;
        const { from, to } = e.rule.calls;
        if (hit === null && e.count >= from && (to === null || e.count <= to)) {
          hit = { rule: e.text, action: e.rule.action, call: { ...call }, n: e.count, outcome: "not-run" };
          fired.push(hit);
        }
      }
      return hit;
    },
  };
  for (const r of initial) set.add(r);
  return set;
}

function selects(rule: FaultRule, call: FaultCall): boolean {
  if (rule.arg !== undefined && rule.arg !== call.arg) return false;
  if (rule.dest !== undefined && rule.dest !== call.dest) return false;
  switch (rule.method) {
    case "*":
      return true;
    case "read":
      return !methodMutates(call.method);
    case "write":
      return methodMutates(call.method);
    default:
      return rule.method === call.method;
  }
}
