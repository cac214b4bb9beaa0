/** Small timing and summary helpers shared by the bench sections. */
import * as v8 from 'node:v8';
import { runInNewContext } from 'node:vm';

export function median(xs: number[]): number {
  return percentile(xs, 50);
}

/** Nearest-rank percentile (p in 0..100); NaN for an empty list. */
export function percentile(xs: number[], p: number): number {
  if (xs.length === 0) return NaN;
  const sorted = [...xs].sort((a, b) => a - b);
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))];
}

export function mean(xs: number[]): number {
  return xs.length === 0 ? NaN : xs.reduce((a, b) => a + b, 0) / xs.length;
}

/** Milliseconds one call takes. */
export async function timeMs(fn: () => unknown): Promise<number> {
  const t0 = performance.now();
  await fn();
  return performance.now() - t0;
}

/** A call's result and the ms it took. */
export async function timed<T>(fn: () => Promise<T>): Promise<{ value: T; ms: number }> {
  const t0 = performance.now();
  const value = await fn();
  return { value, ms: performance.now() - t0 };
}

/** Median ms over `runs` calls after `warmup` untimed ones. */
export async function medianMs(fn: () => unknown, runs: number, warmup = 1): Promise<number> {
  for (let i = 0; i < warmup; i++) await fn();
  const times: number[] = [];
  for (let i = 0; i < runs; i++) times.push(await timeMs(fn));
  return median(times);
}

/**
 * Median ms of each function, timed in rounds with the order reversed every other round, so a change
 * in the machine's load hits all of them alike. Stops after `runs` rounds, or earlier once `budgetMs`
 * is spent (always one round): slow settings that are no contender do not eat the run's time.
 */
export async function alternating(
  fns: (() => unknown)[],
  runs: number,
  budgetMs = Infinity,
): Promise<{ ms: number[]; runs: number }> {
  const times: number[][] = fns.map(() => []);
  let spent = 0;
  for (let round = 0; round < runs && (round === 0 || spent < budgetMs); round++) {
    const order = fns.map((_, i) => i);
    if (round % 2 === 1) order.reverse();
    for (const i of order) {
      const t = await timeMs(fns[i]);
      times[i].push(t);
      spent += t;
    }
  }
  return { ms: times.map(median), runs: times[0].length };
}

export function rssMb(): number {
  return process.memoryUsage().rss / 2 ** 20;
}

/**
 * Full garbage collection, so faiss indexes dropped by the previous step free their native memory
 * before the next RSS reading (node is started without --expose-gc by `make bench`).
 */
export function collectGarbage(): void {
  v8.setFlagsFromString('--expose-gc');
  (runInNewContext('gc') as () => void)();
}

/** Rounds for the JSON output: figures, not noise digits. */
export function round(x: number, digits = 2): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}
