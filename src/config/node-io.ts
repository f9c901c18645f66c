// The file-system side of config loading: a thin ConfigIO over node:fs. Everything else in
// src/config is pure and takes a ConfigIO, so tests give it files from memory.

import { existsSync, readFileSync, readdirSync, statSync } from "node:fs";
import type { ConfigIO } from "./index.js";

export const nodeConfigIO: ConfigIO = {
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
};
