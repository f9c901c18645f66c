// The file-system side of config loading: a thin ConfigIO over node:fs. Everything else in
// src/config is pure and takes a ConfigIO, so tests give it files from memory.

import { accessSync, constants, existsSync, readFileSync, readdirSync, realpathSync, statSync } from "node:fs";
import type { ConfigIO, PathInfo } from "./index.js";

function inspect(path: string): PathInfo {
  let realPath: string;
  try {
    realPath = realpathSync(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "ENOENT" || code === "ENOTDIR") return { kind: "missing" };
    return { kind: "error", reason: code ?? (e instanceof Error ? e.message : String(e)) };
  }
  const st = statSync(realPath);
  let readable = true;
  try {
    accessSync(realPath, constants.R_OK);
  } catch {
    readable = false;
  }
  return { kind: st.isFile() ? "file" : st.isDirectory() ? "directory" : "other", realPath, readable };
}

export const nodeConfigIO: Required<ConfigIO> = {
  readFile: (path) => readFileSync(path, "utf8"),
  readDir: (path) => readdirSync(path),
  isDirectory: (path) => {
    try {
      return statSync(path).isDirectory();
    } catch {
      return false;
    }
  },
  exists: (path) => existsSync(path),
  size: (path) => statSync(path).size,
  inspect,
};
