// The QEMU guest agent provider's public surface: agent specs, the typed client, readiness,
// guest files by content hash, fsfreeze around host work, and facts. Everything else in this
// directory is reached through these names.

export type { AgentSpec, WrittenAgentSpec } from "./spec.js";
export { DEFAULT_QREXEC_SERVICE, describeAgent, parseAgentTarget, toAgentSpec } from "./spec.js";
export type { CallOptions, ConnectOptions, FileOpenMode, QgaClient, SeekWhence, ShutdownOptions, SuspendKind, SuspendOutcome } from "./client.js";
export { connectAgent } from "./client.js";
export type { WaitOptions } from "./wait.js";
export { waitForAgent } from "./wait.js";
export type { QgaErrorCode, QgaErrorDetails } from "./errors.js";
export { QgaError, isNotAnsweringYet, isQgaError } from "./errors.js";
export type { Digest, FileContent, FileOptions, FileProgress, GuestFileState } from "./files.js";
export { digestContent, readGuestFile, readGuestFileState, writeGuestFile } from "./files.js";
export type { FreezeOptions, FreezeOutcome, FreezeReport } from "./fsfreeze.js";
export { withFrozenFilesystems } from "./fsfreeze.js";
export type { GuestFacts } from "./facts.js";
export { readGuestFacts } from "./facts.js";
export type { AgentInfo, FsfreezeStatus, GuestInterface, GuestIpAddress, GuestOsInfo } from "./replies.js";
