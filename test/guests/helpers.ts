// Shared by the guest tests: hashing as the plan does, and a config written to a temp dir that
// manages files only inside a test agent's own temp dir (a test never names a host path outside it).
import { createHash } from "node:crypto";

export const sha256Of = (data: string | Uint8Array): string => createHash("sha256").update(data).digest("hex");

/** `21 bytes, sha256 3f2a9c1b0d4e`, as plans show a file. */
export const shown = (data: string | Uint8Array): string => {
  const n = typeof data === "string" ? Buffer.byteLength(data) : data.length;
  return `${n} byte${n === 1 ? "" : "s"}, sha256 ${sha256Of(data).slice(0, 12)}`;
};
