// admin.Events and admin.vm.Stats: live streams fed by mutations made on other connections,
// filtered by destination, in qubesd's event framing.

import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { EventStreamDecoder, type QubesEvent } from "../../src/providers/qubes/codec.js";
import { ok, openStream, tempSim, type Stream, type TempSim } from "./wire.js";

const ESTABLISHED = "1\0\0connection-established\0\0";

function decode(bytes: Buffer): QubesEvent[] {
  const r = new EventStreamDecoder().push(bytes);
  if (r.error) throw new Error(r.error);
  return r.events;
}

let s: TempSim;
const streams: Stream[] = [];
beforeEach(async () => {
  s = await tempSim();
});
afterEach(async () => {
  for (const st of streams.splice(0)) st.close();
  await s.stop();
});

async function stream(method: string, dest: string): Promise<Stream> {
  const st = openStream(s.socketPath, method, dest);
  streams.push(st);
  await st.waitFor(ESTABLISHED.length);
  return st;
}

/** Waits until the stream holds `n` events (connection-established included) and decodes them. */
async function events(st: Stream, n: number): Promise<QubesEvent[]> {
  const deadline = Date.now() + 2000;
  let evs = decode(st.bytes());
  while (evs.length < n && Date.now() < deadline) {
    await st.waitFor(st.bytes().length + 1, 50);
    evs = decode(st.bytes());
  }
  return evs;
}

describe("admin.Events", () => {
  it("starts with connection-established and streams other connections' changes live", async () => {
    const st = await stream("admin.Events", "dom0");
    expect(st.bytes().toString("latin1")).toBe(ESTABLISHED);
    await ok(s.socketPath, "admin.vm.property.Set", "vcpus", "work", "4");
    await ok(s.socketPath, "admin.vm.tag.Set", "t", "work");
    const evs = await events(st, 4);
    expect(evs.slice(1)).toEqual([
      { subject: "work", event: "property-pre-set:vcpus", kwargs: { name: "vcpus", newvalue: "4", oldvalue: "2" } },
      { subject: "work", event: "property-set:vcpus", kwargs: { name: "vcpus", newvalue: "4", oldvalue: "2" } },
      { subject: "work", event: "domain-tag-add:t", kwargs: { tag: "t" } },
    ]);
    await new Promise((r) => setTimeout(r, 50));
    expect(decode(st.bytes())).toHaveLength(4);
  });

  it("sends app events and lifecycle events to a dom0 stream", async () => {
    const st = await stream("admin.Events", "dom0");
    await ok(s.socketPath, "admin.vm.Create.AppVM", "", "dom0", "name=evq label=red");
    await ok(s.socketPath, "admin.vm.Start", "", "evq");
    await ok(s.socketPath, "admin.vm.Kill", "", "evq");
    await ok(s.socketPath, "admin.vm.Remove", "", "evq");
    const names = (await events(st, 14)).map((e) => `${e.subject ?? ""}:${e.event}`);
    expect(names).toEqual(
      expect.arrayContaining([
        ":domain-add",
        "evq:domain-tag-add:created-by-dom0",
        "evq:domain-pre-start",
        "evq:domain-start",
        "evq:domain-stopped",
        "evq:domain-shutdown",
        ":domain-pre-delete",
        ":domain-delete",
      ]),
    );
    expect(names.indexOf(":domain-add")).toBeLessThan(names.indexOf("evq:domain-start"));
  });

  it("reports a reset with the old value, and its deprecated twin", async () => {
    await ok(s.socketPath, "admin.vm.property.Set", "memory", "work", "900");
    const st = await stream("admin.Events", "work");
    await ok(s.socketPath, "admin.vm.property.Reset", "memory", "work");
    expect((await events(st, 5)).slice(1).map((e) => [e.event, e.kwargs])).toEqual([
      ["property-pre-reset:memory", { name: "memory", oldvalue: "900" }],
      ["property-pre-del:memory", { name: "memory", oldvalue: "900" }],
      ["property-reset:memory", { name: "memory", oldvalue: "900" }],
      ["property-del:memory", { name: "memory", oldvalue: "900" }],
    ]);
  });

  it("sends a qube's stream only that qube's events", async () => {
    const st = await stream("admin.Events", "work");
    await ok(s.socketPath, "admin.vm.feature.Set", "x", "personal", "1");
    await ok(s.socketPath, "admin.vm.Create.AppVM", "", "dom0", "name=other label=red");
    await ok(s.socketPath, "admin.vm.feature.Set", "x", "work", "1");
    const evs = await events(st, 3);
    expect(evs.map((e) => e.subject)).toEqual([null, "work", "work"]);
    expect(evs[2]).toEqual({ subject: "work", event: "domain-feature-set:x", kwargs: { feature: "x", value: "1" } });
  });

  it("tells every open stream, and stops writing to closed ones", async () => {
    const a = await stream("admin.Events", "dom0");
    const b = await stream("admin.Events", "dom0");
    b.close();
    await ok(s.socketPath, "admin.vm.firewall.Reload", "", "work");
    expect((await events(a, 2))[1]).toEqual({ subject: "work", event: "firewall-changed", kwargs: {} });
    expect(await ok(s.socketPath, "admin.vm.List", "", "work")).toContain("work");
  });
});

describe("admin.vm.Stats", () => {
  it("starts with connection-established, then reports running qubes every stats_interval", async () => {
    await ok(s.socketPath, "admin.property.Set", "stats_interval", "dom0", "1");
    await ok(s.socketPath, "admin.vm.Start", "", "vault");
    const st = await stream("admin.vm.Stats", "vault");
    expect(st.bytes().toString("latin1")).toBe(ESTABLISHED);
    const evs = await events(st, 2);
    expect(evs[1]?.subject).toBe("vault");
    expect(evs[1]?.event).toBe("vm-stats");
    expect(Object.keys(evs[1]?.kwargs ?? {})).toEqual([
      "memory_kb",
      "memory_assigned_total",
      "memory_assigned_usable",
      "memory_with_swap_used",
      "cpu_time",
      "cpu_usage",
      "online_vcpus",
    ]);
    expect(evs[1]?.kwargs.memory_kb).toBe(String(400 * 1024));
  });
});
