// Converts one file's written data (the config as the user wrote it) into the normalised pieces
// of the desired state, checking every name and value against Qubes' rule for that field before
// anything can reach dom0. The one place where written values become typed ones. Values the
// schema already rejected are skipped without a second diagnostic; cross-entry checks are rules.ts.

import {
  DEFAULT_LABELS,
  MAX_REQUEST_BYTES,
  PROHIBITED_FEATURES,
  QREXEC_ARG_RE,
  buildFirewallRule,
  checkFeatureName,
  checkFeatureValue,
  checkLabelColour,
  checkLabelName,
  checkPoolName,
  checkStrPropertyValue,
  checkTagName,
  checkVmName,
  checkVmPropertyRule,
  formatFirewallRule,
} from "../model/qubes-rules.js";
import type { Diagnostic, SourceLocation } from "../model/diagnostics.js";
import { canonicalFirewallRule, canonicalPoolParam, canonicalQubeProperty } from "../model/canonical.js";
import { RESERVED_LABEL_PREFIX } from "../model/ownership.js";
import {
  QUBE_CLASSES,
  type DesiredGuest,
  propertyValueText,
  type DesiredLabel,
  type DesiredPool,
  type DesiredQube,
  type DesiredVolume,
  type PowerState,
  type PropertyValue,
  type QubeClass,
  type QubeField,
  type VolumeName,
} from "../model/desired.js";
import {
  GLOBAL_PROPERTIES,
  POOL_DRIVERS,
  QUBE_PROPERTIES,
  UNSETTABLE_GLOBAL_PROPERTIES,
  UNSETTABLE_QUBE_PROPERTIES,
  VOLUME_NAMES,
  type PropertySpec,
} from "./catalog.js";
import { diagnostic, type ConfigCode } from "./codes.js";
import { normalizeDevices } from "./_devices.js";
import { checkGuestName, normalizeGuest, type GuestContext } from "./_guests.js";
import type { ConfigIO } from "./index.js";
import { childPointer, describePath, locateIn, pointerOf } from "./_paths.js";
import { DEFAULT_MARKER } from "./schema.js";
import { didYouMean } from "./_suggest.js";
import type { WrittenFile } from "./_yaml.js";
import type { DesiredPolicyFile } from "../model/qrexec-policy.js";
import { normalizePolicies } from "./policy/normalize.js";
import type { ReleaseId } from "../model/release.js";

export type Located<T> = { value: T; at: SourceLocation };

/** What one file contributes to the desired state, before files are merged. */
export type ConfigPart = {
  file: string;
  start: SourceLocation;
  /** As written, even when it is not 1: the schema check reports that, and merging must not call it missing. */
  version?: Located<unknown>;
  owner?: Located<string>;
  labels: Map<string, DesiredLabel>;
  pools: Map<string, DesiredPool>;
  properties: Map<string, Located<PropertyValue>>;
  qubes: Map<string, DesiredQube>;
  /** Guests by address: qubes' `guest:` and top-level `guests:`. */
  guests: Map<string, DesiredGuest>;
  /** Policy and include files by address (src/config/policy/normalize.ts). */
  policies: Map<string, DesiredPolicyFile>;
};

/** A management qube's name can be 31 characters: the longest source qubesd may see in a header. */
const LONGEST_SOURCE = "s".repeat(31);
/** qrexec's limit on `service+argument` (MAX_SERVICE_NAME_LEN). */
const QREXEC_MAX_SERVICE = 65000;
const ASCII_LINE_RE = /^[\x20-\x7e]*$/;
const PARAM_KEY_RE = /^[A-Za-z0-9_]+$/;
const PROPERTY_NAME_RE = /^[A-Za-z_][A-Za-z0-9_]*$/;
const encoder = new TextEncoder();

/** Whether one Admin API call with these parts stays within qubesd's and qrexec's limits. */
function fitsOneRequest(method: string, arg: string, dest: string, payload: string): boolean {
  const header = `${method}+${arg} ${LONGEST_SOURCE} name ${dest}\0`;
  return encoder.encode(header).length + encoder.encode(payload).length <= MAX_REQUEST_BYTES && `${method}+${arg}`.length <= QREXEC_MAX_SERVICE;
}

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);
const entriesOf = (v: unknown): Array<[string, unknown]> => (isRecord(v) ? Object.entries(v) : []);

const DEFAULT_LABEL_NAMES: ReadonlySet<string> = new Set(DEFAULT_LABELS.map(([n]) => n));
const QUBE_NAME_HINT = "qube names start with a letter, then letters, digits, _ . and -, at most 31 characters";
const LABEL_NAME_HINT = "label names are letters, digits and _.- (not only digits)";
/** The label that holds an owner's apply lock is one of these (docs/locking.md): a config must not create, hold or use it. */
const reservedLabel = (name: string): string | null =>
  name.startsWith(RESERVED_LABEL_PREFIX) ? `names starting with '${RESERVED_LABEL_PREFIX}' are reserved for qubes-iac's apply lock` : null;
const POOL_NAME_HINT = "pool names are letters, digits and _.-";
const FEATURE_PAYLOAD_HINT = "feature values are printable ASCII on one line: no newline, tab, NUL or non-ASCII characters";

export function normalizeFile(w: WrittenFile, io: Pick<ConfigIO, "inspect">, policyReleases?: readonly ReleaseId[]): { part: ConfigPart; diagnostics: Diagnostic[] } {
  const diagnostics: Diagnostic[] = [];
  const loc = (ptr: string, key = false): SourceLocation => locateIn(w.spans, w.start, ptr, key);
  const report = (code: ConfigCode, message: string, ptr: string, hint?: string, key = false): void => {
    diagnostics.push(diagnostic(code, message, loc(ptr, key), hint));
  };
  const tooLarge = (what: string, ptr: string): void =>
    report("QIAC-E045", `${what} is too large for one Admin API request (64 KiB with its header)`, ptr, "shorten the value");

  // A property value as qubesd types it; undefined when it is unusable (and reported, by the
  // schema or here). `ruleName` selects Qubes' setter rule for qube properties.
  const propertyValue = (
    name: string,
    raw: unknown,
    spec: PropertySpec | undefined,
    ptr: string,
    call: { method: string; dest: string },
    ruleName: string | undefined,
  ): PropertyValue | undefined => {
    if (raw === DEFAULT_MARKER) return { kind: "default" };
    const where = describePath(ptr);
    const type = spec?.type ?? (raw === null ? "vm" : typeof raw === "boolean" ? "bool" : typeof raw === "number" ? "int" : "str");
    let value: PropertyValue | undefined;
    switch (type) {
      case "bool":
        if (typeof raw === "boolean") value = { kind: "bool", value: raw };
        break;
      case "int":
        if (typeof raw === "number" && Number.isInteger(raw)) {
          if (!Number.isSafeInteger(raw)) {
            report("QIAC-E043", `${where} is too large: ${raw}`, ptr, "integers are exact up to 2^53");
            return undefined;
          }
          value = { kind: "int", value: raw };
        }
        break;
      case "str":
        if (typeof raw === "string") {
          const bad = checkStrPropertyValue(raw);
          if (bad) {
            report("QIAC-E043", `${where}: ${bad}`, ptr, "property values are ASCII; str properties take printable characters only");
            return undefined;
          }
          value = { kind: "str", value: raw };
        }
        break;
      case "vm":
        if (raw === null) value = { kind: "vm", value: null };
        else if (typeof raw === "string") {
          const bad = checkVmName(raw);
          if (bad) {
            report("QIAC-E030", `${where}: ${bad}`, ptr, `${QUBE_NAME_HINT}; null means none`);
            return undefined;
          }
          value = { kind: "vm", value: raw };
        }
        break;
      default: {
        const never: never = type;
        return never;
      }
    }
    if (value === undefined) return undefined;
    if (ruleName !== undefined && (value.kind === "int" || value.kind === "str")) {
      const bad = checkVmPropertyRule(ruleName, value.value);
      if (bad) {
        report("QIAC-E043", `${where}: ${bad}`, ptr);
        return undefined;
      }
      if (value.kind === "str") {
        // Compared, and sent, in the form qubesd stores (it lower-cases mac and virt_mode, …).
        const stored = canonicalQubeProperty(ruleName, value.value);
        if (!stored.ok) {
          report("QIAC-E043", `${where}: ${stored.error}`, ptr);
          return undefined;
        }
        value = { kind: "str", value: stored.value };
      }
    }
    if (spec?.pool && value.kind === "str") {
      const bad = checkPoolName(value.value);
      if (bad) {
        report("QIAC-E039", `${where}: ${bad}`, ptr, POOL_NAME_HINT);
        return undefined;
      }
    }
    if (!fitsOneRequest(call.method, name, call.dest, propertyValueText(value) ?? "")) {
      tooLarge(where, ptr);
      return undefined;
    }
    return value;
  };

  // A name that a qube, label or pool field refers to; `%` in `what` stands for the name.
  const reference = (raw: unknown, ptr: string, what: string, code: ConfigCode, hint: string, check: (s: string) => string | null): string | undefined => {
    if (typeof raw !== "string") return undefined;
    if (raw === DEFAULT_MARKER) {
      report("QIAC-E044", `${describePath(ptr)} cannot be "${DEFAULT_MARKER}": it has no default to reset to`, ptr, "name it explicitly");
      return undefined;
    }
    const bad = check(raw);
    if (bad) {
      report(code, `${what.replace("%", () => `'${raw}'`)}: ${bad}`, ptr, hint);
      return undefined;
    }
    return raw;
  };

  const written = isRecord(w.value) ? w.value : {};
  const part: ConfigPart = { file: w.file, start: w.start, labels: new Map(), pools: new Map(), properties: new Map(), qubes: new Map(), guests: new Map(), policies: new Map() };
  const guestContext: GuestContext = { file: w.file, loc, report };
  if (io.inspect) guestContext.inspect = io.inspect.bind(io);

  if (written.version !== undefined) part.version = { value: written.version, at: loc("/version") };
  if (typeof written.owner === "string") {
    const bad = checkTagName(written.owner);
    if (bad) report("QIAC-E022", `owner '${written.owner}': ${bad}`, "/owner", "use letters, digits, _ and - (it becomes the tag managed-by-<owner>)");
    // Kept even when invalid, so that merging does not also call it missing.
    part.owner = { value: written.owner, at: loc("/owner") };
  }

  for (const [name, raw] of entriesOf(written.labels)) {
    const ptr = pointerOf("labels", name);
    const colour = labelColour(raw, w.spans.get(ptr)?.raw);
    const badName = checkLabelName(name, true) ?? reservedLabel(name);
    if (badName) report("QIAC-E031", `label '${name}': ${badName}`, ptr, LABEL_NAME_HINT, true);
    else if (DEFAULT_LABEL_NAMES.has(name)) {
      report("QIAC-E033", `'${name}' is one of the 8 default labels: it always exists and its colour cannot change`, ptr, `remove '${name}' from labels`, true);
    } else if (!fitsOneRequest("admin.label.Create", name, "dom0", "0x000000")) tooLarge(`label name '${name.slice(0, 20)}…'`, ptr);
    if (colour === undefined) continue;
    if ("error" in colour) {
      report("QIAC-E032", `${describePath(ptr)}: ${colour.error}`, ptr, 'write the colour as "0xrrggbb", for example "0xff00ff"');
      continue;
    }
    if (badName || DEFAULT_LABEL_NAMES.has(name)) continue;
    part.labels.set(name, { name, colour: colour.value, at: loc(ptr, true), locations: new Map([["colour", loc(ptr)]]) });
  }

  for (const [name, raw] of entriesOf(written.pools)) {
    const ptr = pointerOf("pools", name);
    const bad = checkPoolName(name);
    if (bad) report("QIAC-E039", `pool '${name}': ${bad}`, ptr, POOL_NAME_HINT, true);
    if (!isRecord(raw) || typeof raw.driver !== "string") continue;
    const driverName = raw.driver;
    const driver = POOL_DRIVERS[driverName];
    if (!driver) {
      if (!QREXEC_ARG_RE.test(driverName) || driverName === "") {
        report("QIAC-E040", `pool driver '${driverName}' contains characters an Admin API argument cannot carry`, childPointer(ptr, "driver"));
        continue;
      }
      const hint = didYouMean(driverName, Object.keys(POOL_DRIVERS)) ?? `known drivers: ${Object.keys(POOL_DRIVERS).join(", ")}`;
      report("QIAC-W011", `unknown pool driver '${driverName}': its parameters are passed through unchecked`, childPointer(ptr, "driver"), hint);
    }
    const params = new Map<string, string>();
    const locations = new Map<string, SourceLocation>([["driver", loc(childPointer(ptr, "driver"))]]);
    let ok = !bad;
    for (const [key, value] of Object.entries(raw)) {
      if (key === "driver") continue;
      const vptr = childPointer(ptr, key);
      if (driver && !(key in driver.params)) continue;
      if (!PARAM_KEY_RE.test(key) || key === "name") {
        report("QIAC-E040", `'${key}' cannot be a pool parameter`, vptr, "parameter names are letters, digits and _ (name is the pool's key)", true);
        ok = false;
        continue;
      }
      const text = typeof value === "boolean" ? (value ? "True" : "False") : typeof value === "number" || typeof value === "string" ? String(value) : undefined;
      const expected = driver?.params[key]?.type;
      if (text === undefined || (expected === "int" && typeof value !== "number") || (expected === "bool" && typeof value !== "boolean")) continue;
      const problem = poolParamProblem(driverName, key, value, text);
      if (problem) {
        report("QIAC-E040", `${describePath(vptr)}: ${problem.message}`, vptr, problem.hint);
        ok = false;
        continue;
      }
      const stored = canonicalPoolParam(driverName, key, text);
      if (!stored.ok) {
        report("QIAC-E040", `${describePath(vptr)}: ${stored.error}`, vptr, "qubesd stores the normalised absolute path: write it so");
        ok = false;
        continue;
      }
      params.set(key, stored.value);
      locations.set(key, loc(vptr));
    }
    const payload = [`name=${name}`, ...[...params].map(([k, v]) => `${k}=${v}`)].join("\n") + "\n";
    if (!fitsOneRequest("admin.pool.Add", driverName, "dom0", payload)) {
      tooLarge(describePath(ptr), ptr);
      ok = false;
    }
    if (ok) part.pools.set(name, { name, driver: driverName, params, at: loc(ptr, true), locations });
  }

  for (const [name, raw] of entriesOf(written.properties)) {
    const ptr = pointerOf("properties", name);
    const unsettable = UNSETTABLE_GLOBAL_PROPERTIES[name];
    if (unsettable !== undefined) {
      report("QIAC-E041", `global property '${name}' cannot be set`, ptr, unsettable, true);
      continue;
    }
    const spec = GLOBAL_PROPERTIES[name];
    if (!spec) {
      if (!PROPERTY_NAME_RE.test(name)) {
        report("QIAC-E041", `'${name}' is not a property name (letters, digits and _)`, ptr, undefined, true);
        continue;
      }
      report("QIAC-W010", `unknown global property '${name}': passed through as written`, ptr, didYouMean(name, Object.keys(GLOBAL_PROPERTIES)), true);
    }
    const value = propertyValue(name, raw, spec, ptr, { method: "admin.property.Set", dest: "dom0" }, name === "default_kernel" ? "kernel" : undefined);
    if (value) part.properties.set(name, { value, at: loc(ptr) });
  }

  for (const [name, raw] of entriesOf(written.qubes)) {
    const qube = normalizeQube(name, raw);
    if (!qube) continue;
    part.qubes.set(name, qube);
    if (isRecord(raw) && "guest" in raw) {
      const guest = normalizeGuest(guestContext, childPointer(pointerOf("qubes", name), "guest"), raw.guest, { qube: name });
      if (guest) part.guests.set(guest.address, guest);
    }
  }

  for (const [name, raw] of entriesOf(written.guests)) {
    const ptr = pointerOf("guests", name);
    const bad = checkGuestName(name);
    if (bad) {
      report("QIAC-E060", `guest name '${name}': ${bad}`, ptr, undefined, true);
      continue;
    }
    const guest = normalizeGuest(guestContext, ptr, raw, { name });
    if (guest) part.guests.set(guest.address, guest);
  }

  const policies = normalizePolicies(w, policyReleases);
  diagnostics.push(...policies.diagnostics);
  part.policies = policies.policies;

  function normalizeQube(name: string, raw: unknown): DesiredQube | undefined {
    const ptr = pointerOf("qubes", name);
    if (name === "dom0") {
      report("QIAC-E054", "dom0 cannot be declared as a qube", ptr, "global settings go under the top-level properties:", true);
      return undefined;
    }
    const badName = checkVmName(name);
    if (badName) report("QIAC-E030", `qube name '${name}': ${badName}`, ptr, QUBE_NAME_HINT, true);
    if (!isRecord(raw)) return undefined;
    const at = (field: string): string => childPointer(ptr, field);
    const locations = new Map<QubeField, SourceLocation>();
    const keep = (field: QubeField, p: string): void => void locations.set(field, loc(p));
    for (const field of ["class", "template", "label", "pool", "state", "protect", "adopt", "absent", "release", "properties", "features", "tags", "firewall", "volumes", "devices", "guest"] as const) {
      if (field in raw) keep(field, at(field));
    }

    const cls = typeof raw.class === "string" && (QUBE_CLASSES as readonly string[]).includes(raw.class) ? (raw.class as QubeClass) : undefined;
    const template = reference(raw.template, at("template"), `template % of qube '${name}'`, "QIAC-E030", QUBE_NAME_HINT, checkVmName);
    const label = reference(raw.label, at("label"), `label % of qube '${name}'`, "QIAC-E031", LABEL_NAME_HINT, (l) => checkLabelName(l) ?? reservedLabel(l));
    const pool = reference(raw.pool, at("pool"), `pool % of qube '${name}'`, "QIAC-E039", POOL_NAME_HINT, checkPoolName);
    const state = typeof raw.state === "string" && ["running", "halted", "paused"].includes(raw.state) ? (raw.state as PowerState) : undefined;

    const properties = new Map<string, PropertyValue>();
    for (const [prop, value] of entriesOf(raw.properties)) {
      const pptr = childPointer(at("properties"), prop);
      const unsettable = UNSETTABLE_QUBE_PROPERTIES[prop];
      if (unsettable !== undefined) {
        report("QIAC-E041", `property '${prop}' of qube '${name}' cannot be set here`, pptr, unsettable, true);
        continue;
      }
      const spec = QUBE_PROPERTIES[prop];
      if (!spec) {
        if (!PROPERTY_NAME_RE.test(prop)) {
          report("QIAC-E041", `'${prop}' is not a property name (letters, digits and _)`, pptr, undefined, true);
          continue;
        }
        const known = [...Object.keys(QUBE_PROPERTIES), ...Object.keys(UNSETTABLE_QUBE_PROPERTIES)];
        report("QIAC-W010", `unknown property '${prop}' of qube '${name}': passed through as written`, pptr, didYouMean(prop, known), true);
      }
      const v = propertyValue(prop, value, spec, pptr, { method: "admin.vm.property.Set", dest: name }, spec ? prop : undefined);
      if (v) {
        properties.set(prop, v);
        keep(`properties.${prop}`, pptr);
      }
    }

    const features = new Map<string, string | null>();
    for (const [feature, value] of entriesOf(raw.features)) {
      const fptr = childPointer(at("features"), feature);
      const badFeature = checkFeatureName(feature);
      if (badFeature) {
        report("QIAC-E036", `feature '${feature}' of qube '${name}': ${badFeature}`, fptr, "feature names are letters, digits and _.-", true);
        continue;
      }
      if (PROHIBITED_FEATURES.has(feature)) {
        report("QIAC-E038", `feature '${feature}' is managed by Qubes itself: the Admin API refuses to change it`, fptr, `remove '${feature}'`, true);
        continue;
      }
      const text = value === null ? null : value === true ? "1" : value === false ? "" : typeof value === "number" || typeof value === "string" ? String(value) : undefined;
      if (text === undefined) continue;
      if (text !== null) {
        const bad = checkFeatureValue(feature, text);
        if (bad) {
          report("QIAC-E037", `feature '${feature}' of qube '${name}': ${bad}`, fptr, FEATURE_PAYLOAD_HINT);
          continue;
        }
        if (!fitsOneRequest("admin.vm.feature.Set", feature, name, text)) {
          tooLarge(describePath(fptr), fptr);
          continue;
        }
      } else if (!fitsOneRequest("admin.vm.feature.Remove", feature, name, "")) {
        tooLarge(describePath(fptr), fptr);
        continue;
      }
      features.set(feature, text);
      keep(`features.${feature}`, fptr);
    }

    const tags = new Set<string>();
    for (const [i, tag] of (Array.isArray(raw.tags) ? raw.tags : []).entries()) {
      const tptr = childPointer(at("tags"), i);
      if (typeof tag !== "string") continue;
      const bad = checkTagName(tag);
      if (bad) report("QIAC-E034", `tag '${tag}' of qube '${name}': ${bad}`, tptr, "tags are letters, digits, _ and -");
      else if (/^(created-by|managed-by)-/.test(tag)) {
        report("QIAC-E035", `tag '${tag}' is reserved`, tptr, "created-by-* tags are set by qubesd and managed-by-* tags by qubes-iac (from owner:)");
      } else if (!fitsOneRequest("admin.vm.tag.Set", tag, name, "")) tooLarge(describePath(tptr), tptr);
      else if (tags.has(tag)) report("QIAC-W013", `tag '${tag}' is listed twice for qube '${name}'`, tptr, "remove one of them");
      else {
        tags.add(tag);
        keep(`tags.${tag}`, tptr);
      }
    }

    let firewall: string[] | undefined;
    if (Array.isArray(raw.firewall)) {
      firewall = [];
      const fwptr = at("firewall");
      for (const [i, rule] of raw.firewall.entries()) {
        const rptr = childPointer(fwptr, i);
        const line = firewallLine(rule, rptr);
        if (line === undefined) continue;
        firewall.push(line);
        keep(`firewall.${i}`, rptr);
      }
      if (raw.firewall.length === 0) {
        firewall.push("action=drop");
        keep("firewall.0", fwptr);
      }
      if (!fitsOneRequest("admin.vm.firewall.Set", "", name, firewall.map((l) => `${l}\n`).join(""))) {
        report("QIAC-E045", `${describePath(fwptr)} is too large for one Admin API request (64 KiB with its header)`, fwptr, "use fewer or shorter rules", true);
      }
    }

    const volumes = new Map<VolumeName, DesiredVolume>();
    for (const [volume, body] of entriesOf(raw.volumes)) {
      if (!(VOLUME_NAMES as readonly string[]).includes(volume) || !isRecord(body)) continue;
      const sptr = childPointer(childPointer(at("volumes"), volume), "size");
      const size = parseSize(body.size);
      if (size === undefined) continue;
      if ("error" in size) {
        report("QIAC-E046", `${describePath(sptr)}: ${size.error}`, sptr, "write bytes (an integer) or a size with a binary unit: 512MiB, 20GiB, 1TiB");
        continue;
      }
      volumes.set(volume as VolumeName, { size: size.bytes });
      keep(`volumes.${volume}`, sptr);
    }

    const devices = normalizeDevices(name, raw.devices, at("devices"), properties.get("virt_mode"), report);
    for (const [key, p] of devices?.pointers ?? []) keep(key as `devices.${string}`, p);

    const qube: DesiredQube = {
      name,
      // A non-boolean adopt is already an error; reading it as adopt spares the user a second
      // diagnostic about what creating the qube would need.
      adopt: raw.adopt === true || ("adopt" in raw && typeof raw.adopt !== "boolean"),
      protect: raw.protect === true,
      properties,
      features,
      tags,
      volumes,
      at: loc(ptr, true),
      locations,
    };
    if (raw.absent === true) qube.absent = true;
    if (raw.release === true) qube.release = true;
    if (cls) qube.class = cls;
    if (template !== undefined) qube.template = template;
    if (label !== undefined) qube.label = label;
    if (pool !== undefined) qube.pool = pool;
    if (state) qube.state = state;
    if (firewall) qube.firewall = firewall;
    if (devices) qube.devices = devices.devices;
    return qube;
  }

  function firewallLine(rule: unknown, ptr: string): string | undefined {
    // Shapes the schema rejects (missing or unknown action, unknown keys, wrong types) are its to report.
    if (!isRecord(rule) || (rule.action !== "accept" && rule.action !== "drop")) return undefined;
    const options: Record<string, string | undefined> = {};
    for (const [key, value] of Object.entries(rule)) {
      if (!FIREWALL_OPTIONS.has(key) || (typeof value !== "string" && typeof value !== "number")) return undefined;
      options[key] = String(value);
    }
    const parsed = buildFirewallRule(options);
    const built = parsed.ok ? canonicalFirewallRule(parsed.rule) : parsed;
    if (!built.ok) {
      const field = FIREWALL_ERROR_FIELDS.find(([re]) => re.test(built.error))?.[1];
      const where = field !== undefined && field in rule ? childPointer(ptr, field) : ptr;
      report("QIAC-E048", `${describePath(ptr)}: ${built.error}`, where, "docs/config.md (firewall) lists each option and the values qubesd accepts");
      return undefined;
    }
    return formatFirewallRule(built.rule);
  }

  return { part, diagnostics };
}

const FIREWALL_OPTIONS: ReadonlySet<string> = new Set(["action", "dsthost", "proto", "dstports", "icmptype", "specialtarget", "expire", "comment"]);

/** Which option a firewall rule error is about, to point at it rather than at the whole rule. */
const FIREWALL_ERROR_FIELDS: ReadonlyArray<readonly [RegExp, string]> = [
  [/dstports|[Pp]ort/, "dstports"],
  [/icmptype|ICMP/, "icmptype"],
  [/comment/, "comment"],
  [/expire/, "expire"],
  [/IPv4|IPv6|IP address|prefix|host name|Too many \//, "dsthost"],
  [/proto/, "proto"],
  [/specialtarget/, "specialtarget"],
  [/action/, "action"],
];

/** A label colour as written: a string, or an unquoted 0x… that YAML read as an integer. */
function labelColour(raw: unknown, source: string | undefined): { value: string } | { error: string } | undefined {
  let text: string;
  if (typeof raw === "string") text = raw;
  else if (typeof raw === "number") {
    if (source === undefined || !/^0x/i.test(source.trim())) return { error: `${raw} is a decimal number, not a colour` };
    text = source.trim();
  } else return undefined;
  const bad = checkLabelColour(text);
  if (bad) return { error: `${bad} (got ${JSON.stringify(text)})` };
  return { value: text.trim().toLowerCase() };
}

const UNITS: Readonly<Record<string, number>> = { b: 1, kib: 2 ** 10, mib: 2 ** 20, gib: 2 ** 30, tib: 2 ** 40 };

/** A volume size in bytes: an integer, or digits with a binary unit. */
export function parseSize(raw: unknown): { bytes: number } | { error: string } | undefined {
  let bytes: number;
  if (typeof raw === "number") {
    if (!Number.isInteger(raw)) return undefined;
    bytes = raw;
  } else if (typeof raw === "string") {
    const m = /^\s*([0-9]+)\s*([A-Za-z]*)\s*$/.exec(raw);
    if (!m) return { error: `'${raw}' is not a size` };
    const unit = (m[2] ?? "").toLowerCase();
    const factor = unit === "" ? 1 : UNITS[unit];
    if (factor === undefined) {
      const binary = { k: "KiB", kb: "KiB", m: "MiB", mb: "MiB", g: "GiB", gb: "GiB", t: "TiB", tb: "TiB" }[unit];
      return { error: binary ? `unit '${m[2]}' is ambiguous: did you mean ${m[1]}${binary}?` : `unknown unit '${m[2]}'` };
    }
    bytes = Number(m[1]) * factor;
  } else return undefined;
  if (bytes <= 0) return { error: "a size must be more than 0 bytes" };
  if (!Number.isSafeInteger(bytes)) return { error: "sizes above 2^53 bytes (8 PiB) are not supported" };
  return { bytes };
}

function poolParamProblem(driver: string, key: string, value: unknown, text: string): { message: string; hint?: string } | undefined {
  if (!ASCII_LINE_RE.test(text)) return { message: "must be printable ASCII on one line", hint: "admin.pool.Add takes one key=value line per parameter" };
  if (key === "revisions_to_keep" && typeof value === "number") {
    if (value < -1) return { message: "must be -1 or more" };
    if (driver === "file" && value > 1) return { message: "the file driver keeps at most 1 revision", hint: "use 0 or 1, or a file-reflink or lvm_thin pool" };
  }
  return undefined;
}
