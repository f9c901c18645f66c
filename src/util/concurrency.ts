// Bounded parallelism for independent async work (reads in plan, steps in apply).
// Results keep the input order; the first rejection is reported after every started task settles.

export async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  let failure: { error: unknown } | undefined;
  const worker = async (): Promise<void> => {
    while (failure === undefined && next < items.length) {
      const i = next++;
      try {
        results[i] = await fn(items[i] as T, i);
      } catch (error) {
        failure ??= { error };
      }
    }
  };
  const n = Math.max(1, Math.min(limit, items.length));
  await Promise.all(Array.from({ length: n }, worker));
  if (failure) throw failure.error;
  return results;
}

/** A semaphore: at most `limit` holders of run() at once, served in arrival order. */
export function createLimiter(limit: number): <R>(fn: () => Promise<R>) => Promise<R> {
  let active = 0;
  const queue: Array<() => void> = [];
  // A released slot passes straight to the next waiter, so a newcomer can never overtake it.
  const release = (): void => {
    const next = queue.shift();
    if (next) next();
    else active--;
  };
  return async <R>(fn: () => Promise<R>): Promise<R> => {
    if (active >= limit) await new Promise<void>((resolve) => queue.push(resolve));
    else active++;
    try {
      return await fn();
    } finally {
      release();
    }
  };
}
