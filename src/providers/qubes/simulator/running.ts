// What a running system adds, modelled from upstream source (none of it can be recorded offline):
// a shutdown refused while clients run (netvm, audiovm, guivm), a running qube attached only to a
// running netvm (also when default_netvm moves its followers), a disposable template's template
// frozen while its disposables run, Resume and Unpause of a suspended qube. The refusals differ by
// release and by kind: they are the RELEASE_RULES table, keyed on the simulator's `release`.

import { protocolError, pyRepr, qubesError, vmNotRunning } from "./errors.js";
import type { Call } from "./call.js";
import { propTable, type Holder } from "./properties.js";
import type { SimRelease } from "./releases.js";
import type { Qube, World } from "./state.js";


/** A refusal qubesd raises: the exception class, and whether the message is a Python tuple's str(). */
type Refusal = { qubesClass: string; message: string; tuple?: true };

export type ClientKind = "netvm" | "audiovm" | "guivm";

type ReleaseRules = {
  /** domain-pre-shutdown handlers, in the order qubesd runs them: the client kind, and its refusal. */
  shutdown: ReadonlyArray<{ kind: ClientKind; refusal: Refusal; skipPreload: boolean; onlyIfProvidesNetwork: boolean }>;
  /** property-pre-set:template of a disposable template whose disposables run. */
  dvmTemplate: Refusal & { skipPreload: boolean };
  /** admin.vm.Resume exists. */
  resume: boolean;
};

// R4.2: qubes/vm/mix/net.py:313-324 (QubesVMError), qubes/ext/audio.py:69-79 and
// qubes/ext/gui.py:38-45 (QubesVMError), qubes/vm/mix/dvmtemplate.py:50-58
// (QubesVMNotHaltedError); qubes/api/admin.py has no admin.vm.Resume (only Pause/Unpause/Kill,
// :884-903).
const R42: ReleaseRules = {
  shutdown: [
    { kind: "netvm", refusal: { qubesClass: "QubesVMError", message: "There are other VMs connected to this VM: " }, skipPreload: false, onlyIfProvidesNetwork: false },
    { kind: "audiovm", refusal: { qubesClass: "QubesVMError", message: "There are running VMs using this VM as AudioVM: " }, skipPreload: false, onlyIfProvidesNetwork: false },
    { kind: "guivm", refusal: { qubesClass: "QubesVMError", message: "There are running VMs using this VM as GuiVM: " }, skipPreload: false, onlyIfProvidesNetwork: false },
  ],
  dvmTemplate: {
    qubesClass: "QubesVMNotHaltedError",
    message: "Cannot change template while there are running DispVMs based on this DVM template",
    skipPreload: false,
  },
  resume: false,
};

// R4.3: qubes/vm/mix/net.py:411-430 (QubesVMInUseError, only while provides_network, preloaded
// disposables left out), qubes/ext/audio.py:69-82 (QubesVMInUseError), qubes/ext/gui.py:38-48
// (still QubesVMError), qubes/vm/mix/dvmtemplate.py:406-436 (QubesVMInUseError whose message is a
// one-element tuple, so qubesd sends its repr), qubes/api/admin.py:1014-1020 (admin.vm.Resume).
const R43: ReleaseRules = {
  shutdown: [
    { kind: "netvm", refusal: { qubesClass: "QubesVMInUseError", message: "There are other VMs connected to this VM: " }, skipPreload: true, onlyIfProvidesNetwork: true },
    { kind: "audiovm", refusal: { qubesClass: "QubesVMInUseError", message: "There are running VMs using this VM as AudioVM: " }, skipPreload: true, onlyIfProvidesNetwork: false },
    { kind: "guivm", refusal: { qubesClass: "QubesVMError", message: "There are running VMs using this VM as GuiVM: " }, skipPreload: false, onlyIfProvidesNetwork: false },
  ],
  dvmTemplate: {
    qubesClass: "QubesVMInUseError",
    message: "Cannot change template while there are running disposables based on this disposable template",
    tuple: true,
    skipPreload: true,
  },
  resume: true,
};

// main: as R4.3 (qubes/vm/mix/net.py:411-430, qubes/ext/audio.py:69-82, qubes/ext/gui.py:176-186,
// qubes/vm/mix/dvmtemplate.py:414-444, qubes/api/admin.py:1304-1314).
const HEAD: ReleaseRules = R43;

export const RELEASE_RULES: { readonly [R in SimRelease]: ReleaseRules } = { "r4.2": R42, "r4.3": R43, main: HEAD };

/** qubesd's is_running(): libvirt's isActive, true for Paused and Suspended too (qubes/vm/qubesvm.py, is_running). */
const isRunning = (q: Qube): boolean => q.klass === "AdminVM" || q.power !== "Halted";

function message(r: Refusal, detail: string): string {
  // str() of a one-element tuple holding the message (upstream builds `msg = ("...",)`).
  return r.tuple ? `(${pyRepr(r.message)},)` : `${r.message}${detail}`;
}

type Read = (q: Qube, prop: string) => unknown;

/**
 * domain-pre-shutdown without `force`: the first kind with running clients refuses, naming them
 * (qubes/vm/qubesvm.py shutdown fires the event before anything else; R4.2 :1356, R4.3 :1661).
 */
export function checkShutdownClients(release: SimRelease, world: World, dest: Qube, read: Read): void {
  for (const rule of RELEASE_RULES[release].shutdown) {
    if (rule.onlyIfProvidesNetwork && read(dest, "provides_network") !== true) continue;
    const clients = [...world.qubes.values()].filter(
      (q) => q !== dest && read(q, rule.kind) === dest.name && isRunning(q) && !(rule.skipPreload && read(q, "is_preload") === true),
    );
    if (clients.length > 0) throw qubesError(rule.refusal.qubesClass, message(rule.refusal, clients.map((q) => q.name).join(", ")));
  }
}

/**
 * property-pre-set:netvm: a running qube is attached only to a running netvm (qubes/vm/mix/net.py
 * on_property_pre_set_netvm, R4.2 :453-461, R4.3 and main :601-615). qubes/app.py fires it for
 * every qube that follows default_netvm when the global changes (R4.2 :1567-1582, R4.3 :1728-1744,
 * main :2083-2099), so moving the default refuses the same way.
 */
export function checkNetvmAttach(world: World, q: Qube, next: unknown): void {
  if (typeof next !== "string") return;
  const target = world.qubes.get(next);
  if (target && isRunning(q) && !isRunning(target)) {
    throw qubesError("QubesVMNotStartedError", `Cannot dynamically attach to stopped qube ${target.name}`);
  }
}

/** property-pre-set:template of a disposable template whose disposables run (qubes/vm/mix/dvmtemplate.py). */
export function checkDvmTemplateChange(release: SimRelease, world: World, self: Qube, read: Read): void {
  if (read(self, "template_for_dispvms") !== true) return;
  const rule = RELEASE_RULES[release].dvmTemplate;
  const running = [...world.qubes.values()].filter(
    (q) => q.klass === "DispVM" && read(q, "template") === self.name && isRunning(q) && !(rule.skipPreload && read(q, "is_preload") === true),
  );
  if (running.length > 0) throw qubesError(rule.qubesClass, message(rule, ""));
}

/**
 * admin.vm.Resume: absent on R4.2 (an unknown method is a ProtocolError); elsewhere it wakes a
 * suspended qube and otherwise calls unpause() (qubes/vm/qubesvm.py resume, R4.3 :1770-1804,
 * main :1818-1852), so a running qube gets QubesVMNotPausedError.
 */
export function resume(call: Call, release: SimRelease, q: Qube): void {
  if (!RELEASE_RULES[release].resume) throw protocolError("no such method: 'admin.vm.Resume'");
  if (q.power === "Suspended") {
    q.power = "Running";
    call.emit(q.name, "domain-resumed");
    return;
  }
  unpause(call, q);
}

/**
 * unpause(): only a Paused qube (libvirt VIR_DOMAIN_PAUSED; a suspended one is PMSUSPENDED and is
 * refused too; qubes/vm/qubesvm.py unpause, R4.2 :1487-1494, R4.3 :1806-1816).
 */
export function unpause(call: Call, q: Qube): void {
  if (q.power !== "Paused") throw qubesError("QubesVMNotPausedError", `Domain is not paused: ${pyRepr(q.name)}`);
  q.power = "Running";
  call.emit(q.name, "domain-unpaused");
}

/**
 * shutdown(): R4.3 and later refuse a paused qube after domain-pre-shutdown unless forced
 * (qubes/vm/qubesvm.py R4.3 :1665, main :1681). R4.2 sends the request to a paused domain (:1362),
 * and a suspended one goes to libvirt on every release: what libvirt answers is not modelled, the
 * simulator refuses both the same way.
 */
export function checkShutdownPaused(q: Qube, force: boolean): void {
  if (q.power !== "Running" && !force) throw vmNotRunning(q.name);
}

/**
 * The property-pre-set handlers a running system adds, run after the setter and before the value
 * is stored (qubes.property.__set__ fires property-pre-set after sanitising and the setter).
 */
export function runningPreSet(release: SimRelease, world: World, holder: Holder, name: string, next: unknown, read: Read): void {
  if (holder.kind === "qube") {
    if (name === "netvm") checkNetvmAttach(world, holder.qube, next);
    if (name === "template") checkDvmTemplateChange(release, world, holder.qube, read);
    return;
  }
  if (name === "default_netvm") {
    for (const q of world.qubes.values()) {
      if (propTable({ kind: "qube", qube: q }, world.release).byName.has("netvm") && !q.props.has("netvm")) checkNetvmAttach(world, q, next);
    }
  }
}
