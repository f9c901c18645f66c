// What the config knows of Qubes' property and pool vocabulary: every settable qube property with
// its type and the classes that have it, the properties that cannot be set and why, the global
// properties, and the storage pool drivers with their parameters. Data only (from the reference's
// §5 and the recorded qubesd fixture); both the JSON Schema and the validator are built from it.

import type { QubeClass } from "../model/desired.js";

export type PropertyType = "bool" | "int" | "str" | "vm";

/** What a qube named by a vm-typed property must be, for the checks the config alone can decide. */
export type ReferenceRole = "netvm" | "dispvm-template" | "template";

export type PropertySpec = {
  type: PropertyType;
  /** Classes that have the property; every class when absent. */
  classes?: readonly QubeClass[];
  role?: ReferenceRole;
  /** Names a storage pool (global default_pool*). */
  pool?: true;
  /** One line for editors and docs/config.md. */
  doc: string;
};

export const QUBE_PROPERTIES: Readonly<Record<string, PropertySpec>> = {
  netvm: { type: "vm", role: "netvm", doc: "Qube providing network (null: no network). Default: global default_netvm (TemplateVM: none)." },
  provides_network: { type: "bool", doc: "Whether other qubes may use this one as their netvm." },
  memory: { type: "int", doc: "Initial memory in MiB (> 0)." },
  maxmem: { type: "int", doc: "Maximum memory in MiB for memory balancing (0 disables balancing)." },
  vcpus: { type: "int", doc: "Number of virtual CPUs (> 0)." },
  virt_mode: { type: "str", doc: "Virtualisation mode: pvh, hvm or pv." },
  kernel: { type: "str", doc: "Kernel from dom0's kernel pool (empty string: the qube's own kernel)." },
  kernelopts: { type: "str", doc: "Kernel command line (at most 512 characters)." },
  bootmode: { type: "str", doc: "Boot mode name (default: default)." },
  debug: { type: "bool", doc: "Debug mode (shows the console, keeps the qube on crashes)." },
  default_user: { type: "str", doc: "User that runs applications (letters, digits and _-+,.)." },
  qrexec_timeout: { type: "int", doc: "Seconds to wait for qrexec at start (> 0)." },
  shutdown_timeout: { type: "int", doc: "Seconds to wait for a clean shutdown (> 0)." },
  autostart: { type: "bool", doc: "Start the qube when dom0 boots." },
  include_in_backups: { type: "bool", doc: "Include the qube in the default backup." },
  backup_timestamp: { type: "int", doc: "Time of the last backup (seconds since the epoch)." },
  installed_by_rpm: { type: "bool", doc: "Installed by the package manager (such qubes cannot be removed)." },
  default_dispvm: { type: "vm", role: "dispvm-template", doc: "Disposable template used for this qube's disposables (null: none)." },
  management_dispvm: { type: "vm", role: "dispvm-template", doc: "Disposable template used to manage this qube (null: none)." },
  guivm: { type: "vm", doc: "Qube providing the GUI (null: none)." },
  audiovm: { type: "vm", doc: "Qube providing audio (null: none)." },
  keyboard_layout: { type: "str", doc: "Keyboard layout as layout+variant+options, e.g. us++ or de+nodeadkeys+." },
  devices_denied: { type: "str", doc: "Device interfaces never attached, as concatenated 7-character codes." },
  stubdom_mem: { type: "int", doc: "Memory of the device-model stub domain in MiB (> 0)." },
  ip: { type: "str", doc: "IPv4 address (default computed from the netvm)." },
  ip6: { type: "str", doc: "IPv6 address (used with the ipv6 feature)." },
  mac: { type: "str", doc: "MAC address, xx:xx:xx:xx:xx:xx." },
  template_for_dispvms: { type: "bool", classes: ["AppVM", "StandaloneVM"], doc: "Whether this qube is a disposable template." },
  appvm_default_bootmode: { type: "str", classes: ["TemplateVM"], doc: "Boot mode that qubes based on this template use by default." },
  auto_cleanup: { type: "bool", classes: ["DispVM"], doc: "Remove the disposable when it shuts down." },
};

/** Qube properties that exist but cannot be set from a config, with what to do instead. */
export const UNSETTABLE_QUBE_PROPERTIES: Readonly<Record<string, string>> = {
  name: "the qube's name is its key under `qubes` (Qubes cannot rename a qube)",
  qid: "qid is assigned by Qubes and cannot change",
  uuid: "uuid is assigned by Qubes and cannot change",
  dispid: "dispid is assigned by Qubes and cannot change",
  label: "set the label with the qube's own `label:` key",
  template: "set the template with the qube's own `template:` key",
  klass: "the class is set with the qube's own `class:` key and cannot change",
  icon: "icon is computed by Qubes from the label and class",
  updateable: "updateable is computed by Qubes from the class",
  dns: "dns is computed by Qubes from the netvm",
  gateway: "gateway is computed by Qubes from the netvm",
  gateway6: "gateway6 is computed by Qubes from the netvm",
  visible_ip: "visible_ip is computed by Qubes",
  visible_ip6: "visible_ip6 is computed by Qubes",
  visible_gateway: "visible_gateway is computed by Qubes",
  visible_gateway6: "visible_gateway6 is computed by Qubes",
  visible_netmask: "visible_netmask is computed by Qubes",
  xid: "xid is the running domain's id, set by Xen",
  stubdom_xid: "stubdom_xid is set by Xen",
  stubdom_uuid: "stubdom_uuid is set by Xen",
  start_time: "start_time is set when the qube starts",
  is_preload: "is_preload is managed by Qubes",
};

export const GLOBAL_PROPERTIES: Readonly<Record<string, PropertySpec>> = {
  check_updates_vm: { type: "bool", doc: "Check for updates inside qubes." },
  clockvm: { type: "vm", doc: "Qube that synchronises the clock (null: none)." },
  default_audiovm: { type: "vm", doc: "Default qube providing audio (null: none)." },
  default_dispvm: { type: "vm", role: "dispvm-template", doc: "Default disposable template (null: none)." },
  default_guivm: { type: "vm", doc: "Default qube providing the GUI (null: none)." },
  default_kernel: { type: "str", doc: "Default kernel (a name from dom0's kernel pool)." },
  default_netvm: { type: "vm", role: "netvm", doc: "Default netvm of qubes that do not set one (null: none)." },
  default_pool: { type: "str", pool: true, doc: "Default storage pool." },
  default_pool_kernel: { type: "str", pool: true, doc: "Default pool for kernel volumes." },
  default_pool_private: { type: "str", pool: true, doc: "Default pool for private volumes." },
  default_pool_root: { type: "str", pool: true, doc: "Default pool for root volumes." },
  default_pool_volatile: { type: "str", pool: true, doc: "Default pool for volatile volumes." },
  default_qrexec_timeout: { type: "int", doc: "Default qrexec_timeout in seconds." },
  default_shutdown_timeout: { type: "int", doc: "Default shutdown_timeout in seconds." },
  default_template: { type: "vm", role: "template", doc: "Template used when a qube is created without one (null: none)." },
  management_dispvm: { type: "vm", role: "dispvm-template", doc: "Default disposable template for managing qubes (null: none)." },
  stats_interval: { type: "int", doc: "Seconds between qube statistics events." },
  updatevm: { type: "vm", doc: "Qube that downloads dom0 updates (null: none)." },
};

export const UNSETTABLE_GLOBAL_PROPERTIES: Readonly<Record<string, string>> = {
  maxmem: "maxmem is the host's memory, read-only",
  no_cpus: "no_cpus is the host's CPU count, read-only",
};

/** Classes that have a qube property (every class when the spec lists none). */
export const classesOf = (spec: PropertySpec): readonly QubeClass[] => spec.classes ?? ["AppVM", "TemplateVM", "StandaloneVM", "DispVM"];

export type PoolParam = { type: "str" | "int" | "bool"; required?: true; doc: string };
export type PoolDriver = { doc: string; params: Readonly<Record<string, PoolParam>> };

const revisionsToKeep: PoolParam = { type: "int", doc: "Volume revisions kept as backups (-1 and up)." };
const ephemeralVolatile: PoolParam = { type: "bool", doc: "Encrypt volatile volumes with an ephemeral key." };

/** Drivers as admin.pool.ListDrivers lists them on the recorded system, with required parameters. */
export const POOL_DRIVERS: Readonly<Record<string, PoolDriver>> = {
  file: {
    doc: "Image files in a directory (the classic varlibqubes driver).",
    params: {
      dir_path: { type: "str", required: true, doc: "Directory holding the images." },
      revisions_to_keep: { ...revisionsToKeep, doc: "Revisions kept (the file driver keeps at most 1)." },
      ephemeral_volatile: ephemeralVolatile,
    },
  },
  "file-reflink": {
    doc: "Image files on a reflink-capable filesystem (btrfs, xfs).",
    params: {
      dir_path: { type: "str", required: true, doc: "Directory holding the images." },
      revisions_to_keep: revisionsToKeep,
      setup_check: { type: "bool", doc: "Check at setup that the filesystem supports reflinks." },
      ephemeral_volatile: ephemeralVolatile,
    },
  },
  lvm_thin: {
    doc: "LVM thin volumes.",
    params: {
      volume_group: { type: "str", required: true, doc: "LVM volume group." },
      thin_pool: { type: "str", required: true, doc: "Thin pool inside the volume group." },
      revisions_to_keep: revisionsToKeep,
      ephemeral_volatile: ephemeralVolatile,
    },
  },
  zfs: {
    doc: "ZFS datasets.",
    params: {
      container: { type: "str", required: true, doc: "ZFS dataset holding the volumes." },
      revisions_to_keep: revisionsToKeep,
      ephemeral_volatile: ephemeralVolatile,
      snap_on_start_forensics: { type: "bool", doc: "Keep snapshots of snap_on_start volumes for forensics." },
    },
  },
  "linux-kernel": {
    doc: "Kernels for qubes (read-only).",
    params: { dir_path: { type: "str", required: true, doc: "Directory of kernel directories." } },
  },
  callback: {
    doc: "A pool wrapped by callbacks from a configuration file.",
    params: { conf_id: { type: "str", required: true, doc: "Identifier in /etc/qubes_callback.json." } },
  },
};

/** Volumes whose size a config may set, per the classes that own a resizable one. */
export const VOLUME_NAMES = ["root", "private", "volatile"] as const;
