// The JSON Schema of the config file, built from the catalog so that editors (through the
// yaml-language-server comment), ajv and the validator agree on every key and type. It checks
// structure and types only; Qubes' naming and value rules live in the validator, which can say
// them in qubesd's words. schemas/qubes-iac.schema.json is this object, written out by a test.

import { QUBE_CLASSES, type QubeClass } from "../model/desired.js";
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

export function buildSchema(): Schema {
  return {
    $schema: "http://json-schema.org/draft-07/schema#",
    $id: "https://qubes-iac.invalid/schemas/qubes-iac.schema.json",
    title: "qubes-iac configuration, version 1",
    description: "Desired state of a Qubes OS system: labels, pools, global properties and qubes. See docs/config.md.",
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
    },
    definitions: {
      qube,
      pool,
      firewallRule,
      volume,
      propertiesAnyClass: qubePropertiesSchema(undefined),
      ...Object.fromEntries(QUBE_CLASSES.map((cls) => [`properties${cls}`, qubePropertiesSchema(cls)])),
    },
  };
}
