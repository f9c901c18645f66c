// What differs between the Qubes releases the simulator imitates, as data keyed by release.
// Only behaviour the recordings or the upstream source show to differ belongs here.

export type SimRelease = "head" | "r4.3" | "r4.2";

/**
 * What qubesd copies from a disposable template into a new DispVM, besides its cloneable
 * properties: the firewall, every tag, and the features but those whose names start with one of
 * `featureSkipPrefixes` (qubes-core-admin qubes/vm/dispvm.py, DispVM.__init__: release4.2 runs
 * `self.features.update(template.features)`; release4.3 and main leave out `preload-dispvm*`).
 */
export type DispvmInheritance = { featureSkipPrefixes: readonly string[] };

export const DISPVM_INHERITANCE: { readonly [R in SimRelease]: DispvmInheritance } = {
  head: { featureSkipPrefixes: ["preload-dispvm"] },
  "r4.3": { featureSkipPrefixes: ["preload-dispvm"] },
  "r4.2": { featureSkipPrefixes: [] },
};
