// The simulator of each release beyond what the recordings show: the release kept in the state
// file (and a mismatch refused), the embedded simulator of `sim:PATH?release=R`, and behaviours
// modelled from upstream source (qubes-core-admin release4.2, release4.3, main), each cited.

import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { openTransport } from "../../src/providers/qubes/open.js";
import { startSimulator, type SimRelease } from "../../src/providers/qubes/simulator/index.js";
import { call, ok, tempSim, type TempSim } from "./wire.js";

const EMPTY = Buffer.alloc(0);
const exception = (cls: string, msg: string) => Buffer.from(`2\0${cls}\0\0${msg}\0`, "latin1");

const sims: TempSim[] = [];
afterEach(async () => {
  for (const s of sims.splice(0)) await s.stop();
});
async function sim(release: SimRelease): Promise<TempSim> {
  const s = await tempSim({ release });
  sims.push(s);
  return s;
}

describe("the release of a state file", () => {
  it("is written to the state, kept when reopened without one, and a mismatch is refused", async () => {
    const s = await sim("r4.2");
    expect(JSON.parse(readFileSync(s.statePath, "utf8")).release).toBe("r4.2");
    await s.restart({ release: undefined });
    expect(s.release).toBe("r4.2");
    expect(await ok(s.socketPath, "admin.vm.List", "", "work")).toBe("work class=AppVM state=Halted\n");
    await s.close();
    await expect(startSimulator({ socketPath: join(s.dir, "other.sock"), statePath: s.statePath, release: "main" })).rejects.toThrow(
      `simulator state ${s.statePath} imitates release r4.2, not main: serve it with release r4.2, or start a new state (reset, or another state file) for main`,
    );
    await s.restart({ release: "head", reset: true });
    expect(s.release).toBe("main");
    expect(JSON.parse(readFileSync(s.statePath, "utf8")).release).toBe("main");
  });

  it("refuses a state file whose release it does not know", async () => {
    const s = await sim("r4.3");
    await s.close();
    const doc = JSON.parse(readFileSync(s.statePath, "utf8"));
    writeFileSync(s.statePath, JSON.stringify({ ...doc, release: "r5" }));
    await expect(startSimulator({ socketPath: join(s.dir, "other.sock"), statePath: s.statePath })).rejects.toThrow(
      /release: unknown release 'r5': use r4\.2, r4\.3 or main \(head is main\)/,
    );
    writeFileSync(s.statePath, JSON.stringify({ ...doc, release: "head" }));
    await expect(startSimulator({ socketPath: join(s.dir, "other.sock"), statePath: s.statePath })).rejects.toThrow(/release: write main, not head/);
    writeFileSync(s.statePath, JSON.stringify({ ...doc, release: undefined }));
    await s.restart({ release: undefined });
    expect(s.release).toBe("main");
  });

  it("opens the embedded simulator of sim:PATH?release=R, and refuses another release on the same state", async () => {
    const dir = mkdtempSync(join(tmpdir(), "qiac-rel-"));
    try {
      const statePath = join(dir, "st.json");
      const t = await openTransport({ kind: "sim", statePath, release: "r4.3" }, { timeoutMs: 5000 });
      expect(t.description).toBe(`embedded simulator of Qubes r4.3 (state ${statePath})`);
      // R4.3 has no global maxmem (qubes/app.py, release4.3).
      expect(Buffer.from(await t.call({ method: "admin.property.Get", dest: "dom0", arg: "maxmem" })).toString("latin1")).toBe(
        "2\0QubesNoSuchPropertyError\0\0Invalid property 'maxmem' of Qubes\0",
      );
      await t.close();
      await expect(openTransport({ kind: "sim", statePath, release: "r4.2" }, { timeoutMs: 5000 })).rejects.toThrow(/imitates release r4\.3, not r4\.2/);
      const again = await openTransport({ kind: "sim", statePath }, { timeoutMs: 5000 });
      expect(again.description).toBe(`embedded simulator of Qubes r4.3 (state ${statePath})`);
      await again.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("behaviour modelled from upstream source", () => {
  it("main refuses template_for_dispvms=False while a qube names it explicitly (qubes/app.py get_qube_prop_deps)", async () => {
    const s = await sim("main");
    await ok(s.socketPath, "admin.vm.Create.AppVM", "fedora-40", "dom0", "name=dvm2 label=red");
    await ok(s.socketPath, "admin.vm.property.Set", "template_for_dispvms", "dvm2", "True");
    await ok(s.socketPath, "admin.vm.property.Set", "default_dispvm", "work", "dvm2");
    expect(await call(s.socketPath, "admin.vm.property.Set", "template_for_dispvms", "dvm2", "False")).toEqual(
      exception(
        "QubesVMInUseError",
        "Cannot change template_for_dispvms to False while it is the disposable template of a qube by any of these properties: default_dispvm, management_dispvm, template",
      ),
    );
    await ok(s.socketPath, "admin.vm.property.Reset", "default_dispvm", "work");
    expect(await ok(s.socketPath, "admin.vm.property.Set", "template_for_dispvms", "dvm2", "False")).toBe("");
  });

  it("R4.2 and R4.3 refuse it only while a DispVM is based on it (qubes/vm/mix/dvmtemplate.py self.dispvms)", async () => {
    for (const release of ["r4.2", "r4.3"] as const) {
      const s = await sim(release);
      // default-dvm is the global default_dispvm, which main counts and these releases do not.
      await ok(s.socketPath, "admin.vm.Create.AppVM", "fedora-40", "dom0", "name=dvm2 label=red");
      await ok(s.socketPath, "admin.vm.property.Set", "template_for_dispvms", "dvm2", "True");
      await ok(s.socketPath, "admin.vm.property.Set", "default_dispvm", "work", "dvm2");
      expect(await ok(s.socketPath, "admin.vm.property.Set", "template_for_dispvms", "dvm2", "False")).toBe("");
    }
  });

  it("main's default_dispvm must be a disposable template; R4.2/R4.3 have no such setter (qubes/vm/__init__.py validate_disposable_template)", async () => {
    const m = await sim("main");
    expect(await call(m.socketPath, "admin.vm.property.Set", "default_dispvm", "work", "personal")).toEqual(
      exception("QubesPropertyValueError", "Cannot set invalid property to qube 'work', default_dispvm 'personal' has template_for_dispvms set to False"),
    );
    expect(await call(m.socketPath, "admin.property.Set", "management_dispvm", "dom0", "personal")).toEqual(
      exception("QubesPropertyValueError", "Cannot set invalid property to system, management_dispvm 'personal' has template_for_dispvms set to False"),
    );
    for (const release of ["r4.2", "r4.3"] as const) {
      const s = await sim(release);
      expect(await ok(s.socketPath, "admin.vm.property.Set", "default_dispvm", "work", "personal")).toBe("");
    }
  });

  it("a label still in use is a QubesException on R4.2/R4.3, QubesLabelInUseError on main (qubes/api/admin.py label_remove)", async () => {
    const want: Record<SimRelease, Buffer> = {
      main: exception("QubesLabelInUseError", "Label is still in use: 'pink'"),
      "r4.3": exception("QubesException", "label still in use"),
      "r4.2": exception("QubesException", "label still in use"),
    };
    for (const release of ["main", "r4.3", "r4.2"] as const) {
      const s = await sim(release);
      await ok(s.socketPath, "admin.label.Create", "pink", "dom0", "0xff88ff");
      await ok(s.socketPath, "admin.vm.property.Set", "label", "work", "pink");
      expect(await call(s.socketPath, "admin.label.Remove", "pink", "dom0")).toEqual(want[release]);
    }
  });

  it("a CloneTo token is used up even when its source is gone (qubes/api/admin.py vm_volume_clone_to)", async () => {
    const s = await sim("main");
    await ok(s.socketPath, "admin.vm.Create.AppVM", "fedora-40", "dom0", "name=src1 label=red");
    const token = await ok(s.socketPath, "admin.vm.volume.CloneFrom", "private", "src1");
    expect(token).toMatch(/^[A-Za-z0-9]{32}$/);
    await ok(s.socketPath, "admin.vm.Remove", "", "src1");
    // QubesVolumeNotFoundError is a KeyError: the empty reply.
    expect(await call(s.socketPath, "admin.vm.volume.CloneTo", "private", "personal", token)).toEqual(EMPTY);
    expect(await call(s.socketPath, "admin.vm.volume.CloneTo", "private", "personal", token)).toEqual(
      exception("QubesVolumeCopyTokenNotFoundError", "'Token to clone volume of qube was not found'"),
    );
  });

  it("qvm-create -t <an AppVM> names the qube by its repr (qubes/vm/__init__.py VMProperty.__set__, BaseVM.__repr__)", async () => {
    const s = await sim("main");
    const reply = (await call(s.socketPath, "admin.vm.Create.AppVM", "work", "dom0", "name=new1 label=red")).toString("latin1");
    expect(reply).toMatch(
      /^2\0QubesPropertyValueError\0\0wrong VM class: domains\[<AppVM at 0x7f[0-9a-f]{10} name='work' qid=[0-9]+ autostart=False backup_timestamp=None debug=False default_user=user .* label=blue .* template_for_dispvms=False .* template=fedora-40>\] is of type AppVM and not TemplateVM\0$/,
    );
    expect(reply).not.toContain(" name=work");
  });

  it("Create reads its template argument per release (qubes/api/admin.py _vm_create)", async () => {
    const want: Record<SimRelease, [Buffer, Buffer]> = {
      main: [exception("ProtocolError", "TemplateVM cannot be based on template"), exception("QubesVMAlreadyExistsError", "Qube already exists: work")],
      "r4.3": [exception("QubesValueError", "TemplateVM cannot be based on template"), exception("QubesVMNotFoundError", "No such domain: 'nosuch'")],
      "r4.2": [exception("QubesValueError", "TemplateVM cannot be based on template"), exception("QubesVMNotFoundError", "No such domain: 'nosuch'")],
    };
    for (const release of ["main", "r4.3", "r4.2"] as const) {
      const s = await sim(release);
      expect(await call(s.socketPath, "admin.vm.Create.TemplateVM", "fedora-40", "dom0", "name=t2 label=red")).toEqual(want[release][0]);
      expect(await call(s.socketPath, "admin.vm.Create.AppVM", "nosuch", "dom0", "name=work label=red")).toEqual(want[release][1]);
    }
  });

  it("R4.2's CreateDisposable takes neither payload nor argument (qubes/api/admin.py create_disposable, release4.2)", async () => {
    const s = await sim("r4.2");
    expect(await call(s.socketPath, "admin.vm.CreateDisposable", "preload", "default-dvm")).toEqual(EMPTY);
    expect(await call(s.socketPath, "admin.vm.CreateDisposable", "", "default-dvm", "uuid")).toEqual(EMPTY);
    expect(await ok(s.socketPath, "admin.vm.CreateDisposable", "", "default-dvm")).toMatch(/^disp[0-9]+$/);
  });

  it("R4.2 looks a destination up by name without checking it, and has no uuid: destinations", async () => {
    const s = await sim("r4.2");
    expect(await call(s.socketPath, "admin.vm.List", "", "1bad")).toEqual(exception("QubesVMNotFoundError", "No such domain: '1bad'"));
    const m = await sim("main");
    expect(await call(m.socketPath, "admin.vm.List", "", "1bad")).toEqual(exception("QubesValueError", "VM name cannot start with hyphen, underscore, dot or numbers"));
  });
});
