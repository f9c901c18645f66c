// Bounded parallelism: the limiter's bound, its arrival order, and release after a failure.
import { describe, expect, it } from "vitest";
import { createLimiter, mapLimit } from "../../src/util/concurrency.js";

const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

describe("createLimiter", () => {
  it("runs at most `limit` tasks at once and starts waiters in arrival order", async () => {
    const run = createLimiter(3);
    let active = 0;
    let peak = 0;
    const started: number[] = [];
    const tasks = Array.from({ length: 20 }, (_, i) =>
      run(async () => {
        started.push(i);
        active++;
        peak = Math.max(peak, active);
        await tick();
        active--;
        return i;
      }),
    );
    expect(await Promise.all(tasks)).toEqual(Array.from({ length: 20 }, (_, i) => i));
    expect(peak).toBe(3);
    expect(started).toEqual(Array.from({ length: 20 }, (_, i) => i));
  });

  it("frees the slot of a task that throws", async () => {
    const run = createLimiter(1);
    const failed = run(async () => {
      throw new Error("boom");
    });
    const next = run(async () => "ran");
    await expect(failed).rejects.toThrow("boom");
    await expect(next).resolves.toBe("ran");
  });

  it("drains a queue of many thousands of waiters", async () => {
    const run = createLimiter(8);
    const n = 50_000;
    let done = 0;
    await Promise.all(Array.from({ length: n }, () => run(async () => void done++)));
    expect(done).toBe(n);
  });
});

describe("mapLimit", () => {
  it("keeps the input order and reports a failure", async () => {
    expect(await mapLimit([3, 1, 2], 2, async (x) => x * 10)).toEqual([30, 10, 20]);
    const out = mapLimit([1, 2, 3, 4], 2, async (x) => {
      await tick();
      if (x === 2) throw new Error("two");
      return x * 10;
    });
    await expect(out).rejects.toThrow("two");
  });
});
