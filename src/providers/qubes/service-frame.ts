// How the simulator's socket returns a qrexec service's result (policy.*), which qubesd's framing
// cannot carry: a real dom0 runs such a service through qrexec, and its caller sees the output,
// the error output and the exit status separately. The request is framed as an Admin API call;
// the reply is `qrexec-service\0<exit>\0<stdout length>\0<stdout><stderr>`. Pure codec.

import type { ServiceReply } from "../../model/qrexec-policy-admin.js";

const MAGIC = "qrexec-service\0";

export function encodeServiceReply(r: ServiceReply): Buffer {
  return Buffer.concat([Buffer.from(`${MAGIC}${r.exit}\0${r.stdout.length}\0`, "ascii"), r.stdout, r.stderr]);
}

export function decodeServiceReply(b: Buffer): ServiceReply | undefined {
  if (!b.subarray(0, MAGIC.length).equals(Buffer.from(MAGIC, "ascii"))) return undefined;
  const rest = b.subarray(MAGIC.length);
  const a = rest.indexOf(0);
  const c = a < 0 ? -1 : rest.indexOf(0, a + 1);
  if (c < 0) return undefined;
  const exit = rest.subarray(0, a).toString("ascii");
  const len = rest.subarray(a + 1, c).toString("ascii");
  if (!/^[0-9]{1,3}$/.test(exit) || !/^[0-9]{1,10}$/.test(len)) return undefined;
  const body = rest.subarray(c + 1);
  if (Number(len) > body.length) return undefined;
  return { exit: Number(exit), stdout: body.subarray(0, Number(len)), stderr: body.subarray(Number(len)) };
}
