/** Retry pacing for background loops: exponential with jitter, and a sleep that close() can cut short. */
export class Backoff {
  private next: number;

  constructor(
    private readonly initialMs = 200,
    private readonly maxMs = 3000,
  ) {
    this.next = initialMs;
  }

  reset(): void {
    this.next = this.initialMs;
  }

  /** The delay to wait now; the one after doubles (with +-25% jitter, so restarts do not stampede). */
  delay(): number {
    const d = this.next * (0.75 + Math.random() * 0.5);
    this.next = Math.min(this.next * 2, this.maxMs);
    return Math.round(d);
  }
}

export interface Sleeper {
  sleep(ms: number): Promise<void>;
  /** Ends the current and every future sleep at once. */
  cancel(): void;
}

export function sleeper(): Sleeper {
  let cancelled = false;
  const wakers = new Set<() => void>();
  return {
    sleep(ms) {
      if (cancelled) return Promise.resolve();
      return new Promise<void>((resolve) => {
        const wake = () => {
          clearTimeout(timer);
          wakers.delete(wake);
          resolve();
        };
        const timer = setTimeout(wake, ms);
        wakers.add(wake);
      });
    },
    cancel() {
      cancelled = true;
      for (const wake of [...wakers]) wake();
    },
  };
}
