// The stable diagnostic codes of planning (config codes are below 100, see src/config/codes.ts),
// each with its one-line meaning; docs/plan.md lists them and a test keeps the two in step.
// `E` codes are errors (the plan cannot be applied), `W` codes warnings: the letter decides.

import type { Diagnostic, SourceLocation } from "../model/diagnostics.js";

export const PLAN_CODES = {
  "QIAC-E101": "a qube of the config exists but is not managed by this owner (set `adopt: true` to take it over)",
  "QIAC-E102": "ownership drift: the inventory lists a qube that lacks its marker record (`<uuid>.own`; format 1: the `managed-by-<owner>` tag): removed, or the qube was made again by hand",
  "QIAC-E103": "a protected qube would be destroyed (delete or replace)",
  "QIAC-E104": "a qube or label to remove is still used by something the config does not change",
  "QIAC-E105": "a change Qubes accepts only on a halted qube, on a qube that is not halted (blocked without --allow-restart)",
  "QIAC-E106": "a dependency cycle between steps",
  "QIAC-E107": "a reference to a qube, label or pool that is neither in the config nor in the system",
  "QIAC-E108": "a property the qube (or the global object) does not have",
  "QIAC-E109": "a value that does not fit the property's type in Qubes",
  "QIAC-E110": "a volume size smaller than the volume (volumes only grow)",
  "QIAC-E111": "an adopted qube's class differs from the config's `class`",
  "QIAC-E112": "a qube to create has no `class` or `label`",
  "QIAC-E113": "a label colour change on a label that is in use",
  "QIAC-E114": "a label of the config exists with another colour and is not managed by this owner",
  "QIAC-E115": "a pool of the config exists with other settings and is not managed by this owner",
  "QIAC-E116": "ownership records written by a newer qubes-iac (unknown format version)",
  "QIAC-E117": "a qube is in a transitional power state (Transient, Halting, Dying, Crashed)",
  "QIAC-E118": "a targeted change depends on an excluded change",
  "QIAC-E119": "a feature name in qubes-iac's reserved prefix `qubes-iac.`",
  "QIAC-E120": "the settings of a managed pool differ from the config (pools cannot be changed in place)",
  "QIAC-E121": "a qube to replace is still used by another qube",
  "QIAC-E122": "an AdminVM (dom0) or a class qubes-iac does not manage is named in the config",
  "QIAC-E123": "a guest's agent did not answer, or could not be used (refused, permission denied, a broken reply)",
  "QIAC-E124": "guest files of a qube that will not be running (its `state` is not managed and it is halted, paused or not created)",
  "QIAC-E125": "a guest file cannot be read through the agent (permission denied, a directory, too large)",
  "QIAC-E126": "a guest file's `source:` cannot be read to hash it",
  "QIAC-E127": "a pool is to be removed but is still in use: volumes of qubes that stay, or a default_pool* global property (qubesd refuses to remove a pool in use)",
  "QIAC-E130": "a reference names a qube that cannot serve for it: a netvm without provides_network, a default_dispvm or DispVM template without template_for_dispvms, a template that is not a TemplateVM",
  "QIAC-E140": "a firewall rule whose `expire` has passed (qubesd drops it, so it would be set again on every apply)",
  "QIAC-E141": "a qube to shut down has running clients (netvm, audiovm or guivm users) that the plan neither shuts down first nor moves elsewhere",
  "QIAC-E142": "default_netvm changes while running qubes follow it, and its new value stays halted (Qubes attaches a running qube only to a running netvm)",
  "QIAC-E143": "a disposable template's template or template_for_dispvms changes while its disposables run",
  "QIAC-E144": "a suspended qube must be woken, on a release without admin.vm.Resume (R4.2)",
  "QIAC-E150": "another owner's inventory lists the qube to adopt or create, or the label or pool to create (one object has one owner; --take-ownership OWNER takes it over)",
  "QIAC-E151": "a qube without a valid `uuid` property (qubes-iac binds its records to it)",
  "QIAC-E152": "`absent: true` on a qube this owner does not manage",
  "QIAC-E180": "a volume's `revisions_to_keep` outside what its pool driver keeps on this release (file: at most 1; linux-kernel: 0; -1 only on R4.3 and later)",
  "QIAC-E181": "`notes` on a release without qube notes (R4.2)",
  "QIAC-E182": "`notes: \"\"` clearing a qube's notes on a release that refuses empty notes (main)",
  "QIAC-E183": "a volume size of a qube to create smaller than the size it is created with (volumes only grow)",
  "QIAC-E184": "`ephemeral: true` on an existing volume that cannot be ephemeral (a snapshot, kept at shutdown, or read-only)",
  "QIAC-E160": "a TemplateVM or StandaloneVM to create without `clone:` (its root volume would be empty) and without `root: empty`",
  "QIAC-E161": "a `template:` that is neither in the config nor in the system (the hint prints `qvm-template install`)",
  "QIAC-E162": "a `clone:` source that is neither in the config nor in the system",
  "QIAC-E163": "a `clone:` source whose class cannot be copied into the qube's class",
  "QIAC-E164": "a `clone:` source in a `file` pool that will be running at the copy, without --allow-restart",
  "QIAC-E165": "a `clone:` source that the same plan destroys (`absent: true`, or created by this owner and dropped from the config)",
  "QIAC-E166": "a create by cloning was interrupted before its volumes were copied, and the qube is not halted (CloneTo copies only into a halted qube)",
  "QIAC-E170": "device assignments on a system whose release is not known exactly (R4.2 and R4.3+ assign devices through different calls)",
  "QIAC-E171": "a device class this system does not serve (admin.deviceclass.List; usb and mic come from packages in dom0)",
  "QIAC-E172": "a device mode the release does not have (R4.2: no ask)",
  "QIAC-E173": "a device identity (`device:`) on R4.2, which assigns by port only",
  "QIAC-E174": "a PCI device dom0 does not offer",
  "QIAC-E175": "the identity of the device at a port cannot be learnt (nothing plugged in, or its backend halted) for a new assignment",
  "QIAC-E176": "a device assignment qubes-iac did not make, which the config would change",
  "QIAC-E178": "a PCI device on a qube whose virt_mode is pvh in Qubes",
  "QIAC-E186": "from a management qube: a change to a policy file that holds management rights (it allows or asks an Admin API, policy admin or every service, routes one through !include-service, or is an include file such a line reads): only dom0 may write it",
  "QIAC-W101": "a --target or --exclude address matches nothing in the plan",
  "QIAC-W102": "a label's colour cannot be read (qubesd answers it only after a restart)",
  "QIAC-W103": "guest files of a qube this plan starts, without `wait:` (its agent may not answer yet)",
  "QIAC-W104": "an apply of the same owner is running (its lock is held): the plan shows Qubes before the rest of its changes",
  "QIAC-W110": "a qube to remove or replace was checked for references only among the qubes a management qube's qrexec policy shows: qubesd's own check at apply is the final word",
  "QIAC-W140": "a firewall rule with a future `expire`: the plan says when it expires",
  "QIAC-W150": "a qube to adopt carries another owner's tag or records, but that owner's inventory does not list it (no claim; a DispVM copies its template's)",
  "QIAC-W151": "a qube of the config whose release was interrupted: the release is finished, the config's attributes are not applied",
  "QIAC-W186": "what a plan's policy changes loosen is judged on the policy files the connection could read (a management qube may read only the config's files): a rule elsewhere that decides the same calls first is not seen",
  "QIAC-E190": "a policy file of the config exists in dom0 but is not managed by this owner (set `adopt: true` to take it over)",
  "QIAC-E191": "the policy files could not be read through qrexec's policy admin API (policy.List, policy.Get)",
  "QIAC-E192": "`absent: true` on a policy file this owner does not manage",
  "QIAC-E193": "another owner's inventory lists the policy file (one file has one owner; --take-ownership OWNER takes it over)",
  "QIAC-W190": "a policy file this owner manages was changed outside qubes-iac: the plan writes it back (the diff shows the edit it undoes)",
  "QIAC-W191": "a policy file the inventory lists is gone from dom0: written again, or its entry forgotten",
  "QIAC-W160": "`clone:` on a qube that already exists: it is not cloned again",
  "QIAC-W161": "a qube created with `root: empty` is not started (nothing to boot yet), whatever its `state`",
  "QIAC-W180": "a volume's `revisions_to_keep` lowered: the older revisions are removed when the qube next stops",
  "QIAC-W170": "an assignment to a port where nothing is plugged in now (or whose backend is halted): it takes effect when the device is there",
  "QIAC-W171": "R4.2 assigns a device by port only: any device plugged in at that port is attached",
  "QIAC-W172": "`device: any`: the assignment accepts any device at its port (a loosening)",
  "QIAC-W173": "dom0's PCI devices could not be listed, so a PCI device's existence is not checked",
} as const;

export type PlanCode = keyof typeof PLAN_CODES;

export type PlanDiagnosticOptions = { address?: string; location?: SourceLocation; hint?: string };

export function planDiagnostic(code: PlanCode, message: string, o: PlanDiagnosticOptions = {}): Diagnostic {
  const d: Diagnostic = { severity: code.startsWith("QIAC-E") ? "error" : "warning", code, message };
  if (o.hint !== undefined) d.hint = o.hint;
  if (o.location !== undefined) d.location = o.location;
  if (o.address !== undefined) d.address = o.address;
  return d;
}
