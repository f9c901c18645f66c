// Typed Admin API client: one function per admin.* call the reconciler needs, over any
// Transport. It validates every request before sending (qrexec charset, names, 64 KiB cap),
// decodes replies into typed values, and turns every failure into a QubesApiError. It holds no
// Qubes state except what it learns in a run: per holder, whether property.GetAll is refused;
// and which release answers (from dom0's property list), which its error messages explain.

import { checkRequest, decodeReply, EventStreamDecoder, type QubesEvent } from "./codec.js";
import { QubesApiError } from "./errors.js";
import { checkFeatureName, checkFeatureValue } from "../../model/qubes-rules.js";
import {
  parseKeyValueLines,
  parseLines,
  parsePropertyDefault,
  parsePropertyGet,
  parsePropertyGetAll,
  parseVmList,
  type Parsed,
  type PropertyValue,
  type VmListEntry,
} from "./properties.js";
import { describeCall, type AdminCall, type Transport } from "./transport.js";
import { describeRelease, detectRelease, rulesFor, UNDETECTED, type DetectedRelease } from "../../model/release.js";
import { createLimiter, mapLimit } from "../../util/concurrency.js";

export type AdminClientOptions = {
  /** Per-call timeout for ordinary calls (ms); absent = the transport's own default. */
  timeoutMs?: number;
  /** Per-call timeout for calls that wait on a qube (Start, Shutdown, Create, Remove, Resize). */
  slowTimeoutMs?: number;
  /**
   * Most calls in flight at once through this client (default 8). Callers bound their own work
   * too; this bound also holds inside the per-property fallback when GetAll is refused, which
   * would otherwise multiply a reader's parallelism by its own.
   */
  parallelism?: number;
  /** Observes every call's outcome (tests, progress, call counting). */
  onCall?: (info: { call: AdminCall; outcome: "ok" | "error"; ms: number }) => void;
};

/** Where a property lives: a qube (`admin.vm.property.*`) or the global Qubes object (`admin.property.*`). */
export type PropertyHolder = { vm: string } | "global";

export type CreateQube = {
  klass: string;
  name: string;
  label: string;
  /** Template (AppVM, DispVM); absent = the server's default. */
  template?: string;
  /** All volumes in this pool (CreateInPool). */
  pool?: string;
  /** Per-volume pools (CreateInPool), e.g. {private: "fast"}. */
  volumePools?: Record<string, string>;
};

export type VolumeInfo = {
  pool: string;
  vid: string;
  size: bigint;
  usage: bigint;
  rw: boolean;
  revisionsToKeep: number;
  fields: Map<string, string>;
};

export type EventSubscription = AsyncIterable<QubesEvent> & { close(): void };

const SLOW_METHODS = new Set([
  "admin.vm.Start",
  "admin.vm.Shutdown",
  "admin.vm.Kill",
  "admin.vm.Remove",
  "admin.vm.volume.Resize",
  "admin.pool.Add",
  "admin.pool.Remove",
]);

const enc = (s: string): Buffer => Buffer.from(s, "utf8");

export function createAdminClient(transport: Transport, options: AdminClientOptions = {}) {
  const timeoutMs = options.timeoutMs;
  const slowTimeoutMs = options.slowTimeoutMs ?? 300_000;
  const parallelism = options.parallelism ?? 8;
  const inFlight = createLimiter(parallelism);
  /**
   * Per holder (`<method> <dest>`): whether its property.GetAll is refused, learned from the first
   * answer. A policy may allow GetAll on some qubes and not others (a line per qube), so one
   * refusal says nothing about another holder.
   */
  const getAllAnswer = new Map<string, "allowed" | "refused">();
  /** Per holder whose GetAll has not answered yet: settles when the one that is asking has its answer. */
  const getAllAsking = new Map<string, Promise<void>>();
  /** The release learned from dom0's property list (release()); until then, empty replies are explained for any release. */
  let releaseSeen: DetectedRelease = UNDETECTED;
  let releaseAsking: Promise<DetectedRelease> | undefined;

  /** What an empty reply means on the release this client talks to. */
  function emptyReplyMessage(callText: string): string {
    const where = "the reason is only in dom0's journal (journalctl -u qubesd)";
    if (releaseSeen.candidates.length === 0 || releaseSeen.candidates.length === 3) {
      return `qubesd gave an empty reply to ${callText}: the call was refused or failed; ${where}`;
    }
    return rulesFor(releaseSeen).refusals === "empty"
      ? `qubesd gave an empty reply to ${callText}: ${describeRelease(releaseSeen)} answers so when it refuses a call (a ProtocolError or PermissionDenied: a request, argument or value it does not accept, or a method it lacks) and when the call fails; ${where}`
      : `qubesd gave an empty reply to ${callText}: ${describeRelease(releaseSeen)} names the calls it refuses, so this one failed with an error it does not report (or the connection was cut); ${where}`;
  }

  /** Sends one call and returns the OK body; every other outcome is a QubesApiError. */
  async function call(method: string, dest: string, arg = "", payload?: Uint8Array | string): Promise<Buffer> {
    try {
      return await send(method, dest, arg, payload);
    } catch (e) {
      throw e instanceof QubesApiError ? await explainRefusal(e, method, dest, arg) : e;
    }
  }

  async function send(method: string, dest: string, arg: string, payload?: Uint8Array | string): Promise<Buffer> {
    const body = typeof payload === "string" ? enc(payload) : payload;
    const c: AdminCall = body === undefined ? { method, dest, arg } : { method, dest, arg, payload: body };
    const invalid = checkRequest({ method, arg, src: "dom0", dest, payload: body ?? new Uint8Array() });
    if (invalid) throw new QubesApiError("invalid-request", invalid, { call: describeCall(c), maybeDelivered: false });
    let started = performance.now();
    let outcome: "ok" | "error" = "error";
    try {
      const isSlow = SLOW_METHODS.has(method) || method.startsWith("admin.vm.Create");
      const callTimeout = isSlow ? slowTimeoutMs : timeoutMs;
      // The call's timeout (and its time in onCall) starts when it is sent, not while it waits for a slot.
      const raw = await inFlight(() => {
        started = performance.now();
        return transport.call(c, callTimeout === undefined ? {} : { timeoutMs: callTimeout });
      });
      const reply = decodeReply(raw);
      switch (reply.kind) {
        case "ok":
          outcome = "ok";
          return reply.body;
        case "exception":
          throw new QubesApiError("exception", `${reply.qubesClass}: ${reply.message}`, {
            qubesClass: reply.qubesClass,
            call: describeCall(c),
          });
        case "empty":
          throw new QubesApiError("empty-reply", emptyReplyMessage(describeCall(c)), { call: describeCall(c) });
        case "events":
        case "malformed": {
          const why = reply.kind === "events" ? "an event stream" : reply.reason;
          throw new QubesApiError("bad-reply", `invalid reply to ${describeCall(c)}: ${why}`, { call: describeCall(c), maybeDelivered: true });
        }
        default: {
          const never: never = reply;
          throw new Error(`unhandled reply ${String(never)}`);
        }
      }
    } finally {
      options.onCall?.({ call: c, outcome, ms: performance.now() - started });
    }
  }

  /**
   * qrexec refuses a call naming a qube that does not exist exactly as one its policy denies:
   * exit 126 for both (qubes-core-qrexec qrexec/policy/parser.py: IntendedTarget.verify makes an
   * unknown target `@default`, which no admin line allows). What admin.vm.List shows here tells
   * them apart as far as this caller can: a qube it does not list is gone, or hidden from it.
   */
  async function explainRefusal(e: QubesApiError, method: string, dest: string, arg: string): Promise<QubesApiError> {
    if (e.code !== "refused" || dest === "dom0" || method === "admin.vm.List") return e;
    let listing: Parsed<VmListEntry[]>;
    try {
      listing = parseVmList((await send("admin.vm.List", "dom0", "")).toString("utf8"));
    } catch {
      return e;
    }
    if (!listing.ok || listing.value.some((q) => q.name === dest)) return e;
    return new QubesApiError(
      "refused",
      `${method}${arg ? `+${arg}` : ""} to ${dest} was refused by qrexec (qrexec-client-vm exit 126): qube ${dest} does not exist or this management qube may not see it`,
      { call: describeCall({ method, dest, arg }), maybeDelivered: false, targetUnseen: true },
    );
  }

  const text = async (method: string, dest: string, arg = "", payload?: Uint8Array | string): Promise<string> =>
    (await call(method, dest, arg, payload)).toString("utf8");
  const lines = async (method: string, dest: string, arg = ""): Promise<string[]> => parseLines(await text(method, dest, arg));
  const unit = async (method: string, dest: string, arg = "", payload?: Uint8Array | string): Promise<void> => {
    await call(method, dest, arg, payload);
  };

  function unwrap<T>(r: Parsed<T>, method: string, dest: string, arg = ""): T {
    if (r.ok) return r.value;
    throw new QubesApiError("bad-reply", `invalid reply to ${method}+${arg} → ${dest}: ${r.error}`, { call: `${method}+${arg} → ${dest}` });
  }

  const propPrefix = (h: PropertyHolder): { prefix: string; dest: string } =>
    h === "global" ? { prefix: "admin.property", dest: "dom0" } : { prefix: "admin.vm.property", dest: h.vm };

  /** True when a QubesApiError is the Qubes exception `cls`. */
  const isQubes = (e: unknown, cls: string): boolean => e instanceof QubesApiError && e.code === "exception" && e.qubesClass === cls;

  const property = {
    list: async (h: PropertyHolder): Promise<string[]> => {
      const { prefix, dest } = propPrefix(h);
      return lines(`${prefix}.List`, dest);
    },
    get: async (h: PropertyHolder, name: string): Promise<PropertyValue> => {
      const { prefix, dest } = propPrefix(h);
      return unwrap(parsePropertyGet(await text(`${prefix}.Get`, dest, name)), `${prefix}.Get`, dest, name);
    },
    getDefault: async (h: PropertyHolder, name: string): Promise<Omit<PropertyValue, "isDefault"> | null> => {
      const { prefix, dest } = propPrefix(h);
      return unwrap(parsePropertyDefault(await text(`${prefix}.GetDefault`, dest, name)), `${prefix}.GetDefault`, dest, name);
    },
    /**
     * All properties in one call. When GetAll is refused (PermissionDenied, an empty reply, or a
     * qrexec refusal — the default policy denies it to management qubes) it falls back to List +
     * one Get per property, and skips GetAll for that holder for the rest of the run; every other
     * holder still asks. Until a holder's first answer, one GetAll of it at a time asks and the
     * others of it wait, so concurrent reads of one qube send (and have dom0 log) one refusal.
     */
    getAll: async (h: PropertyHolder): Promise<Map<string, PropertyValue>> => {
      const { prefix, dest } = propPrefix(h);
      const key = `${prefix} ${dest}`;
      for (let asking = getAllAsking.get(key); asking && !getAllAnswer.has(key); asking = getAllAsking.get(key)) await asking;
      if (getAllAnswer.get(key) !== "refused") {
        let answered: (() => void) | undefined;
        if (!getAllAnswer.has(key)) getAllAsking.set(key, new Promise<void>((resolve) => (answered = resolve)));
        try {
          const body = await text(`${prefix}.GetAll`, dest);
          getAllAnswer.set(key, "allowed");
          return unwrap(parsePropertyGetAll(body), `${prefix}.GetAll`, dest);
        } catch (e) {
          // Any other failure (a timeout, a qube gone or hidden) says nothing about the policy: the next caller asks.
          if (!(e instanceof QubesApiError && e.isDenied) || e.details.targetUnseen === true) throw e;
          getAllAnswer.set(key, "refused");
        } finally {
          if (answered) {
            getAllAsking.delete(key);
            answered();
          }
        }
      }
      const names = await property.list(h);
      const values = await mapLimit(names, parallelism, (n) => property.get(h, n));
      return new Map(names.map((n, i) => [n, values[i] as PropertyValue]));
    },
    /** Sets a value; `null` sends the empty payload ("none" for vm properties). */
    set: async (h: PropertyHolder, name: string, value: string | null): Promise<void> => {
      const { prefix, dest } = propPrefix(h);
      await unit(`${prefix}.Set`, dest, name, value ?? "");
    },
    reset: async (h: PropertyHolder, name: string): Promise<void> => {
      const { prefix, dest } = propPrefix(h);
      await unit(`${prefix}.Reset`, dest, name);
    },
    help: async (h: PropertyHolder, name: string): Promise<string> => {
      const { prefix, dest } = propPrefix(h);
      return text(`${prefix}.Help`, dest, name);
    },
  };

  const vm = {
    classes: (): Promise<string[]> => lines("admin.vmclass.List", "dom0"),
    /** Every qube (dest dom0) or one qube's line (dest = name or `uuid:…`). */
    list: async (dest = "dom0"): Promise<VmListEntry[]> => unwrap(parseVmList(await text("admin.vm.List", dest)), "admin.vm.List", dest),
    create: async (q: CreateQube): Promise<void> => {
      const inPool = q.pool !== undefined || (q.volumePools !== undefined && Object.keys(q.volumePools).length > 0);
      let payload = `name=${q.name} label=${q.label}`;
      if (q.pool !== undefined) payload += ` pool=${q.pool}`;
      for (const [vol, pool] of Object.entries(q.volumePools ?? {})) payload += ` pool:${vol}=${pool}`;
      const names = [q.name, q.label, ...(q.pool === undefined ? [] : [q.pool]), ...Object.entries(q.volumePools ?? {}).flat()];
      for (const part of names) {
        if (!/^[A-Za-z0-9_.-]+$/.test(part)) {
          throw new QubesApiError("invalid-request", `create ${q.name}: ${JSON.stringify(part)} is not a valid name`, { maybeDelivered: false });
        }
      }
      await unit(`admin.vm.${inPool ? "CreateInPool" : "Create"}.${q.klass}`, "dom0", q.template ?? "", payload);
    },
    remove: (name: string): Promise<void> => unit("admin.vm.Remove", name),
    start: (name: string): Promise<void> => unit("admin.vm.Start", name),
    // No `force`: to qubesd it means "shut down even while clients run", which qubes-iac never wants.
    shutdown: (name: string, o: { wait?: boolean } = {}): Promise<void> => unit("admin.vm.Shutdown", name, o.wait ? "wait" : ""),
    pause: (name: string): Promise<void> => unit("admin.vm.Pause", name),
    unpause: (name: string): Promise<void> => unit("admin.vm.Unpause", name),
    resume: (name: string): Promise<void> => unit("admin.vm.Resume", name),
    kill: (name: string): Promise<void> => unit("admin.vm.Kill", name),
  };

  const label = {
    list: (): Promise<string[]> => lines("admin.label.List", "dom0"),
    /** Colour `0xRRGGBB`. Note: qubesd answers empty for a label created in the same daemon lifetime (upstream quirk). */
    get: (name: string): Promise<string> => text("admin.label.Get", "dom0", name),
    index: async (name: string): Promise<number> => Number(await text("admin.label.Index", "dom0", name)),
    create: (name: string, colour: string): Promise<void> => unit("admin.label.Create", "dom0", name, colour),
    remove: (name: string): Promise<void> => unit("admin.label.Remove", "dom0", name),
  };

  const feature = {
    list: (vmName: string): Promise<string[]> => lines("admin.vm.feature.List", vmName),
    get: (vmName: string, name: string): Promise<string> => text("admin.vm.feature.Get", vmName, name),
    /** The value, or undefined when the feature is not set. */
    getOptional: async (vmName: string, name: string): Promise<string | undefined> => {
      try {
        return await text("admin.vm.feature.Get", vmName, name);
      } catch (e) {
        if (isQubes(e, "QubesFeatureNotFoundError")) return undefined;
        throw e;
      }
    },
    checkWithTemplate: (vmName: string, name: string): Promise<string> => text("admin.vm.feature.CheckWithTemplate", vmName, name),
    checkWithNetvm: (vmName: string, name: string): Promise<string> => text("admin.vm.feature.CheckWithNetvm", vmName, name),
    checkWithAdminVM: (vmName: string, name: string): Promise<string> => text("admin.vm.feature.CheckWithAdminVM", vmName, name),
    checkWithTemplateAndAdminVM: (vmName: string, name: string): Promise<string> =>
      text("admin.vm.feature.CheckWithTemplateAndAdminVM", vmName, name),
    /**
     * Checked as the head's qubesd checks it (qubes/api/admin.py vm_feature_set), on every release:
     * R4.2's qubesd stores a name with `/`, a newline or a tab in a value (differences.jsonl 40-45).
     */
    set: async (vmName: string, name: string, value: string): Promise<void> => {
      const bad = checkFeatureName(name) ?? checkFeatureValue(name, value);
      if (bad) throw new QubesApiError("invalid-request", `feature ${JSON.stringify(name)} of ${vmName}: ${bad}`, { maybeDelivered: false });
      await unit("admin.vm.feature.Set", vmName, name, value);
    },
    remove: (vmName: string, name: string): Promise<void> => unit("admin.vm.feature.Remove", vmName, name),
  };

  const tag = {
    list: (vmName: string): Promise<string[]> => lines("admin.vm.tag.List", vmName),
    get: async (vmName: string, name: string): Promise<boolean> => (await text("admin.vm.tag.Get", vmName, name)) === "1",
    set: (vmName: string, name: string): Promise<void> => unit("admin.vm.tag.Set", vmName, name),
    remove: (vmName: string, name: string): Promise<void> => unit("admin.vm.tag.Remove", vmName, name),
  };

  const firewall = {
    /** Rules in the server's canonical form, one string each. */
    get: (vmName: string): Promise<string[]> => lines("admin.vm.firewall.Get", vmName),
    /** Replaces the whole list atomically. An empty list is sent as one `action=drop` (qubesd ≥ 4.4 refuses an empty payload). */
    set: async (vmName: string, rules: readonly string[]): Promise<void> => {
      for (const r of rules) {
        if (r.includes("\n") || r === "") throw new QubesApiError("invalid-request", `firewall rule for ${vmName} must be one non-empty line`, { maybeDelivered: false });
      }
      const list = rules.length === 0 ? ["action=drop"] : rules;
      return unit("admin.vm.firewall.Set", vmName, "", list.map((r) => `${r}\n`).join(""));
    },
    reload: (vmName: string): Promise<void> => unit("admin.vm.firewall.Reload", vmName),
  };

  /**
   * Device calls (qubes/api/admin.py vm_device_*; payloads and arguments built and checked in
   * src/model/devices.ts). The class is one the caller checked against DEVICE_CLASSES.
   */
  const device = {
    classes: (): Promise<string[]> => lines("admin.deviceclass.List", "dom0"),
    /** R4.3+: Assigned; R4.2: List (assignments and live attachments). */
    assigned: (vmName: string, cls: string, api: "assignment" | "persistent"): Promise<string[]> =>
      lines(`admin.vm.device.${cls}.${api === "assignment" ? "Assigned" : "List"}`, vmName),
    available: (vmName: string, cls: string, port = ""): Promise<string[]> => lines(`admin.vm.device.${cls}.Available`, vmName, port),
    assign: (vmName: string, cls: string, arg: string, payload: string): Promise<void> => unit(`admin.vm.device.${cls}.Assign`, vmName, arg, payload),
    unassign: (vmName: string, cls: string, arg: string): Promise<void> => unit(`admin.vm.device.${cls}.Unassign`, vmName, arg),
    setAssignment: (vmName: string, cls: string, arg: string, mode: string): Promise<void> => unit(`admin.vm.device.${cls}.Set.assignment`, vmName, arg, mode),
    attach: (vmName: string, cls: string, arg: string, payload: string): Promise<void> => unit(`admin.vm.device.${cls}.Attach`, vmName, arg, payload),
    detach: (vmName: string, cls: string, arg: string): Promise<void> => unit(`admin.vm.device.${cls}.Detach`, vmName, arg),
  };

  const pool = {
    list: (): Promise<string[]> => lines("admin.pool.List", "dom0"),
    /** driver → its parameter names, in the server's order. */
    listDrivers: async (): Promise<Map<string, string[]>> =>
      new Map((await lines("admin.pool.ListDrivers", "dom0")).map((l) => {
        const [driver = "", ...params] = l.split(" ");
        return [driver, params] as const;
      })),
    info: async (name: string): Promise<Map<string, string>> =>
      unwrap(parseKeyValueLines(await text("admin.pool.Info", "dom0", name)), "admin.pool.Info", "dom0", name),
    usageDetails: async (name: string): Promise<Map<string, string>> =>
      unwrap(parseKeyValueLines(await text("admin.pool.UsageDetails", "dom0", name)), "admin.pool.UsageDetails", "dom0", name),
    add: async (driver: string, name: string, params: Record<string, string>): Promise<void> => {
      const entries: Array<[string, string]> = [["name", name], ...Object.entries(params)];
      for (const [k, v] of entries) {
        if (/[\n=]/.test(k) || v.includes("\n") || !/^[\x20-\x7e]*$/.test(v)) {
          throw new QubesApiError("invalid-request", `pool ${name}: parameter ${JSON.stringify(k)} has characters qubesd cannot take`, { maybeDelivered: false });
        }
      }
      return unit("admin.pool.Add", "dom0", driver, entries.map(([k, v]) => `${k}=${v}\n`).join(""));
    },
    /** The vids of the volumes a pool holds. */
    volumes: (name: string): Promise<string[]> => lines("admin.pool.volume.List", "dom0", name),
    remove: (name: string): Promise<void> => unit("admin.pool.Remove", "dom0", name),
    setRevisionsToKeep: (name: string, n: number): Promise<void> => unit("admin.pool.Set.revisions_to_keep", "dom0", name, String(n)),
  };

  const volume = {
    list: (vmName: string): Promise<string[]> => lines("admin.vm.volume.List", vmName),
    info: async (vmName: string, vol: string): Promise<VolumeInfo> => {
      const m = unwrap(parseKeyValueLines(await text("admin.vm.volume.Info", vmName, vol)), "admin.vm.volume.Info", vmName, vol);
      const num = (k: string): bigint => {
        const v = m.get(k) ?? "";
        if (!/^-?[0-9]+$/.test(v)) throw new QubesApiError("bad-reply", `volume ${vmName}:${vol} has invalid ${k}=${JSON.stringify(v)}`);
        return BigInt(v);
      };
      return {
        pool: m.get("pool") ?? "",
        vid: m.get("vid") ?? "",
        size: num("size"),
        usage: /^[0-9]+$/.test(m.get("usage") ?? "") ? num("usage") : 0n,
        rw: m.get("rw") === "True",
        revisionsToKeep: Number(m.get("revisions_to_keep") ?? "0"),
        fields: m,
      };
    },
    resize: (vmName: string, vol: string, size: bigint): Promise<void> => unit("admin.vm.volume.Resize", vmName, vol, size.toString()),
    setRevisionsToKeep: (vmName: string, vol: string, n: number): Promise<void> =>
      unit("admin.vm.volume.Set.revisions_to_keep", vmName, vol, String(n)),
    setRw: (vmName: string, vol: string, rw: boolean): Promise<void> => unit("admin.vm.volume.Set.rw", vmName, vol, rw ? "True" : "False"),
  };

  /**
   * Opens admin.Events and resolves once `connection-established` arrived (handlers are
   * registered server-side from then on); iterating yields the events after it.
   */
  async function events(dest = "dom0"): Promise<EventSubscription> {
    const invalid = checkRequest({ method: "admin.Events", arg: "", src: "dom0", dest, payload: new Uint8Array() });
    if (invalid) throw new QubesApiError("invalid-request", invalid, { maybeDelivered: false });
    const raw = transport.stream({ method: "admin.Events", dest, arg: "" });
    const it = raw[Symbol.asyncIterator]();
    const decoder = new EventStreamDecoder();
    const queue: QubesEvent[] = [];
    const fill = async (): Promise<boolean> => {
      while (queue.length === 0) {
        const next = await it.next();
        if (next.done) {
          if (decoder.pendingBytes > 0) throw new QubesApiError("bad-reply", `event stream from ${dest} ended inside an event`);
          return false;
        }
        const r = decoder.push(next.value);
        for (const ev of r.events) queue.push(ev);
        if (r.error) {
          raw.close();
          throw new QubesApiError("bad-reply", `event stream from ${dest}: ${r.error}`);
        }
      }
      return true;
    };
    const established = await fill().catch((e: unknown) => {
      raw.close();
      throw e;
    });
    const first = queue.shift();
    if (!established || first?.event !== "connection-established") {
      raw.close();
      const why = established ? `first event was ${first?.event}` : "the server closed the stream";
      throw new QubesApiError("bad-reply", `admin.Events to ${dest}: expected connection-established, ${why}`);
    }
    return {
      close: () => raw.close(),
      async *[Symbol.asyncIterator](): AsyncGenerator<QubesEvent> {
        try {
          while (await fill()) yield queue.shift() as QubesEvent;
        } finally {
          raw.close();
        }
      },
    };
  }

  /**
   * Which release answers, from dom0's property list (src/model/release.ts), asked once per
   * client. A refused or failed list tells nothing: every release stays possible.
   */
  function release(): Promise<DetectedRelease> {
    releaseAsking ??= property.list({ vm: "dom0" }).then(
      (names) => (releaseSeen = detectRelease([{ holder: "dom0", name: "dom0", properties: new Set(names) }])),
      (e: unknown) => {
        if (e instanceof QubesApiError && e.code !== "invalid-request") return UNDETECTED;
        throw e;
      },
    );
    return releaseAsking;
  }

  return {
    transport,
    release,
    /** The release learned so far (all candidates until release() answered). */
    get releaseSeen(): DetectedRelease {
      return releaseSeen;
    },
    /** Raw call (for `sim call` and for methods without a typed wrapper): returns the OK body. */
    call,
    /** Whether this run learned that property.GetAll is refused for any holder. */
    get getAllRefused(): boolean {
      return [...getAllAnswer.values()].includes("refused");
    },
    /** Whether this run learned that property.GetAll of this holder is refused. */
    getAllRefusedFor: (h: PropertyHolder): boolean => {
      const { prefix, dest } = propPrefix(h);
      return getAllAnswer.get(`${prefix} ${dest}`) === "refused";
    },
    vm,
    property,
    label,
    feature,
    tag,
    firewall,
    device,
    pool,
    volume,
    events,
    close: (): Promise<void> => transport.close(),
  };
}

export type AdminClient = ReturnType<typeof createAdminClient>;
