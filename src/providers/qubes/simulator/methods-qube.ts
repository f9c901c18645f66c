// Per-qube and global configuration methods: properties (admin.property.*, admin.vm.property.*),
// labels, features, tags, firewall and notes. Validation and messages follow qubesd HEAD.

import { method, type Call, type MethodSpec, type Shape } from "./call.js";
import { isAdminVm } from "./call.js";
import { emptyReply, permissionDenied, protocolError, qubesError } from "./errors.js";
import {
  APP,
  addTag,
  ctxFor,
  deleteFeature,
  lookupLabel,
  refused,
  formatGet,
  formatGetAll,
  formatGetDefault,
  lookupProp,
  qubeHolder,
  readProp,
  removeTag,
  resetProp,
  setFeature,
  setProp,
} from "./model.js";
import { featureWithNetvm, featureWithTemplate, propTable, type Holder } from "./properties.js";
import type { Label, Qube } from "./state.js";
import { tagCreatedBy } from "./methods-vm.js";
import {
  checkFeatureName,
  checkFeatureValue,
  checkLabelColour,
  checkLabelName,
  checkTagName,
  formatFirewallRule,
  parseFirewallRule,
  PROHIBITED_FEATURES,
} from "../../../model/qubes-rules.js";
import { MAX_NOTES_BYTES, sanitizeNotes } from "../../../model/volume-rules.js";

const MAX_DEFAULT_LABEL = 8;

const READ = (arg: MethodSpec["arg"]): Shape => ({ dest: "any", arg, payload: "none", mutates: false });

// ---------------------------------------------------------------------------------------------
// Properties: the same handlers serve admin.property.* (dest dom0, the Qubes object) and
// admin.vm.property.* (the destination qube).

function propertyMethods(prefix: string, holderOf: (call: Call) => Holder, dest: MethodSpec["dest"]): Record<string, MethodSpec> {
  const r = (arg: MethodSpec["arg"]): Shape => ({ dest, arg, payload: "none", mutates: false });
  return {
    [`${prefix}.List`]: method(r("none"), (call) =>
      propTable(holderOf(call), call.world.release)
        .list.map((d) => `${d.name}\n`)
        .join(""),
    ),
    [`${prefix}.Get`]: method(r("required"), (call) => {
      const h = holderOf(call);
      return formatGet(call.world, h, lookupProp(call.world, h, call.arg));
    }),
    [`${prefix}.GetAll`]: method(r("none"), (call) => formatGetAll(call.world, holderOf(call))),
    [`${prefix}.GetDefault`]: method(r("required"), (call) => {
      const h = holderOf(call);
      return formatGetDefault(call.world, h, lookupProp(call.world, h, call.arg));
    }),
    [`${prefix}.Help`]: method(r("required"), (call) => lookupProp(call.world, holderOf(call), call.arg).help),
    [`${prefix}.Set`]: method({ dest, arg: "required", payload: "optional", mutates: true }, (call) => {
      const h = holderOf(call);
      setProp(call.world, h, lookupProp(call.world, h, call.arg), call.payload, call.emit);
      return null;
    }),
    [`${prefix}.Reset`]: method({ dest, arg: "required", payload: "none", mutates: true }, (call) => {
      const h = holderOf(call);
      resetProp(call.world, h, lookupProp(call.world, h, call.arg), call.emit);
      return null;
    }),
  };
}

// ---------------------------------------------------------------------------------------------
// Labels

/** The label the argument names; the refusal for an unknown one is the release's (label.Get/Index/Remove). */
function labelArg(call: Call): Label {
  const label = lookupLabel(call.world, call.arg);
  if (!label) throw refused(call.world.release.messages.labelNotFound(call.arg));
  return label;
}

const labelMethods: Record<string, MethodSpec> = {
  "admin.label.List": method({ dest: "adminvm", arg: "none", payload: "none", mutates: false }, (call) =>
    call.world.labels.map((l) => `${l.name}\n`).join(""),
  ),
  "admin.label.Get": method({ dest: "adminvm", arg: "required", payload: "none", mutates: false }, (call) => {
    const label = labelArg(call);
    if (!call.world.release.freshLabelColourReadable && call.world.runtime.freshLabels.has(label.name)) {
      throw emptyReply("colour of a label created in this lifetime is still bytes");
    }
    return label.color;
  }),
  "admin.label.Index": method({ dest: "adminvm", arg: "required", payload: "none", mutates: false }, (call) =>
    String(labelArg(call).index),
  ),
  "admin.label.Create": method({ dest: "adminvm", arg: "required", payload: "required", mutates: true }, (call) => {
    const { world, arg } = call;
    const nameError = checkLabelName(arg, true);
    if (nameError) throw qubesError("QubesInvalidLabelError", nameError);
    if (world.labels.some((l) => l.name === arg)) throw refused(world.release.messages.labelExists(arg));
    const colour = Buffer.from(call.payload).toString("latin1");
    const colourError = checkLabelColour(colour);
    if (colourError) throw qubesError("QubesInvalidLabelValueError", colourError);
    const index = Math.max(MAX_DEFAULT_LABEL, ...world.labels.map((l) => l.index)) + 1;
    world.labels.push({ index, name: arg, color: colour });
    world.runtime.freshLabels.add(arg);
    return null;
  }),
  "admin.label.Remove": method({ dest: "adminvm", arg: "required", payload: "none", mutates: true }, (call) => {
    const { world } = call;
    const label = labelArg(call);
    if (label.index <= MAX_DEFAULT_LABEL) throw protocolError("Can only remove custom labels");
    for (const q of world.qubes.values()) {
      if (readProp(world, qubeHolder(q), "label") === label.name) {
        throw refused(world.release.messages.labelInUse(label.name));
      }
    }
    world.labels = world.labels.filter((l) => l !== label);
    world.runtime.freshLabels.delete(label.name);
    return null;
  }),
};

// ---------------------------------------------------------------------------------------------
// Features

const notSet = (q: Qube, feature: string) => qubesError("QubesFeatureNotFoundError", `Feature not set for domain ${q.name}: ${feature}`);

function featureCheck(lookup: (call: Call) => string | undefined): MethodSpec {
  return method(READ("required"), (call) => {
    const v = lookup(call);
    if (v === undefined) throw notSet(call.dest, call.arg);
    return v;
  });
}

const ctx = (call: Call) => ctxFor(call.world, qubeHolder(call.dest));

const dom0Of = (call: Call): Qube | undefined => [...call.world.qubes.values()].find(isAdminVm);

const featureMethods: Record<string, MethodSpec> = {
  "admin.vm.feature.List": method(READ("none"), (call) => [...call.dest.features.keys()].map((f) => `${f}\n`).join("")),
  "admin.vm.feature.Get": featureCheck((call) => call.dest.features.get(call.arg)),
  "admin.vm.feature.CheckWithTemplate": featureCheck((call) => featureWithTemplate(ctx(call), call.dest, call.arg)),
  "admin.vm.feature.CheckWithNetvm": featureCheck((call) => featureWithNetvm(ctx(call), call.dest, call.arg)),
  "admin.vm.feature.CheckWithAdminVM": featureCheck(
    (call) => call.dest.features.get(call.arg) ?? dom0Of(call)?.features.get(call.arg),
  ),
  "admin.vm.feature.CheckWithTemplateAndAdminVM": featureCheck(
    (call) => featureWithTemplate(ctx(call), call.dest, call.arg) ?? dom0Of(call)?.features.get(call.arg),
  ),
  // qubes/api/admin.py vm_feature_set: the payload is decoded as ASCII first, then (main, R4.3)
  // the name and the value are checked; R4.2 checks neither.
  "admin.vm.feature.Set": method({ dest: "any", arg: "required", payload: "optional", mutates: true }, (call) => {
    const rules = call.world.release.featureSet;
    if (call.payload.some((b) => b > 0x7f)) {
      throw rules.nonAscii ? refused(rules.nonAscii) : emptyReply("feature value is not ASCII (UnicodeDecodeError)");
    }
    const value = Buffer.from(call.payload).toString("latin1");
    if (rules.invalidClass !== null) {
      const error = checkFeatureName(call.arg) ?? checkFeatureValue(call.arg, value);
      if (error) throw qubesError(rules.invalidClass, error);
    }
    if (rules.prohibits && PROHIBITED_FEATURES.has(call.arg)) throw permissionDenied("changing this feature is prohibited by qubes.ext.admin.AdminExtension");
    setFeature(call.dest, call.arg, value, call.emit);
    return null;
  }),
  "admin.vm.feature.Remove": method({ dest: "any", arg: "required", payload: "none", mutates: true }, (call) => {
    if (call.world.release.featureSet.prohibits && PROHIBITED_FEATURES.has(call.arg)) throw permissionDenied("changing this feature is prohibited by qubes.ext.admin.AdminExtension");
    if (!call.dest.features.has(call.arg)) throw notSet(call.dest, call.arg);
    deleteFeature(call.dest, call.arg, call.emit);
    return null;
  }),
};

// ---------------------------------------------------------------------------------------------
// Tags

function validTag(call: Call): string {
  const err = checkTagName(call.arg);
  if (err) throw qubesError("QubesInvalidTagError", err);
  return call.arg;
}

function guardCreatedBy(call: Call, tag: string): void {
  if (tag.startsWith("created-by-") && !isAdminVm(call.src)) {
    throw permissionDenied("changing this tag is prohibited by qubes.ext.admin.AdminExtension");
  }
}

const tagMethods: Record<string, MethodSpec> = {
  "admin.vm.tag.List": method(READ("none"), (call) =>
    [...call.dest.tags]
      .sort()
      .map((t) => `${t}\n`)
      .join(""),
  ),
  "admin.vm.tag.Get": method(READ("required"), (call) => (call.dest.tags.has(validTag(call)) ? "1" : "0")),
  "admin.vm.tag.Set": method({ dest: "any", arg: "required", payload: "none", mutates: true }, (call) => {
    const tag = validTag(call);
    guardCreatedBy(call, tag);
    if (tag.startsWith("created-by-")) tagCreatedBy(call, call.dest, tag);
    else addTag(call.dest, tag, call.emit);
    return null;
  }),
  "admin.vm.tag.Remove": method({ dest: "any", arg: "required", payload: "none", mutates: true }, (call) => {
    const tag = validTag(call);
    guardCreatedBy(call, tag);
    if (!call.dest.tags.has(tag)) throw qubesError("QubesTagNotFoundError", `Tag not set for domain ${call.dest.name}: ${tag}`);
    removeTag(call.dest, tag, call.emit);
    return null;
  }),
};

// ---------------------------------------------------------------------------------------------
// Firewall and notes

/** Rules still in force at `nowSeconds`: expired ones are dropped from Get, as qubesd does. */
function activeRules(rules: string[], nowSeconds: number): string[] {
  return rules.filter((line) => {
    const m = / expire=([0-9]+)/.exec(line);
    return !m || Number(m[1]) > nowSeconds;
  });
}

const firewallMethods: Record<string, MethodSpec> = {
  "admin.vm.firewall.Get": method({ dest: "not-adminvm", arg: "none", payload: "none", mutates: false }, (call) =>
    activeRules(call.dest.firewall ?? ["action=accept"], call.services.now() / 1000)
      .map((r) => `${r}\n`)
      .join(""),
  ),
  "admin.vm.firewall.Set": method({ dest: "not-adminvm", arg: "none", payload: "required", mutates: true }, (call) => {
    if (call.payload.some((b) => b > 0x7f)) throw protocolError("Rules contains non-ASCII characters");
    const text = Buffer.from(call.payload).toString("latin1");
    const rules: string[] = [];
    for (const line of text.split(/\r\n|[\n\r\v\f\x1c\x1d\x1e]/).filter((l, i, all) => i < all.length - 1 || l !== "")) {
      const parsed = parseFirewallRule(line);
      // Rule.from_api_string raises a bare ValueError: the caller gets an empty reply.
      if (!parsed.ok) throw emptyReply(`firewall rule ${JSON.stringify(line)}: ${parsed.error}`);
      rules.push(formatFirewallRule(parsed.rule));
    }
    call.dest.firewall = rules;
    call.emit(call.dest.name, "firewall-changed");
    return null;
  }),
  "admin.vm.firewall.Reload": method({ dest: "not-adminvm", arg: "none", payload: "none", mutates: false }, (call) => {
    call.emit(call.dest.name, "firewall-changed");
    return null;
  }),
};

// qubes/api/admin.py vm_notes_get / vm_notes_set (release4.3, main; R4.2 has no notes: releases.ts).
const notesMethods: Record<string, MethodSpec> = {
  "admin.vm.notes.Get": method({ dest: "not-adminvm", arg: "none", payload: "none", mutates: false }, (call) => call.dest.notes),
  "admin.vm.notes.Set": method({ dest: "not-adminvm", arg: "none", payload: "optional", mutates: true }, (call) => {
    if (call.payload.length === 0 && !call.world.release.notesEmptyPayload) throw protocolError("expected payload");
    if (call.payload.length > MAX_NOTES_BYTES) throw protocolError(`Maximum note size is ${MAX_NOTES_BYTES} bytes (${call.payload.length} bytes received)`);
    let text: string;
    try {
      text = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(call.payload);
    } catch {
      throw protocolError("Unable to sanitise qube notes: 'utf-8' codec can't decode the payload");
    }
    // libqubes-pure's allowlist, plus tab and newline: every other code point becomes `_`.
    call.dest.notes = sanitizeNotes(text);
    return null;
  }),
};

export function qubeMethods(): Record<string, MethodSpec> {
  return {
    ...propertyMethods("admin.property", () => APP, "adminvm"),
    ...propertyMethods("admin.vm.property", (call) => qubeHolder(call.dest), "any"),
    ...labelMethods,
    ...featureMethods,
    ...tagMethods,
    ...firewallMethods,
    ...notesMethods,
  };
}
