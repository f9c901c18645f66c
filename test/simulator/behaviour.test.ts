// qubesd's rules beyond the recordings: power states and their errors, references that block
// removal, defaults that follow templates and globals, setter checks, auto-maintained tags.

import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { call, ok, tempSim, type TempSim } from "./wire.js";

let s: TempSim;
beforeEach(async () => {
  s = await tempSim();
});
afterEach(() => s.stop());

const exception = (cls: string, msg: string) => `2\0${cls}\0\0${msg}\0`;
const text = async (method: string, arg: string, dest: string, payload = ""): Promise<string> =>
  (await call(s.socketPath, method, arg, dest, payload)).toString("utf8");
const state = async (vm: string): Promise<string> => (await ok(s.socketPath, "admin.vm.List", "", vm)).split(" ")[2] ?? "";

describe("power", () => {
  it("starts a qube and its halted netvm chain", async () => {
    await ok(s.socketPath, "admin.vm.Start", "", "work");
    expect([await state("work"), await state("sys-firewall"), await state("sys-net"), await state("personal")]).toEqual([
      "state=Running",
      "state=Running",
      "state=Running",
      "state=Halted",
    ]);
    expect(await ok(s.socketPath, "admin.vm.property.Get", "xid", "work")).toMatch(/^default=True type=int [1-9][0-9]*$/);
    expect(await ok(s.socketPath, "admin.vm.CurrentState", "", "work")).toMatch(/^mem=409600 mem_static_max=4096000 cputime=[0-9]+ power_state=Running$/);
    expect(await ok(s.socketPath, "admin.vm.Start", "", "work")).toBe("");
  });

  it("refuses to shut down a netvm with running clients unless forced", async () => {
    await ok(s.socketPath, "admin.vm.Start", "", "work");
    await ok(s.socketPath, "admin.vm.Start", "", "personal");
    expect(await text("admin.vm.Shutdown", "", "sys-firewall")).toBe(
      exception("QubesVMInUseError", "There are other VMs connected to this VM: work, personal"),
    );
    expect(await text("admin.vm.Shutdown", "wait+bogus", "sys-firewall")).toBe(exception("ProtocolError", "Argument must match: force, wait"));
    await ok(s.socketPath, "admin.vm.Shutdown", "force+wait", "sys-firewall");
    expect(await state("sys-firewall")).toBe("state=Halted");
    await ok(s.socketPath, "admin.vm.Shutdown", "wait", "work");
    expect(await text("admin.vm.Shutdown", "", "work")).toBe(exception("QubesVMNotStartedError", "Domain is powered off: 'work'"));
  });

  it("pauses, unpauses, suspends, resumes and kills with qubesd's errors", async () => {
    expect(await text("admin.vm.Pause", "", "vault")).toBe(
      exception("QubesVMNotRunningError", "Domain not running (either powered off or paused): 'vault'"),
    );
    await ok(s.socketPath, "admin.vm.Start", "", "vault");
    await ok(s.socketPath, "admin.vm.Pause", "", "vault");
    expect(await state("vault")).toBe("state=Paused");
    expect(await text("admin.vm.Shutdown", "", "vault")).toBe(
      exception("QubesVMNotRunningError", "Domain not running (either powered off or paused): 'vault'"),
    );
    await ok(s.socketPath, "admin.vm.Unpause", "", "vault");
    expect(await text("admin.vm.Unpause", "", "vault")).toBe(exception("QubesVMNotPausedError", "Domain is not paused: 'vault'"));
    await ok(s.socketPath, "admin.vm.Suspend", "", "vault");
    expect(await state("vault")).toBe("state=Suspended");
    await ok(s.socketPath, "admin.vm.Resume", "", "vault");
    // resume() of a qube that is not suspended calls unpause() (qubes/vm/qubesvm.py main :1818-1852).
    expect(await text("admin.vm.Resume", "", "vault")).toBe(exception("QubesVMNotPausedError", "Domain is not paused: 'vault'"));
    await ok(s.socketPath, "admin.vm.Kill", "", "vault");
    expect(await text("admin.vm.Kill", "", "vault")).toBe(exception("QubesVMNotStartedError", "Domain is powered off: 'vault'"));
  });

  it("removes an auto_cleanup disposable when it stops", async () => {
    const name = await ok(s.socketPath, "admin.vm.CreateDisposable", "", "dom0");
    expect(name).toMatch(/^disp[0-9]+$/);
    expect(await ok(s.socketPath, "admin.vm.tag.List", "", name)).toBe("audiovm-dom0\ncreated-by-dom0\ndisp-created-by-dom0\nguivm-dom0\n");
    expect(await ok(s.socketPath, "admin.vm.property.Get", "auto_cleanup", name)).toBe("default=False type=bool True");
    expect(await ok(s.socketPath, "admin.vm.property.Get", "include_in_backups", name)).toBe("default=True type=bool False");
    expect(await ok(s.socketPath, "admin.vm.feature.Get", "appmenus-dispvm", name)).toBe("1");
    await ok(s.socketPath, "admin.vm.Start", "", name);
    await ok(s.socketPath, "admin.vm.Shutdown", "force", name);
    expect(await text("admin.vm.List", "", name)).toBe(exception("QubesVMNotFoundError", `No such domain: '${name}'`));
  });

  it("refuses CreateDisposable from a qube that is not a disposable template", async () => {
    expect(await text("admin.vm.CreateDisposable", "", "work")).toBe(
      exception("QubesException", "Refusing to create disposable out of app qube which has template_for_dispvms=False"),
    );
    expect(await text("admin.vm.CreateDisposable", "", "dom0", "name")).toBe(
      exception("ProtocolError", "Invalid payload, expected empty string or 'uuid'"),
    );
  });
});

describe("removal", () => {
  it("refuses to remove a running qube, a referenced one, or an rpm-installed one", async () => {
    await ok(s.socketPath, "admin.vm.Start", "", "vault");
    expect(await text("admin.vm.Remove", "", "vault")).toBe(exception("QubesVMNotHaltedError", "Domain is not powered off: 'vault'"));
    const inUse = (vm: string) => exception("QubesVMInUseError", `Domain is in use: '${vm}';  see 'journalctl -u qubesd -e' in dom0 for details`);
    expect(await text("admin.vm.Remove", "", "fedora-40")).toBe(inUse("fedora-40"));
    expect(await text("admin.vm.Remove", "", "sys-firewall")).toBe(inUse("sys-firewall"));
    expect(await text("admin.vm.Remove", "", "default-dvm")).toBe(inUse("default-dvm"));
    await ok(s.socketPath, "admin.vm.property.Set", "installed_by_rpm", "untrusted", "True");
    expect(await text("admin.vm.Remove", "", "untrusted")).toBe(exception("QubesVMInUseError", "VM installed by package manager: untrusted"));
  });

  it("refuses to remove a label still in use", async () => {
    await ok(s.socketPath, "admin.label.Create", "teal", "dom0", "0x008080");
    await ok(s.socketPath, "admin.vm.property.Set", "label", "work", "teal");
    expect(await text("admin.label.Remove", "teal", "dom0")).toBe(exception("QubesLabelInUseError", "Label is still in use: 'teal'"));
    await ok(s.socketPath, "admin.vm.property.Set", "label", "work", "9");
    expect(await ok(s.socketPath, "admin.vm.property.Get", "label", "work")).toBe("default=False type=label teal");
    await ok(s.socketPath, "admin.vm.property.Set", "label", "work", "blue");
    await ok(s.socketPath, "admin.label.Remove", "teal", "dom0");
  });
});

describe("defaults and setters", () => {
  it("follows the template and the globals while a property stays default", async () => {
    await ok(s.socketPath, "admin.vm.property.Set", "vcpus", "fedora-40", "6");
    expect(await ok(s.socketPath, "admin.vm.property.Get", "vcpus", "work")).toBe("default=True type=int 6");
    await ok(s.socketPath, "admin.vm.property.Set", "memory", "fedora-40", "1000");
    expect(await ok(s.socketPath, "admin.vm.property.Get", "maxmem", "work")).toBe("default=True type=int 10000");
    await ok(s.socketPath, "admin.property.Set", "default_netvm", "dom0", "sys-net");
    expect(await ok(s.socketPath, "admin.vm.property.Get", "netvm", "work")).toBe("default=True type=vm sys-net");
    expect(await ok(s.socketPath, "admin.vm.property.Get", "visible_gateway", "work")).toBe("default=True type=str 10.137.0.2");
    expect(await ok(s.socketPath, "admin.vm.property.GetDefault", "netvm", "vault")).toBe("type=vm sys-net");
    expect(await ok(s.socketPath, "admin.vm.property.GetDefault", "template", "work")).toBe("");
  });

  it("checks netvm, template, default_dispvm and read-only properties", async () => {
    expect(await text("admin.vm.property.Set", "netvm", "work", "vault")).toBe(exception("QubesValueError", "The vault qube does not provide network"));
    expect(await text("admin.vm.property.Set", "netvm", "work", "ghost")).toBe(
      exception("QubesPropertyValueError", "Can't set netvm to non-existing qube ghost"),
    );
    expect(await text("admin.vm.property.Set", "netvm", "work", "none")).toBe(exception("QubesValueError", "VM name cannot be 'none' nor 'default'"));
    expect(await text("admin.vm.property.Set", "template", "work", "")).toMatch(/^2\0QubesPropertyValueError\0\0Invalid value None for property 'template'/);
    expect(await text("admin.vm.property.Set", "default_dispvm", "work", "vault")).toMatch(/^2\0QubesPropertyValueError\0/);
    expect(await text("admin.vm.property.Set", "xid", "work", "5")).toBe(
      exception("QubesPropertyValueError", "property 'xid' on AppVM instance cannot be set"),
    );
    expect(await text("admin.vm.property.Set", "name", "work", "renamed")).toBe("");
    expect(await text("admin.vm.property.Set", "autostart", "work", "maybe")).toBe(
      exception("QubesValueError", "Invalid literal for boolean property: 'maybe'"),
    );
    expect(await text("admin.vm.property.Set", "memory", "work", "0")).toBe(exception("QubesPropertyValueError", "memory must be positive"));
    expect(await text("admin.vm.property.Set", "kernel", "work", "5.0")).toBe(exception("QubesPropertyValueError", "Kernel '5.0' not installed"));
    expect(await text("admin.vm.property.Reset", "template", "work")).toBe(
      exception("QubesValueError", "Cannot unset template. You can set it to the current default (fedora-40) instead"),
    );
    await ok(s.socketPath, "admin.vm.property.Set", "template_for_dispvms", "work", "True");
    await ok(s.socketPath, "admin.vm.property.Set", "default_dispvm", "vault", "work");
    expect(await text("admin.vm.property.Set", "template_for_dispvms", "work", "False")).toMatch(/^2\0QubesVMInUseError\0/);
  });

  it("refuses to change the template of a running qube", async () => {
    await ok(s.socketPath, "admin.vm.Create.TemplateVM", "", "dom0", "name=tpl2 label=black");
    await ok(s.socketPath, "admin.vm.Start", "", "vault");
    expect(await text("admin.vm.property.Set", "template", "vault", "tpl2")).toBe(
      exception("QubesVMNotHaltedError", "Cannot change template while qube is running"),
    );
  });

  it("keeps guivm-/audiovm- tags in step with the properties", async () => {
    await ok(s.socketPath, "admin.vm.property.Set", "guivm", "work", "");
    expect(await ok(s.socketPath, "admin.vm.tag.List", "", "work")).toBe("audiovm-dom0\nfixture\n");
    await ok(s.socketPath, "admin.vm.property.Reset", "guivm", "work");
    expect(await ok(s.socketPath, "admin.vm.tag.List", "", "work")).toBe("audiovm-dom0\nfixture\nguivm-dom0\n");
  });

  it("marks a qube providing network as a service qube", async () => {
    await ok(s.socketPath, "admin.vm.property.Set", "provides_network", "vault", "True");
    expect(await ok(s.socketPath, "admin.vm.feature.List", "", "vault")).toBe("servicevm\n");
    expect(await ok(s.socketPath, "admin.vm.property.Get", "icon", "vault")).toBe("default=True type=str servicevm-black");
    await ok(s.socketPath, "admin.vm.property.Set", "netvm", "work", "vault");
    expect(await text("admin.vm.property.Set", "provides_network", "vault", "False")).toBe(
      exception("QubesValueError", "The qube is still used by other qubes, change theirs 'netvm' first"),
    );
  });

  it("moves the clocksync service with clockvm", async () => {
    await ok(s.socketPath, "admin.property.Set", "clockvm", "dom0", "sys-firewall");
    expect(await ok(s.socketPath, "admin.vm.feature.Get", "service.clocksync", "sys-firewall")).toBe("1");
    expect(await ok(s.socketPath, "admin.vm.feature.List", "", "sys-net")).toBe("servicevm\n");
  });
});

describe("features, tags, firewall, pools", () => {
  it("looks features up along the template and netvm chains and in dom0", async () => {
    await ok(s.socketPath, "admin.vm.feature.Set", "ipv6", "sys-net", "1");
    expect(await ok(s.socketPath, "admin.vm.feature.CheckWithNetvm", "ipv6", "work")).toBe("1");
    expect(await ok(s.socketPath, "admin.vm.property.Get", "ip6", "work")).toBe("default=True type=str fd09:24ef:4179::a89:4");
    await ok(s.socketPath, "admin.vm.feature.Set", "dom0-only", "dom0", "yes");
    expect(await ok(s.socketPath, "admin.vm.feature.CheckWithAdminVM", "dom0-only", "work")).toBe("yes");
    expect(await text("admin.vm.feature.CheckWithTemplate", "dom0-only", "work")).toBe(
      exception("QubesFeatureNotFoundError", "Feature not set for domain work: dom0-only"),
    );
    expect(await text("admin.vm.feature.Set", "bad!name", "work", "1")).toBe(exception("ProtocolError", "feature name contains illegal characters"));
    expect(await text("admin.vm.feature.Set", "preload-dispvm", "work", "1")).toBe(
      exception("PermissionDenied", "changing this feature is prohibited by qubes.ext.admin.AdminExtension"),
    );
    expect(await text("admin.vm.feature.Set", "ok", "work", "tab\there")).toBe(exception("ProtocolError", "ok value contains illegal characters"));
  });

  it("adds the creator's tag-created-vm-with tags to qubes it creates", async () => {
    await ok(s.socketPath, "admin.vm.feature.Set", "tag-created-vm-with", "work", "team-a team-b");
    expect(await call(s.socketPath, "admin.vm.Create.AppVM", "", "dom0", "name=child label=red", "work")).toEqual(Buffer.from("0\0"));
    expect(await ok(s.socketPath, "admin.vm.tag.List", "", "child")).toBe("audiovm-dom0\ncreated-by-work\nguivm-dom0\nteam-a\nteam-b\n");
    expect(await call(s.socketPath, "admin.vm.tag.Remove", "created-by-work", "child", "", "work")).toEqual(
      Buffer.from(exception("PermissionDenied", "changing this tag is prohibited by qubes.ext.admin.AdminExtension")),
    );
  });

  it("stores firewall rules in qubesd's canonical form", async () => {
    await ok(
      s.socketPath,
      "admin.vm.firewall.Set",
      "",
      "work",
      "action=accept dstports=443 proto=tcp dst4=10.1.1.1\naction=drop proto=icmp icmptype=8 comment=no ping\naction=drop\n",
    );
    expect(await ok(s.socketPath, "admin.vm.firewall.Get", "", "work")).toBe(
      "action=accept dst4=10.1.1.1/32 proto=tcp dstports=443-443\naction=drop proto=icmp icmptype=8 comment=no ping\naction=drop\n",
    );
    expect(await text("admin.vm.firewall.Set", "", "work", "action=accept\n\naction=drop\n")).toBe("");
  });

  it("adds, uses and removes pools", async () => {
    await ok(s.socketPath, "admin.pool.Add", "file", "dom0", "name=fast\ndir_path=/mnt/fast\nrevisions_to_keep=0\n");
    expect(await text("admin.pool.Add", "file", "dom0", "name=fast\ndir_path=/mnt/fast\n")).toBe(
      exception("QubesPoolInUseError", "Storage pool is in use: 'fast'"),
    );
    expect(await text("admin.pool.Add", "file", "dom0", "name=x\n")).toBe(exception("QubesException", "missing required driver options: dir_path"));
    expect(await text("admin.pool.Add", "file", "dom0", "name=x\ndir_path=/a\nthin_pool=y\n")).toBe(
      exception("ProtocolError", "Unexpected driver options found"),
    );
    await ok(s.socketPath, "admin.vm.CreateInPool.AppVM", "", "dom0", "name=onfast label=red pool:private=fast");
    expect(await ok(s.socketPath, "admin.vm.volume.Info", "private", "onfast")).toContain("pool=fast\nvid=appvms/onfast/private\n");
    expect(await ok(s.socketPath, "admin.vm.volume.Info", "private", "onfast")).toContain("path=/mnt/fast/appvms/onfast/private.img\n");
    expect(await ok(s.socketPath, "admin.pool.volume.List", "fast", "dom0")).toBe("appvms/onfast/private\n");
    expect(await text("admin.pool.Remove", "fast", "dom0")).toBe(exception("QubesPoolInUseError", "Storage pool is in use: 'fast'"));
    expect(await text("admin.pool.Remove", "linux-kernel", "dom0")).toBe(exception("QubesPoolInUseError", "Storage pool is in use: 'linux-kernel'"));
    await ok(s.socketPath, "admin.vm.Remove", "", "onfast");
    await ok(s.socketPath, "admin.pool.Remove", "fast", "dom0");
  });

  it("resizes volumes only upwards", async () => {
    expect(await text("admin.vm.volume.Resize", "private", "work", "1024")).toMatch(
      /^2\0StoragePoolException\0\0For your own safety, shrinking of private is disabled \(1024 < 2147483648\)/,
    );
    expect(await text("admin.vm.volume.Resize", "private", "work", "012")).toBe(exception("ProtocolError", "Volume size contains spurious leading zeros"));
  });
});
