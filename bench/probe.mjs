// Loaded with `node --import` into a CLI run the benchmark measures: when the process exits, it
// writes the process's own resource usage (maxRSS in KiB, CPU times in µs) to the file named by
// QIAC_BENCH_PROBE. It changes nothing else in the run.
import { writeFileSync } from "node:fs";

const out = process.env.QIAC_BENCH_PROBE;
if (out) {
  process.on("exit", () => {
    const u = process.resourceUsage();
    writeFileSync(out, JSON.stringify({ maxRssKb: u.maxRSS, userUs: u.userCPUTime, systemUs: u.systemCPUTime }));
  });
}
