// What differs between the Qubes releases the simulator imitates (R4.2, R4.3 and the development
// head, `main`), as one table keyed by release: which methods, qube classes and properties exist,
// which exceptions reach the wire and with which class and message, and which checks a handler
// makes. Handlers read their release's row; none tests the release name. Every entry is what the
// recordings in test/conformance/recordings/qubesd{,-r4.3,-r4.2} show, or cites upstream source
// (QubesOS/qubes-core-admin, branches release4.2, release4.3, main).

import type { VmClass } from "./state.js";

export const SIM_RELEASES = ["r4.2", "r4.3", "main"] as const;
export type SimRelease = (typeof SIM_RELEASES)[number];

export type ReleaseParse = { ok: true; release: SimRelease } | { ok: false; error: string };

/** `r4.2`, `r4.3`, `main`, or `head` (the development head, an alias of main). */
export function parseRelease(text: string): ReleaseParse {
  if (text === "head") return { ok: true, release: "main" };
  if ((SIM_RELEASES as readonly string[]).includes(text)) return { ok: true, release: text as SimRelease };
  return { ok: false, error: `unknown release '${text}': use r4.2, r4.3 or main (head is main)` };
}

/** A Qubes exception as it reaches the wire: class and message. */
export type Refusal = { qubesClass: string; message: string };

/** Who owns the property tables: a qube class or the global (Qubes) object. */
export type PropOwner = VmClass | "Qubes";

const ALL_CLASSES: readonly VmClass[] = ["AdminVM", "AppVM", "DispVM", "RemoteVM", "StandaloneVM", "TemplateVM"];
const QUBE_CLASSES: readonly PropOwner[] = ["AppVM", "DispVM", "StandaloneVM", "TemplateVM"];

export type Release = {
  name: SimRelease;
  /**
   * Exception classes this release answers with the empty reply. R4.2/R4.3's qubesd sends no
   * ProtocolError or PermissionDenied (qubes/api/__init__.py, QubesDaemonProtocol.respond: only
   * QubesException is sent), and main's named subclasses are plain enforce() failures or bare
   * Python exceptions there (tag.Set's ValueError, CloneTo's enforce, label.Create's enforce).
   */
  emptyClasses: ReadonlySet<string>;
  /** admin.vm.List lines carry `uuid=`, and a dest may be `uuid:<uuid>` (main/R4.3 decode_vm). */
  uuids: boolean;
  /** A dest or src name is syntax-checked before lookup (main/R4.3); R4.2 just looks it up (domains[name]). */
  checkDestName: boolean;
  /** VM name rule "cannot start with hyphen, underscore, dot or numbers" (main/R4.3 validate_name); R4.2's regexp says "illegal characters". */
  vmNameLeadingRule: boolean;
  vmClasses: readonly VmClass[];
  /** Admin API methods this release does not serve (its qubesd: ProtocolError "no such method"). */
  absentMethods: ReadonlySet<string>;
  /** How devices are given to qubes: assignments (R4.3+) or persistent attachments (R4.2): methods-devices.ts. */
  devices: "assignment" | "persistent";
  /** Properties a class (or the globals) does not have in this release. */
  absentProps: Partial<Record<PropOwner, readonly string[]>>;
  /** Wire types that differ from main's. */
  propTypes: Readonly<Record<string, "str" | "int">>;
  /** admin.vm.feature.Set checks: who refuses a bad name/value and how a non-ASCII value fails. */
  featureSet: {
    /** null: stored unchecked (R4.2: "validation of self.arg done by qrexec-policy is enough"). */
    invalidClass: string | null;
    /** null: decode("ascii") raises UnicodeDecodeError, an empty reply. */
    nonAscii: Refusal | null;
    /** qubes.ext.admin forbids changing preload-dispvm* (absent in R4.2). */
    prohibits: boolean;
  };
  messages: {
    labelExists(name: string): Refusal;
    labelNotFound(ref: string): Refusal;
    labelInUse(name: string): Refusal;
    vmExists(name: string): Refusal;
    removeInUse(name: string): Refusal;
    poolUnknownDriver(driver: string): Refusal | "enforce";
    /** null: the driver's __init__ raises TypeError, an empty reply. */
    poolMissingOptions(options: string[]): Refusal | null;
  };
  /** admin.label.Get of a label created in this daemon lifetime: main keeps its colour as bytes and fails (upstream bug). */
  freshLabelColourReadable: boolean;
  /**
   * admin.vm.Create's template argument (qubes/api/admin.py _vm_create): the class a template for
   * a class without one is refused with, and whether an unknown template is reported before the
   * payload is read (R4.2/R4.3) or after the name and label checks (main).
   */
  createTemplateArg: { refusal: "ProtocolError" | "QubesValueError"; lookedUpFirst: boolean };
  /** admin.vm.Create with an unknown label: main drops it ("without key: label"); R4.2/R4.3 app.get_label raises. */
  createUnknownLabel: "dropped" | "not-found";
  /** default_dispvm/management_dispvm must name a disposable template (main's setter_disposable_template). */
  checksDispvmProperties: boolean;
  /** admin.vm.CreateDisposable takes the `uuid` payload and the `preload` argument (R4.3+). */
  disposableOptions: boolean;
  /**
   * Disabling template_for_dispvms: R4.2/R4.3 refuse while a DispVM is based on it
   * (qubes/vm/mix/dvmtemplate.py __on_pre_set_dvmtemplate, `self.dispvms`); main refuses while a
   * global or a qube's explicit default_dispvm/management_dispvm/template names it
   * (qubes/app.py get_qube_prop_deps), with a message per kind.
   */
  /**
   * What qubesd copies from a disposable template into a new DispVM, besides its cloneable
   * properties: the firewall, every tag, and the features but those whose names start with one of
   * these (qubes/vm/dispvm.py DispVM.__init__: release4.2 runs `self.features.update(template.features)`;
   * release4.3 and main leave out `preload-dispvm*`).
   */
  dispvmFeatureSkipPrefixes: readonly string[];
  dispTemplateInUse:
    | { kind: "dispvms"; message: string }
    | { kind: "prop-deps"; system: string; qube: string };
};

const MAIN_ONLY_EMPTY = ["ProtocolError", "PermissionDenied"];

const DEVICE_CLASSES = ["block", "mic", "pci", "usb"];
/**
 * R4.2's persistent attachments (release4.2 qubes/api/admin.py vm_device_list/attach/detach/
 * set_persistent), replaced in R4.3 by assignments (Assigned/Attached/Assign/Unassign/
 * Set.assignment). R4.3's live Attach/Detach (mode manual) are not modelled.
 */
const DEVICE_R42_ONLY = DEVICE_CLASSES.flatMap((c) => ["List", "Attach", "Detach", "Set.persistent"].map((m) => `admin.vm.device.${c}.${m}`));
const DEVICE_R43_ONLY = DEVICE_CLASSES.flatMap((c) => ["Assign", "Assigned", "Attached", "Set.assignment", "Unassign"].map((m) => `admin.vm.device.${c}.${m}`));

const MAIN: Release = {
  name: "main",
  emptyClasses: new Set(),
  uuids: true,
  checkDestName: true,
  vmNameLeadingRule: true,
  vmClasses: ALL_CLASSES,
  absentMethods: new Set(DEVICE_R42_ONLY),
  devices: "assignment",
  absentProps: {},
  propTypes: {},
  featureSet: {
    invalidClass: "ProtocolError",
    nonAscii: { qubesClass: "ProtocolError", message: "Feature value contains non-ASCII characters" },
    prohibits: true,
  },
  messages: {
    labelExists: (name) => ({ qubesClass: "QubesLabelInUseError", message: `Label is still in use: '${name}'` }),
    labelNotFound: (ref) => ({ qubesClass: "QubesLabelNotFoundError", message: `Label does not exist: ${ref}` }),
    labelInUse: (name) => ({ qubesClass: "QubesLabelInUseError", message: `Label is still in use: '${name}'` }),
    vmExists: (name) => ({ qubesClass: "QubesVMAlreadyExistsError", message: `Qube already exists: ${name}` }),
    removeInUse: (name) => ({ qubesClass: "QubesVMInUseError", message: `Domain is in use: '${name}';  see 'journalctl -u qubesd -e' in dom0 for details` }),
    poolUnknownDriver: () => "enforce",
    poolMissingOptions: (options) => ({ qubesClass: "QubesException", message: `missing required driver options: ${options.join(", ")}` }),
  },
  freshLabelColourReadable: false,
  createTemplateArg: { refusal: "ProtocolError", lookedUpFirst: false },
  createUnknownLabel: "dropped",
  checksDispvmProperties: true,
  disposableOptions: true,
  dispvmFeatureSkipPrefixes: ["preload-dispvm"],
  dispTemplateInUse: {
    kind: "prop-deps",
    system: "Cannot change template_for_dispvms to False while it is in use by the system by any of these properties: default_dispvm, management_dispvm",
    qube: "Cannot change template_for_dispvms to False while it is the disposable template of a qube by any of these properties: default_dispvm, management_dispvm, template",
  },
};

/** R4.3 (release4.3 of qubes-core-admin): main's API and classes, R4.3's error handling. */
const R43: Release = {
  ...MAIN,
  name: "r4.3",
  emptyClasses: new Set([
    ...MAIN_ONLY_EMPTY,
    "QubesInvalidTagError",
    "QubesInvalidLabelError",
    "QubesInvalidLabelValueError",
    "QubesUnrecognizedDeviceAssignmentMode",
    "QubesVolumeCopyTokenNotFoundError",
    "QubesBackupProfileNotFoundError",
  ]),
  // qubes/vm/adminvm.py and qubes/app.py of release4.3 have no maxmem/no_cpus properties.
  absentProps: { AdminVM: ["maxmem"], Qubes: ["maxmem", "no_cpus"] },
  featureSet: { invalidClass: "QubesValueError", nonAscii: null, prohibits: true },
  messages: {
    ...MAIN.messages,
    // qubes/api/admin.py (release4.3) label_create / label_get / label_remove, _vm_create, pool_add.
    labelExists: () => ({ qubesClass: "QubesValueError", message: "label already exists" }),
    labelNotFound: () => ({ qubesClass: "QubesValueError", message: "" }),
    labelInUse: () => ({ qubesClass: "QubesException", message: "label still in use" }),
    vmExists: (name) => ({ qubesClass: "QubesValueError", message: `VM ${name} already exists` }),
    poolUnknownDriver: (driver) => ({ qubesClass: "QubesException", message: `unexpected driver name: ${driver}` }),
  },
  freshLabelColourReadable: true,
  createTemplateArg: { refusal: "QubesValueError", lookedUpFirst: true },
  createUnknownLabel: "not-found",
  checksDispvmProperties: false,
  // The message is a one-element tuple (a trailing comma in dvmtemplate.py), sent as its repr.
  dispTemplateInUse: {
    kind: "dispvms",
    message: "('Cannot change template_for_dispvms to False while there are some disposables based on this disposable template',)",
  },
};

const R42_ABSENT_PER_QUBE = ["devices_denied", "stubdom_uuid", "bootmode"];

/** R4.2 (release4.2 of qubes-core-admin): the older API, no RemoteVM, fewer properties. */
const R42: Release = {
  ...R43,
  name: "r4.2",
  uuids: false,
  checkDestName: false,
  vmNameLeadingRule: false,
  vmClasses: ALL_CLASSES.filter((c) => c !== "RemoteVM"),
  absentMethods: new Set([
    "admin.vm.Create.RemoteVM",
    "admin.vm.CreateInPool.RemoteVM",
    "admin.vm.Resume",
    "admin.vm.Suspend",
    "admin.vm.notes.Get",
    "admin.vm.notes.Set",
    "admin.vm.device.denied.Add",
    "admin.vm.device.denied.List",
    "admin.vm.device.denied.Remove",
    ...DEVICE_R43_ONLY,
  ]),
  devices: "persistent",
  absentProps: {
    ...Object.fromEntries(QUBE_CLASSES.map((c) => [c, R42_ABSENT_PER_QUBE])),
    TemplateVM: [...R42_ABSENT_PER_QUBE, "appvm_default_bootmode"],
    DispVM: [...R42_ABSENT_PER_QUBE, "is_preload"],
    AdminVM: ["devices_denied", "maxmem"],
    Qubes: ["maxmem", "no_cpus"],
  },
  // qubes/vm/qubesvm.py (release4.2): xid and stubdom_xid are declared with type=str.
  propTypes: { xid: "str", stubdom_xid: "str" },
  featureSet: { invalidClass: null, nonAscii: null, prohibits: false },
  messages: {
    ...R43.messages,
    // qubes/exc.py (release4.2) QubesVMInUseError: no space after the ';'.
    removeInUse: (name) => ({ qubesClass: "QubesVMInUseError", message: `Domain is in use: '${name}';see 'journalctl -u qubesd -e' in dom0 for details` }),
    poolMissingOptions: () => null,
  },
  disposableOptions: false,
  dispvmFeatureSkipPrefixes: [],
  dispTemplateInUse: {
    kind: "dispvms",
    message: "Cannot change template_for_dispvms to False while there are some DispVMs based on this DVM template",
  },
};

export const RELEASES: Readonly<Record<SimRelease, Release>> = { "r4.2": R42, "r4.3": R43, main: MAIN };

export const releaseOf = (name: SimRelease): Release => RELEASES[name];
