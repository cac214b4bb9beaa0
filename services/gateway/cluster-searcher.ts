/**
 * The gateway's fan-out: one Search per partition of a bank version, each to one live replica, in
 * parallel, under the request's deadline. A replica that fails is replaced by the next; one that
 * hangs is hedged (the next replica is asked too after `hedgeMs`); the first answer wins, and one that
 * let a hedge fire is asked last for the next `slowMs` (a paused or stalled process otherwise costs
 * every other request a hedge delay). With no replica left the whole request fails UNAVAILABLE:
 * never a silently partial verdict.
 */
import { BankVersionRecord, PartitionAssignment } from '../../lib/cluster/types';
import { ClusterView } from '../../lib/cluster/view';
import { ShardClient, ShardSearchReply } from '../../lib/cluster/shard-client';
import { VectorEncoding, WireQueries } from '../../lib/cluster/vector-encoding';
import { KnnResult } from '../../lib/knn/index';
import { NeighbourSearcher } from '../../lib/patchcore/inspector';
import { SpiError } from '../../lib/errors';
import { currentRequestSignal } from '../../lib/rpc/request-id';
import { mergeTopK } from './merge-topk';

export interface ShardDirectory {
  /** The latest view of the cluster (live shards, loaded partitions). */
  view(): ClusterView;
  /** A client for a live shard, or undefined if it is not (or no longer) registered. */
  client(shardId: string): ShardClient | undefined;
  /** How to pack queries for this shard: what it advertises, as the gateway is configured. */
  encodingOf(shardId: string): VectorEncoding;
}

export interface FanOutSettings {
  /** Search budget (ms) when the caller set no deadline. */
  deadlineMs: number;
  /** Ask a second replica when the first has not answered after this long. */
  hedgeMs: number;
  /** How long a replica that let a hedge fire is asked last (default 2000 ms). */
  slowMs?: number;
}

export const DEFAULT_FAN_OUT: FanOutSettings = { deadlineMs: 5000, hedgeMs: 150 };
const DEFAULT_SLOW_MS = 2000;

export class ClusterSearcher implements NeighbourSearcher {
  private turn = 0;
  /** Replicas that let a hedge fire, and until when (epoch ms) they are asked last. */
  private readonly slowUntil = new Map<string, number>();

  constructor(
    readonly record: BankVersionRecord,
    private readonly shards: ShardDirectory,
    private readonly settings: FanOutSettings = DEFAULT_FAN_OUT,
  ) {}

  async search(queries: Float32Array, dim: number, k: number, callerDeadline?: number): Promise<KnnResult> {
    const deadline = callerDeadline ?? Date.now() + this.settings.deadlineMs;
    const turn = this.turn++;
    // Packed once per encoding for every partition and replica of this request.
    const wire = new WireQueries(queries);
    // The request's cancellation (its caller gave up; lib/rpc/request-id.ts) cancels its searches.
    const cancelled = currentRequestSignal();
    const parts = await Promise.all(
      this.record.partitions.map((p) => this.searchPartition(p, wire, dim, k, deadline, turn, cancelled)),
    );
    return mergeTopK(parts, queries.length / dim, k);
  }

  /**
   * Bank rows by global row (the re-weighted image score's neighbourhood): one ReadRows per
   * partition that holds some, each from one live replica (the next on failure).
   */
  async bankRows(ids: ArrayLike<number>, dim: number, callerDeadline?: number): Promise<Float32Array> {
    const deadline = callerDeadline ?? Date.now() + this.settings.deadlineMs;
    const turn = this.turn++;
    const out = new Float32Array(ids.length * dim);
    const wanted = new Map<PartitionAssignment, number[]>();
    for (let i = 0; i < ids.length; i++) {
      const p = this.record.partitions.find((q) => ids[i] >= q.rowOffset && ids[i] < q.rowOffset + q.rows);
      if (!p)
        throw new SpiError(
          'INVALID_ARGUMENT',
          `row ${ids[i]} is not in bank ${this.record.bank} v${this.record.version}`,
        );
      const at = wanted.get(p);
      if (at) at.push(i);
      else wanted.set(p, [i]);
    }
    await Promise.all(
      [...wanted].map(async ([p, at]) => {
        const rows = await this.readRows(
          p,
          at.map((i) => ids[i]),
          deadline,
          turn,
        );
        at.forEach((i, j) => out.set(rows.subarray(j * dim, (j + 1) * dim), i * dim));
      }),
    );
    return out;
  }

  private async readRows(p: PartitionAssignment, rows: number[], deadline: number, turn: number) {
    const where = `partition ${p.partition} of bank ${this.record.bank} v${this.record.version}`;
    const errors: string[] = [];
    for (const id of this.replicasOf(p, turn)) {
      const client = this.shards.client(id);
      const timeoutMs = deadline - Date.now();
      if (!client || timeoutMs <= 0) continue;
      try {
        return await client.readRows(ref(this.record, p), rows, { timeoutMs });
      } catch (err) {
        // A row outside the partition is the caller's error, not the replica's: no other would do.
        if (err instanceof SpiError && err.kind === 'INVALID_ARGUMENT') throw err;
        errors.push(`${id}: ${err instanceof Error ? err.message : String(err)}`);
      }
    }
    // Shards of an earlier release do not know ReadRows; a retry will not change that.
    if (errors.length > 0 && errors.every((e) => /does not implement/i.test(e)))
      throw new SpiError(
        'FAILED_PRECONDITION',
        `${where}: its shards do not serve bank rows (ReadRows, needed by the re-weighted image score): upgrade them`,
      );
    throw new SpiError(
      'UNAVAILABLE',
      `${where}: no replica read its rows (${errors.join('; ') || 'none live'})`,
    );
  }

  /**
   * Live shards that hold this partition, rotated per request to spread the load; those that let a
   * hedge fire lately go last (and are asked first again once `slowMs` has passed).
   */
  replicasOf(p: PartitionAssignment, turn: number): string[] {
    const view = this.shards.view();
    const key = `${this.record.bank}/${this.record.version}/${p.partition}`;
    const loaded = view.loaded.get(key) ?? new Set<string>();
    const live = [...loaded].filter((id) => view.shards.has(id)).sort();
    if (live.length === 0) return live;
    const start = turn % live.length;
    const rotated = [...live.slice(start), ...live.slice(0, start)];
    const now = Date.now();
    const slow = (id: string) => (this.slowUntil.get(id) ?? 0) > now;
    return [...rotated.filter((id) => !slow(id)), ...rotated.filter(slow)];
  }

  private searchPartition(
    p: PartitionAssignment,
    queries: WireQueries,
    dim: number,
    k: number,
    deadline: number,
    turn: number,
    cancelled?: AbortSignal,
  ): Promise<KnnResult> {
    const replicas = this.replicasOf(p, turn);
    const where = `partition ${p.partition} of bank ${this.record.bank} v${this.record.version}`;
    if (replicas.length === 0) {
      return Promise.reject(new SpiError('UNAVAILABLE', `${where} has no live replica`));
    }
    return new Promise<KnnResult>((resolve, reject) => {
      let next = 0;
      let pending = 0;
      let done = false;
      const errors: string[] = [];
      let hedge: NodeJS.Timeout | undefined;
      // The replicas still searching once one has answered (a hedged, paused one) are cancelled:
      // their queries would otherwise wait in the connection's buffers until the replica resumes
      // or the deadline passes, and the replica would then search them for nothing.
      // The same when the request is cancelled: nothing more is launched, the open calls end
      // CANCELLED, and the partition fails with them.
      const losers = new AbortController();
      const giveUp = () => {
        if (hedge) clearTimeout(hedge);
        losers.abort();
      };
      cancelled?.addEventListener('abort', giveUp, { once: true });
      const finish = (fn: () => void) => {
        if (done) return;
        done = true;
        cancelled?.removeEventListener('abort', giveUp);
        giveUp();
        fn();
      };
      const launch = (): void => {
        if (done || losers.signal.aborted || next >= replicas.length) return;
        const id = replicas[next++];
        const client = this.shards.client(id);
        if (!client) {
          errors.push(`${id}: not registered`);
          return launch();
        }
        const timeoutMs = deadline - Date.now();
        if (timeoutMs <= 0) return;
        pending++;
        const encoding = this.shards.encodingOf(id);
        client
          .search(ref(this.record, p), queries, dim, k, { timeoutMs, encoding, signal: losers.signal })
          .then(
            (reply) => {
              this.slowUntil.delete(id);
              finish(() => resolve(toKnn(reply)));
            },
            (err: Error) => {
              pending--;
              errors.push(`${id}: ${err.message}`);
              if (next < replicas.length && !losers.signal.aborted) launch();
              else if (pending === 0) {
                const kind = errors.every((e) => /deadline/i.test(e)) ? 'DEADLINE_EXCEEDED' : 'UNAVAILABLE';
                finish(() =>
                  reject(new SpiError(kind, `${where}: every replica failed (${errors.join('; ')})`)),
                );
              }
            },
          );
        // A replica that neither answers nor fails (a paused process) must not hold the request.
        if (next < replicas.length)
          hedge = setTimeout(() => {
            this.slowUntil.set(id, Date.now() + (this.settings.slowMs ?? DEFAULT_SLOW_MS));
            launch();
          }, this.settings.hedgeMs);
      };
      if (cancelled?.aborted) giveUp();
      launch();
      if (pending === 0 && !done)
        finish(() =>
          reject(
            new SpiError('UNAVAILABLE', `${where}: ${errors.join('; ') || 'the request was cancelled'}`),
          ),
        );
    });
  }
}

function ref(record: BankVersionRecord, p: PartitionAssignment) {
  return { bank: record.bank, version: record.version, partition: p.partition };
}

function toKnn(reply: ShardSearchReply): KnnResult {
  return { distances: reply.distances, labels: reply.labels, k: reply.k };
}
