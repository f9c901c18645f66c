// The device kinds of the loosening analysis (loosening.ts), over a qube change's before/after:
// its assignments are the attributes `devices.<class>.<backend>:<port>` whose value reads
// `mode=<mode>[ device=<id>|any][ <option>=<value>…]` (src/plan/diff-devices.ts), null when not
// assigned. A PCI or USB device given to a qube that had none of that class is marked, and so is
// an assignment that accepts any device at its port: `device=any` (device_id `*`), or on R4.2,
// which assigns by port only (the value names no device), a USB or block one. Pure.

import type { Attributes } from "./changes.js";
import type { Loosening } from "./loosening.js";

/** Classes whose first device gives a qube hardware it had no access to (the PCI/USB). */
export const DEVICE_GIVEN_CLASSES: ReadonlySet<string> = new Set(["pci", "usb"]);

const DEVICE_KEY_RE = /^devices\.([a-z]+)\.(.+)$/;
/** Classes whose port takes whatever is plugged in: an assignment by port alone accepts any of them. */
const PLUGGABLE: ReadonlySet<string> = new Set(["usb", "block"]);
const acceptsAny = (devclass: string, v: unknown): boolean => typeof v === "string" && (/ device=any( |$)/.test(v) || (PLUGGABLE.has(devclass) && !/(^| )device=/.test(v)));

/**
 * `held`: the assignments the qube holds now per class, as read (any the plan does not manage
 * included); undefined when not read, then only the change's own `before` tells what it had.
 */
export function deviceLoosening(before: Attributes | null, after: Attributes | null, held?: ReadonlyMap<string, readonly unknown[]>): Loosening[] {
  if (after === null) return [];
  const out: Loosening[] = [];
  const had = (devclass: string): boolean =>
    (held?.get(devclass)?.length ?? 0) > 0 || Object.entries(before ?? {}).some(([k, v]) => v !== null && DEVICE_KEY_RE.exec(k)?.[1] === devclass);
  const given = new Set<string>();
  for (const [key, v] of Object.entries(after)) {
    const m = DEVICE_KEY_RE.exec(key);
    if (m === null || v === null) continue;
    const [, devclass = "", address = ""] = m;
    const was = before?.[key] ?? null;
    if (acceptsAny(devclass, v) && !acceptsAny(devclass, was)) out.push({ kind: "device-any", attribute: key, detail: `${devclass} ${address} accepts any device plugged in at that port${/ device=any( |$)/.test(v as string) ? "" : " (this release assigns by port only)"}` });
    if (was === null && DEVICE_GIVEN_CLASSES.has(devclass) && !had(devclass) && !given.has(devclass)) {
      given.add(devclass);
      out.push({ kind: "device-given", attribute: key, detail: `gets a ${devclass.toUpperCase()} device (${address}); it had none` });
    }
  }
  return out;
}
