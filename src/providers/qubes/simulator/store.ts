// The state file on disk: loading (never silently replacing a bad file), atomic saving (temp
// file + rename), and the exclusive `<state>.lock` that keeps two servers off one state file.
// The only module of the simulator that touches the file system besides the call log.

import { closeSync, existsSync, openSync, readFileSync, renameSync, unlinkSync, writeFileSync } from "node:fs";
import { parseState, serializeState, StateFormatError, type FragmentCache, type World } from "./state.js";

export class StateFileError extends Error {
  override readonly name = "StateFileError";
}

/** Reads and checks a state file; a broken one is an error naming the file and the problem. */
export function loadStateFile(path: string): World {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    throw new StateFileError(`cannot read simulator state ${path}: ${e instanceof Error ? e.message : String(e)}`);
  }
  try {
    return parseState(text);
  } catch (e) {
    if (e instanceof StateFormatError) {
      throw new StateFileError(
        `simulator state ${path} is not usable: ${e.message}; fix or delete it, or start with reset to reseed it from the fixture`,
      );
    }
    throw e;
  }
}

/** Writes the whole state to a temp file and renames it over `path`. See serializeState for the cache. */
export function saveStateFile(path: string, world: World, cache?: FragmentCache, dirty?: ReadonlySet<string>): void {
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, serializeState(world, cache, dirty));
  renameSync(tmp, path);
}

type LockInfo = { pid: number; started: string };

function readLock(lockPath: string): LockInfo | null {
  try {
    const v = JSON.parse(readFileSync(lockPath, "utf8")) as Partial<LockInfo>;
    return typeof v.pid === "number" ? { pid: v.pid, started: String(v.started ?? "?") } : null;
  } catch {
    return null;
  }
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

/**
 * Takes `<statePath>.lock` (created O_EXCL, holding our pid and start time). A lock left by a
 * dead process is taken over; a live holder is an error that names its pid. Returns the release.
 */
export function lockStateFile(statePath: string, started: Date): () => void {
  const lockPath = `${statePath}.lock`;
  const info = JSON.stringify({ pid: process.pid, started: started.toISOString() });
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(lockPath, "wx");
      writeFileSync(fd, info);
      closeSync(fd);
      let released = false;
      return () => {
        if (released) return;
        released = true;
        if (readLock(lockPath)?.pid === process.pid && existsSync(lockPath)) unlinkSync(lockPath);
      };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST") {
        throw new StateFileError(`cannot create the lock ${lockPath}: ${e instanceof Error ? e.message : String(e)}`);
      }
      const holder = readLock(lockPath);
      if (holder && processAlive(holder.pid)) {
        throw new StateFileError(
          `simulator state ${statePath} is in use by pid ${holder.pid} (started ${holder.started}); ` +
            `stop that simulator or use another state file`,
        );
      }
      unlinkSync(lockPath);
    }
  }
  throw new StateFileError(`cannot take the lock ${lockPath}: another process keeps recreating it`);
}
