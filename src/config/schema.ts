// The JSON Schema of the config file, built from the catalog so that editors (through the
// yaml-language-server comment), ajv and the validator agree on every key and type. It checks
// structure and types only; Qubes' naming and value rules live in the validator, which can say
// them in qubesd's words. schemas/qubes-iac.schema.json is this object, written out by a test.

import { QUBE_CLASSES, type QubeClass } from "../model/desired.js";
import { CONFIG_MODES, DEVICE_CLASSES } from "../model/devices.js";
import { GLOBAL_PROPERTIES, POOL_DRIVERS, QUBE_PROPERTIES, VOLUME_NAMES, classesOf, type PoolParam, type PropertySpec } from "./catalog.js";

type Schema = { [key: string]: unknown };

export const DEFAULT_MARKER = "*default*";
const SCALAR = ["string", "integer", "boolean", "null"];

function propertySchema(spec: PropertySpec): Schema {
  switch (spec.type) {
    case "bool":
      return { description: `${spec.doc} "${DEFAULT_MARKER}" resets it.`, anyOf: [{ type: "boolean" }, { const: DEFAULT_MARKER }] };
    case "int":
      return { description: `${spec.doc} "${DEFAULT_MARKER}" resets it.`, anyOf: [{ type: "integer" }, { const: DEFAULT_MARKER }] };
    case "str":
      return { description: `${spec.doc} "${DEFAULT_MARKER}" resets it.`, type: "string" };
    case "vm":
      return { description: `${spec.doc} "${DEFAULT_MARKER}" resets it.`, type: ["string", "null"] };
    default: {
      const never: never = spec.type;
      return never;
    }
  }
}

function qubePropertiesSchema(cls: QubeClass | undefined): Schema {
  const props = Object.entries(QUBE_PROPERTIES).filter(([, spec]) => cls === undefined || classesOf(spec).includes(cls));
  return {
    description:
      `Qube properties (qvm-prefs)${cls ? ` of a ${cls}` : ""}. null means "none" for properties that hold a qube; ` +
      `"${DEFAULT_MARKER}" resets a property to its default. Unknown names are passed through with a warning.`,
    type: "object",
    properties: Object.fromEntries(props.map(([name, spec]) => [name, propertySchema(spec)])),
    additionalProperties: { type: SCALAR },
  };
}

function poolParamSchema(p: PoolParam): Schema {
  const type = p.type === "str" ? "string" : p.type === "int" ? "integer" : "boolean";
  return { description: p.doc, type };
}

const firewallRule: Schema = {
  description: "One firewall rule; the first rule that matches decides, and anything unmatched is dropped.",
  type: "object",
  required: ["action"],
  additionalProperties: false,
  properties: {
    action: { description: "accept or drop the matching traffic.", enum: ["accept", "drop"] },
    dsthost: { description: "Destination: IPv4 or IPv6 address with optional /prefix, or a host name (a-z 0-9 . _ -).", type: "string" },
    proto: { description: "Protocol: tcp, udp or icmp.", enum: ["tcp", "udp", "icmp"] },
    dstports: { description: "Destination port or range N-M (only with proto tcp or udp).", type: ["integer", "string"] },
    icmptype: { description: "ICMP type 0-255 (only with proto icmp).", type: "integer" },
    specialtarget: { description: "dns: the DNS servers the qube is given.", enum: ["dns"] },
    expire: { description: "UNIX time after which Qubes drops the rule.", type: "integer" },
    comment: { description: "Free text: letters, digits, spaces and :;,./-_[]", type: "string" },
  },
};

const volume: Schema = {
  description: "A volume of the qube.",
  type: "object",
  required: ["size"],
  additionalProperties: false,
  properties: {
    size: {
      description: "Size in bytes (integer) or with a binary unit: 512MiB, 20GiB, 1TiB. Sizes only grow.",
      type: ["integer", "string"],
    },
  },
};

const guestAgent: Schema = {
  description:
    "How to reach the guest agent: {socket: PATH} (the host side of its channel), {command: [PROGRAM, ARG…]} (stdin/stdout carry the protocol), " +
    "or {qube: NAME, qrexec: SERVICE} (qrexec-client-vm; qrexec defaults to qubes-iac.GuestAgent). Exactly one of socket, command or qube. docs/guests.md sets each up.",
  type: "object",
  additionalProperties: false,
  properties: {
    socket: { description: "Unix socket: the host side of the agent's virtio-serial channel.", type: "string" },
    command: { description: "Program and arguments (no shell) whose stdin/stdout carry the protocol.", type: "array", items: { type: "string" } },
    qube: { description: "Qube whose qrexec service bridges to its local qemu-ga.", type: "string" },
    qrexec: { description: "qrexec service name (default qubes-iac.GuestAgent).", type: "string" },
  },
};

const guestWait: Schema = {
  description: 'Wait for the agent: "not answering yet" is pending until the timeout, then an error. Without wait: one bounded attempt.',
  type: "object",
  required: ["timeout"],
  additionalProperties: false,
  properties: { timeout: { description: "Seconds (integer) or a duration: 90s, 2m, 1h (at most 1h).", type: ["integer", "string"] } },
};

const guestFiles: Schema = {
  description:
    "Guest files by absolute path -> content: a string (written as UTF-8), or {source: FILE} (a file next to this config file). " +
    "Content only: the agent cannot set owners or modes, rename or delete. Plans show size and SHA-256 prefix, never the content.",
  type: "object",
  additionalProperties: {
    type: ["string", "object"],
    if: { type: "object" },
    then: {
      required: ["source"],
      additionalProperties: false,
      properties: { source: { description: "Path relative to the directory of this config file, inside it.", type: "string" } },
    },
  },
};

const guestBody = {
  agent: { $ref: "#/definitions/guestAgent" },
  wait: { $ref: "#/definitions/guestWait" },
  files: { $ref: "#/definitions/guestFiles" },
};

const qubeGuest: Schema = {
  description: "The inside of this qube, through its guest agent (default agent: {qube: <this qube>}). The qube must run: its own state keeps its power.",
  type: "object",
  additionalProperties: false,
  properties: guestBody,
};

const guest: Schema = {
  description: "A VM that is not a qube (plain QEMU, libvirt), reached through its guest agent.",
  type: "object",
  required: ["agent"],
  additionalProperties: false,
  properties: {
    ...guestBody,
    state: { description: "running: the agent must answer. shutdown: guest-shutdown after the file writes, waiting for the channel to close. Absent: not managed.", enum: ["running", "shutdown"] },
  },
};

const deviceAssignment: Schema = {
  description:
    "One device assignment, keyed by its address BACKEND:PORT as qvm-device lists it (dom0:00_14.3, sys-usb:2-1). null takes the defaults. See docs/config.md (devices).",
  type: ["object", "null"],
  additionalProperties: false,
  properties: {
    mode: { description: "required (the qube does not start without it; pci and block), auto-attach (default but for pci), or ask (R4.3+).", enum: Object.keys(CONFIG_MODES) },
    options: {
      description: "Options (pci: no-strict-reset, permissive; block: read-only, frontend-dev, devtype): a list of names (each True) or name -> value.",
      type: ["array", "object"],
      items: { type: "string" },
      additionalProperties: { type: ["string", "boolean"] },
    },
    device: {
      description: "R4.3+: which device the port accepts: absent = the one present there when the plan runs (as qvm-device assign), any = whatever is plugged there (a loosening), or a device identity as Available prints it.",
      type: "string",
    },
  },
};

const qube: Schema = {
  description: "A qube. To create it, class, label and (for AppVM and DispVM) template are required; with adopt: true they are optional.",
  type: "object",
  additionalProperties: false,
  properties: {
    class: { description: "Qube class.", enum: [...QUBE_CLASSES] },
    template: { description: "Template of an AppVM (a TemplateVM) or of a DispVM (a disposable template).", type: "string" },
    label: { description: "Label (colour): one of the 8 default labels or one declared under labels.", type: "string" },
    pool: { description: "Storage pool for all volumes at creation (admin.vm.CreateInPool); cannot change later.", type: "string" },
    adopt: { description: "Manage an existing qube that qubes-iac did not create.", type: "boolean" },
    protect: { description: "Never destroy or replace this qube.", type: "boolean" },
    absent: {
      description: "Destroy this qube (one qubes-iac created or adopted), with the same confirmation as any destruction. Dropping an adopted qube from the config only releases it.",
      type: "boolean",
    },
    release: { description: "Let go of this qube without destroying it: qubes-iac removes only its own tag and records.", type: "boolean" },
    state: { description: "Power state to keep: running, halted or paused. Absent: not managed.", enum: ["running", "halted", "paused"] },
    properties: { description: `Qube properties (qvm-prefs); "${DEFAULT_MARKER}" resets one to its default.`, type: "object" },
    features: {
      description: 'Features (qvm-features). A string value is set as is; true is "1", false is "" (Qubes\' convention); null makes sure the feature is absent.',
      type: "object",
      additionalProperties: { type: SCALAR },
    },
    tags: { description: "Tags (letters, digits, _ and -).", type: "array", items: { type: "string" } },
    firewall: {
      description: "The whole ordered rule list; [] allows nothing. Without this key the firewall is not managed.",
      type: "array",
      items: { $ref: "#/definitions/firewallRule" },
    },
    guest: { $ref: "#/definitions/qubeGuest" },
    devices: {
      description: "Device assignments by class; the assignments qubes-iac made and the config no longer lists are removed (never another's). See docs/config.md (devices).",
      type: "object",
      additionalProperties: false,
      properties: Object.fromEntries(DEVICE_CLASSES.map((c) => [c, { type: "object", additionalProperties: { $ref: "#/definitions/deviceAssignment" } }])),
    },
    volumes: {
      description: "Volume sizes.",
      type: "object",
      additionalProperties: false,
      properties: Object.fromEntries(VOLUME_NAMES.map((v) => [v, { $ref: "#/definitions/volume" }])),
    },
  },
  allOf: [
    ...QUBE_CLASSES.map((cls) => ({
      if: { required: ["class"], properties: { class: { const: cls } } },
      then: { properties: { properties: { $ref: `#/definitions/properties${cls}` } } },
    })),
    {
      if: { not: { required: ["class"], properties: { class: { enum: [...QUBE_CLASSES] } } } },
      then: { properties: { properties: { $ref: "#/definitions/propertiesAnyClass" } } },
    },
  ],
};

const pool: Schema = {
  description: "A storage pool: its driver and the driver's parameters.",
  type: "object",
  required: ["driver"],
  properties: { driver: { description: "Pool driver.", type: "string", examples: Object.keys(POOL_DRIVERS) } },
  additionalProperties: { type: ["string", "integer", "boolean"] },
  allOf: Object.entries(POOL_DRIVERS).map(([name, driver]) => ({
    if: { required: ["driver"], properties: { driver: { const: name } } },
    then: {
      description: driver.doc,
      required: ["driver", ...Object.entries(driver.params).filter(([, p]) => p.required).map(([k]) => k)],
      additionalProperties: false,
      properties: { driver: { const: name }, ...Object.fromEntries(Object.entries(driver.params).map(([k, p]) => [k, poolParamSchema(p)])) },
    },
  })),
};

const policyEntry: Schema = {
  description:
    "One policy rule {service, argument?, source, target, action, redirect?, default_target?, user?, autostart?, notify?}, or one include: " +
    "{include: include/NAME}, {include_dir: PATH}, {include_service: include/NAME, service: S, argument?: A}. See docs/config.md (policies).",
  type: "object",
  additionalProperties: false,
  properties: {
    service: { description: "qrexec service name, or * for any.", type: "string" },
    argument: { description: "* (any, the default) or + and the argument (+ alone: no argument).", type: "string" },
    source: { description: "Caller: a qube name, dom0, @anyvm, @adminvm, @tag:T, @type:T, @dispvm:DVM, @dispvm:@tag:T, * (uuid:… from R4.3).", type: "string" },
    target: { description: "Requested target: as source, plus @default and @dispvm.", type: "string" },
    action: { description: "allow, deny or ask.", enum: ["allow", "deny", "ask"] },
    redirect: { description: "qrexec's target= parameter (allow, ask): where the call goes whatever the caller asked: a qube, @adminvm, @dispvm, @dispvm:DVM.", type: "string" },
    default_target: { description: "ask: the preselected choice (a qube, @adminvm, @dispvm, @dispvm:DVM).", type: "string" },
    user: { description: "allow, ask: the user the service runs as in the target.", type: "string" },
    autostart: { description: "allow, ask: start the target if it is not running (default true).", type: "boolean" },
    notify: { description: "Show a notification (default: true for deny, false otherwise).", type: "boolean" },
    include: { description: "!include PATH: the rules of an include file (include/NAME) at this place.", type: "string" },
    include_dir: { description: "!include-dir PATH: the .policy files of a directory at this place.", type: "string" },
    include_service: { description: "!include-service SERVICE ARGUMENT PATH: an include file of SOURCE TARGET ACTION lines, for one service.", type: "string" },
  },
};

const policyFileBody = (include: boolean): Schema => ({
  description: include
    ? "An include file of /etc/qubes/policy.d/include/ (policy.include.*): a list of rules, or {rules|text, syntax?, adopt?} or {absent: true} or {release: true}."
    : "A policy file of /etc/qubes/policy.d (NAME.policy): a list of rules, or {rules|text, adopt?} or {absent: true} or {release: true}.",
  type: ["array", "object"],
  allOf: [
    { if: { type: "array" }, then: { items: { $ref: "#/definitions/policyEntry" } } },
    { if: { type: "object" }, then: policyMapForm(include) },
  ],
});

const policyMapForm = (include: boolean): Schema => ({
  additionalProperties: false,
  properties: {
    rules: { description: "The rules, in order (the first that matches decides).", type: "array", items: { $ref: "#/definitions/policyEntry" } },
    text: { description: "The file's text as qrexec reads it (the header qubes-iac writes is added before it).", type: "string" },
    adopt: { description: "Take over an existing file that qubes-iac did not create.", type: "boolean" },
    absent: { description: "Remove the file (one qubes-iac created or adopted).", type: "boolean" },
    release: { description: "Let go of the file without changing it.", type: "boolean" },
    ...(include
      ? { syntax: { description: "How qrexec reads the file: policy (by !include, SERVICE ARGUMENT SOURCE TARGET ACTION lines) or service (by !include-service, SOURCE TARGET ACTION lines). Rule lists: inferred from whether the rules have a service.", enum: ["policy", "service"] } }
      : {}),
  },
});

export function buildSchema(): Schema {
  return {
    $schema: "http://json-schema.org/draft-07/schema#",
    $id: "https://qubes-iac.invalid/schemas/qubes-iac.schema.json",
    title: "qubes-iac configuration, version 1",
    description: "Desired state of a Qubes OS system: labels, pools, global properties and qubes, and guests through their agents. See docs/config.md.",
    type: "object",
    additionalProperties: false,
    patternProperties: {
      "^x-": { description: "Ignored by qubes-iac: a place for YAML anchors to reuse with aliases and merge keys (<<: *name)." },
    },
    properties: {
      version: { description: "Format version of this file: 1.", const: 1 },
      owner: {
        description: "Name of this configuration (letters, digits, _ and -): qubes-iac tags what it owns managed-by-<owner>.",
        type: "string",
      },
      labels: {
        description: 'Custom labels: name -> colour "0xrrggbb". The 8 default labels always exist and are not declared here.',
        type: "object",
        additionalProperties: { description: 'Colour "0xrrggbb" (quoted or not).', type: ["string", "integer"] },
      },
      pools: { description: "Storage pools: name -> driver and parameters.", type: "object", additionalProperties: { $ref: "#/definitions/pool" } },
      properties: {
        description: `Global properties (qubes-prefs). null means "none" for properties that hold a qube; "${DEFAULT_MARKER}" resets to the default.`,
        type: "object",
        properties: Object.fromEntries(Object.entries(GLOBAL_PROPERTIES).map(([name, spec]) => [name, propertySchema(spec)])),
        additionalProperties: { type: SCALAR },
      },
      qubes: { description: "Qubes by name.", type: "object", additionalProperties: { $ref: "#/definitions/qube" } },
      policies: {
        description: "qrexec policy files of /etc/qubes/policy.d by name (without .policy): rules or text. See docs/config.md (policies).",
        type: "object",
        additionalProperties: { $ref: "#/definitions/policyFile" },
      },
      policy_includes: {
        description: "Include files of /etc/qubes/policy.d/include by name, for !include and !include-service lines. See docs/config.md (policies).",
        type: "object",
        additionalProperties: { $ref: "#/definitions/policyInclude" },
      },
      guests: {
        description: "VMs that are not qubes, by name (letters, digits, _ and -), reached through their guest agents. See docs/guests.md.",
        type: "object",
        additionalProperties: { $ref: "#/definitions/guest" },
      },
    },
    definitions: {
      qube,
      pool,
      firewallRule,
      deviceAssignment,
      volume,
      qubeGuest,
      guest,
      guestAgent,
      guestWait,
      guestFiles,
      policyEntry,
      policyFile: policyFileBody(false),
      policyInclude: policyFileBody(true),
      propertiesAnyClass: qubePropertiesSchema(undefined),
      ...Object.fromEntries(QUBE_CLASSES.map((cls) => [`properties${cls}`, qubePropertiesSchema(cls)])),
    },
  };
}
