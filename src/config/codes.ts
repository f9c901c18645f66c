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
  "QIAC-E085": "invalid device address (`BACKEND:PORT` of its class) under `devices`",
  "QIAC-E086": "a device mode its class cannot take (pci is required; only pci and block can be required)",
  "QIAC-E087": "invalid device option (unknown for the class, or a bad value)",
  "QIAC-E088": "invalid device identity (`device:`)",
  "QIAC-E089": "a PCI device on a qube whose virt_mode is pvh (PCI needs hvm)",
  "QIAC-W001": "YAML warning (for example an unknown tag)",
  "QIAC-W010": "unknown property name (passed through unchanged, since Qubes adds properties)",
  "QIAC-W011": "unknown pool driver (its parameters are passed through unchecked)",
  "QIAC-W012": "a reference not defined in this config that looks like a typo of one that is",
  "QIAC-W013": "the same tag is listed twice",
} as const;

export type ConfigCode = keyof typeof CONFIG_CODES;

/** Builds a diagnostic; the code's letter decides the severity. */
export function diagnostic(code: ConfigCode, message: string, location: SourceLocation | undefined, hint?: string): Diagnostic {
  const d: Diagnostic = { severity: code.startsWith("QIAC-E") ? "error" : "warning", code, message };
  if (hint !== undefined) d.hint = hint;
  if (location !== undefined) d.location = location;
  return d;
}
