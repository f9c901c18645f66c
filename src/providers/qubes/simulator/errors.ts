// How a simulated call fails: either a Qubes exception the caller sees by class and message, or
// qubesd's empty reply (a non-Qubes exception inside the daemon: KeyError, write-once
// AttributeError, firewall ValueError...). Handlers throw SimError; the dispatcher encodes it.

export type SimFailure =
  | { kind: "exception"; qubesClass: string; message: string }
  /** `reason` is for the simulator's own log only; the caller gets zero bytes. */
  | { kind: "empty"; reason: string };

export class SimError extends Error {
  override readonly name = "SimError";
  constructor(readonly failure: SimFailure) {
    super(failure.kind === "exception" ? `${failure.qubesClass}: ${failure.message}` : `empty reply: ${failure.reason}`);
  }
}

export const qubesError = (qubesClass: string, message: string): SimError =>
  new SimError({ kind: "exception", qubesClass, message });

export const emptyReply = (reason: string): SimError => new SimError({ kind: "empty", reason });

export const protocolError = (message: string): SimError => qubesError("ProtocolError", message);
export const permissionDenied = (message: string): SimError => qubesError("PermissionDenied", message);
/** `enforce(arg in allowed)` of qubesd: the HEAD message names the set the argument is not in. */
export const argumentNotIn = (what: string): SimError => permissionDenied(`Argument not in '${what}'`);

/** Python's repr() of a str, as qubesd puts names in messages ('work', "it's"). */
export function pyRepr(s: string): string {
  const quote = s.includes("'") && !s.includes('"') ? '"' : "'";
  let out = "";
  for (const ch of s) {
    const c = ch.codePointAt(0) ?? 0;
    if (ch === "\\") out += "\\\\";
    else if (ch === quote) out += `\\${quote}`;
    else if (ch === "\n") out += "\\n";
    else if (ch === "\r") out += "\\r";
    else if (ch === "\t") out += "\\t";
    else if (c < 0x20 || c === 0x7f) out += `\\x${c.toString(16).padStart(2, "0")}`;
    else out += ch;
  }
  return `${quote}${out}${quote}`;
}

export const vmNotFound = (name: string): SimError => qubesError("QubesVMNotFoundError", `No such domain: ${pyRepr(name)}`);
export const vmNotHalted = (name: string): SimError => qubesError("QubesVMNotHaltedError", `Domain is not powered off: ${pyRepr(name)}`);
export const vmNotStarted = (name: string): SimError => qubesError("QubesVMNotStartedError", `Domain is powered off: ${pyRepr(name)}`);
export const vmNotRunning = (name: string): SimError =>
  qubesError("QubesVMNotRunningError", `Domain not running (either powered off or paused): ${pyRepr(name)}`);
