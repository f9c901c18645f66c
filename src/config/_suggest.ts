// "Did you mean" for misspelled keys and names: the closest candidate by edit distance, when it
// is close enough to be a plausible typo. Pure, and bounded: a word is compared only with
// candidates of a length it could be a typo of, at most MAX_COMPARISONS of them (those with its
// first letter first), and once per distinct word, so a config's cost stays linear in its size.

/**
 * At most this many candidates are compared with one word. Below it the answer is exactly the
 * closest candidate of all (ties to the earliest); above it (thousands of names of one length)
 * those sharing the word's first letter are compared first, as a typo rarely changes it.
 */
export const MAX_COMPARISONS = 256;

/** The largest distance that still reads as a typo of `word`: a third of its length (at least 1, at most 3). */
const limitFor = (word: string): number => Math.min(3, Math.max(1, Math.floor(word.length / 3)));

/** Levenshtein distance with transpositions counted as one edit (optimal string alignment). */
export function editDistance(a: string, b: string): number {
  return boundedDistance(a, b, Math.max(a.length, b.length));
}

/**
 * The optimal-string-alignment distance of `a` and `b` when it is at most `limit`, else some
 * number above `limit`. Three rows of the table, and it stops once two rows in a row exceed the
 * limit: a cell comes from the row above or, by a transposition, from two rows above plus one.
 */
function boundedDistance(a: string, b: string, limit: number): number {
  if (Math.abs(a.length - b.length) > limit) return limit + 1;
  const cols = b.length + 1;
  let before = rowBuffer(0, cols);
  let prev = rowBuffer(1, cols);
  let row = rowBuffer(2, cols);
  for (let j = 0; j < cols; j++) prev[j] = j;
  let prevMin = 0;
  for (let i = 1; i <= a.length; i++) {
    row[0] = i;
    let rowMin = i;
    for (let j = 1; j < cols; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let best = Math.min(prev[j]! + 1, row[j - 1]! + 1, prev[j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) best = Math.min(best, before[j - 2]! + 1);
      row[j] = best;
      if (best < rowMin) rowMin = best;
    }
    if (rowMin > limit && prevMin > limit) return limit + 1;
    prevMin = rowMin;
    [before, prev, row] = [prev, row, before];
  }
  return prev[b.length]!;
}

/** Three reused rows (the search runs millions of times for a large config; allocating them was a third of it). */
const rows: Int32Array[] = [new Int32Array(64), new Int32Array(64), new Int32Array(64)];
function rowBuffer(k: number, size: number): Int32Array {
  if (rows[k]!.length < size) rows[k] = new Int32Array(size * 2);
  return rows[k]!;
}

/** Character counts by code unit (all above 127 share one slot, which only weakens the bound). */
const slot = (s: string, i: number): number => Math.min(s.charCodeAt(i), 127);
const counts = new Int32Array(128);

/**
 * A lower bound of the distance from the letters alone: a letter of `b` that `a` lacks takes an
 * edit (an insertion or a substitution), and so does each extra letter of `a`. `counts` holds
 * `a`'s letters on entry and on return.
 */
function lettersApart(aLength: number, b: string): number {
  for (let i = 0; i < b.length; i++) counts[slot(b, i)]!--;
  let missing = 0;
  for (let i = 0; i < b.length; i++) {
    const c = slot(b, i);
    if (counts[c]! < 0) {
      missing -= counts[c]!;
      counts[c]! += COUNTED; // counted once however often b has it
    }
  }
  for (let i = 0; i < b.length; i++) {
    const c = slot(b, i);
    if (counts[c]! > COUNTED / 2) counts[c]! -= COUNTED;
    counts[c]!++;
  }
  return Math.max(missing, missing + aLength - b.length);
}
const COUNTED = 1 << 30;

type Candidate = { name: string; lower: string; index: number };

/** Finds the closest candidate for any number of words; each distinct word is answered once. */
export type Suggester = (word: string) => string | undefined;

/** Indexes `candidates` by first letter and length, once, for `closest` lookups of many words. */
export function suggester(candidates: Iterable<string>, maxComparisons = MAX_COMPARISONS): Suggester {
  // first letter (lower case) → length → candidates in the order given
  const index = new Map<string, Map<number, Candidate[]>>();
  let n = 0;
  for (const name of candidates) {
    const lower = name.toLowerCase();
    const first = lower.slice(0, 1);
    let byLength = index.get(first);
    if (!byLength) index.set(first, (byLength = new Map()));
    const bucket = byLength.get(lower.length);
    const c = { name, lower, index: n++ };
    if (bucket) bucket.push(c);
    else byLength.set(lower.length, [c]);
  }
  const answers = new Map<string, string | undefined>();
  return (word) => {
    if (answers.has(word)) return answers.get(word);
    const answer = search(index, word, maxComparisons);
    answers.set(word, answer);
    return answer;
  };
}

function search(index: Map<string, Map<number, Candidate[]>>, word: string, maxComparisons: number): string | undefined {
  const lower = word.toLowerCase();
  const limit = limitFor(word);
  counts.fill(0);
  for (let i = 0; i < lower.length; i++) counts[slot(lower, i)]!++;
  const first = lower.slice(0, 1);
  const sameFirst = index.get(first);
  const groups = [...(sameFirst ? [sameFirst] : []), ...[...index].filter(([f]) => f !== first).map(([, byLength]) => byLength)];
  let best: Candidate | undefined;
  let bestDistance = limit + 1;
  let budget = maxComparisons;
  for (const byLength of groups) {
    // Lengths nearest the word's first: a candidate of the same length is the likeliest typo.
    for (let delta = 0; delta <= limit; delta++) {
      for (const len of delta === 0 ? [lower.length] : [lower.length - delta, lower.length + delta]) {
        for (const c of byLength.get(len) ?? []) {
          if (c.name === word) continue;
          if (budget-- <= 0) return best?.name;
          const bound = Math.min(limit, bestDistance);
          if (lettersApart(lower.length, c.lower) > bound) continue;
          const dist = boundedDistance(lower, c.lower, bound);
          if (dist < bestDistance || (dist === bestDistance && best !== undefined && c.index < best.index)) {
            best = c;
            bestDistance = dist;
          }
        }
      }
    }
  }
  return best?.name;
}

/** The candidate closest to `word` (case-insensitive), if within a third of its length (at least 1, at most 3). */
export const closest = (word: string, candidates: Iterable<string>): string | undefined => suggester(candidates)(word);

export const didYouMean = (word: string, candidates: Iterable<string>): string | undefined => {
  const c = closest(word, candidates);
  return c === undefined ? undefined : `did you mean '${c}'?`;
};
