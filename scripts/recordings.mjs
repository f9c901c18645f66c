#!/usr/bin/env node
// The tests read the real-system recordings from test/conformance/recordings/, a byte-identical
// copy of ../shared/conformance/ (qubesd, qubesd-r4.2, qubesd-r4.3, qga), so a clone without
// ../shared passes `npm test`. `node scripts/recordings.mjs sync` refreshes the copy from
// ../shared; `check` (run by .ci/run and by test/conformance/recordings-copy.test.ts) exits 1 and
// names every file that differs, is missing or is extra. The copy is data about the real system;
// nothing here is read at run time.
import { createHash } from "node:crypto";
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
export const SHARED = join(root, "..", "shared", "conformance");
export const COPY = join(root, "test", "conformance", "recordings");

function files(dir) {
  if (!existsSync(dir)) return [];
  const out = [];
  for (const name of readdirSync(dir).sort()) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) out.push(...files(path));
    else out.push(path);
  }
  return out;
}

const digest = (path) => createHash("sha256").update(readFileSync(path)).digest("hex");

/** Every difference between ../shared/conformance and the copy, as `relative-path: why` lines. */
export function differences(shared = SHARED, copy = COPY) {
  const want = new Map(files(shared).map((p) => [relative(shared, p), p]));
  const have = new Map(files(copy).map((p) => [relative(copy, p), p]));
  const out = [];
  for (const [rel, p] of want) {
    const c = have.get(rel);
    if (c === undefined) out.push(`${rel}: missing from the copy`);
    else if (digest(c) !== digest(p)) out.push(`${rel}: differs from ../shared/conformance/${rel}`);
  }
  for (const rel of have.keys()) if (!want.has(rel)) out.push(`${rel}: not in ../shared/conformance (extra)`);
  return out;
}

function main(cmd) {
  if (!existsSync(SHARED)) {
    console.error(`recordings: ${SHARED} does not exist; ${cmd} needs ../shared beside the repository`);
    return 1;
  }
  if (cmd === "check") {
    const d = differences();
    for (const line of d) console.error(`recordings: ${line}`);
    if (d.length > 0) {
      console.error("recordings: the copy in test/conformance/recordings differs from ../shared/conformance; run `node scripts/recordings.mjs sync`");
      return 1;
    }
    console.log(`recordings: test/conformance/recordings is identical to ../shared/conformance (${files(SHARED).length} files)`);
    return 0;
  }
  if (cmd === "sync") {
    rmSync(COPY, { recursive: true, force: true });
    for (const p of files(SHARED)) {
      const to = join(COPY, relative(SHARED, p));
      mkdirSync(dirname(to), { recursive: true });
      copyFileSync(p, to);
    }
    console.log(`recordings: copied ${files(SHARED).length} files into test/conformance/recordings`);
    return 0;
  }
  console.error("usage: node scripts/recordings.mjs sync|check");
  return 2;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) process.exit(main(process.argv[2]));
