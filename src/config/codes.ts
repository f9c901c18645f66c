// The stable diagnostic codes of config loading and validation, each with its one-line meaning.
// Users and tests match on codes, never on message texts; docs/config.md lists every code (a test
// keeps the two in step). `E` codes are errors, `W` codes warnings: the letter decides severity.

import type { Diagnostic, SourceLocation } from "../model/diagnostics.js";

export const CONFIG_CODES = {
  "QIAC-E001": "a config path does not exist or cannot be read",
  "QIAC-E002": "a config directory holds no *.yaml or *.yml file",
  "QIAC-E003": "YAML syntax error",
  "QIAC-E004": "the same key appears twice in one YAML mapping",
  "QIAC-E005": "YAML aliases expand to too much data (alias bomb)",
  "QIAC-E006": "YAML construct the config cannot use (non-string key, unknown alias, bad merge key)",
  "QIAC-E007": "a config file is larger than 16 MiB (refused before it is read)",
  "QIAC-E010": "unknown key",
  "QIAC-E011": "a required key is missing",
  "QIAC-E012": "a value has the wrong type",
  "QIAC-E013": "a value is not one of the allowed values",
  "QIAC-E020": "`version` or `owner` differ between config files",
  "QIAC-E021": "the same entry is defined in two places",
  "QIAC-E022": "invalid `owner` (it must be usable in the tag `managed-by-<owner>`)",
  "QIAC-E030": "invalid qube name (Qubes' name rules), as a key or as a reference",
  "QIAC-E031": "invalid label name",
  "QIAC-E032": "invalid label colour",
  "QIAC-E033": "one of the 8 default labels is declared under `labels`",
  "QIAC-E034": "invalid tag",
  "QIAC-E035": "reserved tag (`created-by-*` is set by qubesd, `managed-by-*` by qubes-iac)",
  "QIAC-E036": "invalid feature name",
  "QIAC-E037": "invalid feature value",
  "QIAC-E038": "a feature the Admin API refuses to change",
  "QIAC-E039": "invalid pool name",
  "QIAC-E040": "invalid pool driver parameter",
  "QIAC-E041": "a property that cannot be set (read-only, write-once, set through its own key, or not a valid name)",
  "QIAC-E042": "a property that does not exist for the qube's class",
  "QIAC-E043": "invalid property value (Qubes' rule for that property)",
  "QIAC-E044": "`null` or `\"*default*\"` where that field does not take it",
  "QIAC-E045": "a value too large for one Admin API request (64 KiB)",
  "QIAC-E046": "invalid volume size",
  "QIAC-E047": "a volume whose size cannot be set for this qube",
  "QIAC-E048": "invalid firewall rule",
  "QIAC-E050": "a qube to create lacks `class`, `label` or `template`",
  "QIAC-E051": "`template` given for a class that is not template-based",
  "QIAC-E052": "a reference to a qube of this config that cannot fill that role",
  "QIAC-E053": "a loop in the network (netvm) chain",
  "QIAC-E054": "`dom0` declared as a qube",
  "QIAC-E060": "invalid guest name (letters, digits, _ and -, starting with a letter; not `qube`)",
  "QIAC-E061": "invalid guest `agent` (or a qube's guest agent that reaches another qube)",
  "QIAC-E062": "invalid guest file path (absolute, normalised, printable, at most 4095 bytes)",
  "QIAC-E063": "two guests reach the same agent",
  "QIAC-E064": "a `source:` path that is absolute or leaves the directory of its config file",
  "QIAC-E065": "a `source:` file that does not exist, is not a regular file, or cannot be read",
  "QIAC-E066": "invalid `wait` timeout",
  "QIAC-E067": "a `guest:` on a qube whose `state` is halted or paused (its guest is reached only while it runs)",
  "QIAC-E070": "`absent: true`, `release: true` and `protect: true` on the same qube (they contradict each other)",
  "QIAC-E400": "invalid policy file name (policy files: lowercase letters, digits, _ and -; include files: letters, digits, _ and -)",
  "QIAC-E401": "a policy line qrexec cannot read (wrong number of fields)",
  "QIAC-E402": "invalid qrexec service name in a policy rule",
  "QIAC-E403": "invalid qrexec argument in a policy rule",
  "QIAC-E404": "a qube specification that qrexec does not take as a rule's source",
  "QIAC-E405": "a qube specification that qrexec does not take as a rule's target",
  "QIAC-E406": "a qube specification that qrexec does not take as `target=` (redirect) or `default_target=`",
  "QIAC-E407": "invalid policy action (allow, deny or ask)",
  "QIAC-E408": "a parameter the rule's action does not take (allow: target, user, notify, autostart; ask: also default_target; deny: notify)",
  "QIAC-E409": "invalid policy parameter syntax or value (key=value, given once; notify and autostart yes or no)",
  "QIAC-E410": "an allow rule for target @default without target= (qrexec refuses it)",
  "QIAC-E411": "invalid policy directive (!include, !include-dir, !include-service and their parameters)",
  "QIAC-E412": "an include path outside /etc/qubes/policy.d and its include/ directory, or not a name the policy admin API can hold",
  "QIAC-E413": "a qube name, tag or UUID in a policy rule that no qube can have (qrexec reads the line, but it never matches)",
  "QIAC-E414": "a qube specification this release's qrexec does not know (uuid: tokens exist from R4.3)",
  "QIAC-E415": "contradictory or incomplete policy file entry (rules and text together, absent or release with content, adopt without content)",
  "QIAC-E416": "a rule list entry that is neither one rule nor one include directive",
  "QIAC-E417": "a rule of an include file in the other syntax (service-syntax include files have no service or argument; policy files need them)",
  "QIAC-W001": "YAML warning (for example an unknown tag)",
  "QIAC-W010": "unknown property name (passed through unchanged, since Qubes adds properties)",
  "QIAC-W011": "unknown pool driver (its parameters are passed through unchecked)",
  "QIAC-W012": "a reference not defined in this config that looks like a typo of one that is",
  "QIAC-W013": "the same tag is listed twice",
  "QIAC-W400": "a qube named in a policy rule that the config does not define (it may exist on the system: plan checks it)",
  "QIAC-W401": "a policy problem that only some of R4.2, R4.3 and main have (validate judges all three; plan the one it talks to)",
  "QIAC-W402": "an unknown qube type after @type: (the rule never matches)",
  "QIAC-W403": "!compat-4.0 (transitional in qrexec, and its rules are not modelled by qubes-iac)",
  "QIAC-W404": "an include of a file the config does not manage (plan reads what it holds)",
} as const;

export type ConfigCode = keyof typeof CONFIG_CODES;

/** Builds a diagnostic; the code's letter decides the severity. */
export function diagnostic(code: ConfigCode, message: string, location: SourceLocation | undefined, hint?: string): Diagnostic {
  const d: Diagnostic = { severity: code.startsWith("QIAC-E") ? "error" : "warning", code, message };
  if (hint !== undefined) d.hint = hint;
  if (location !== undefined) d.location = location;
  return d;
}
