/**
 * A shard's presence in etcd: `shards/<id>` and one `loaded/...` key per partition it serves, all
 * under one lease. One background loop owns every write, so ordering is simple and a failure anywhere
 * (etcd down, lease expired while we were paused, etcd restored from nothing) is handled the same
 * way: get a lease, write everything we want to be true, retry with backoff. It never throws into
 * the process; callers that care can await `flush()`.
 */
import { Etcd3, Lease } from 'etcd3';
import { SpiError } from '../errors';
import { Logger } from '../util/log';
import { Backoff, sleeper } from './backoff';
import { KeyLayout } from './keys';
import { LoadedInfo, PartitionRef, ShardInfo, checkRef } from './types';

interface Waiter {
  resolve: () => void;
  reject: (err: Error) => void;
}

export class ShardRegistration {
  private lease: Lease | null = null;
  /** Every key this shard should hold under its lease, with its value. */
  private readonly desired = new Map<string, string>();
  /** Writes not yet acknowledged by etcd (null = delete). */
  private readonly pending = new Map<string, string | null>();
  private waiters: Waiter[] = [];
  private running = false;
  private closed = false;
  private readonly nap = sleeper();
  private readonly backoff = new Backoff(200, 3000);
  private everRegistered = false;

  constructor(
    private readonly client: Etcd3,
    private readonly keys: KeyLayout,
    readonly info: ShardInfo,
    private readonly ttlS: number,
    private readonly log: Logger,
  ) {
    this.desired.set(keys.shard(info.id), JSON.stringify(info));
  }

  /** True once the shard key and every loaded key are in etcd under a live lease. */
  get registered(): boolean {
    return this.lease !== null && this.pending.size === 0;
  }

  /** Starts the loop; resolves after the first attempt (successful or not: the loop keeps trying). */
  async start(): Promise<void> {
    this.kick();
    await this.flush().catch((err: Error) =>
      this.log.warn('shard not registered in etcd yet; retrying in the background', { err: err.message }),
    );
  }

  markLoaded(ref: PartitionRef, info: LoadedInfo): Promise<void> {
    const key = this.keys.loaded(checkRef(ref), this.info.id);
    const value = JSON.stringify({ rows: info.rows, dim: info.dim, index: info.index });
    this.desired.set(key, value);
    this.pending.set(key, value);
    this.kick();
    return this.flush();
  }

  markDropped(ref: PartitionRef): Promise<void> {
    const key = this.keys.loaded(checkRef(ref), this.info.id);
    this.desired.delete(key);
    this.pending.set(key, null);
    this.kick();
    return this.flush();
  }

  /** Resolves when every wanted write is in etcd; rejects when an attempt fails (retries go on). */
  flush(): Promise<void> {
    if (this.closed) return Promise.reject(new SpiError('UNAVAILABLE', 'shard registration is closed'));
    if (this.registered && !this.running) return Promise.resolve();
    return new Promise((resolve, reject) => this.waiters.push({ resolve, reject }));
  }

  /** Stops the loop and revokes the lease, so the shard's keys disappear at once. */
  async close(timeoutMs = 2000): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.nap.cancel();
    this.settle(new SpiError('UNAVAILABLE', 'shard registration closed'));
    const lease = this.lease;
    this.lease = null;
    if (!lease) return;
    try {
      await lease.revoke({ deadline: Date.now() + timeoutMs });
    } catch (err) {
      // etcd unreachable: the keys expire with the lease TTL instead.
      this.log.warn('could not revoke the shard lease; its keys expire with the TTL', {
        err: (err as Error).message,
      });
    }
  }

  private kick(): void {
    if (this.running || this.closed) return;
    this.running = true;
    void this.run().finally(() => {
      this.running = false;
      // A write queued after the loop's last check, or a lease lost meanwhile: go again. Otherwise
      // answer flush() calls that arrived after the last round settled.
      if (!this.closed && (this.lease === null || this.pending.size > 0)) this.kick();
      else this.settle(null);
    });
  }

  private async run(): Promise<void> {
    while (!this.closed && (this.lease === null || this.pending.size > 0)) {
      try {
        if (this.lease === null) await this.newLease();
        const lease = this.lease as Lease | null;
        if (!lease) continue;
        for (const [key, value] of [...this.pending]) {
          if (this.closed || this.lease !== lease) break;
          if (value === null) await this.client.delete().key(key);
          else await lease.put(key).value(value);
          // Only clear it if nobody changed the key while the write was in flight.
          if (this.pending.get(key) === value) this.pending.delete(key);
        }
        if (this.lease === lease && this.pending.size === 0) {
          if (!this.everRegistered) this.log.info('shard registered in etcd', { shard: this.info.id });
          this.everRegistered = true;
          this.backoff.reset();
          this.settle(null);
        }
      } catch (err) {
        if (this.closed) break;
        this.settle(err as Error);
        const delay = this.backoff.delay();
        this.log.warn('etcd registration write failed; retrying', {
          err: (err as Error).message,
          retryInMs: delay,
        });
        await this.nap.sleep(delay);
      }
    }
  }

  private async newLease(): Promise<void> {
    const lease = this.client.lease(this.ttlS, { autoKeepAlive: true });
    // etcd3 also emits 'lost' when the grant itself fails; that case is handled by the throw below.
    lease.on('lost', (err) => this.onLost(lease, err));
    try {
      await lease.grant();
    } catch (err) {
      lease.release();
      throw err;
    }
    if (this.closed) {
      await lease.revoke().catch(() => undefined);
      return;
    }
    this.lease = lease;
    // A new lease owns nothing yet: every wanted key must be written again.
    for (const [key, value] of this.desired) this.pending.set(key, value);
  }

  private onLost(lease: Lease, err: Error): void {
    if (this.lease !== lease || this.closed) return;
    this.lease = null;
    this.log.warn('etcd lease lost; registering again', { shard: this.info.id, err: err.message });
    // If etcd still knows the old lease (we were merely cut off), drop it so stale keys go now.
    lease.revoke().catch(() => undefined);
    this.kick();
  }

  private settle(err: Error | null): void {
    if (err === null && !this.registered) return;
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) {
      if (err) w.reject(err);
      else w.resolve();
    }
  }
}
