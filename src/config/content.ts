// The inline content of a guest file, found again in its config file by JSON pointer: what apply
// uses to write exactly what the plan hashed, since a plan never holds content. Reads the YAML as
// the loader does (aliases and merge keys resolved). Pure: the file's text comes in.

import { pointerSegments } from "./_paths.js";
import { readYaml } from "./_yaml.js";

export function inlineContentAt(file: string, text: string, pointer: string): { text: string } | { error: string } {
  const read = readYaml(file, text);
  if (!read.written) return { error: `${file} is no longer valid YAML` };
  let node: unknown = read.written.value;
  for (const segment of pointerSegments(pointer)) {
    if (typeof node !== "object" || node === null || Array.isArray(node) || !Object.hasOwn(node, segment)) {
      return { error: `${file} no longer has this file's content (it was moved or removed)` };
    }
    node = (node as Record<string, unknown>)[segment];
  }
  if (typeof node !== "string") return { error: `${file} no longer has inline content for this file` };
  return { text: node };
}
