// The QEMU guest agent as the capabilities the core is given: planning's read-only GuestReader
// (facts and file digests, then close) and apply's executor of guest ops (each op connects, does
// its one thing, closes — the agent serves one client at a time, and a fresh connection cannot
// inherit a stale one's replies). Content is read again from where the plan says it is and hashed
// before anything is written; it never appears in a message. Local files are streamed.

import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { readFile } from "node:fs/promises";
import { inlineContentAt } from "../config/index.js";
import type { ContentRef, Digest, GuestObservation, ObservedFile } from "../model/guest.js";
import type { GuestReader } from "../plan/guest-reader.js";
import type { JsonPlan } from "../plan/json.js";
import { isGuestOp, isPolicyOp, stepOpMethod, type GuestOp, type PolicyOp, type StepOp } from "../plan/ops.js";
import { connectAgent, type QgaClient } from "../providers/qga/client.js";
import { isNotAnsweringYet, isQgaError, QgaError } from "../providers/qga/errors.js";
import { readGuestFacts } from "../providers/qga/facts.js";
import { readGuestFileState, writeGuestFile, type FileContent } from "../providers/qga/files.js";
import type { AgentSpec } from "../providers/qga/spec.js";
import { waitForAgent } from "../providers/qga/wait.js";
import type { CallFailure, OpExecutor, OpOutcome, Verification } from "./engine.js";
import type { PriorStateChange } from "./prior-state.js";

export type GuestAgentOptions = {
  /** The deadline of one attempt when no `wait` is given, and of each agent call. Default 15 s. */
  attemptMs?: number;
  /** Program for qrexec agents (default qrexec-client-vm); tests point it elsewhere. */
  qrexecClient?: string;
  env?: NodeJS.ProcessEnv;
};

export const DEFAULT_ATTEMPT_MS = 15_000;

/** Opens a client: waits up to `waitMs` while the agent does not answer yet, else one bounded attempt. */
function openAgent(agent: AgentSpec, waitMs: number | undefined, o: GuestAgentOptions): Promise<QgaClient> {
  const attemptMs = o.attemptMs ?? DEFAULT_ATTEMPT_MS;
  const common = { callTimeoutMs: attemptMs, ...(o.qrexecClient ? { qrexecClient: o.qrexecClient } : {}), ...(o.env ? { env: o.env } : {}) };
  if (waitMs !== undefined) return waitForAgent(agent, { timeoutMs: waitMs, ...common });
  return connectAgent(agent, { timeoutMs: attemptMs, resyncEveryMs: 1000, ...common });
}

/** Agent errors that concern one file (it cannot be opened or is too large), not the agent. */
const fileProblem = (e: unknown): e is QgaError => isQgaError(e) && (e.code === "agent" || e.code === "too-large" || e.code === "disabled" || e.code === "unsupported");

export function guestReaderFromAgents(o: GuestAgentOptions = {}): GuestReader {
  return {
    observe: async (agent, paths, { waitMs }): Promise<GuestObservation> => {
      let client: QgaClient;
      try {
        client = await openAgent(agent, waitMs, o);
      } catch (e) {
        if (!isQgaError(e)) throw e;
        return isNotAnsweringYet(e) || e.code === "not-ready" ? { kind: "not-answering", reason: e.message } : { kind: "failed", reason: e.message };
      }
      try {
        const facts = await readGuestFacts(client);
        const files = new Map<string, ObservedFile>();
        for (const path of paths) {
          try {
            files.set(path, await readGuestFileState(client, path));
          } catch (e) {
            if (!fileProblem(e)) throw e;
            files.set(path, { kind: "unreadable", reason: e.message });
          }
        }
        return { kind: "answering", facts, files };
      } catch (e) {
        if (!isQgaError(e)) throw e;
        return { kind: "failed", reason: e.message };
      } finally {
        await client.close();
      }
    },
    digestFile: (path) => digestLocalFile(path),
  };
}

/** Size and SHA-256 of a local file, streamed in 64 KiB pieces. */
export async function digestLocalFile(path: string): Promise<Digest> {
  const hash = createHash("sha256");
  let size = 0;
  try {
    for await (const piece of createReadStream(path) as AsyncIterable<Buffer>) {
      hash.update(piece);
      size += piece.length;
    }
  } catch (e) {
    throw new Error(`cannot read ${path}: ${(e as NodeJS.ErrnoException).code ?? (e instanceof Error ? e.message : String(e))}`);
  }
  return { size, sha256: hash.digest("hex") };
}

/** A guest file's content, found again where the plan says it is: its digest, and the bytes to write. */
export type ContentSource = { digest(): Promise<Digest>; open(): FileContent };

export type ContentReader = (ref: ContentRef) => Promise<ContentSource>;

/** Inline content is the string in the config file now (re-read and re-parsed); a source file is streamed. */
export const nodeContentReader: ContentReader = async (ref) => {
  switch (ref.kind) {
    case "inline": {
      let text: string;
      try {
        text = await readFile(ref.file, "utf8");
      } catch (e) {
        throw new Error(`cannot read the config file ${ref.file}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
      }
      const found = inlineContentAt(ref.file, text, ref.pointer);
      if ("error" in found) throw new Error(found.error);
      const bytes = Buffer.from(found.text, "utf8");
      return { digest: async () => ({ size: bytes.length, sha256: createHash("sha256").update(bytes).digest("hex") }), open: () => bytes };
    }
    case "source":
      return { digest: () => digestLocalFile(ref.path), open: () => createReadStream(ref.path, { highWaterMark: 1024 * 1024 }) as AsyncIterable<Uint8Array> };
    default: {
      const never: never = ref;
      throw new Error(`unknown content ${JSON.stringify(never)}`);
    }
  }
};

const describeContent = (ref: ContentRef): string => (ref.kind === "inline" ? `the inline content in ${ref.file}` : `the source file ${ref.path}`);
const showDigest = (d: Digest): string => `${d.size} bytes, sha256 ${d.sha256.slice(0, 12)}…`;

function callOf(o: GuestOp): string {
  return o.op === "guest.file.write" ? `guest-file-write ${o.path} → ${o.guest}` : `guest-shutdown → ${o.guest}`;
}

function failure(o: GuestOp, code: string, message: string): CallFailure {
  return { code, message, call: callOf(o) };
}

/**
 * Apply's executor of guest ops. A write reads its content again and refuses (changing nothing)
 * when the size or SHA-256 differ from the plan's; an agent failure after bytes may have landed
 * is an unknown outcome, settled by `verify` reading the file back. A shutdown that got no
 * channel close in time is unknown too, settled by whether the agent still answers.
 */
export function guestOpExecutor(o: GuestAgentOptions & { content?: ContentReader } = {}): OpExecutor<GuestOp> {
  const content = o.content ?? nodeContentReader;
  return {
    run: async (op) => {
      let client: QgaClient;
      switch (op.op) {
        case "guest.file.write": {
          let source: ContentSource;
          let planned: Digest;
          try {
            source = await content(op.content);
            planned = await source.digest();
          } catch (e) {
            return { kind: "failed", failure: failure(op, "content", `${op.guest} ${op.path}: ${e instanceof Error ? e.message : String(e)}; nothing was written`) };
          }
          if (planned.size !== op.size || planned.sha256 !== op.sha256) {
            return {
              kind: "failed",
              failure: failure(op, "content-changed", `${op.guest} ${op.path}: ${describeContent(op.content)} is now ${showDigest(planned)}, not the planned ${showDigest(op)}; nothing was written. Run \`qubes-iac plan\` again`),
            };
          }
          try {
            client = await openAgent(op.agent, op.wait_ms, o);
          } catch (e) {
            if (!isQgaError(e)) throw e;
            return { kind: "failed", failure: failure(op, e.code, `${op.guest}: ${e.message}`) };
          }
          try {
            const written = await writeGuestFile(client, op.path, source.open());
            if (written.size !== op.size || written.sha256 !== op.sha256) {
              return {
                kind: "failed",
                failure: failure(op, "content-changed", `${op.guest} ${op.path}: ${describeContent(op.content)} changed while it was written (${showDigest(written)} written, ${showDigest(op)} planned). Run \`qubes-iac plan\` again`),
              };
            }
            return { kind: "ok" };
          } catch (e) {
            if (!isQgaError(e)) throw e;
            const f = failure(op, e.code, `${op.guest}: ${e.message}`);
            return e.details.maybeDelivered === false ? { kind: "failed", failure: f } : { kind: "unknown", failure: f };
          } finally {
            await client.close();
          }
        }
        case "guest.shutdown": {
          try {
            client = await openAgent(op.agent, op.wait_ms, o);
          } catch (e) {
            if (!isQgaError(e)) throw e;
            return { kind: "failed", failure: failure(op, e.code, `${op.guest}: ${e.message}`) };
          }
          try {
            await client.shutdown({ timeoutMs: SHUTDOWN_MS });
            return { kind: "ok" };
          } catch (e) {
            if (!isQgaError(e)) throw e;
            const f = failure(op, e.code, `${op.guest}: ${e.message}`);
            return e.code === "timeout" ? { kind: "unknown", failure: f } : { kind: "failed", failure: f };
          } finally {
            await client.close();
          }
        }
        default: {
          const never: never = op;
          throw new Error(`unknown guest op ${JSON.stringify(never)}`);
        }
      }
    },
    verify: async (op): Promise<Verification> => {
      let client: QgaClient;
      try {
        client = await openAgent(op.agent, op.wait_ms, o);
      } catch (e) {
        if (!isQgaError(e)) throw e;
        if (op.op === "guest.shutdown" && (isNotAnsweringYet(e) || e.code === "not-ready")) return { kind: "done" };
        return { kind: "unknown", detail: `the agent cannot be reached: ${e.message}` };
      }
      try {
        if (op.op === "guest.shutdown") return { kind: "not-done", detail: `the agent of ${op.guest} still answers` };
        const now = await readGuestFileState(client, op.path);
        if (now.kind === "present" && now.size === op.size && now.sha256 === op.sha256) return { kind: "done" };
        return { kind: "not-done", detail: `${op.path} is ${now.kind === "present" ? showDigest(now) : "absent"}` };
      } catch (e) {
        if (!isQgaError(e)) throw e;
        return { kind: "unknown", detail: `re-reading failed: ${e.message}` };
      } finally {
        await client.close();
      }
    },
  };
}

/** How long a guest gets to power off after guest-shutdown. */
const SHUTDOWN_MS = 120_000;

/**
 * Runs guest ops with `guests`, policy admin calls with `policies` and every other op with
 * `admin`: the executor of a whole plan. Without `policies`, a policy op fails without a call.
 */
export function withGuestOps(admin: OpExecutor, guests: OpExecutor<GuestOp>, policies?: OpExecutor<PolicyOp>): OpExecutor<StepOp> {
  const noPolicies = (op: PolicyOp): OpOutcome => ({ kind: "failed", failure: { code: "transport", message: "this connection cannot run dom0's policy admin services", call: stepOpMethod(op) } });
  return {
    run: (op) => (isGuestOp(op) ? guests.run(op) : isPolicyOp(op) ? (policies ? policies.run(op) : Promise.resolve(noPolicies(op))) : admin.run(op)),
    verify: (op) => (isGuestOp(op) ? guests.verify(op) : isPolicyOp(op) ? (policies ? policies.verify(op) : Promise.resolve({ kind: "unknown", detail: "no policy transport" })) : admin.verify(op)),
  };
}

const showObserved = (o: { size: number; sha256: string } | { absent: true }): string => ("absent" in o ? "absent" : showDigest(o));

/**
 * The guest half of re-checking a plan before acting on it (a saved plan, or after a person was
 * asked): for each guest the plan changes, each file's content source still hashes as planned,
 * and each file planning read still reads the same through the agent. Returns what changed.
 */
export async function checkGuestPriorState(plan: Pick<JsonPlan, "guests" | "steps">, o: GuestAgentOptions & { content?: ContentReader } = {}): Promise<PriorStateChange[]> {
  const content = o.content ?? nodeContentReader;
  const changes: PriorStateChange[] = [];
  for (const g of plan.guests ?? []) {
    const ops = plan.steps.filter((s) => s.address === g.address).flatMap((s) => s.ops.filter((x): x is GuestOp => isGuestOp(x)));
    if (ops.length === 0) continue;
    for (const op of ops) {
      if (op.op !== "guest.file.write") continue;
      const where = `${g.address}.files.${op.path}.content`;
      try {
        const now = await (await content(op.content)).digest();
        if (now.size !== op.size || now.sha256 !== op.sha256) changes.push({ address: where, expected: showDigest(op), actual: showDigest(now) });
      } catch (e) {
        changes.push({ address: where, expected: showDigest(op), actual: e instanceof Error ? e.message : String(e) });
      }
    }
    const read = g.files.filter((f) => f.observed !== null);
    if (g.read !== "answering" || read.length === 0) continue;
    let client: QgaClient;
    try {
      client = await openAgent(g.agent, g.wait_ms ?? undefined, o);
    } catch (e) {
      if (!isQgaError(e)) throw e;
      changes.push({ address: g.address, expected: "the agent answers", actual: e.message });
      continue;
    }
    try {
      for (const f of read) {
        const now = await readGuestFileState(client, f.path);
        const have = now.kind === "present" ? { size: now.size, sha256: now.sha256 } : { absent: true as const };
        if (JSON.stringify(have) !== JSON.stringify(f.observed)) changes.push({ address: `${g.address}.files.${f.path}`, expected: showObserved(f.observed!), actual: showObserved(have) });
      }
    } catch (e) {
      if (!isQgaError(e)) throw e;
      changes.push({ address: g.address, expected: "its files can be read", actual: e.message });
    } finally {
      await client.close();
    }
  }
  return changes;
}
