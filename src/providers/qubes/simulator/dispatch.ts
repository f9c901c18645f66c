// One decoded request → one reply, as qubesd's QubesDaemonProtocol and method decorator do it:
// resolve src and dest, find the method the world's release serves, apply the decorator checks,
// run the handler, and encode its result or failure (named exception, or the empty reply for the
// classes the release does not send). Pure over the World; the server owns sockets, persistence
// and event delivery.

import { encodeException, encodeOk, type AdminRequest, type QubesEvent } from "../codec.js";
import { isAdminVm, type AnySpec, type Call, type MethodSpec, type Services } from "./call.js";
import { protocolError, qubesError, SimError, vmNotFound } from "./errors.js";
import { hostMethods } from "./methods-host.js";
import { deviceClassServed } from "./methods-devices.js";
import { qubeMethods } from "./methods-qube.js";
import { storageMethods } from "./methods-storage.js";
import { vmMethods } from "./methods-vm.js";
import type { Qube, World } from "./state.js";
import { RELEASES, type Release } from "./releases.js";
import { vmNameError } from "./model.js";

export type Outcome =
  | {
      kind: "reply";
      bytes: Buffer;
      reply: "ok" | "exception" | "empty";
      excType?: string;
      /** The method may have changed persistent state: write the state file. */
      mutates: boolean;
      /** Qubes the call may have changed: its destination and every qube an event names. */
      touched: Set<string>;
      events: QubesEvent[];
    }
  | { kind: "stream"; stream: "events" | "stats"; dest: Qube };

const ADMIN_UUID = "00000000-0000-0000-0000-000000000000";
const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

const STREAMS: Record<string, AnySpec> = {
  "admin.Events": { dest: "any", arg: "none", payload: "none", stream: "events" },
  "admin.vm.Stats": { dest: "any", arg: "none", payload: "none", stream: "stats" },
};

const tables = new Map<Release, ReadonlyMap<string, AnySpec>>();
/** The methods a release serves: every handler, less the ones its qubesd lacks. */
function methodTable(release: Release): ReadonlyMap<string, AnySpec> {
  let t = tables.get(release);
  if (!t) {
    const all = { ...vmMethods(), ...qubeMethods(), ...storageMethods(), ...hostMethods(), ...STREAMS };
    t = new Map<string, AnySpec>(Object.entries(all).filter(([name]) => !release.absentMethods.has(name)));
    tables.set(release, t);
  }
  return t;
}

/** decode_vm of qubesd: a name or (R4.3+) `uuid:<uuid>`; R4.2 looks any text up as a name. */
function resolveQube(world: World, token: string): Qube {
  if (token.startsWith("uuid:") && world.release.uuids) {
    const uuid = token.slice(5);
    if (token.length !== 41 || !UUID_RE.test(uuid)) throw qubesError("QubesVMInvalidUUIDError", `VM UUID is not valid: '${uuid}'`);
    const q = uuid === ADMIN_UUID ? [...world.qubes.values()].find(isAdminVm) : world.byUuid.get(uuid);
    if (!q) throw vmNotFound(token);
    return q;
  }
  const err = world.release.checkDestName ? vmNameError(world.release, token) : null;
  if (err) throw qubesError("QubesValueError", err);
  const q = world.qubes.get(token);
  if (!q) throw vmNotFound(token);
  return q;
}

function checkDecorator(spec: AnySpec, req: AdminRequest, dest: Qube): void {
  if (spec.payload === "none" && req.payload.length > 0) throw protocolError("unexpected payload");
  if (spec.payload === "required" && req.payload.length === 0) throw protocolError("expected payload");
  if (spec.arg === "none" && req.arg !== "") throw protocolError("unexpected argument");
  if (spec.arg === "required" && req.arg === "") throw protocolError("expected an argument");
  if (spec.dest === "adminvm" && !isAdminVm(dest)) throw protocolError("expected destination to be AdminVM");
  if (spec.dest === "not-adminvm" && isAdminVm(dest)) throw protocolError("expected destination to not be AdminVM");
}

export function dispatch(world: World, req: AdminRequest, services: Services): Outcome {
  const events: QubesEvent[] = [];
  const touched = new Set<string>();
  let mutates = false;
  try {
    const src = resolveQube(world, req.src);
    const dest = resolveQube(world, req.dest);
    touched.add(dest.name);
    const spec = methodTable(world.release).get(req.method);
    if (!spec || !deviceClassServed(world, req.method)) throw protocolError(`no such method: '${req.method}'`);
    checkDecorator(spec, req, dest);
    if ("stream" in spec) return { kind: "stream", stream: spec.stream, dest };
    const method: MethodSpec = spec;
    mutates = method.mutates;
    const call: Call = {
      world,
      arg: req.arg,
      payload: req.payload,
      src,
      dest,
      services,
      emit: (subject, event, kwargs = {}) => {
        events.push({ subject, event, kwargs });
        // Every change to a qube fires an event naming it, as subject or (domain-add) as `vm`.
        if (subject !== null) touched.add(subject);
        if (kwargs.vm !== undefined) touched.add(kwargs.vm);
      },
    };
    const body = method.run(call);
    return { kind: "reply", bytes: encodeOk(body ?? ""), reply: "ok", mutates, touched, events };
  } catch (e) {
    if (!(e instanceof SimError)) throw e;
    const f = e.failure;
    if (f.kind === "empty" || world.release.emptyClasses.has(f.qubesClass)) {
      return {
        kind: "reply",
        bytes: Buffer.alloc(0),
        reply: "empty",
        ...(f.kind === "exception" ? { excType: f.qubesClass } : {}),
        mutates,
        touched,
        events,
      };
    }
    return {
      kind: "reply",
      bytes: encodeException(f.qubesClass, f.message),
      reply: "exception",
      excType: f.qubesClass,
      mutates,
      touched,
      events,
    };
  }
}

/** Whether a method changes persistent state (unknown methods and event streams do not). */
export function methodMutates(method: string): boolean {
  const spec = Object.values(RELEASES).map((r) => methodTable(r).get(method)).find((m) => m !== undefined);
  return spec !== undefined && !("stream" in spec) && spec.mutates;
}

/** Every method name the simulator serves for some release, streams included. */
export function methodNames(): string[] {
  return [...new Set(Object.values(RELEASES).flatMap((r) => [...methodTable(r).keys()]))];
}
