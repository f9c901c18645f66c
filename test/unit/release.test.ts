// The release table and its detection, held against the recordings of each release's qubesd:
// the property lists of differences.jsonl rows 18-29 (fresh qubes of each class, dom0, the
// globals) tell the release, and the table's "absent" lists are exactly what the recordings lack.
import { describe, expect, it } from "vitest";
import { detectRelease, refineRelease, RELEASES, rulesFor, type PropertyListSeen, type ReleaseId } from "../../src/model/release.js";
import { lackedByClass } from "../helpers/release-overlay.js";
import { readJsonl, replyBytes } from "../helpers/shared.js";

const DIRS: Record<ReleaseId, string> = { "r4.2": "qubesd-r4.2", "r4.3": "qubesd-r4.3", main: "qubesd" };

const listOf = (release: ReleaseId, line: number): Set<string> => {
  const row = readJsonl(`conformance/${DIRS[release]}/differences.jsonl`)[line - 1];
  if (!row) throw new Error(`row ${line}`);
  expect(row.method).toMatch(/property\.List$/);
  return new Set(replyBytes(row).subarray(2).toString("utf8").split("\n").filter(Boolean));
};

describe("detectRelease, from recorded property lists", () => {
  for (const release of ["r4.2", "r4.3", "main"] as const) {
    it(`${release}: dom0's list alone tells it`, () => {
      expect(detectRelease([{ holder: "dom0", name: "dom0", properties: listOf(release, 26) }]).candidates).toEqual([release]);
    });
    it(`${release}: the globals' list and a qube's together tell it as well`, () => {
      const seen: PropertyListSeen[] = [
        { holder: "global", name: "global", properties: listOf(release, 28) },
        { holder: "qube", name: "d-app", properties: listOf(release, 18) },
      ];
      expect(detectRelease(seen).candidates).toEqual([release]);
    });
  }

  it("a qube's list alone tells R4.2 from the rest, not R4.3 from the head", () => {
    expect(detectRelease([{ holder: "qube", name: "d-tpl", properties: listOf("r4.2", 20) }]).candidates).toEqual(["r4.2"]);
    expect(detectRelease([{ holder: "qube", name: "d-tpl", properties: listOf("r4.3", 20) }]).candidates).toEqual(["r4.3", "main"]);
  });

  it("nothing seen (dom0's list refused) leaves every release possible; the plan follows the safe side of each", () => {
    const none = detectRelease([]);
    expect(none.candidates).toEqual(["r4.2", "r4.3", "main"]);
    const rules = rulesFor(none);
    expect(rules.maxmemWhileRunning).toBe("halted-only");
    expect(rules.lacks("qube", "bootmode", "AppVM")).toBe(false);
    // A qube's list read later narrows it down.
    const narrowed = refineRelease(none, [{ holder: "qube", name: "work", properties: listOf("r4.3", 18) }]);
    expect(narrowed.candidates).toEqual(["r4.3", "main"]);
    expect(rulesFor(narrowed).maxmemWhileRunning).toBe("halted-only");
  });

  it("lists no known release has (a newer release) leave no candidate", () => {
    const d = detectRelease([{ holder: "dom0", name: "dom0", properties: new Set(["maxmem"]) }]);
    expect(d.candidates).toEqual([]);
  });
});

describe("RELEASES: what each release lacks is what its recording lacks", () => {
  for (const release of ["r4.2", "r4.3"] as const) {
    it(release, () => {
      const a = RELEASES[release].absent;
      for (const [klass, lacked] of lackedByClass(DIRS[release] as "qubesd-r4.2" | "qubesd-r4.3")) {
        expect({ klass, lacks: [...a.qube, ...(a.byClass[klass] ?? [])].sort() }).toEqual({ klass, lacks: [...lacked].sort() });
      }
      const minus = (line: number): string[] => [...listOf("main", line)].filter((p) => !listOf(release, line).has(p)).sort();
      expect([...a.dom0].sort()).toEqual(minus(26));
      expect([...a.global].sort()).toEqual(minus(28));
    });
  }
});
