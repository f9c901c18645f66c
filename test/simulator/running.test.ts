// What a running system adds, per release, as the simulator models it from upstream source
// (src/providers/qubes/simulator/running.ts; each case names the upstream file and lines).

import { readFileSync, writeFileSync } from "node:fs";
import { afterEach, describe, expect, it } from "vitest";
import { call, ok, tempSim, type TempSim } from "./wire.js";

type Release = "head" | "r4.3" | "r4.2";
let s: TempSim | undefined;
afterEach(async () => {
  await s?.stop();
  s = undefined;
});

const exception = (cls: string, msg: string) => `2\0${cls}\0\0${msg}\0`;
async function sim(release: Release): Promise<TempSim> {
  s = await tempSim({ release });
  return s;
}
const text = async (t: TempSim, method: string, arg: string, dest: string, payload = ""): Promise<string> =>
  (await call(t.socketPath, method, arg, dest, payload)).toString("latin1");
const state = async (t: TempSim, vm: string): Promise<string> => ((await ok(t.socketPath, "admin.vm.List", "", vm)).split(" ")[2] ?? "").trim();

/** [release, netvm class, audiovm class, guivm class] */
const SHUTDOWN_CLASSES: Array<[Release, string, string, string]> = [
  // R4.2 qubes/vm/mix/net.py:313-324, qubes/ext/audio.py:69-79, qubes/ext/gui.py:38-45
  ["r4.2", "QubesVMError", "QubesVMError", "QubesVMError"],
  // R4.3 qubes/vm/mix/net.py:411-430, qubes/ext/audio.py:69-82, qubes/ext/gui.py:38-48
  ["r4.3", "QubesVMInUseError", "QubesVMInUseError", "QubesVMError"],
  // main qubes/vm/mix/net.py:411-430, qubes/ext/audio.py:69-82, qubes/ext/gui.py:176-186
  ["head", "QubesVMInUseError", "QubesVMInUseError", "QubesVMError"],
];

describe.each(SHUTDOWN_CLASSES)("a shutdown with running clients on %s", (release, netvmClass, audioClass, guiClass) => {
  it("is refused per kind, naming the running clients, unless forced", async () => {
    const t = await sim(release);
    await ok(t.socketPath, "admin.vm.Start", "", "work");
    expect(await text(t, "admin.vm.Shutdown", "wait", "sys-firewall")).toBe(exception(netvmClass, "There are other VMs connected to this VM: work"));
    await ok(t.socketPath, "admin.vm.property.Set", "audiovm", "personal", "untrusted");
    await ok(t.socketPath, "admin.vm.property.Set", "guivm", "vault", "untrusted");
    await ok(t.socketPath, "admin.vm.Start", "", "untrusted");
    await ok(t.socketPath, "admin.vm.Start", "", "personal");
    await ok(t.socketPath, "admin.vm.Start", "", "vault");
    expect(await text(t, "admin.vm.Shutdown", "wait", "untrusted")).toBe(exception(audioClass, "There are running VMs using this VM as AudioVM: personal"));
    await ok(t.socketPath, "admin.vm.Pause", "", "personal");
    // A paused client still counts: is_running() is libvirt's isActive.
    expect(await text(t, "admin.vm.Shutdown", "wait", "untrusted")).toBe(exception(audioClass, "There are running VMs using this VM as AudioVM: personal"));
    await ok(t.socketPath, "admin.vm.Kill", "", "personal");
    expect(await text(t, "admin.vm.Shutdown", "wait", "untrusted")).toBe(exception(guiClass, "There are running VMs using this VM as GuiVM: vault"));
    await ok(t.socketPath, "admin.vm.Shutdown", "wait", "vault");
    await ok(t.socketPath, "admin.vm.Shutdown", "wait", "untrusted");
    await ok(t.socketPath, "admin.vm.Shutdown", "force+wait", "sys-firewall");
    expect(await state(t, "sys-firewall")).toBe("state=Halted");
  });
});

describe.each(["r4.2", "r4.3", "head"] as const)("attaching a running qube on %s", (release) => {
  it("needs a running netvm, for its own netvm and for a default_netvm it follows", async () => {
    // qubes/vm/mix/net.py on_property_pre_set_netvm (R4.2 :453-461, R4.3/main :601-615), fired for
    // every follower by qubes/app.py on_property_pre_set_default_netvm (R4.2 :1567, main :2083).
    const t = await sim(release);
    await ok(t.socketPath, "admin.vm.property.Set", "netvm", "untrusted", "sys-net");
    await ok(t.socketPath, "admin.vm.property.Set", "provides_network", "untrusted", "True");
    await ok(t.socketPath, "admin.vm.Start", "", "work");
    const refused = exception("QubesVMNotStartedError", "Cannot dynamically attach to stopped qube untrusted");
    expect(await text(t, "admin.vm.property.Set", "netvm", "work", "untrusted")).toBe(refused);
    expect(await text(t, "admin.property.Set", "default_netvm", "dom0", "untrusted")).toBe(refused);
    expect(await ok(t.socketPath, "admin.property.Get", "default_netvm", "dom0")).toMatch(/ type=vm sys-firewall$/);
    // A follower that is halted, or a pinned running qube, does not stand in the way.
    await ok(t.socketPath, "admin.vm.property.Set", "netvm", "work", "sys-firewall");
    await ok(t.socketPath, "admin.property.Set", "default_netvm", "dom0", "untrusted");
    await ok(t.socketPath, "admin.vm.Start", "", "personal");
    await ok(t.socketPath, "admin.vm.property.Set", "netvm", "work", "untrusted");
    expect(await state(t, "untrusted")).toBe("state=Running");
  });
});

/** [release, class, message] of property-pre-set:template on a disposable template whose disposables run. */
const DVM_TEMPLATE: Array<[Release, string, string]> = [
  // R4.2 qubes/vm/mix/dvmtemplate.py:50-58
  ["r4.2", "QubesVMNotHaltedError", "Cannot change template while there are running DispVMs based on this DVM template"],
  // R4.3 qubes/vm/mix/dvmtemplate.py:406-436, main :414-444: the message is a one-element tuple
  ["r4.3", "QubesVMInUseError", "('Cannot change template while there are running disposables based on this disposable template',)"],
  ["head", "QubesVMInUseError", "('Cannot change template while there are running disposables based on this disposable template',)"],
];

describe.each(DVM_TEMPLATE)("a disposable template with a running disposable on %s", (release, cls, msg) => {
  it("cannot change its template until the disposable stops", async () => {
    const t = await sim(release);
    await ok(t.socketPath, "admin.vm.Create.TemplateVM", "", "dom0", "name=debian-12 label=black");
    const disp = await ok(t.socketPath, "admin.vm.CreateDisposable", "", "default-dvm");
    await ok(t.socketPath, "admin.vm.property.Set", "auto_cleanup", disp, "False");
    await ok(t.socketPath, "admin.vm.Start", "", disp);
    expect(await text(t, "admin.vm.property.Set", "template", "default-dvm", "debian-12")).toBe(exception(cls, msg));
    await ok(t.socketPath, "admin.vm.Shutdown", "wait", disp);
    await ok(t.socketPath, "admin.vm.property.Set", "template", "default-dvm", "debian-12");
  });
});

describe("Suspended is not Paused", () => {
  it("R4.2 has no admin.vm.Resume, and Unpause refuses a suspended qube", async () => {
    // qubes/api/admin.py R4.2 :871-903 has Shutdown, Pause, Unpause, Kill and no Resume.
    const t = await sim("r4.2");
    await ok(t.socketPath, "admin.vm.Start", "", "vault");
    // R4.2 serves no admin.vm.Suspend (qubes/api/admin.py R4.2): the qube is suspended in the state file.
    expect((await call(t.socketPath, "admin.vm.Suspend", "", "vault")).length).toBe(0);
    await t.close();
    const doc = JSON.parse(readFileSync(t.statePath, "utf8")) as { qubes: Array<{ name: string; power: string }> };
    for (const q of doc.qubes) if (q.name === "vault") q.power = "Suspended";
    writeFileSync(t.statePath, JSON.stringify(doc));
    await t.restart();
    expect((await call(t.socketPath, "admin.vm.Resume", "", "vault")).length).toBe(0);
    // qubes/vm/qubesvm.py R4.2 :1487-1494: unpause() wants VIR_DOMAIN_PAUSED.
    expect(await text(t, "admin.vm.Unpause", "", "vault")).toBe(exception("QubesVMNotPausedError", "Domain is not paused: 'vault'"));
    expect(await state(t, "vault")).toBe("state=Suspended");
  });

  it.each(["r4.3", "head"] as const)("%s resumes a suspended qube with admin.vm.Resume", async (release) => {
    // qubes/api/admin.py R4.3 :1014-1020; qubes/vm/qubesvm.py R4.3 :1770-1804.
    const t = await sim(release);
    await ok(t.socketPath, "admin.vm.Start", "", "vault");
    await ok(t.socketPath, "admin.vm.Suspend", "", "vault");
    expect(await text(t, "admin.vm.Unpause", "", "vault")).toBe(exception("QubesVMNotPausedError", "Domain is not paused: 'vault'"));
    await ok(t.socketPath, "admin.vm.Resume", "", "vault");
    expect(await state(t, "vault")).toBe("state=Running");
    // On a qube that is not suspended, resume() is unpause() (qubes/vm/qubesvm.py main :1850).
    expect(await text(t, "admin.vm.Resume", "", "vault")).toBe(exception("QubesVMNotPausedError", "Domain is not paused: 'vault'"));
  });
});
