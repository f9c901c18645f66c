// The client learns the release from dom0's property list (as each release's qubesd recorded
// it) and says what an empty reply means there: on R4.2 and R4.3 qubesd refuses a call that way
// (qubes/api/__init__.py QubesDaemonProtocol.respond on release4.2/4.3 aborts on ProtocolError
// and PermissionDenied; main sends them). Feature names and values are checked as the head's
// qubesd checks them, on every release (R4.2 stores `a/b`, newlines, tabs: differences.jsonl 40-45).
import { describe, expect, it } from "vitest";
import { createAdminClient } from "../../src/providers/qubes/client.js";
import type { AdminCall, Transport } from "../../src/providers/qubes/transport.js";
import { readJsonl, replyBytes } from "../helpers/shared.js";

/** Answers dom0's property.List as `dir` recorded it (differences.jsonl row 26) and everything else empty. */
function recorded(dir: string, sent: AdminCall[] = []): Transport {
  const row = readJsonl(`conformance/${dir}/differences.jsonl`)[25];
  if (row?.method !== "admin.vm.property.List" || row.dest !== "dom0") throw new Error("row 26 moved");
  return {
    description: dir,
    source: "dom0",
    visibility: "all",
    call: async (c) => {
      sent.push(c);
      return c.method === "admin.vm.property.List" && c.dest === "dom0" ? replyBytes(row) : Buffer.alloc(0);
    },
    stream: () => {
      throw new Error("no streams");
    },
    close: async () => {},
  };
}

const emptyMessage = async (dir: string): Promise<string> => {
  const client = createAdminClient(recorded(dir));
  await client.release();
  return client.pool.remove("x").then(
    () => "no error",
    (e: Error) => e.message,
  );
};

describe("empty replies, explained per release", () => {
  it("R4.2 and R4.3: a refusal (ProtocolError or PermissionDenied) looks so", async () => {
    expect(await emptyMessage("qubesd-r4.3")).toBe(
      "qubesd gave an empty reply to admin.pool.Remove+x → dom0: R4.3 answers so when it refuses a call (a ProtocolError or PermissionDenied: a request, argument or value it does not accept, or a method it lacks) and when the call fails; the reason is only in dom0's journal (journalctl -u qubesd)",
    );
    expect(await emptyMessage("qubesd-r4.2")).toContain(": R4.2 answers so when it refuses a call");
  });

  it("the head names its refusals: an empty reply is a failure", async () => {
    expect(await emptyMessage("qubesd")).toContain("main (the development head) names the calls it refuses, so this one failed");
  });

  it("the release is asked once per client", async () => {
    const sent: AdminCall[] = [];
    const client = createAdminClient(recorded("qubesd-r4.2", sent));
    expect((await client.release()).candidates).toEqual(["r4.2"]);
    expect((await client.release()).candidates).toEqual(["r4.2"]);
    expect(sent.map((c) => `${c.method} ${c.dest}`)).toEqual(["admin.vm.property.List dom0"]);
  });
});

describe("feature names and values are checked before sending, on every release", () => {
  for (const [name, value] of [
    ["a/b", "x"],
    ["ok-name", "line1\nline2"],
    ["tab-value", "a\tb"],
    ["nonascii", "café"],
  ] as const) {
    it(`${JSON.stringify(name)} = ${JSON.stringify(value)}`, async () => {
      const sent: AdminCall[] = [];
      const client = createAdminClient(recorded("qubesd-r4.2", sent));
      await expect(client.feature.set("work", name, value)).rejects.toMatchObject({ code: "invalid-request", details: { maybeDelivered: false } });
      expect(sent).toEqual([]);
    });
  }
});

describe("a refused dom0 property list tells nothing", () => {
  it("every release stays possible (absent and denied look the same from a management qube)", async () => {
    const { QubesApiError } = await import("../../src/providers/qubes/errors.js");
    const refusing: Transport = {
      ...recorded("qubesd-r4.2"),
      call: async (c) => {
        throw new QubesApiError("refused", `${c.method} refused by qrexec policy`, { maybeDelivered: false });
      },
    };
    const client = createAdminClient(refusing);
    expect(await client.release()).toEqual({ candidates: ["r4.2", "r4.3", "main"], evidence: [] });
  });
});
