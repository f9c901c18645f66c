// The closed vocabulary of what a plan does to one resource, with each action's display symbol.
// Callers ask the predicates (`isDestroying`, `countsAs…`) instead of comparing action strings,
// so adding an action is a change in this one file that the compiler walks through.

export type Action = "no-op" | "create" | "update" | "delete" | "replace" | "forget" | "release";

export const ACTIONS: readonly Action[] = ["no-op", "create", "update", "delete", "replace", "forget", "release"];

/**
 * - `replace`: delete, then create under the same name (Qubes names are unique, so never the
 *   other way round); the qube's data is lost.
 * - `forget`: drop qubes-iac's ownership record of something that no longer exists; Qubes itself
 *   is not touched.
 * - `release`: qubes-iac stops managing something that exists (an adopted qube dropped from the
 *   config, or `release: true`): only its tag and records are removed; nothing else is touched.
 */
export function actionSymbol(a: Action): string {
  switch (a) {
    case "no-op":
      return " ";
    case "create":
      return "+";
    case "update":
      return "~";
    case "delete":
      return "-";
    case "replace":
      return "-/+";
    case "forget":
      return ".";
    case "release":
      return "<";
    default: {
      const never: never = a;
      return never;
    }
  }
}

/** The verb phrase of the human plan: "will be <…>". */
export function actionPhrase(a: Action): string {
  switch (a) {
    case "no-op":
      return "is up to date";
    case "create":
      return "will be created";
    case "update":
      return "will be updated in place";
    case "delete":
      return "will be destroyed";
    case "replace":
      return "must be replaced";
    case "forget":
      return "will be forgotten (it no longer exists; only qubes-iac's record is removed)";
    case "release":
      return "will be released (not destroyed)";
    default: {
      const never: never = a;
      return never;
    }
  }
}

export const isNoOp = (a: Action): boolean => a === "no-op";
export const isReplace = (a: Action): boolean => a === "replace";
/** The action removes something from Qubes (and with it, for a qube, its data). */
export const isDestroying = (a: Action): boolean => a === "delete" || a === "replace";
export const countsAsAdd = (a: Action): boolean => a === "create" || a === "replace";
export const countsAsChange = (a: Action): boolean => a === "update";
export const countsAsDestroy = (a: Action): boolean => a === "delete" || a === "replace";
export const countsAsForget = (a: Action): boolean => a === "forget";
export const countsAsRelease = (a: Action): boolean => a === "release";
