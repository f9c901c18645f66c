// What a refused or timed-out admin.vm.Shutdown means, told per release and per kind of client
// from qubesd's exception class and message, and the one thing apply may do about a timeout when
// asked (`--kill-after-timeout`): admin.vm.Kill, only after qubesd's own shutdown_timeout passed.
// Apply never sends Shutdown with `force` (to qubesd it means "ignore the running clients").

import type { CallFailure } from "./engine.js";

type Refusal = { kind: "netvm" | "audiovm" | "guivm"; classes: readonly string[]; prefix: string; releases: string };

/**
 * The domain-pre-shutdown refusals of qubesd (qubes/vm/mix/net.py on_domain_pre_shutdown,
 * qubes/ext/audio.py and qubes/ext/gui.py): R4.2 raises QubesVMError for all three; R4.3 and
 * later QubesVMInUseError for netvm and audiovm, still QubesVMError for guivm.
 */
const REFUSALS: readonly Refusal[] = [
  { kind: "netvm", classes: ["QubesVMInUseError", "QubesVMError"], prefix: "There are other VMs connected to this VM: ", releases: "QubesVMInUseError on R4.3 and later, QubesVMError on R4.2" },
  { kind: "audiovm", classes: ["QubesVMInUseError", "QubesVMError"], prefix: "There are running VMs using this VM as AudioVM: ", releases: "QubesVMInUseError on R4.3 and later, QubesVMError on R4.2" },
  { kind: "guivm", classes: ["QubesVMError"], prefix: "There are running VMs using this VM as GuiVM: ", releases: "QubesVMError on every release" },
];

/** qubes/exc.py QubesVMShutdownTimeoutError: `wait` ran out of the qube's shutdown_timeout. */
export const SHUTDOWN_TIMEOUT = "QubesVMShutdownTimeoutError";

/** A shutdown failure told in the user's terms, naming the qube; undefined when it is neither a refusal nor a timeout. */
export function explainShutdownFailure(vm: string, f: CallFailure): string | undefined {
  if (f.qubesClass === SHUTDOWN_TIMEOUT) {
    return `qube ${vm} did not halt within its shutdown_timeout (${SHUTDOWN_TIMEOUT}); it may still be shutting down. Run apply with --kill-after-timeout to kill it once the timeout has passed, or see to the qube and run apply again`;
  }
  if (f.qubesClass === undefined) return undefined;
  // The client's message is `<class>: <qubesd's message>`.
  const said = f.message.startsWith(`${f.qubesClass}: `) ? f.message.slice(f.qubesClass.length + 2) : f.message;
  for (const r of REFUSALS) {
    if (!r.classes.includes(f.qubesClass) || !said.startsWith(r.prefix)) continue;
    return `qube ${vm} cannot be shut down: running qubes use it as their ${r.kind}: ${said.slice(r.prefix.length)} (${f.qubesClass}; qubesd refuses with ${r.releases}). Shut them down first, or point them at another qube`;
  }
  return undefined;
}
