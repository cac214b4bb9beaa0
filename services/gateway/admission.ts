/**
 * Admission control for inspections. At most `maxInFlight` run at once (more only share the same
 * cores and memory; see defaultAdmission), at most `maxQueue` wait for a slot (in the order below).
 * Past that a request is refused at once with
 * RESOURCE_EXHAUSTED and a retry hint, instead of queueing without bound (a burst of 300 once took
 * p50 to 16 s and the gateway's memory to 1.9 GiB). A request whose deadline cannot be met (a
 * running estimate of the service time, and its place in the queue) is dropped before any work.
 *
 * Shared fairly between clients (a client here is a connection, gRPC's peer): a request that finds
 * the queue full takes the place of the newest queued request of the client holding the most,
 * when that client holds at least two more than the newcomer's, and a freed slot goes to the
 * queued request whose client has the fewest running. One client alone still gets every slot; in a
 * burst from one client, the other line controllers are neither refused nor queued behind it.
 */
import { SpiError } from '../../lib/errors';

export interface AdmissionSettings {
  /** Inspections running at once. */
  maxInFlight: number;
  /** Inspections waiting for a slot; 0 = refuse whatever cannot start at once. */
  maxQueue: number;
  /**
   * The share of the slots one client may hold (running, queued and arriving together) while
   * another client is active (0-1; absent or 1 = no cap). See clientCap().
   */
  clientShare?: number;
}

/**
 * Four inspections in flight and four waiting, on the 2 cores this was measured on. Part of an
 * inspection's time is spent waiting for shards, so the bound is above the core count: with 2 in
 * flight a frozen shard held both slots and the soak's p99 during the freeze went from 0.3 s (4) to
 * 2.0 s, and a queue of 2 refused a 4-image batch during a rotation. More than 4 only share the same
 * cores (the cluster section of `make bench`, 1 shard, 2026-12-07: 33, 43, 38, 29, 29 images/s at
 * 1, 2, 3, 4, 6 in flight, in one noisy run). A pod's CPU limit is not what Node counts, so the
 * default is not derived from the core count: k8s/base sets both for its pods.
 */
export function defaultAdmission(): AdmissionSettings {
  return { maxInFlight: 4, maxQueue: 4, clientShare: 0.5 };
}

export const DEFAULT_ADMISSION: AdmissionSettings = defaultAdmission();

/** Why a request was refused: the queue was full, or its deadline could not be met. */
export type ShedReason = 'queue_full' | 'deadline' | 'fair_share' | 'client_share';
export const SHED_REASONS: ShedReason[] = ['queue_full', 'deadline', 'fair_share', 'client_share'];

/** Who sent a request, for the fair share (the connection's peer address); one default client. */
export type ClientKey = string;
const ANY_CLIENT: ClientKey = '';

/** A client's requests by state. */
interface Holdings {
  running: number;
  queued: number;
  arriving: number;
}

interface Waiter {
  client: ClientKey;
  deadline?: number;
  admit: () => void;
  refuse: (err: SpiError) => void;
  /** Clears the deadline timer and the cancellation listener. */
  done: () => void;
}

/** Weight of the newest service time in the running estimate. */
const EWMA = 0.2;
/** Retry hint bounds (ms), and the hint before any service time was measured. */
const MIN_RETRY_MS = 10;
const MAX_RETRY_MS = 10_000;
const UNKNOWN_RETRY_MS = 100;
/**
 * How long a client counts as active after its last request: longer than a slow line's frame
 * interval, so a line controller between frames keeps its reserve.
 */
export const CLIENT_ACTIVE_MS = 10_000;

export class Admission {
  private running = 0;
  /** Calls whose metadata is in and whose image is still on its way (see arrive()). */
  private arriving = 0;
  private readonly queue: Waiter[] = [];
  private readonly clients = new Map<ClientKey, Holdings>();
  /** When each client last asked (pruned after CLIENT_ACTIVE_MS). */
  private readonly lastSeen = new Map<ClientKey, number>();
  private estimate: number | undefined;
  private readonly shedListeners = new Set<(reason: ShedReason) => void>();

  constructor(
    readonly settings: AdmissionSettings,
    private readonly now: () => number = Date.now,
  ) {
    if (settings.maxInFlight < 1) throw new Error('maxInFlight must be at least 1');
    const share = settings.clientShare ?? 1;
    if (!(share > 0 && share <= 1)) throw new Error('clientShare must be in (0, 1]');
  }

  get inFlight(): number {
    return this.running;
  }

  get queued(): number {
    return this.queue.length;
  }

  /** Running estimate of one inspection's time (ms), undefined until one finished. */
  get serviceEstimateMs(): number | undefined {
    return this.estimate;
  }

  onShed(listener: (reason: ShedReason) => void): void {
    this.shedListeners.add(listener);
  }

  /**
   * Runs `work` once a slot is free. Throws (before any work) RESOURCE_EXHAUSTED with a retry hint
   * when the queue is full or the wait would miss `deadline` (epoch ms), DEADLINE_EXCEEDED when the
   * deadline is too short even without a queue. `signal` takes a cancelled caller out of the queue.
   */
  async run<T>(
    deadline: number | undefined,
    work: () => Promise<T>,
    signal?: AbortSignal,
    client: ClientKey = ANY_CLIENT,
  ): Promise<T> {
    await this.acquire(deadline, signal, client);
    const started = this.now();
    let ok = false;
    try {
      const result = await work();
      ok = true;
      return result;
    } finally {
      this.release(client, ok ? this.now() - started : undefined);
    }
  }

  /**
   * Counts a call from the moment its metadata is in until `done` (its message arrived, or the call
   * ended without one): a burst's calls then see each other before any image is read.
   */
  arrive(client: ClientKey = ANY_CLIENT): () => void {
    this.arriving++;
    this.count(client, 'arriving', +1);
    this.seen(client);
    let done = false;
    return () => {
      if (done) return;
      done = true;
      this.arriving--;
      this.count(client, 'arriving', -1);
    };
  }

  /**
   * The refusal a request arriving now would get (counted as shed), or undefined when it may start
   * or queue. `early`: asked when its metadata is in, so the calls still arriving count as ahead
   * of it; once its message is in (run()), only those running and queued do.
   */
  refusal(
    deadline: number | undefined,
    { early = false, client = ANY_CLIENT }: { early?: boolean; client?: ClientKey } = {},
  ): SpiError | undefined {
    if (deadline !== undefined && this.estimate !== undefined && this.now() + this.estimate > deadline)
      return this.shed(
        'deadline',
        new SpiError(
          'DEADLINE_EXCEEDED',
          `the deadline (${Math.max(0, deadline - this.now())} ms away) is shorter than an inspection ` +
            `takes here (about ${Math.round(this.estimate)} ms); not started`,
        ),
      );
    this.seen(client);
    const cap = this.clientCap(client);
    if (cap !== undefined && this.held(client) >= cap) return this.overloaded('client_share', cap);
    const { maxInFlight, maxQueue } = this.settings;
    const busy = this.running + (early ? this.arriving : 0);
    if (busy < maxInFlight && this.queue.length === 0) return undefined;
    const waiting = this.queue.length + Math.max(0, busy - maxInFlight);
    const full = waiting >= maxQueue;
    const place = full ? maxQueue : waiting + 1;
    if (deadline !== undefined && !this.canMeet(deadline, place)) return this.overloaded('deadline');
    if (full && !this.makeRoomFor(client, early)) return this.overloaded('queue_full');
    return undefined;
  }

  /**
   * Refuses the newest queued request of the client holding the most (when it holds at least two
   * more than `client`), so that `client` can queue; false when no client is that far ahead.
   * `early`: when that client's requests are still arriving rather than queued, lets `client` in
   * all the same; theirs are refused once their images are in and find the queue full.
   */
  private makeRoomFor(client: ClientKey, early: boolean): boolean {
    const mine = this.held(client);
    let heaviest: ClientKey | undefined;
    let most = mine + 1;
    for (const w of this.queue) {
      const held = this.held(w.client);
      if (held > most) [heaviest, most] = [w.client, held];
    }
    if (heaviest === undefined) {
      if (!early) return false;
      for (const h of this.clients.values()) if (h.arriving > 0 && this.total(h) > mine + 1) return true;
      return false;
    }
    let newest = this.queue.length - 1;
    while (this.queue[newest].client !== heaviest) newest--;
    this.unqueue(newest).refuse(this.overloaded('fair_share'));
    return true;
  }

  private held(client: ClientKey): number {
    const h = this.clients.get(client);
    return h ? this.total(h) : 0;
  }

  private total(h: Holdings): number {
    return h.running + h.queued + h.arriving;
  }

  private count(client: ClientKey, state: keyof Holdings, delta: number): void {
    const h = this.clients.get(client) ?? { running: 0, queued: 0, arriving: 0 };
    h[state] += delta;
    if (this.total(h) > 0) this.clients.set(client, h);
    else this.clients.delete(client);
  }

  /** A free slot, `client` under its cap, and no queued request that may take the slot first. */
  private canStart(client: ClientKey): boolean {
    return (
      this.running < this.settings.maxInFlight &&
      this.mayRun(client) &&
      !this.queue.some((w) => this.mayRun(w.client))
    );
  }

  private mayRun(client: ClientKey): boolean {
    const cap = this.clientCap(client);
    return cap === undefined || this.runningOf(client) < cap;
  }

  /**
   * How many requests `client` may hold (running, queued and arriving together) while another
   * client is active (holds a request, or asked within CLIENT_ACTIVE_MS): its share of the slots,
   * and no place in the queue beyond them; undefined when it is alone or there is no cap. Requests
   * it queued while alone wait for its own running ones (each release re-checks).
   *
   * Why: the fair share alone let a burst from one connection fill every slot and the queue, and
   * the other clients' inspections then shared the cores with all of them: in the soak the line
   * controllers' burst p99 was 2.1-2.9x their unloaded p99, mostly a slower search. With half the
   * slots and no queue for the burst it was 1.2-1.6x (the overloader at nice 19; 2.2x at nice 0);
   * with half the slots and half of slots + queue (2 running, 2 waiting) 1.5-2.3x, and the
   * accepted burst calls waited behind their own (2-minute burst-only drills, 2026-12-07; README,
   * Fault drill).
   */
  private clientCap(client: ClientKey): number | undefined {
    const share = this.settings.clientShare ?? 1;
    if (share >= 1 || !this.othersActive(client)) return undefined;
    return Math.max(1, Math.floor(this.settings.maxInFlight * share));
  }

  /** Notes that `client` asked now (only with a cap: nothing else prunes the map). */
  private seen(client: ClientKey): void {
    if ((this.settings.clientShare ?? 1) < 1) this.lastSeen.set(client, this.now());
  }

  private othersActive(client: ClientKey): boolean {
    for (const other of this.clients.keys()) if (other !== client) return true;
    const since = this.now() - CLIENT_ACTIVE_MS;
    let active = false;
    for (const [other, at] of this.lastSeen) {
      if (at < since) this.lastSeen.delete(other);
      else if (other !== client) active = true;
    }
    return active;
  }

  private acquire(
    deadline: number | undefined,
    signal: AbortSignal | undefined,
    client: ClientKey,
  ): Promise<void> {
    if (signal?.aborted) throw new SpiError('UNAVAILABLE', 'the caller cancelled the request');
    const refused = this.refusal(deadline, { client });
    if (refused) throw refused;
    if (this.canStart(client)) {
      this.start(client);
      return Promise.resolve();
    }
    return new Promise<void>((admit, refuse) => {
      // Out of the queue at the latest start that still meets the deadline, or when the caller goes.
      const timer =
        deadline === undefined
          ? undefined
          : setTimeout(
              () => this.dropWaiter(waiter, this.overloaded('deadline')),
              Math.max(0, deadline - (this.estimate ?? 0) - this.now()),
            );
      const onAbort = () =>
        this.dropWaiter(waiter, new SpiError('UNAVAILABLE', 'the caller cancelled the request'));
      signal?.addEventListener('abort', onAbort, { once: true });
      const waiter: Waiter = {
        client,
        deadline,
        admit,
        refuse,
        done: () => {
          clearTimeout(timer);
          signal?.removeEventListener('abort', onAbort);
        },
      };
      this.queue.push(waiter);
      this.count(client, 'queued', +1);
    });
  }

  private start(client: ClientKey): void {
    this.running++;
    this.count(client, 'running', +1);
  }

  private release(client: ClientKey, serviceMs: number | undefined): void {
    this.running--;
    this.count(client, 'running', -1);
    // Failures (a corrupt image refused in a millisecond) say nothing about the service time.
    if (serviceMs !== undefined)
      this.estimate =
        this.estimate === undefined ? serviceMs : this.estimate + EWMA * (serviceMs - this.estimate);
    while (this.running < this.settings.maxInFlight) {
      const next = this.takeNext();
      if (!next) break;
      if (next.deadline !== undefined && !this.canMeet(next.deadline, 0)) {
        next.refuse(this.overloaded('deadline'));
        continue;
      }
      this.start(next.client);
      next.admit();
    }
  }

  /**
   * Out of the queue: the oldest request of the client with the fewest running, of the clients
   * under their cap; undefined when none may run.
   */
  private takeNext(): Waiter | undefined {
    let best = -1;
    for (let i = 0; i < this.queue.length; i++) {
      const client = this.queue[i].client;
      if (best >= 0 && this.runningOf(client) >= this.runningOf(this.queue[best].client)) continue;
      if (this.mayRun(client)) best = i;
    }
    return best < 0 ? undefined : this.unqueue(best);
  }

  private runningOf(client: ClientKey): number {
    return this.clients.get(client)?.running ?? 0;
  }

  private unqueue(i: number): Waiter {
    const [waiter] = this.queue.splice(i, 1);
    this.count(waiter.client, 'queued', -1);
    waiter.done();
    return waiter;
  }

  private dropWaiter(waiter: Waiter, err: SpiError): void {
    const i = this.queue.indexOf(waiter);
    if (i < 0) return;
    this.unqueue(i).refuse(err);
  }

  /** Whether a request `position` places behind the running ones can finish by `deadline`. */
  private canMeet(deadline: number, position: number): boolean {
    const service = this.estimate ?? 0;
    // A slot frees about every service / maxInFlight ms.
    const wait = (position * service) / this.settings.maxInFlight;
    return this.now() + wait + service <= deadline;
  }

  private overloaded(reason: ShedReason, cap?: number): SpiError {
    const { maxInFlight, maxQueue, clientShare } = this.settings;
    const retryAfterMs = this.retryHintMs();
    const why = {
      queue_full: 'the queue is full',
      deadline: 'its deadline cannot be met behind the queue',
      fair_share:
        'its place in the queue went to a client with fewer requests (this connection holds the most)',
      client_share:
        `this connection already holds its share while other clients are active (${cap} of ` +
        `${maxInFlight} slots, --max-client-share ${clientShare})`,
    }[reason];
    return this.shed(
      reason,
      new SpiError(
        'RESOURCE_EXHAUSTED',
        `gateway overloaded, ${why}: ${this.running} inspections running (--max-in-flight ${maxInFlight}), ` +
          `${this.queue.length} waiting (--max-queue ${maxQueue}); retry after ${retryAfterMs} ms`,
        retryAfterMs,
      ),
    );
  }

  /** About when the queue as it stands now will have drained. */
  private retryHintMs(): number {
    if (this.estimate === undefined) return UNKNOWN_RETRY_MS;
    const ms = (this.estimate * (this.queue.length + 1)) / this.settings.maxInFlight;
    return Math.round(Math.min(MAX_RETRY_MS, Math.max(MIN_RETRY_MS, ms)));
  }

  private shed(reason: ShedReason, err: SpiError): SpiError {
    for (const listener of this.shedListeners) listener(reason);
    return err;
  }
}
