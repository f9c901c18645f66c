// One decoded request → one reply, as qubesd's QubesDaemonProtocol and method decorator do it:
// resolve src and dest, find the method, apply the HEAD decorator checks, run the handler, and
// encode its result or failure (named exception, or the empty reply; R4.3 style optional).
// Pure over the World; the server owns sockets, persistence and event delivery.

import { encodeException, encodeOk, type AdminRequest, type QubesEvent } from "../codec.js";
import { isAdminVm, type AnySpec, type Call, type MethodSpec, type Services } from "./call.js";
import { PROTOCOL_ERROR_CLASSES, protocolError, qubesError, SimError, vmNotFound } from "./errors.js";
import { hostMethods } from "./methods-host.js";
import { qubeMethods } from "./methods-qube.js";
import { storageMethods } from "./methods-storage.js";
import { vmMethods } from "./methods-vm.js";
import type { SimRelease } from "./running.js";
import type { Qube, World } from "./state.js";
import { checkVmName } from "../../../model/qubes-rules.js";

export type ErrorStyle = "head" | "r4.3";

export type DispatchOptions = {
  errorStyle: ErrorStyle;
  /** admin.vm.List lines carry `uuid=` (R4.3 and later) or not (R4.2). */
  vmListUuid: boolean;
  release: SimRelease;
};

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

const tables = new Map<boolean, ReadonlyMap<string, AnySpec>>();
function methodTable(vmListUuid: boolean): ReadonlyMap<string, AnySpec> {
  let t = tables.get(vmListUuid);
  if (!t) {
    t = new Map<string, AnySpec>(
      Object.entries({ ...vmMethods(vmListUuid), ...qubeMethods(), ...storageMethods(), ...hostMethods(), ...STREAMS }),
    );
    tables.set(vmListUuid, t);
  }
  return t;
}

/** decode_vm of qubesd: a name or `uuid:<uuid>`. */
function resolveQube(world: World, token: string): Qube {
  if (token.startsWith("uuid:")) {
    const uuid = token.slice(5);
    if (token.length !== 41 || !UUID_RE.test(uuid)) throw qubesError("QubesVMInvalidUUIDError", `VM UUID is not valid: '${uuid}'`);
    const q = uuid === ADMIN_UUID ? [...world.qubes.values()].find(isAdminVm) : world.byUuid.get(uuid);
    if (!q) throw vmNotFound(token);
    return q;
  }
  const err = checkVmName(token);
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

export function dispatch(world: World, req: AdminRequest, options: DispatchOptions, services: Services): Outcome {
  const events: QubesEvent[] = [];
  const touched = new Set<string>();
  let mutates = false;
  try {
    const src = resolveQube(world, req.src);
    const dest = resolveQube(world, req.dest);
    touched.add(dest.name);
    const spec = methodTable(options.vmListUuid).get(req.method);
    if (!spec) throw protocolError(`no such method: '${req.method}'`);
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
      release: options.release,
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
    if (f.kind === "empty" || (options.errorStyle === "r4.3" && PROTOCOL_ERROR_CLASSES.has(f.qubesClass))) {
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
  const spec = methodTable(true).get(method);
  return spec !== undefined && !("stream" in spec) && spec.mutates;
}

/** Every method name the simulator serves, streams included. */
export function methodNames(): string[] {
  return [...methodTable(true).keys()];
}
