/**
 * Building and rotating banks across the cluster: fit with the engine, split the bank into
 * partitions, assign replicas to live shards, stream each partition to its shards, mark the version
 * ready, flip the active pointer in one etcd transaction, and, after in-flight requests on the old
 * version had time to finish, drop the old version from the shards. A fused bank's members are
 * partitions of the one version, one run per member (fused-version.ts).
 */
import { BankMeta } from '../../lib/bank/bank-meta';
import { StoredBank, sha256, vectorBytes } from '../../lib/bank/bank-store';
import { ClusterRegistry } from '../../lib/cluster/cluster-registry';
import { BankVersionRecord, PartitionAssignment, checkBankName } from '../../lib/cluster/types';
import { FitSettings, ImageSource, completeMeta } from '../../lib/patchcore/fit';
import { AddBase, FitJob, fitInWorker, jobImage } from '../../lib/patchcore/fit-worker';
import { checkAddition } from '../../lib/patchcore/incremental';
import { SpiError, invalid, notFound } from '../../lib/errors';
import { Logger } from '../../lib/util/log';
import { ShardDirectory } from './cluster-searcher';
import { FusedVersionMeta, fusedMetaOf, memberRecord } from './fused-version';

export interface BuildRequest {
  bank: string;
  mode: 'create' | 'rotate';
  model: string;
  settings: Omit<FitSettings, 'name' | 'version'>;
  images: ImageSource[];
  partitions: number;
  replicas: number;
  activate: boolean;
  /** Let the automatic fit choose the configuration (lib/autoconfig), among these models. */
  auto?: FitJob['auto'];
  /** A fused bank by hand: a second member with these stages (fused-version.ts). */
  fuse?: FitJob['fuse'];
  /** RotateBank: the next version is the active one plus `images` (patchcore/incremental.ts). */
  addToActive?: boolean;
  /** Recorded with the added images. */
  reason?: string;
  /** With addToActive: also add the false alarms queued for the bank (ReportFalseAlarm). */
  includeFeedback?: boolean;
  /** A discriminator head beside the bank, inline in the version's metadata (lib/head/). */
  head?: FitJob['head'];
}

export type BuildStage =
  | 'read'
  | 'auto: decode'
  | 'auto: candidates'
  | 'embed'
  | 'coreset'
  | 'threshold'
  | 'load'
  | 'activate'
  | 'drop'
  | 'done';
export type BuildProgress = (stage: BuildStage, done: number, total: number) => void;

export interface BuilderSettings {
  /** Time given to in-flight requests on an old version before it is dropped (ms). */
  drainMs: number;
  /** Deadline of one LoadPartition call (ms). */
  loadTimeoutMs: number;
}

export class BankBuilder {
  constructor(
    private readonly registry: ClusterRegistry,
    private readonly shards: ShardDirectory,
    private readonly settings: BuilderSettings,
    private readonly log: Logger,
  ) {}

  async build(req: BuildRequest, progress: BuildProgress): Promise<BankVersionRecord> {
    checkBankName(req.bank);
    const existing = await this.registry.listVersions(req.bank);
    if (req.mode === 'create' && existing.length > 0) {
      throw new SpiError(
        'ALREADY_EXISTS',
        `bank "${req.bank}" already exists; use RotateBank for a new version`,
      );
    }
    if (req.mode === 'rotate' && existing.length === 0)
      throw notFound(`bank "${req.bank}" does not exist; use CreateBank`);
    if (req.includeFeedback && !req.addToActive) throw invalid('include_feedback needs add_to_active');
    const feedback = req.includeFeedback ? await this.registry.listFeedback(req.bank) : [];
    if (feedback.length > 0)
      req = {
        ...req,
        images: [
          ...req.images,
          ...feedback.map((e) => ({
            // A unified bank's sheets go to their product's folder (ReportFalseAlarm's category).
            path: e.category ? `${e.category}/feedback-${e.id}` : `feedback/${e.id}`,
            read: async () => Buffer.from(e.image, 'base64'),
          })),
        ],
        reason:
          req.reason ??
          `${feedback.length} false alarm${feedback.length > 1 ? 's' : ''} reported good (ReportFalseAlarm)`,
      };
    if (req.images.length === 0)
      throw invalid(
        req.includeFeedback
          ? 'no images and no false alarms queued for this bank'
          : 'no images to build the bank from',
      );
    const liveShards = [...this.shards.view().shards.keys()].sort();
    if (liveShards.length === 0)
      throw new SpiError('UNAVAILABLE', 'no bank shard is registered; start shards first');
    if (req.addToActive && req.mode !== 'rotate') throw invalid('add_to_active is for RotateBank only');
    const add = req.addToActive ? await this.readActive(req.bank, req.images, progress) : undefined;
    // An added version keeps the active one's index; the other settings come from its metadata.
    if (add)
      req = {
        ...req,
        settings: { ...req.settings, knn: primaryOf(add).knn },
        auto: undefined,
        fuse: undefined,
      };
    const version = existing.reduce((m, r) => Math.max(m, r.version), 0) + 1;
    const base: BankVersionRecord = {
      bank: req.bank,
      version,
      state: 'building',
      createdAt: new Date().toISOString(),
      meta: {},
      partitions: [],
      index: req.settings.knn.factory,
      nprobe: req.settings.knn.nprobe ?? 0,
    };
    await this.registry.createVersion(base);
    try {
      const built = await this.buildVersion(req, base, liveShards, progress, add);
      // The queued sheets are in this version now: off the queue (a failed build leaves them).
      if (feedback.length > 0)
        await this.registry
          .deleteFeedback(
            req.bank,
            feedback.map((e) => e.id),
          )
          .catch((err) => this.log.warn('could not clear the feedback queue', { bank: req.bank, err }));
      return built;
    } catch (err) {
      // A failed build leaves no half-loaded version behind.
      await this.retire(base).catch((e) => this.log.warn('cleanup after failed build failed', { err: e }));
      throw err;
    }
  }

  /**
   * The active version's metadata and vectors, read back from its shards (one replica of each
   * partition, the next one when a replica fails) and checked against the recorded sha256; a fused
   * version's members each from their own partitions.
   */
  private async readActive(bank: string, images: ImageSource[], progress: BuildProgress): Promise<AddBase> {
    const active = await this.registry.getActive(bank);
    const record = active ? await this.registry.getVersion(bank, active) : undefined;
    if (!record) throw new SpiError('FAILED_PRECONDITION', `bank "${bank}" has no active version to add to`);
    const fused = fusedMetaOf(record);
    const members = fused ? fused.memberBanks.map((_, i) => memberRecord(record, fused, i)) : [record];
    const metas = members.map((m) => m.meta as unknown as BankMeta);
    // Before the partitions are read: the new images fit the bank (a unified one's name their product).
    checkAddition(fused ? [fused, ...metas] : metas, images);
    const total = record.partitions.length;
    progress('read', 0, total);
    let done = 0;
    const stored: StoredBank[] = [];
    for (const [i, member] of members.entries())
      stored.push({
        meta: metas[i],
        vectors: await this.readVectors(member, metas[i], () => progress('read', ++done, total)),
      });
    if (!fused) return { kind: 'single', ...stored[0] };
    const { memberBanks: _m, ...meta } = fused;
    return { kind: 'fused', meta, members: stored };
  }

  /** One bank's rows (a version, or a fused version's member) from its partitions' replicas. */
  private async readVectors(
    record: BankVersionRecord,
    meta: BankMeta,
    onPartition: () => void,
  ): Promise<Float32Array> {
    const { bank, version } = record;
    const dim = meta.vectors.dim;
    const vectors = new Float32Array(meta.vectors.rows * dim);
    const view = this.shards.view();
    for (const p of record.partitions) {
      const key = `${bank}/${version}/${p.partition}`;
      const holders = [...new Set([...p.shards, ...(view.loaded.get(key) ?? [])])];
      let got: Float32Array | undefined;
      const errors: string[] = [];
      for (const shard of holders) {
        const client = this.shards.client(shard);
        if (!client) continue;
        try {
          got = await client.readPartition(
            { bank, version, partition: p.partition },
            { timeoutMs: this.settings.loadTimeoutMs },
          );
          break;
        } catch (err) {
          errors.push(`${shard}: ${(err as Error).message}`);
          if (err instanceof SpiError && err.kind === 'FAILED_PRECONDITION') throw err;
        }
      }
      if (!got)
        throw new SpiError(
          'UNAVAILABLE',
          `no replica of ${key} could be read (${errors.join('; ') || 'none live'})`,
        );
      if (got.length !== p.rows * dim)
        throw new SpiError('DATA_LOSS', `${key}: read ${got.length / dim} rows, the record says ${p.rows}`);
      vectors.set(got, p.rowOffset * dim);
      onPartition();
    }
    if (sha256(vectorBytes(vectors)) !== meta.vectors.sha256)
      throw new SpiError(
        'DATA_LOSS',
        `bank "${bank}" v${version}: the shards' vectors do not match its sha256`,
      );
    return vectors;
  }

  private async buildVersion(
    req: BuildRequest,
    base: BankVersionRecord,
    liveShards: string[],
    progress: BuildProgress,
    /** The active version this one adds to (RotateBank with add_to_active). */
    add?: AddBase,
  ): Promise<BankVersionRecord> {
    // Fitting runs on a worker thread: this process keeps answering inspections meanwhile.
    // Uploads and server folders are files: the worker reads them itself (none is held in memory).
    const images = await Promise.all(req.images.map(jobImage));
    const fitted = await fitInWorker(
      {
        model: add ? primaryOf(add).model.id : req.model,
        settings: { ...req.settings, name: req.bank, version: base.version },
        images,
        auto: req.auto,
        fuse: req.fuse,
        ...(add ? { add: { ...add, reason: req.reason } } : {}),
        ...(req.head && !add ? { head: req.head } : {}),
      },
      (stage, done, total) => progress(stage, done, total),
    );
    // One slab of partitions per bank: the bank itself, or each member of a fused one in turn.
    const count = req.partitions || liveShards.length;
    const slabs: { vectors: Float32Array; dim: number; partitions: PartitionAssignment[]; meta: BankMeta }[] =
      [];
    for (const f of fitted.kind === 'single' ? [fitted] : fitted.members) {
      const rows = f.vectors.length / f.dim;
      const first = slabs.reduce((n, s) => n + s.partitions.length, 0);
      slabs.push({
        vectors: f.vectors,
        dim: f.dim,
        partitions: assignPartitions(rows, count, req.replicas, liveShards, first),
        meta: completeMeta(f.meta, f.dim, rows, sha256(vectorBytes(f.vectors))),
      });
    }
    const meta =
      fitted.kind === 'single'
        ? slabs[0].meta
        : ({
            ...fitted.meta,
            memberBanks: slabs.map((s) => ({
              meta: s.meta,
              partitions: { first: s.partitions[0].partition, count: s.partitions.length },
            })),
          } satisfies FusedVersionMeta);
    const record: BankVersionRecord = {
      ...base,
      state: 'loading',
      meta: meta as unknown as Record<string, unknown>,
      partitions: slabs.flatMap((s) => s.partitions),
    };
    await this.registry.putVersion(record);

    const uploads = slabs.flatMap((slab) =>
      slab.partitions.flatMap((p) => p.shards.map((shard) => ({ slab, p, shard }))),
    );
    let loaded = 0;
    progress('load', 0, uploads.length);
    await Promise.all(
      uploads.map(async ({ slab: { vectors, dim }, p, shard }) => {
        const client = this.shards.client(shard);
        if (!client) throw new SpiError('UNAVAILABLE', `shard ${shard} left the cluster during the build`);
        const slice = vectors.subarray(p.rowOffset * dim, (p.rowOffset + p.rows) * dim);
        await client.loadPartition(
          {
            ref: { bank: req.bank, version: base.version, partition: p.partition },
            dim,
            rowOffset: p.rowOffset,
            index: record.index,
            nprobe: record.nprobe,
          },
          slice,
          { timeoutMs: this.settings.loadTimeoutMs },
        );
        progress('load', ++loaded, uploads.length);
      }),
    );
    await this.waitUntilVisible(record);
    const ready: BankVersionRecord = { ...record, state: 'ready' };
    await this.registry.putVersion(ready);
    if (!req.activate) return ready;

    const previous = await this.registry.getActive(req.bank);
    progress('activate', 0, 1);
    await this.registry.activate(req.bank, base.version);
    progress('activate', 1, 1);
    if (previous && previous !== base.version) {
      const old = await this.registry.getVersion(req.bank, previous);
      if (old) {
        progress('drop', 0, 1);
        await sleep(this.settings.drainMs);
        await this.retire(old);
        progress('drop', 1, 1);
      }
    }
    return ready;
  }

  /** Waits until the gateway's own view shows every replica loaded (the watch may lag the RPC). */
  private async waitUntilVisible(record: BankVersionRecord, timeoutMs = 10_000): Promise<void> {
    const until = Date.now() + timeoutMs;
    for (;;) {
      const view = this.shards.view();
      const missing = record.partitions.flatMap((p) =>
        p.shards.filter((s) => !view.loaded.get(`${record.bank}/${record.version}/${p.partition}`)?.has(s)),
      );
      if (missing.length === 0) return;
      if (Date.now() > until) {
        throw new SpiError(
          'UNAVAILABLE',
          `shards ${missing.join(', ')} did not report bank ${record.bank} v${record.version} loaded`,
        );
      }
      await sleep(50);
    }
  }

  /** Drops a version's partitions from every shard holding them and deletes its record. */
  async retire(record: BankVersionRecord): Promise<void> {
    const view = this.shards.view();
    const drops: Promise<unknown>[] = [];
    for (const p of record.partitions) {
      const holders = new Set([
        ...p.shards,
        ...(view.loaded.get(`${record.bank}/${record.version}/${p.partition}`) ?? []),
      ]);
      for (const shard of holders) {
        const client = this.shards.client(shard);
        if (client) {
          drops.push(
            client
              .dropPartition(
                { bank: record.bank, version: record.version, partition: p.partition },
                { timeoutMs: 10_000 },
              )
              .catch((err) =>
                this.log.warn('drop failed; the shard keeps a stale partition', { shard, err }),
              ),
          );
        }
      }
    }
    await Promise.all(drops);
    await this.registry.deleteVersion(record.bank, record.version);
  }

  async activate(bank: string, version: number): Promise<void> {
    await this.registry.activate(bank, version);
  }

  /** Deletes one inactive version, or the whole bank when version is 0. */
  async delete(bank: string, version: number): Promise<number[]> {
    checkBankName(bank);
    const versions = await this.registry.listVersions(bank);
    if (versions.length === 0) throw notFound(`bank "${bank}" does not exist`);
    if (version) {
      const record = versions.find((r) => r.version === version);
      if (!record) throw notFound(`bank "${bank}" has no version ${version}`);
      const active = await this.registry.getActive(bank);
      if (active === version)
        throw new SpiError(
          'FAILED_PRECONDITION',
          `bank "${bank}" v${version} is active; activate another version first`,
        );
      await this.retire(record);
      return [version];
    }
    const removed = await this.registry.deleteBank(bank); // gateways stop routing first
    for (const record of versions) await this.retire(record).catch(() => undefined);
    return removed;
  }
}

/**
 * Contiguous row ranges, numbered from `first` (a fused version's later members); replica r of
 * partition p goes to shard (p + r) mod n.
 */
export function assignPartitions(
  rows: number,
  count: number,
  replicas: number,
  shards: string[],
  first = 0,
): PartitionAssignment[] {
  const parts = Math.max(1, Math.min(count, rows));
  const copies = Math.max(1, Math.min(replicas, shards.length));
  const out: PartitionAssignment[] = [];
  for (let p = 0; p < parts; p++) {
    const start = Math.floor((p * rows) / parts);
    const end = Math.floor(((p + 1) * rows) / parts);
    out.push({
      partition: first + p,
      rowOffset: start,
      rows: end - start,
      shards: Array.from({ length: copies }, (_, r) => shards[(first + p + r) % shards.length]),
    });
  }
  return out;
}

/** The bank whose settings an added version keeps: the bank itself, or a fused one's first member. */
function primaryOf(add: AddBase): BankMeta {
  return add.kind === 'single' ? add.meta : add.members[0].meta;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
