// The one error type of the Admin API layer. Every failure a call can have — a Qubes exception,
// an empty reply, a refusal by qrexec policy, a malformed reply, a transport fault, a request we
// refused to send — is a QubesApiError with a `code`; callers branch on codes, never on messages.

export type QubesApiErrorCode =
  /** qubesd answered with an EXCEPTION frame; `qubesClass` names the Qubes exception. */
  | "exception"
  /** qubesd closed with no bytes: refused or failed, reason only in dom0's journal (R4.3 and earlier answer ProtocolError/PermissionDenied so). */
  | "empty-reply"
  /** qrexec policy refused the call (qrexec-client-vm exit 126). */
  | "refused"
  /** The reply bytes do not follow the framing. */
  | "bad-reply"
  /** Connection failed, dropped, or the helper process failed. The call may or may not have happened. */
  | "transport"
  /** No complete reply within the call's timeout. The call may or may not have happened. */
  | "timeout"
  /** We refused to send the request (bad argument, destination, or size). Nothing was sent. */
  | "invalid-request";

export class QubesApiError extends Error {
  override readonly name = "QubesApiError";
  constructor(
    readonly code: QubesApiErrorCode,
    message: string,
    readonly details: {
      /** Qubes exception class name (for code "exception"). */
      qubesClass?: string;
      /** The call this error belongs to, e.g. `admin.vm.property.Set+memory work`. */
      call?: string;
      /** True when the request was (possibly) delivered: the outcome of a mutation is unknown. */
      maybeDelivered?: boolean;
      /**
       * For a qrexec refusal of a call to a qube: that qube is not among those admin.vm.List shows
       * to this caller. It does not exist, or the caller's policy hides it; qrexec refuses both alike.
       */
      targetUnseen?: boolean;
    } = {},
  ) {
    super(message);
  }

  get qubesClass(): string | undefined {
    return this.details.qubesClass;
  }

  /** A refusal of any shape: PermissionDenied (head), an empty reply (R4.3), or a qrexec policy refusal. */
  get isDenied(): boolean {
    return (
      this.code === "refused" ||
      this.code === "empty-reply" ||
      (this.code === "exception" && this.details.qubesClass === "PermissionDenied")
    );
  }
}

export function isQubesApiError(e: unknown): e is QubesApiError {
  return e instanceof QubesApiError;
}
