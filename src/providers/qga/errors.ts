// The one error type of the guest-agent layer. Every failure — an agent error reply, a command the
// agent disabled, a dead or silent channel, a reply that breaks the protocol, a file that did not
// read back as written — is a QgaError with a `code`; callers branch on codes, never on messages.
// Messages name commands, paths and sizes, never file contents or raw reply bytes.

export type QgaErrorCode =
  /** The agent answered `{"error": …}` (class GenericError or another non-"not found" class). */
  | "agent"
  /** The command is disabled: guest-info says so (nothing was sent), or the agent refused it as disabled (blocked with -b, or fsfreeze in effect). */
  | "disabled"
  /** The agent does not know the command: absent from guest-info, or "has not been found". */
  | "unsupported"
  /** The channel could not be opened, or closed before the agent answered the first sync: the agent is not answering (yet). */
  | "unreachable"
  /** qrexec policy refused the service (qrexec-client-vm exit 126). */
  | "refused"
  /** The channel closed after the agent had answered; the call may or may not have run. */
  | "closed"
  /** No reply within the call's deadline; the call may or may not have run. */
  | "timeout"
  /** The reply breaks the framing, JSON, size bounds or the command's reply shape. */
  | "bad-reply"
  /** We refused to send the request (bad argument or size). Nothing was sent. */
  | "invalid-request"
  /** waitForAgent's deadline passed with the agent still not answering. */
  | "not-ready"
  /** A guest file did not read back with the size and SHA-256 just written. */
  | "mismatch"
  /** A guest file is larger than the reader's limit (a guest may offer an endless file). */
  | "too-large"
  /** The helper process could not be started, or another local I/O fault. */
  | "transport";

export type QgaErrorDetails = {
  /** The agent command this error belongs to, e.g. `guest-file-open`. */
  command?: string;
  /** The agent's error class, for codes "agent", "disabled" and "unsupported" when it replied. */
  agentClass?: string;
  /** The agent's error text, verbatim (as sent: ASCII with \u escapes decoded). */
  agentDesc?: string;
  /** False when we know the request never reached the agent. */
  maybeDelivered?: boolean;
};

export class QgaError extends Error {
  override readonly name = "QgaError";
  constructor(
    readonly code: QgaErrorCode,
    message: string,
    readonly details: QgaErrorDetails = {},
  ) {
    super(message);
  }
}

export const isQgaError = (e: unknown): e is QgaError => e instanceof QgaError;

/** True for the failures waitForAgent treats as "agent not answering yet". */
export const isNotAnsweringYet = (e: unknown): boolean =>
  isQgaError(e) && (e.code === "unreachable" || (e.code === "timeout" && e.details.command === "guest-sync-delimited"));
