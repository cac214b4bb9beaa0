/**
 * Keeps a ClusterView current: a range read of the whole prefix, then a watch from the revision after
 * it. When etcd goes away the last view stays (gateways keep serving on it, marked connected=false);
 * when it is back we read everything again rather than trust a replay, because a restored or rebuilt
 * etcd may have a different history.
 */
import { Etcd3, IWatchResponse, Watcher } from 'etcd3';
import { Logger } from '../util/log';
import { Backoff, sleeper } from './backoff';
import { ClusterView, KvChange, applyChanges, emptyView, viewFromKvs } from './view';

export type ViewListener = (view: ClusterView) => void;

export class ViewWatcher {
  private current: ClusterView = emptyView();
  private watcher: Watcher | null = null;
  private closed = false;
  private syncing = false;
  private readonly nap = sleeper();
  private readonly backoff = new Backoff(200, 2000);
  private firstSync!: () => void;
  /** Resolves after the first successful read (it may take a while if etcd is down at start). */
  readonly ready: Promise<void> = new Promise((resolve) => (this.firstSync = resolve));

  constructor(
    private readonly client: Etcd3,
    private readonly prefix: string,
    private readonly listener: ViewListener | undefined,
    private readonly log: Logger,
  ) {
    void this.resync();
  }

  /** The latest snapshot; never mutated, take it once per request. */
  get view(): ClusterView {
    return this.current;
  }

  async close(): Promise<void> {
    this.closed = true;
    this.nap.cancel();
    const w = this.watcher;
    this.watcher = null;
    if (w) await w.cancel().catch(() => undefined);
  }

  private publish(view: ClusterView): void {
    this.current = view;
    try {
      this.listener?.(view);
    } catch (err) {
      this.log.error('cluster view listener failed', { err });
    }
  }

  private async resync(): Promise<void> {
    if (this.syncing) return;
    this.syncing = true;
    try {
      while (!this.closed) {
        try {
          await this.readAndWatch();
          this.backoff.reset();
          return;
        } catch (err) {
          if (this.closed) return;
          const delay = this.backoff.delay();
          this.log.debug('etcd view read failed; retrying', {
            err: (err as Error).message,
            retryInMs: delay,
          });
          await this.nap.sleep(delay);
        }
      }
    } finally {
      this.syncing = false;
    }
  }

  private async readAndWatch(): Promise<void> {
    const res = await this.client.getAll().prefix(this.prefix).exec();
    if (this.closed) return;
    const revision = Number(res.header.revision);
    const kvs = res.kvs.map((kv) => ({ key: kv.key.toString(), value: kv.value.toString() }));
    this.publish(viewFromKvs(this.prefix, kvs, revision));
    this.firstSync();

    const watcher = this.client
      .watch()
      .prefix(this.prefix)
      .startRevision(String(revision + 1))
      .watcher();
    this.watcher = watcher;
    watcher.on('data', (r: IWatchResponse) => {
      if (this.watcher === watcher) this.onEvents(r);
    });
    // etcd3 would reconnect this watcher by itself and replay from its revision; we prefer a fresh
    // read (see top), so drop it and start over.
    const lost = (err: unknown) => {
      if (this.watcher !== watcher) return;
      this.watcher = null;
      void watcher.cancel().catch(() => undefined);
      if (this.closed) return;
      this.log.warn('etcd watch lost; serving the last cluster view until etcd is back', {
        err: (err as Error | undefined)?.message,
      });
      this.publish({ ...this.current, connected: false });
      void this.resync();
    };
    watcher.on('disconnected', lost);
    watcher.on('error', lost);
  }

  private onEvents(res: IWatchResponse): void {
    if (res.events.length === 0) return;
    const changes: KvChange[] = res.events.map((ev) =>
      ev.type === 'Put'
        ? { type: 'put', key: ev.kv.key.toString(), value: ev.kv.value.toString() }
        : { type: 'delete', key: ev.kv.key.toString() },
    );
    this.publish(applyChanges(this.current, this.prefix, changes, Number(res.header.revision)));
  }
}
