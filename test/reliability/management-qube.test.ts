// From a management qube qubes-iac sees only what its qrexec policy names. Through the policy
// stand-in (test/reliability/bin/qrexec-client-vm, which decides and forwards calls as dom0's
// qrexec does): admin.vm.List keeps only the qubes the policy lets the caller list
// (qubes-core-admin qubes/ext/admin.py, AdminExtension.admin_vm_list); a call naming a qube that
// does not exist is refused with exit 126 like a denied one (qubes-core-qrexec
// qrexec/policy/parser.py, IntendedTarget.verify → @default) and is worded so; a removal the plan
// finds no user of is not called safe, and qubesd's refusal at apply says what was not seen; one
// qube's GetAll refused leaves GetAll to every other qube. And the stand-in itself: the header it
// gives qubesd and its exit status, as daemon/qrexec-daemon.c does on each release.
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { executorFromClient, readerFromClient } from "../../src/apply/admin-api.js";
import { checkPriorState } from "../../src/apply/prior-state.js";
import { createAdminClient } from "../../src/providers/qubes/client.js";
import { QubesApiError } from "../../src/providers/qubes/errors.js";
import { createQrexecTransport } from "../../src/providers/qubes/transport-qrexec.js";
import { repoRoot } from "../helpers/shared.js";
import { cli, clientOf, startSim, type Sim } from "./_harness.js";
import { decisionsIn, POLICY_STANDIN, standinEnv, viaQrexec } from "./_qrexec.js";

const MGMT = "mgmt";
let sim: Sim;
let dir: string;
beforeEach(async () => {
  sim = await startSim();
  dir = mkdtempSync(join(tmpdir(), "qiac-mgmt-"));
  const c = clientOf(sim);
  await c.vm.create({ klass: "AppVM", name: MGMT, label: "black", template: "fedora-40" });
  await c.close();
});
afterEach(async () => {
  await sim.stop();
  rmSync(dir, { recursive: true, force: true });
});

const log = (): string => join(dir, "decisions.jsonl");
const decisions = () => decisionsIn(log());

function policyFile(lines: string[]): string {
  const path = join(dir, `${Math.random().toString(36).slice(2)}.policy`);
  writeFileSync(path, `${lines.join("\n")}\n`);
  return path;
}

/** An Admin API client in this process that reaches qubesd the way a management qube does. */
const mgmtClient = (policy: string) =>
  createAdminClient(createQrexecTransport({ timeoutMs: 10_000, command: POLICY_STANDIN, env: { ...process.env, ...standinEnv({ socketPath: sim.socketPath, src: MGMT, policy, log: log() }) } }));

async function rejection(p: Promise<unknown>): Promise<QubesApiError> {
  const e = await p.then(
    () => undefined,
    (x: unknown) => x,
  );
  expect(e).toBeInstanceOf(QubesApiError);
  return e as QubesApiError;
}

describe("what a management qube sees", () => {
  it("admin.vm.List lists only the qubes the policy lets it list (`ask` does not count)", async () => {
    const dom0 = clientOf(sim);
    await dom0.tag.set("personal", "shown");
    await dom0.close();
    const client = mgmtClient(
      policyFile([
        "admin.vm.List  *  mgmt  @adminvm     allow target=dom0",
        "admin.vm.List  *  mgmt  work         allow target=dom0",
        "admin.vm.List  *  mgmt  @tag:shown   allow target=dom0",
        "admin.vm.List  *  mgmt  vault        ask default_target=dom0",
      ]),
    );
    expect((await client.vm.list()).map((q) => q.name)).toEqual(["dom0", "personal", "work"]);
    expect((await client.vm.list("work")).map((q) => q.name)).toEqual(["work"]);
    expect((await rejection(client.vm.list("vault"))).code).toBe("refused");
    // The simulator itself lists everything: the filtering is the policy's.
    expect((await clientOf(sim).vm.list()).map((q) => q.name)).toEqual(expect.arrayContaining(["vault", "sys-net", MGMT]));
  });

  it("a call naming a qube that does not exist is refused like a denied one, and worded as such", async () => {
    const client = mgmtClient(
      policyFile([
        "admin.vm.List          *  mgmt  @adminvm  allow target=dom0",
        "admin.vm.List          *  mgmt  work      allow target=dom0",
        "admin.vm.property.Get  *  mgmt  ghost     allow target=dom0",
        "admin.vm.feature.Set   *  mgmt  ghost     allow target=dom0",
      ]),
    );
    // A line naming `ghost` does not match: qrexec turns a target that is no qube into @default.
    const gone = await rejection(client.property.get({ vm: "ghost" }, "memory"));
    expect(gone.code).toBe("refused");
    expect(gone.details.targetUnseen).toBe(true);
    expect(gone.message).toBe("admin.vm.property.Get+memory to ghost was refused by qrexec (qrexec-client-vm exit 126): qube ghost does not exist or this management qube may not see it");
    // A qube that exists but that the policy hides looks exactly the same from here.
    expect((await rejection(client.property.get({ vm: "vault" }, "memory"))).message).toBe(
      "admin.vm.property.Get+memory to vault was refused by qrexec (qrexec-client-vm exit 126): qube vault does not exist or this management qube may not see it",
    );
    // A qube it lists, with the call denied: that is the policy's doing, and the message says so.
    const denied = await rejection(client.property.get({ vm: "work" }, "memory"));
    expect(denied.details.targetUnseen).toBeUndefined();
    expect(denied.message).toMatch(/^admin\.vm\.property\.Get\+memory to work was refused by qrexec policy \(qrexec-client-vm exit 126\): Request refused; allow it in dom0's/);
    expect(decisions()).toEqual([
      ["ghost", "admin.vm.property.Get+memory", "deny"],
      ["dom0", "admin.vm.List", "allow"],
      ["vault", "admin.vm.property.Get+memory", "deny"],
      ["dom0", "admin.vm.List", "allow"],
      ["work", "admin.vm.property.Get+memory", "deny"],
      ["dom0", "admin.vm.List", "allow"],
    ]);

    // Apply's executor, on a qube removed since the plan: the step fails, and re-reading says the same.
    const executor = executorFromClient(client);
    const ran = await executor.run({ op: "feature.set", vm: "ghost", name: "x", value: "1" });
    expect(ran).toMatchObject({ kind: "failed", failure: { code: "refused", message: "admin.vm.feature.Set+x to ghost was refused by qrexec (qrexec-client-vm exit 126): qube ghost does not exist or this management qube may not see it" } });
    expect(await executor.verify({ op: "property.set", holder: { vm: "ghost" }, name: "memory", value: "400" })).toEqual({
      kind: "unknown",
      detail: "re-reading failed: admin.vm.property.GetAll to ghost was refused by qrexec (qrexec-client-vm exit 126): qube ghost does not exist or this management qube may not see it",
    });
    // The prior-state check, on a qube deleted between its listing and its read.
    const reader = readerFromClient(client);
    const listedBefore = { ...reader, listQubes: async () => [...(await reader.listQubes()), { name: "ghost", klass: "AppVM", power: "Halted" }] };
    const check = { check: "property", holder: { vm: "ghost" }, name: "memory", default: true, value: "400" } as const;
    await expect(checkPriorState(listedBefore, [check], { parallelism: 2 })).rejects.toThrow(
      "admin.vm.property.GetAll to ghost was refused by qrexec (qrexec-client-vm exit 126): qube ghost does not exist or this management qube may not see it",
    );
  });

  it("one qube's GetAll refused: that qube falls back to List + Get, every other qube still gets GetAll", async () => {
    const client = mgmtClient(
      policyFile([
        "admin.vm.List              *  mgmt  @adminvm  allow target=dom0",
        "admin.vm.List              *  mgmt  @anyvm    allow target=dom0",
        "admin.vm.property.GetAll   *  mgmt  work      allow target=dom0",
        "admin.vm.property.GetAll   *  mgmt  vault     allow target=dom0",
        "admin.vm.property.List     *  mgmt  personal  allow target=dom0",
        "admin.vm.property.Get      *  mgmt  personal  allow target=dom0",
      ]),
    );
    const work = await client.property.getAll({ vm: "work" });
    const personal = await client.property.getAll({ vm: "personal" });
    const vault = await client.property.getAll({ vm: "vault" });
    expect([work.size, vault.size].every((n) => n > 20)).toBe(true);
    expect(personal.get("label")).toMatchObject({ value: "yellow" });
    expect(client.getAllRefusedFor({ vm: "personal" })).toBe(true);
    expect(client.getAllRefusedFor({ vm: "vault" })).toBe(false);
    const [gets, rest] = [decisions().filter(([, s]) => s.startsWith("admin.vm.property.Get+")), decisions().filter(([, s]) => !s.startsWith("admin.vm.property.Get+"))];
    expect(rest).toEqual([
      ["work", "admin.vm.property.GetAll", "allow"],
      ["personal", "admin.vm.property.GetAll", "deny"],
      // Is `personal` there at all? It is listed: the refusal is the policy's, and only its own reads fall back.
      ["dom0", "admin.vm.List", "allow"],
      ["personal", "admin.vm.property.List", "allow"],
      ["vault", "admin.vm.property.GetAll", "allow"],
    ]);
    expect(gets.length).toBe(personal.size);
    expect(gets.every(([t, , d]) => t === "personal" && d === "allow")).toBe(true);
  }, 120_000);
});

describe("a removal whose user this management qube cannot see", () => {
  const config = (qubes: string): string => {
    const path = join(dir, `${Math.random().toString(36).slice(2)}.yaml`);
    writeFileSync(path, `version: 1\nowner: mq\nqubes:\n${qubes}`);
    return path;
  };
  const KEEPER = "  keeper: {class: AppVM, template: fedora-40, label: blue}\n";

  it("the plan says the scan saw only what the policy shows; qubesd refuses at apply, and apply says what was not seen", async () => {
    const first = config(`  doomed: {class: AppVM, template: fedora-40, label: red, properties: {provides_network: true}}\n${KEEPER}`);
    expect((await cli(sim, ["apply", "--auto-approve", first])).code).toBe(0);
    const dom0 = clientOf(sim);
    await dom0.vm.create({ klass: "AppVM", name: "hidden", label: "green", template: "fedora-40" });
    await dom0.property.set({ vm: "hidden" }, "netvm", "doomed");
    await dom0.close();
    const dropped = config(KEEPER);
    // The policy for this change, generated in dom0 (it reads the inventory to grant the removal).
    const generated = await cli(sim, ["policy", "--mgmt", MGMT, "--apply", dropped]);
    expect(generated.code).toBe(0);
    expect(generated.stdout).toMatch(/^admin\.vm\.Remove +\* +mgmt +doomed +allow target=dom0$/m);
    expect(generated.stdout).not.toMatch(/ hidden /);
    const policy = policyFile([generated.stdout]);
    const s = { socketPath: sim.socketPath, src: MGMT, policy, log: log() };

    // In dom0 the scan sees `hidden` and the removal is blocked.
    const inDom0 = await cli(sim, ["plan", dropped]);
    expect(inDom0.stderr).toContain("QIAC-E104");
    expect(inDom0.stderr).toContain("qube doomed is to be deleted but is still used by qube hidden (netvm)");

    const plan = await viaQrexec(["plan", dropped], s);
    expect(plan.code).toBe(0);
    expect(plan.stdout).toMatch(/Plan: 0 to add, 0 to change, 1 to destroy\.\n$/);
    expect(plan.stderr).not.toContain("QIAC-E104");
    expect(plan.stderr).toContain(
      "qube doomed is to be deleted: no qube this management qube can see uses it, but its qrexec policy shows only some qubes. If one it cannot see still uses doomed, qubesd refuses to remove it (QubesVMInUseError) and apply stops there",
    );
    expect(plan.stderr).toContain("QIAC-W110");
    const json = JSON.parse((await viaQrexec(["plan", "--json", dropped], s)).stdout) as { diagnostics: Array<{ code: string; address?: string; severity: string }> };
    expect(json.diagnostics.filter((d) => d.code === "QIAC-W110")).toEqual([expect.objectContaining({ address: "qube.doomed", severity: "warning" })]);

    const applied = await viaQrexec(["apply", "--auto-approve", "--allow-destroy", dropped], s);
    expect(applied.code).toBe(1);
    expect(applied.stdout).toContain(
      "\nFailed:\n  delete:qube.doomed: qubesd refused to remove qube doomed, it is still in use: something this management qube cannot see still uses doomed (its qrexec policy shows only some qubes, and the plan's reference scan saw only those); in dom0 `journalctl -u qubesd` names it (QubesVMInUseError: Domain is in use: 'doomed';  see 'journalctl -u qubesd -e' in dom0 for details) (admin.vm.Remove+ → doomed)\n",
    );
    const after = clientOf(sim);
    expect((await after.vm.list()).map((q) => q.name)).toContain("doomed");
    await after.close();
  }, 120_000);
});

describe("the policy stand-in speaks to qubesd as qrexec-daemon does", () => {
  type Fake = { server: Server; path: string; headers: string[] };
  /** A stand-in qubesd that records each request's header and answers admin.vm.List, and `reply` to the rest. */
  async function fakeQubesd(reply: Buffer): Promise<Fake> {
    const path = join(dir, "fake.sock");
    const headers: string[] = [];
    const server = createServer({ allowHalfOpen: true }, (sock) => {
      const chunks: Buffer[] = [];
      sock.on("data", (d: Buffer) => chunks.push(d));
      sock.on("end", () => {
        const req = Buffer.concat(chunks);
        const header = req.subarray(0, req.indexOf(0)).toString("latin1");
        headers.push(header);
        sock.end(header.startsWith("admin.vm.List+") ? Buffer.from("0\0dom0 class=AdminVM state=Running\nwork class=AppVM state=Halted\nvault class=AppVM state=Halted\n") : reply);
      });
    });
    await new Promise<void>((r) => server.listen(path, r));
    return { server, path, headers };
  }
  const run = (bin: string, args: string[], env: Record<string, string>): Promise<{ code: number; stdout: Buffer; stderr: string }> =>
    new Promise((resolve) => {
      const child = execFile(bin, args, { env: { ...process.env, ...env }, encoding: "buffer" }, (err, stdout, stderr) => {
        resolve({ code: err ? Number((err as { code?: number }).code) : 0, stdout, stderr: stderr.toString("utf8") });
      });
      child.stdin?.end();
    });
  const EXCEPTION = Buffer.from("2\0QubesNoSuchPropertyError\0\0Invalid property 'nope' of work\0");

  // The stand-in reads the simulated policy directory first (policy.List); a bare qubesd serves none.
  const POLICY_READ = "policy.List+ dom0 name dom0";
  it("names dom0 by keyword on R4.2 and by name on R4.3 and main; a qube by name; exit 0 for an exception reply, 126 for a qube that is not there", async () => {
    const fake = await fakeQubesd(EXCEPTION);
    const policy = policyFile(["admin.vm.List  *  mgmt  @adminvm  allow target=dom0", "admin.vm.property.Get  *  mgmt  work  allow target=dom0", "admin.vm.property.Get  *  mgmt  ghost  allow target=dom0"]);
    const env = (release: string) => standinEnv({ socketPath: fake.path, src: MGMT, policy, log: log(), release });
    try {
      const heads: Record<string, string[]> = {};
      for (const release of ["r4.2", "r4.3", "main"]) {
        fake.headers.length = 0;
        const r = await run(POLICY_STANDIN, ["dom0", "admin.vm.List"], env(release));
        expect(r.code).toBe(0);
        // The listing comes back filtered: `work` and `vault` have no admin.vm.List line.
        expect(r.stdout.toString("latin1")).toBe("0\0dom0 class=AdminVM state=Running\n");
        heads[release] = [...fake.headers];
      }
      // qrexec-daemon.c handle_execute_service_child: `<svc>+<arg> <src> keyword adminvm` when the
      // requested target is @adminvm (R4.2 reads `dom0` so), `name <target>` otherwise.
      expect(heads).toEqual({
        "r4.2": [POLICY_READ, "admin.vm.List+ mgmt keyword adminvm", "admin.vm.List+ dom0 name dom0"],
        "r4.3": [POLICY_READ, "admin.vm.List+ mgmt name dom0", "admin.vm.List+ dom0 name dom0"],
        main: [POLICY_READ, "admin.vm.List+ mgmt name dom0", "admin.vm.List+ dom0 name dom0"],
      });
      fake.headers.length = 0;
      expect((await run(POLICY_STANDIN, ["@adminvm", "admin.vm.List"], env("main"))).code).toBe(0);
      expect(fake.headers[1]).toBe("admin.vm.List+ mgmt keyword adminvm");

      fake.headers.length = 0;
      const exc = await run(POLICY_STANDIN, ["work", "admin.vm.property.Get+nope"], env("main"));
      expect({ code: exc.code, stdout: exc.stdout.equals(EXCEPTION) }).toEqual({ code: 0, stdout: true });
      expect(fake.headers).toEqual([POLICY_READ, "admin.vm.List+ dom0 name dom0", "admin.vm.property.Get+nope mgmt name work"]);

      fake.headers.length = 0;
      const ghost = await run(POLICY_STANDIN, ["ghost", "admin.vm.property.Get+memory"], env("main"));
      expect({ code: ghost.code, stderr: ghost.stderr }).toEqual({ code: 126, stderr: "Request refused\n" });
      // Only the questions of the policy in force and of which qubes exist reached qubesd.
      expect(fake.headers).toEqual([POLICY_READ, "admin.vm.List+ dom0 name dom0"]);
    } finally {
      fake.server.close();
    }
  });

  it("the deny-list stand-in (test/fixtures/bin) names dom0 the same way and exits 0 for an exception reply", async () => {
    const fake = await fakeQubesd(EXCEPTION);
    const bin = join(repoRoot, "test", "fixtures", "bin", "qrexec-client-vm");
    try {
      const seen: string[] = [];
      for (const release of ["r4.2", "main"]) {
        fake.headers.length = 0;
        const r = await run(bin, ["dom0", "admin.vm.property.Get+nope"], { QIAC_STANDIN_SOCKET: fake.path, QIAC_STANDIN_SRC: MGMT, QIAC_STANDIN_RELEASE: release });
        expect({ code: r.code, stdout: r.stdout.equals(EXCEPTION) }).toEqual({ code: 0, stdout: true });
        seen.push(...fake.headers);
      }
      expect(seen).toEqual(["admin.vm.property.Get+nope mgmt keyword adminvm", "admin.vm.property.Get+nope mgmt name dom0"]);
    } finally {
      fake.server.close();
    }
  });
});
