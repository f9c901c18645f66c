import { defineConfig } from "vitest/config";

// The apply, reliability and property tests run once per shipped Qubes release: the simulator of
// each test imitates QIAC_TEST_RELEASE (test/helpers/sim.ts). main runs every test; R4.2 (the
// release that differs most) the whole matrix; R4.3 a reduced reliability set, to keep CI short.
const RELEASE_MATRIX = [
  "test/e2e/apply.test.ts",
  "test/e2e/laptop.test.ts",
  "test/devices/apply.test.ts",
  "test/devices/loosening.test.ts",
  "test/apply/cli.test.ts",
  "test/apply/enforce.test.ts",
  "test/apply/clone.test.ts",
  "test/apply/ownership.test.ts",
  "test/plan/converge.test.ts",
  "test/plan/volumes.test.ts",
  "test/reliability/apply-lock.test.ts",
  "test/reliability/isolation.test.ts",
  "test/reliability/property.test.ts",
  "test/reliability/faults-a.test.ts",
  "test/reliability/faults-b.test.ts",
  "test/reliability/faults-c.test.ts",
  "test/reliability/faults-d.test.ts",
  "test/reliability/faults-laptop.test.ts",
];
const REDUCED = RELEASE_MATRIX.filter((f) => !/faults-[bcd]\.test\.ts$/.test(f));

export default defineConfig({
  test: {
    globalSetup: ["test/global-setup.ts"],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    pool: "forks",
    projects: [
      { extends: true, test: { name: "main", include: ["test/**/*.test.ts"] } },
      { extends: true, test: { name: "r4.2", include: RELEASE_MATRIX, env: { QIAC_TEST_RELEASE: "r4.2" } } },
      { extends: true, test: { name: "r4.3", include: REDUCED, env: { QIAC_TEST_RELEASE: "r4.3" } } },
    ],
  },
});
