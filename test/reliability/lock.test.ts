// The apply lock (src/apply/lock.ts) against the simulator over its real socket: one holder among
// many acquiring at once, a holder's identity and age, release that gives back only its own lock,
// breaking exactly the lock a person saw, and every fault kind at each of the lock's four writes —
// never two holders, and after a normal run nothing left behind.
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  acquireLock,
  breakLock,
  describeHolder,
  encodeHolder,
  formatAge,
  heldMessage,
  lockNames,
  lockOps,
  lockStoreFromClient,
  newHolder,
  parseHolder,
  readLock,
  releaseLock,
  type LockHolder,
  type LockStore,
} from "../../src/apply/lock.js";
import { opCall } from "../../src/apply/admin-api.js";
import type { AdminClient } from "../../src/providers/qubes/client.js";
import type { FaultAction } from "../../src/providers/qubes/simulator/faults.js";
import { clientOf, startSim, type Sim } from "./_harness.js";

const OWNER = "workstation";
const names = lockNames(OWNER);
const holder = (id: string, host = "mgmt", since = "2025-01-01T10:00:00.000Z"): LockHolder => newHolder({ id, host, pid: 4242, now: new Date(since), version: "0.1.0" });

let sim: Sim;
let clients: AdminClient[];
const store = (): LockStore => {
  const c = clientOf(sim);
  clients.push(c);
  return lockStoreFromClient(c);
};

/** The labels and dom0 features: what a lock could leave behind. */
async function traces(): Promise<{ labels: string[]; dom0: string[] }> {
  const c = clientOf(sim);
  try {
    return { labels: await c.label.list(), dom0: await c.feature.list("dom0") };
  } finally {
    await c.close();
  }
}

beforeEach(async () => {
  sim = await startSim();
  clients = [];
});
afterEach(async () => {
  for (const c of clients) await c.close();
  await sim.stop();
});

describe("the lock's names and record", () => {
  it("label and record are in qubes-iac's own namespaces, one owner's never another's", () => {
    expect(lockNames("a")).toEqual({ label: "qubes-iac.lock.a", record: "qubes-iac.a.lock" });
    expect(lockNames("a-b").label).not.toBe(lockNames("a").label);
  });

  it("the record round-trips, and anything else reads as an unknown holder", () => {
    const h = holder("0123456789ab", "mgmt qube\n!");
    expect(h.host).toBe("mgmt_qube__");
    expect(parseHolder(encodeHolder(h))).toEqual(h);
    expect(encodeHolder(h)).toMatch(/^[\x20-\x7e]+$/);
    for (const bad of [undefined, "", "id=XYZ pid=1 since=2025-01-01T00:00:00Z", "id=ab pid=x since=2025-01-01T00:00:00Z", "id=ab pid=1 since=never"]) expect(parseHolder(bad)).toBeNull();
  });

  it("says who holds it and for how long", () => {
    const at = Date.parse("2025-01-01T13:12:05.000Z");
    expect([45_000, 725_000, 11_525_000, 187_200_000].map(formatAge)).toEqual(["45s", "12m05s", "3h12m", "2d04h"]);
    expect(describeHolder({ kind: "held", holder: holder("0123456789ab") }, at)).toBe("apply 0123456789ab on mgmt (pid 4242, qubes-iac 0.1.0) since 2025-01-01T10:00:00.000Z (3h12m ago)");
    expect(heldMessage(OWNER, { kind: "held", holder: null }, at, "qubes-iac apply")).toMatch(/has not recorded who it is .* --break-lock unknown$/);
  });
});

describe("taking and giving back the lock", () => {
  it("one holder; a second is told who holds it; release leaves nothing behind", async () => {
    const before = await traces();
    const [a, b] = [store(), store()];
    const first = await acquireLock(a, OWNER, holder("aaaaaaaaaaaa"));
    expect(first.kind).toBe("acquired");
    expect(await readLock(b, OWNER)).toEqual({ kind: "held", holder: holder("aaaaaaaaaaaa") });
    expect(await acquireLock(b, OWNER, holder("bbbbbbbbbbbb"))).toEqual({ kind: "held", holder: holder("aaaaaaaaaaaa") });
    // Another owner's lock is another lock.
    const other = await acquireLock(b, "other", holder("cccccccccccc"));
    expect(other.kind).toBe("acquired");
    if (first.kind !== "acquired" || other.kind !== "acquired") return;
    expect(await releaseLock(a, first.lock)).toEqual({ kind: "released" });
    expect(await releaseLock(b, other.lock)).toEqual({ kind: "released" });
    expect(await traces()).toEqual(before);
    expect(await readLock(b, OWNER)).toEqual({ kind: "free" });
  });

  it("of many applies taking it at the same moment, exactly one gets it, every round", async () => {
    const stores = Array.from({ length: 8 }, () => store());
    for (let round = 0; round < 10; round++) {
      const results = await Promise.all(stores.map((s, i) => acquireLock(s, OWNER, holder(`${round}${i}`.padStart(12, "0")))));
      const winners = results.filter((r) => r.kind === "acquired");
      expect({ round, winners: winners.length }).toEqual({ round, winners: 1 });
      // The others were refused as held: by the winner, or — in the instant before its record — by "unknown".
      const won = winners[0];
      if (won?.kind !== "acquired") return;
      for (const r of results.filter((x) => x.kind !== "acquired")) {
        expect(r.kind).toBe("held");
        if (r.kind === "held" && r.holder !== null) expect(r.holder).toEqual(won.lock.holder);
      }
      expect(await releaseLock(stores[0] as LockStore, won.lock)).toEqual({ kind: "released" });
    }
  });

  it("a broken lock is broken only by its own id; its old holder then gives back nothing", async () => {
    const [a, b] = [store(), store()];
    const first = await acquireLock(a, OWNER, holder("aaaaaaaaaaaa"));
    if (first.kind !== "acquired") throw new Error(first.kind);
    expect(await breakLock(b, OWNER, "bbbbbbbbbbbb")).toEqual({ kind: "mismatch", state: { kind: "held", holder: holder("aaaaaaaaaaaa") } });
    expect(await readLock(b, OWNER)).toEqual({ kind: "held", holder: holder("aaaaaaaaaaaa") });
    expect(await breakLock(b, OWNER, "aaaaaaaaaaaa")).toEqual({ kind: "broken", was: { kind: "held", holder: holder("aaaaaaaaaaaa") } });
    const second = await acquireLock(b, OWNER, holder("bbbbbbbbbbbb"));
    expect(second.kind).toBe("acquired");
    // The first apply ends: the lock is the second's now, and stays so.
    expect(await releaseLock(a, first.lock)).toEqual({ kind: "lost", now: { kind: "held", holder: holder("bbbbbbbbbbbb") } });
    expect(await readLock(a, OWNER)).toEqual({ kind: "held", holder: holder("bbbbbbbbbbbb") });
    expect(await breakLock(a, OWNER, "bbbbbbbbbbbb")).toMatchObject({ kind: "broken" });
    expect(await breakLock(a, OWNER, "bbbbbbbbbbbb")).toEqual({ kind: "free" });
  });

  it("a label with a claim but no record (an apply killed right after taking it) is held by that claim until broken by its id", async () => {
    const before = await traces();
    const c = clientOf(sim);
    clients.push(c);
    await c.label.create(claimOf("cccccccccccc"), "0x000000");
    await c.label.create(names.label, "0x000000");
    const s = store();
    expect(await readLock(s, OWNER)).toEqual({ kind: "held", holder: null, claim: "cccccccccccc" });
    expect(heldMessage(OWNER, { kind: "held", holder: null, claim: "cccccccccccc" }, 0, "qubes-iac apply")).toMatch(/has not recorded who it is \(claim cccccccccccc\) .* --break-lock cccccccccccc$/);
    expect(await acquireLock(s, OWNER, holder("aaaaaaaaaaaa"))).toEqual({ kind: "held", holder: null, claim: "cccccccccccc" });
    expect(await breakLock(s, OWNER, "aaaaaaaaaaaa")).toMatchObject({ kind: "mismatch" });
    expect(await breakLock(s, OWNER, "cccccccccccc")).toEqual({ kind: "broken", was: { kind: "held", holder: null, claim: "cccccccccccc" } });
    expect(await traces()).toEqual(before);
  });

  it("a label that no record and no claim explain (a create made after its apply ended) is taken over by the next apply", async () => {
    const before = await traces();
    const c = clientOf(sim);
    clients.push(c);
    await c.label.create(names.label, "0x000000");
    const s = store();
    expect(await readLock(s, OWNER)).toEqual({ kind: "abandoned" });
    const r = await acquireLock(s, OWNER, holder("aaaaaaaaaaaa"));
    expect(r.kind).toBe("acquired");
    if (r.kind === "acquired") expect(await releaseLock(s, r.lock)).toEqual({ kind: "released" });
    expect(await traces()).toEqual(before);
  });

  it("a claim label left alone (its create landed after its apply ended) holds nothing, and --break-lock with its id removes it", async () => {
    const before = await traces();
    const c = clientOf(sim);
    clients.push(c);
    await c.label.create(claimOf("cccccccccccc"), "0x000000");
    const s = store();
    expect(await readLock(s, OWNER)).toEqual({ kind: "free" });
    const r = await acquireLock(s, OWNER, holder("aaaaaaaaaaaa"));
    if (r.kind !== "acquired") throw new Error(r.kind);
    expect(await releaseLock(s, r.lock)).toEqual({ kind: "released" });
    expect(await breakLock(s, OWNER, "cccccccccccc")).toEqual({ kind: "free", removedClaim: claimOf("cccccccccccc") });
    expect(await traces()).toEqual(before);
  });
});

/** Every fault kind the simulator injects, as the lock sees each at each of its writes. */
const FAULTS: Record<string, FaultAction> = {
  exception: { kind: "exception", qubesClass: "QubesException", message: "injected" },
  "close-before": { kind: "close-before" },
  "close-after": { kind: "close-after" },
  garbage: { kind: "garbage" },
  truncate: { kind: "truncate" },
};
const ran = (k: string): boolean => k !== "exception" && k !== "close-before";
const A = holder("aaaaaaaaaaaa");
const claimOf = (id: string): string => `${names.label}.${id}`;

describe("faults at each of the lock's writes", () => {
  const ops = lockOps(OWNER, A);
  const WRITES = ["claim", "label", "record", "record's removal", "label's removal", "claim's removal"] as const;
  const pin = (i: number, action: FaultAction, times = 1): void => {
    const op = [...ops.take, ...ops.release][i];
    if (op === undefined) throw new Error("no op");
    const c = opCall(op);
    sim.faults.add({ method: c.method, arg: c.arg, dest: c.dest, calls: { from: 1, to: times }, action });
  };

  it("the writes are the claim, the label and the record, given back in the reverse order; the policy's have no id", () => {
    expect([...ops.take, ...ops.release].map((o) => `${o.op} ${"name" in o ? o.name : ""}`)).toEqual([
      `label.create ${claimOf("aaaaaaaaaaaa")}`,
      `label.create ${names.label}`,
      `feature.set ${names.record}`,
      `feature.remove ${names.record}`,
      `label.remove ${names.label}`,
      `label.remove ${claimOf("aaaaaaaaaaaa")}`,
    ]);
    expect(lockOps(OWNER).take[0]).toEqual({ op: "label.create", name: "*", colour: "0x000000" });
  });

  for (const [kind, action] of Object.entries(FAULTS)) {
    it(`${kind} at the claim: taken unless qubesd refused the claim, which leaves nothing`, async () => {
      const before = await traces();
      pin(0, action);
      const s = store();
      const r = await acquireLock(s, OWNER, A);
      if (kind === "exception") {
        expect(r.kind).toBe("failed");
      } else {
        expect(r.kind).toBe("acquired");
        if (r.kind === "acquired") expect(await releaseLock(s, r.lock)).toEqual({ kind: "released" });
      }
      expect(await traces()).toEqual(before);
    });

    it(`${kind} at the label's creation: settled by the claim — taken whether the call ran or not, unless qubesd refused it`, async () => {
      const before = await traces();
      pin(1, action);
      const s = store();
      const r = await acquireLock(s, OWNER, A);
      if (kind === "exception") {
        expect(r).toMatchObject({ kind: "failed", message: "could not take the lock: QubesException: injected" });
      } else {
        expect(r.kind).toBe("acquired");
        expect(await readLock(s, OWNER)).toEqual({ kind: "held", holder: A });
        if (r.kind === "acquired") expect(await releaseLock(s, r.lock)).toEqual({ kind: "released" });
      }
      expect(await traces()).toEqual(before);
    });

    it(`${kind} at the holder record: held with the record, or given back without a trace`, async () => {
      const before = await traces();
      pin(2, action);
      const s = store();
      const r = await acquireLock(s, OWNER, A);
      if (ran(kind)) {
        expect(r.kind).toBe("acquired");
        expect(await readLock(s, OWNER)).toEqual({ kind: "held", holder: A });
        if (r.kind === "acquired") expect(await releaseLock(s, r.lock)).toEqual({ kind: "released" });
      } else {
        expect(r).toMatchObject({ kind: "failed", message: expect.stringContaining("gave the lock back") });
      }
      expect(await traces()).toEqual(before);
    });

    for (const i of [3, 4, 5]) {
      it(`${kind} at the ${WRITES[i]}: released (a removal that did not happen is made once more)`, async () => {
        const before = await traces();
        const s = store();
        const r = await acquireLock(s, OWNER, A);
        if (r.kind !== "acquired") throw new Error(r.kind);
        pin(i, action);
        expect(await releaseLock(s, r.lock)).toEqual({ kind: "released" });
        expect(await traces()).toEqual(before);
      });
    }
  }

  for (const i of [3, 4, 5]) {
    it(`a ${WRITES[i]} refused twice: a failure that names the id to break, which then leaves nothing`, async () => {
      const before = await traces();
      const s = store();
      const r = await acquireLock(s, OWNER, A);
      if (r.kind !== "acquired") throw new Error(r.kind);
      pin(i, FAULTS.exception as FaultAction, 2);
      const released = await releaseLock(s, r.lock);
      expect(released).toMatchObject({ kind: "failed", message: expect.stringMatching(/(^could not release the lock of owner workstation: |^released the lock of owner workstation, but its claim label ).* --break-lock aaaaaaaaaaaa/) });
      if (i < 5) expect((await readLock(s, OWNER)).kind).toBe("held");
      expect(await breakLock(s, OWNER, "aaaaaaaaaaaa")).toMatchObject({ kind: i < 5 ? "broken" : "free" });
      expect(await traces()).toEqual(before);
    });
  }
});

describe("a create of the lock label without an answer", () => {
  /** A store whose calls time out after 300 ms: a create held up inside qubesd gets no answer. */
  const impatient = (): LockStore => {
    const c = clientOf(sim, 300);
    clients.push(c);
    return lockStoreFromClient(c);
  };
  const lateCreate = (ms: number): void => {
    sim.faults.add({ method: "admin.label.Create", arg: names.label, dest: "dom0", calls: { from: 1, to: 1 }, action: { kind: "delay-before", ms } });
  };
  const landed = async (): Promise<void> => {
    const end = Date.now() + 10_000;
    while (sim.faults.fired()[0]?.outcome === "not-run" && Date.now() < end) await new Promise((r) => setTimeout(r, 10));
  };

  it("held up inside qubesd: sent once more and taken; made after the lock was given back, it is a label the next apply takes over", async () => {
    const before = await traces();
    lateCreate(2000);
    const s = impatient();
    const r = await acquireLock(s, OWNER, A);
    expect(r.kind).toBe("acquired");
    if (r.kind !== "acquired") return;
    // While held, the late create is refused (the label exists).
    expect(await readLock(s, OWNER)).toEqual({ kind: "held", holder: A });
    expect(await releaseLock(s, r.lock)).toEqual({ kind: "released" });
    await landed();
    // The late create ran after the lock was given back: a label without record or claim.
    expect(sim.faults.fired()[0]?.outcome).toBe("ok");
    expect(await readLock(store(), OWNER)).toEqual({ kind: "abandoned" });
    const next = await acquireLock(store(), OWNER, holder("bbbbbbbbbbbb"));
    expect(next.kind).toBe("acquired");
    if (next.kind === "acquired") expect(await releaseLock(store(), next.lock)).toEqual({ kind: "released" });
    expect(await traces()).toEqual(before);
  });

  /** A's store, whose label lists wait until `open` is called: what A finds is what the test set up meanwhile. */
  const gated = (): { store: LockStore; open(): void } => {
    let open: () => void = () => {};
    const gate = new Promise<void>((resolve) => {
      open = resolve;
    });
    const inner = impatient();
    return { store: { ...inner, labels: async () => (await gate, inner.labels()) }, open: () => open() };
  };
  const claimMade = async (id: string): Promise<void> => {
    while (!(await store().labels()).includes(claimOf(id))) await new Promise((r) => setTimeout(r, 10));
  };

  it("a racing apply whose create lands while ours waits keeps its lock: ours stands back, naming it", async () => {
    const before = await traces();
    lateCreate(5000);
    const a = gated();
    const pending = acquireLock(a.store, OWNER, A);
    // B takes the lock while A's create is held up; then A looks.
    await claimMade("aaaaaaaaaaaa");
    const b = store();
    const B = holder("bbbbbbbbbbbb");
    const taken = await acquireLock(b, OWNER, B);
    expect(taken.kind).toBe("acquired");
    a.open();
    expect(await pending).toEqual({ kind: "held", holder: B });
    await landed();
    expect(sim.faults.fired()[0]?.outcome).toBe("exception");
    expect(await readLock(b, OWNER)).toEqual({ kind: "held", holder: B });
    if (taken.kind === "acquired") expect(await releaseLock(b, taken.lock)).toEqual({ kind: "released" });
    expect(await traces()).toEqual(before);
  });

  it("a racing apply between its label and its record when ours looks: nobody can tell, ours stands back and the other keeps its lock", async () => {
    const before = await traces();
    const B = holder("bbbbbbbbbbbb");
    lateCreate(5000);
    // B's record is held up until A has looked and stood back.
    sim.faults.add({ method: "admin.vm.feature.Set", arg: names.record, dest: "dom0", calls: { from: 1, to: 1 }, action: { kind: "delay-before", ms: 3000 } });
    const a = gated();
    const pending = acquireLock(a.store, OWNER, A);
    await claimMade("aaaaaaaaaaaa");
    const b = store();
    const taking = acquireLock(b, OWNER, B);
    // A looks once B's label is there (its record still held up).
    while (!(await store().labels()).includes(names.label)) await new Promise((r) => setTimeout(r, 10));
    a.open();
    const r = await pending;
    expect(r).toMatchObject({ kind: "unknown", message: expect.stringContaining("another apply of owner workstation is taking it at the same moment") });
    expect(await store().labels()).not.toContain(claimOf("aaaaaaaaaaaa"));
    const taken = await taking;
    expect(taken.kind).toBe("acquired");
    expect(await readLock(b, OWNER)).toEqual({ kind: "held", holder: B });
    await landed();
    if (taken.kind === "acquired") expect(await releaseLock(b, taken.lock)).toEqual({ kind: "released" });
    expect(await traces()).toEqual(before);
  });
});
