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
  // Waiters in a linked list: a plan queues thousands of reads at once, and Array#shift is
  // linear in the queue's length, which made draining a long queue quadratic.
  type Waiter = { wake: () => void; next: Waiter | undefined };
  let head: Waiter | undefined;
  let tail: Waiter | undefined;
  // A released slot passes straight to the next waiter, so a newcomer can never overtake it.
  const release = (): void => {
    const next = head;
    if (next) {
      head = next.next;
      if (!head) tail = undefined;
      next.wake();
    } else active--;
  };
  return async <R>(fn: () => Promise<R>): Promise<R> => {
    if (active >= limit) {
      await new Promise<void>((resolve) => {
        const w: Waiter = { wake: resolve, next: undefined };
        if (tail) tail.next = w;
        else head = w;
        tail = w;
      });
    } else active++;
    try {
      return await fn();
    } finally {
      release();
    }
  };
}
