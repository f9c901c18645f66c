// "Did you mean": the indexed, bounded search answers exactly what comparing with every candidate
// answered (below the bound), and its cost per word is bounded however many names a config has.
import fc from "fast-check";
import { describe, expect, test } from "vitest";
import { closest, editDistance, MAX_COMPARISONS, suggester } from "../../src/config/_suggest.js";
import { loadConfig, type ConfigIO } from "../../src/config/index.js";

/** What `closest` did before it was indexed: every candidate compared, the first of the nearest kept. */
function everyCandidate(word: string, candidates: readonly string[]): string | undefined {
  const limit = Math.min(3, Math.max(1, Math.floor(word.length / 3)));
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const c of candidates) {
    if (c === word) continue;
    const d = editDistance(word.toLowerCase(), c.toLowerCase());
    if (d <= limit && d < bestDistance) {
      best = c;
      bestDistance = d;
    }
  }
  return best;
}

/** Optimal string alignment distance by the full table, as a reference. */
function fullTable(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let best = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) best = Math.min(best, d[i - 2]![j - 2]! + 1);
      d[i]![j] = best;
    }
  }
  return d[a.length]![b.length]!;
}

const name = fc.stringMatching(/^[a-dA-D0-9-]{0,12}$/);

describe("did you mean", () => {
  test("the typos it has always caught", () => {
    expect(closest("sys-vnp", ["sys-vpn", "work", "personal"])).toBe("sys-vpn");
    expect(closest("bleu", ["red", "blue", "black"])).toBe("blue");
    expect(closest("Work", ["work"])).toBe("work");
    expect(closest("wrok", ["work"])).toBe("work");
    expect(closest("fedora", ["debian-12", "whonix"])).toBeUndefined();
    expect(closest("x", ["y"])).toBe("y");
  });

  test("the edit distance is the optimal string alignment distance", () => {
    fc.assert(fc.property(name, name, (a, b) => editDistance(a, b) === fullTable(a, b)));
  });

  test("below the bound, the same answer as comparing with every candidate", () => {
    fc.assert(
      fc.property(name, fc.array(name, { maxLength: 60 }), (word, candidates) => {
        expect(closest(word, candidates)).toBe(everyCandidate(word, candidates));
      }),
      { numRuns: 2000 },
    );
  });

  test("a word is compared with at most MAX_COMPARISONS candidates, those with its first letter first", () => {
    // Thousands of names of one length: the one typo among them lies past the bound.
    const fillers = Array.from({ length: 3 * MAX_COMPARISONS }, (_, i) => `a${String(i).padStart(8, "0")}`);
    expect(closest("net-vpn-1", [...fillers, "net-vpm-1"])).toBe("net-vpm-1");
    const sameFirst = fillers.map((f) => `n${f.slice(1)}`);
    expect(everyCandidate("net-vpn-1", [...sameFirst, "net-vpm-1"])).toBe("net-vpm-1");
    expect(closest("net-vpn-1", [...sameFirst, "net-vpm-1"])).toBeUndefined();
    expect(suggester([...sameFirst, "net-vpm-1"], sameFirst.length + 1)("net-vpn-1")).toBe("net-vpm-1");
  });

  test("a long word costs nothing against short candidates", () => {
    expect(closest("x".repeat(100_000), ["xxx", "xxxx"])).toBeUndefined();
  });
});

describe("validate of many qubes that name qubes only the system has", () => {
  const io = (text: string): ConfigIO => ({ readFile: () => text, readDir: () => [], isDirectory: () => false, exists: () => true });

  test("still warns of the near miss among 1 000 qubes and system-only references", () => {
    const qubes = Array.from({ length: 1000 }, (_, i) => `  new-${i}: {class: AppVM, template: fedora-41, label: red, properties: {netvm: sys-firewall}}`);
    qubes.push("  sys-vpn: {class: AppVM, template: fedora-41, label: red, properties: {provides_network: true}}");
    qubes.push("  work: {adopt: true, properties: {netvm: sys-vnp}}");
    const r = loadConfig(["q.yaml"], io(`version: 1\nowner: o\nqubes:\n${qubes.join("\n")}\n`));
    expect(r.diagnostics.map((d) => `${d.code} ${d.location?.line} ${d.hint}`)).toEqual([`QIAC-W012 ${qubes.length + 3} did you mean 'sys-vpn'?`]);
  });
});
