// What a method handler receives and how it is declared. The decorator fields (dest, arg,
// payload) are qubesd HEAD's `wants_arg`, `wants_payload`, `dest_adminvm`; the dispatcher
// checks them before the handler runs.

import type { Emit } from "./model.js";
import type { SimRelease } from "./running.js";
import type { Qube, World } from "./state.js";

/** Injected sources of time and randomness, so tests and the pure core never touch globals. */
export type Services = {
  /** Milliseconds since the epoch. */
  now(): number;
  randomUuid(): string;
  /** Integer in [0, max). */
  randomInt(max: number): number;
};

export type Call = {
  world: World;
  arg: string;
  payload: Uint8Array;
  src: Qube;
  dest: Qube;
  emit: Emit;
  services: Services;
  /** The release whose behaviour to imitate (running.ts). */
  release: SimRelease;
};

export type MethodSpec = {
  dest: "adminvm" | "not-adminvm" | "any";
  arg: "none" | "required" | "optional";
  payload: "none" | "required" | "optional";
  /** Changes persistent state: the state file is written after the call. */
  mutates: boolean;
  /** Returns the OK body (null = empty body); throws SimError. */
  run(call: Call): string | null;
};

/** A method's decorator fields and whether it changes state. */
export type Shape = Pick<MethodSpec, "dest" | "arg" | "payload" | "mutates">;

export const method = (shape: Shape, run: (call: Call) => string | null): MethodSpec => ({ ...shape, run });

export type StreamSpec = {
  dest: "any";
  arg: "none";
  payload: "none";
  stream: "events" | "stats";
};

export type AnySpec = MethodSpec | StreamSpec;

export const isAdminVm = (q: Qube): boolean => q.klass === "AdminVM";
