/**
 * The registry of a one-process cluster (`spi serve --embedded`): the same keys and records as in
 * etcd (keys.ts), held in a Map and turned into ClusterViews by the same code (view.ts). Bank
 * records are saved to a JSON file, so a restarted embedded gateway finds its banks again; shards
 * re-announce what they reload from their own disks.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { SpiError, notFound } from '../errors';
import { ClusterRegistry, LiveView } from './cluster-registry';
import { keyLayout, parseKey } from './keys';
import {
  Announcer,
  BankVersionRecord,
  LoadedInfo,
  PartitionRef,
  ShardInfo,
  checkBankName,
  checkVersion,
} from './types';
import { ClusterView, KvChange, applyChanges, emptyView } from './view';
import { FeedbackEntry, MAX_FEEDBACK_PER_BANK, queueFull } from './feedback';
import { FeedbackFiles, StoredFeedback } from './feedback-files';

export class MemoryRegistry implements ClusterRegistry {
  private readonly keys = keyLayout();
  private readonly kv = new Map<string, string>();
  private view: ClusterView = { ...emptyView(), connected: true, revision: 1 };
  private readonly listeners = new Set<(view: ClusterView) => void>();
  /** Operator feedback by bank, oldest first. */
  private readonly feedback: Map<string, StoredFeedback[]>;
  private readonly feedbackFiles?: FeedbackFiles;

  /** `file`: where bank records persist, and the feedback queue beside it (none = memory only). */
  constructor(private readonly file?: string) {
    if (file && fs.existsSync(file)) {
      const saved = JSON.parse(fs.readFileSync(file, 'utf8')) as Record<string, string>;
      this.apply(Object.entries(saved).map(([key, value]) => ({ type: 'put', key, value })));
    }
    this.feedbackFiles = file ? new FeedbackFiles(path.join(path.dirname(file), 'feedback')) : undefined;
    this.feedback = this.feedbackFiles?.load() ?? new Map();
  }

  addShard(info: ShardInfo): Announcer {
    this.apply([{ type: 'put', key: this.keys.shard(info.id), value: JSON.stringify(info) }]);
    return {
      markLoaded: async (ref: PartitionRef, loaded: LoadedInfo) =>
        this.apply([{ type: 'put', key: this.keys.loaded(ref, info.id), value: JSON.stringify(loaded) }]),
      markDropped: async (ref: PartitionRef) =>
        this.apply([{ type: 'delete', key: this.keys.loaded(ref, info.id) }]),
    };
  }

  async createVersion(record: BankVersionRecord): Promise<void> {
    if (this.kv.has(this.keys.version(record.bank, record.version))) {
      throw new SpiError('ALREADY_EXISTS', `bank ${record.bank} already has a version ${record.version}`);
    }
    await this.putVersion(record);
  }

  async putVersion(record: BankVersionRecord): Promise<void> {
    checkBankName(record.bank);
    checkVersion(record.version);
    this.apply([
      { type: 'put', key: this.keys.version(record.bank, record.version), value: JSON.stringify(record) },
    ]);
  }

  async getVersion(bank: string, version: number): Promise<BankVersionRecord | null> {
    const raw = this.kv.get(this.keys.version(bank, version));
    return raw ? (JSON.parse(raw) as BankVersionRecord) : null;
  }

  async listBanks(): Promise<string[]> {
    const names = new Set<string>();
    for (const key of this.kv.keys()) {
      const p = parseKey(this.keys.prefix, key);
      if (p?.kind === 'version' || p?.kind === 'active') names.add(p.bank);
    }
    return [...names].sort();
  }

  async listVersions(bank: string): Promise<BankVersionRecord[]> {
    return [...this.view.versions.values()]
      .filter((r) => r.bank === bank)
      .sort((a, b) => a.version - b.version);
  }

  async getActive(bank: string): Promise<number | null> {
    return this.view.active.get(bank) ?? null;
  }

  async activate(bank: string, version: number): Promise<void> {
    const record = await this.getVersion(bank, version);
    if (!record) throw notFound(`bank ${bank} has no version ${version}`);
    if (record.state !== 'ready') {
      throw new SpiError(
        'FAILED_PRECONDITION',
        `bank ${bank} version ${version} is '${record.state}', only a 'ready' version can be activated`,
      );
    }
    this.apply([{ type: 'put', key: this.keys.active(bank), value: String(version) }]);
  }

  async deleteVersion(bank: string, version: number): Promise<boolean> {
    if (this.view.active.get(bank) === version) {
      throw new SpiError(
        'FAILED_PRECONDITION',
        `bank ${bank} version ${version} is active; activate another first`,
      );
    }
    const key = this.keys.version(bank, version);
    const existed = this.kv.has(key);
    this.apply([{ type: 'delete', key }]);
    return existed;
  }

  async deleteBank(bank: string): Promise<number[]> {
    const versions = (await this.listVersions(bank)).map((r) => r.version);
    this.feedback.delete(bank);
    this.feedbackFiles?.removeBank(bank);
    const prefix = this.keys.bank(bank);
    this.apply(
      [...this.kv.keys()]
        .filter((k) => k.startsWith(prefix))
        .map((key) => ({ type: 'delete' as const, key })),
    );
    return versions;
  }

  watchView(onChange?: (view: ClusterView) => void): LiveView {
    if (onChange) this.listeners.add(onChange);
    const current = () => this.view;
    return {
      get view() {
        return current();
      },
      ready: Promise.resolve(),
      close: async () => {
        if (onChange) this.listeners.delete(onChange);
      },
    };
  }

  async queueFeedback(entry: FeedbackEntry): Promise<number> {
    const queue = this.feedback.get(checkBankName(entry.bank)) ?? [];
    if (queue.length >= MAX_FEEDBACK_PER_BANK) throw queueFull(entry.bank);
    const stored = { entry, seq: (queue.at(-1)?.seq ?? 0) + 1 };
    // On disk first: a full disk refuses the report rather than losing it on the next restart.
    this.feedbackFiles?.add(entry, stored.seq);
    queue.push(stored);
    this.feedback.set(entry.bank, queue);
    return queue.length;
  }

  async listFeedback(bank: string): Promise<FeedbackEntry[]> {
    return (this.feedback.get(bank) ?? []).map((s) => s.entry);
  }

  async deleteFeedback(bank: string, ids: string[]): Promise<void> {
    const gone = new Set(ids);
    const [taken, kept] = partition(this.feedback.get(bank) ?? [], (s) => gone.has(s.entry.id));
    for (const s of taken) this.feedbackFiles?.remove(bank, s.seq);
    this.feedback.set(bank, kept);
  }

  async close(): Promise<void> {
    this.listeners.clear();
  }

  private apply(changes: KvChange[]): void {
    for (const c of changes) {
      if (c.type === 'put') this.kv.set(c.key, c.value);
      else this.kv.delete(c.key);
    }
    this.view = {
      ...applyChanges(this.view, this.keys.prefix, changes, this.view.revision + 1),
      connected: true,
    };
    if (
      changes.some(
        (c) =>
          parseKey(this.keys.prefix, c.key)?.kind === 'version' ||
          parseKey(this.keys.prefix, c.key)?.kind === 'active',
      )
    ) {
      this.save();
    }
    for (const l of this.listeners) l(this.view);
  }

  /** Bank records and active pointers only: shards and loaded partitions re-announce at start. */
  private save(): void {
    if (!this.file) return;
    const keep: Record<string, string> = {};
    for (const [key, value] of this.kv) {
      const kind = parseKey(this.keys.prefix, key)?.kind;
      if (kind === 'version' || kind === 'active') keep[key] = value;
    }
    fs.mkdirSync(path.dirname(this.file), { recursive: true });
    const tmp = `${this.file}.tmp`;
    fs.writeFileSync(tmp, JSON.stringify(keep, null, 2));
    fs.renameSync(tmp, this.file);
  }
}

function partition<T>(xs: T[], pick: (x: T) => boolean): [T[], T[]] {
  return [xs.filter(pick), xs.filter((x) => !pick(x))];
}
