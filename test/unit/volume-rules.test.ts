// qubesd's volume and notes rules (src/model/volume-rules.ts): where CreateInPool puts each
// volume, the revisions_to_keep each driver takes per release, what a new volume gets, and which
// characters of notes qubesd keeps.
import { describe, expect, it } from "vitest";
import {
  checkNotes,
  defaultEphemeral,
  defaultRevisions,
  describeLimit,
  ephemeralAllowed,
  MAX_NOTES_BYTES,
  newVolumePool,
  notesCharKept,
  revisionsLimit,
  sanitizeNotes,
  volumeShapes,
  withinLimit,
} from "../../src/model/volume-rules.js";

const defaults = (n: string): string => `default-${n}`;

describe("newVolumePool (qubes/vm/qubesvm.py _patch_pool_config)", () => {
  const placed = (klass: string, pool: string | undefined) =>
    Object.fromEntries(volumeShapes(klass).map((s) => [s.name, newVolumePool(s, pool, defaults, s.snapOnStart ? "tpl-pool" : undefined)]));

  it("pool= moves an AppVM's private and volatile, not its snapshot root nor the read-only kernel", () => {
    expect(placed("AppVM", "fast")).toEqual({ root: "tpl-pool", private: "fast", volatile: "fast", kernel: "default-kernel" });
  });
  it("a DispVM keeps root and private with its template's", () => {
    expect(placed("DispVM", "fast")).toEqual({ root: "tpl-pool", private: "tpl-pool", volatile: "fast", kernel: "default-kernel" });
  });
  it("a TemplateVM's and a StandaloneVM's own volumes all move", () => {
    for (const k of ["TemplateVM", "StandaloneVM"]) expect(placed(k, "fast")).toEqual({ root: "fast", private: "fast", volatile: "fast", kernel: "default-kernel" });
  });
  it("without a pool: each volume's default_pool_<name>, a snapshot its origin's", () => {
    expect(placed("AppVM", undefined)).toEqual({ root: "tpl-pool", private: "default-private", volatile: "default-volatile", kernel: "default-kernel" });
  });
  it("no volumes for classes without storage", () => {
    expect(volumeShapes("AdminVM")).toEqual([]);
  });
});

describe("revisions_to_keep", () => {
  it("per driver and release: file 0-1 (-1 on R4.3+), linux-kernel 0, the others unbounded", () => {
    expect(revisionsLimit("file", false)).toEqual({ min: 0, max: 1 });
    expect(revisionsLimit("file", true)).toEqual({ min: -1, max: 1 });
    expect(revisionsLimit("linux-kernel", true)).toEqual({ min: 0, max: 0 });
    expect(revisionsLimit("lvm_thin", false)).toEqual({ min: 0 });
    expect(revisionsLimit("file-reflink", true)).toEqual({ min: -1 });
    expect([withinLimit({ min: 0, max: 1 }, 2), withinLimit({ min: -1 }, 40), withinLimit({ min: 0 }, -1)]).toEqual([false, true, false]);
    expect([describeLimit({ min: 0, max: 0 }), describeLimit({ min: -1, max: 1 }), describeLimit({ min: 0 })]).toEqual(["only 0", "-1 to 1", "0 or more"]);
  });
  it("a new volume: the pool's, but a file pool's only for save_on_stop volumes, never the kernel's", () => {
    expect([defaultRevisions("file", 1, true), defaultRevisions("file", 1, false), defaultRevisions("lvm_thin", 2, false), defaultRevisions("linux-kernel", 1, false)]).toEqual([1, 0, 2, 0]);
  });
});

describe("ephemeral", () => {
  it("only on a writable volume that is neither a snapshot nor kept: volatile; by default the pool's ephemeral_volatile", () => {
    const shapes = Object.fromEntries(volumeShapes("AppVM").map((s) => [s.name, s]));
    expect(Object.values(shapes).filter(ephemeralAllowed).map((s) => s.name)).toEqual(["volatile"]);
    expect([defaultEphemeral(shapes.volatile!, true), defaultEphemeral(shapes.private!, true), defaultEphemeral(shapes.volatile!, false)]).toEqual([true, false, false]);
  });
});

describe("notes (libqubes-pure's allowlist, tab and newline)", () => {
  it("keeps printable ASCII, tab, newline, letters of Latin, Greek, Cyrillic and CJK, punctuation, math and currency", () => {
    for (const ch of ["a", "~", " ", "\t", "\n", "é", "ß", "Ω", "Ж", "鍵", "한", "—", "€", "±", "«"]) expect(notesCharKept(ch.codePointAt(0) ?? 0), ch).toBe(true);
  });
  it("replaces controls, DEL, bidi and format characters, no-break space, marks, other symbols, private use, RTL scripts", () => {
    for (const cp of [0x07, 0x0d, 0x7f, 0x85, 0x202e, 0x200b, 0xfeff, 0x00a0, 0x0301, 0x2603, 0x1f600, 0xe000, 0x05d0, 0x0627, 0xd800]) {
      expect(notesCharKept(cp), cp.toString(16)).toBe(false);
    }
  });
  it("sanitises as the recorded notes.Set (transcripts.jsonl row 117) and locates what it would replace", () => {
    expect(sanitizeNotes("ctrl\x07char and \u202e bidi\n")).toBe("ctrl_char and _ bidi\n");
    expect(checkNotes("fine\nline two\n")).toBeNull();
    expect(checkNotes("ok\nbad \u202e")).toBe("notes line 2 column 5: U+202E is a character qubesd replaces with '_' (control, format, bidi, private-use or a script it does not display)");
    expect(checkNotes("x".repeat(MAX_NOTES_BYTES + 1))).toBe(`notes are ${MAX_NOTES_BYTES + 1} bytes; qubesd takes at most ${MAX_NOTES_BYTES}`);
  });
});
