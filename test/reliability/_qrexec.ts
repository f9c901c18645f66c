// Runs qubes-iac from a management qube in tests: the built CLI over `--connect qrexec`, with
// test/reliability/bin/qrexec-client-vm standing in for qrexec and deciding each call by a
// policy file as dom0's policy daemon would; and the stand-in's log of what it decided.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { runBuiltCli } from "../helpers/cli.js";
import { repoRoot } from "../helpers/shared.js";

export const POLICY_STANDIN_DIR = join(repoRoot, "test", "reliability", "bin");
export const POLICY_STANDIN = join(POLICY_STANDIN_DIR, "qrexec-client-vm");

/** What the stand-in needs: the simulator's socket, the calling qube, the policy file, where to log. */
export type StandinSetup = { socketPath: string; src: string; policy: string; log: string; release?: string };

export const standinEnv = (s: StandinSetup): Record<string, string> => ({
  QIAC_STANDIN_SOCKET: s.socketPath,
  QIAC_STANDIN_SRC: s.src,
  QIAC_POLICY: s.policy,
  QIAC_STANDIN_LOG: s.log,
  ...(s.release !== undefined ? { QIAC_STANDIN_RELEASE: s.release } : {}),
});

/** A qubes-iac command run by the built CLI over `--connect qrexec` through the policy stand-in. */
export function viaQrexec(args: string[], s: StandinSetup) {
  return runBuiltCli([args[0] as string, "--connect", "qrexec", ...args.slice(1)], {
    cwd: repoRoot,
    env: { PATH: `${POLICY_STANDIN_DIR}:${process.env.PATH ?? "/usr/bin:/bin"}`, ...standinEnv(s) },
    timeoutMs: 120_000,
  });
}

/** The stand-in's decisions so far: [target, service, decision], in the order it made them. */
export function decisionsIn(log: string): Array<[string, string, string]> {
  try {
    return readFileSync(log, "utf8").trim().split("\n").filter((l) => l !== "").map((l) => JSON.parse(l) as [string, string, string]);
  } catch {
    return [];
  }
}
