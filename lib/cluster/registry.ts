/**
 * All etcd access of the cluster: shards register themselves and the partitions they serve; the
 * admin writes bank version records and flips a bank's active version; gateways watch a ClusterView.
 * The key layout is in keys.ts.
 */
import { Etcd3 } from 'etcd3';
import { SpiError, notFound } from '../errors';
import { Logger, createLogger } from '../util/log';
import { EtcdConnection, createEtcdClient } from './etcd-client';
import { KeyLayout, keyLayout, parseKey } from './keys';
import { ShardRegistration } from './shard-registration';
import {
  BankVersionRecord,
  LoadedInfo,
  PartitionRef,
  ShardInfo,
  VERSION_STATES,
  checkBankName,
  checkPartition,
  checkShardId,
  checkVersion,
} from './types';
import { ClusterView, isVersionRecord, viewFromKvs } from './view';
import { FeedbackEntry, MAX_FEEDBACK_PER_BANK, queueFull } from './feedback';
import { ViewListener, ViewWatcher } from './view-watcher';

export interface RegistryOptions extends EtcdConnection {
  /** etcd client URLs or host:port. */
  endpoints: string[];
  /** Key prefix (default `/spi/`). */
  prefix?: string;
  dialTimeoutMs?: number;
  /** Deadline of each etcd call (default 5 s). */
  callTimeoutMs?: number;
  /** TTL of a shard's lease in seconds (default 5): how long a dead shard stays listed. */
  leaseTtlS?: number;
  log?: Logger;
}

export interface LoadedEntry {
  ref: PartitionRef;
  shardId: string;
  info: LoadedInfo;
}

/** How often `activate` re-reads when the version record changes under it. */
const ACTIVATE_ATTEMPTS = 3;

export class Registry {
  readonly keys: KeyLayout;
  private readonly client: Etcd3;
  private readonly log: Logger;
  private readonly leaseTtlS: number;
  private registration: ShardRegistration | null = null;
  private readonly watchers = new Set<ViewWatcher>();

  constructor(options: RegistryOptions) {
    this.keys = keyLayout(options.prefix);
    this.log = options.log ?? createLogger('registry');
    this.leaseTtlS = options.leaseTtlS ?? 5;
    this.client = createEtcdClient(options);
  }

  // -------------------------------------------------------------------------------------------
  // Shards
  // -------------------------------------------------------------------------------------------

  /**
   * Registers this process as a shard and keeps it registered (new lease and re-announce after a lost
   * lease or an etcd restart). Resolves after the first attempt; if etcd is down it keeps trying.
   */
  async registerShard(info: ShardInfo): Promise<ShardRegistration> {
    checkShardId(info.id);
    if (this.registration)
      throw new SpiError('FAILED_PRECONDITION', 'this registry already registered a shard');
    const reg = new ShardRegistration(
      this.client,
      this.keys,
      info,
      this.leaseTtlS,
      this.log.child({ shard: info.id }),
    );
    this.registration = reg;
    await reg.start();
    return reg;
  }

  /** Announces a partition this shard has loaded and can search (requires registerShard). */
  markLoaded(ref: PartitionRef, info: LoadedInfo): Promise<void> {
    return this.requireRegistration().markLoaded(ref, info);
  }

  markDropped(ref: PartitionRef): Promise<void> {
    return this.requireRegistration().markDropped(ref);
  }

  private requireRegistration(): ShardRegistration {
    if (!this.registration) throw new SpiError('FAILED_PRECONDITION', 'registerShard() was not called');
    return this.registration;
  }

  async listShards(): Promise<ShardInfo[]> {
    const all = await this.client.getAll().prefix(this.keys.shards()).strings();
    const out: ShardInfo[] = [];
    for (const [key, value] of Object.entries(all)) {
      const parsed = parseKey(this.keys.prefix, key);
      if (parsed?.kind !== 'shard') continue;
      const info = tryJson<ShardInfo>(value);
      if (info) out.push({ ...info, id: parsed.shardId });
    }
    return out.sort((a, b) => a.id.localeCompare(b.id));
  }

  /** Loaded partitions, optionally of one bank (and version). */
  async listLoaded(bank?: string, version?: number): Promise<LoadedEntry[]> {
    const prefix =
      bank === undefined
        ? this.keys.loadedAll()
        : version === undefined
          ? this.keys.loadedBank(checkBankName(bank))
          : this.keys.loadedVersion(checkBankName(bank), checkVersion(version));
    const all = await this.client.getAll().prefix(prefix).strings();
    const out: LoadedEntry[] = [];
    for (const [key, value] of Object.entries(all)) {
      const parsed = parseKey(this.keys.prefix, key);
      const info = tryJson<LoadedInfo>(value);
      if (parsed?.kind === 'loaded' && info) out.push({ ref: parsed.ref, shardId: parsed.shardId, info });
    }
    return out;
  }

  // -------------------------------------------------------------------------------------------
  // Bank versions
  // -------------------------------------------------------------------------------------------

  /** Writes (creates or replaces) a version record. */
  async putVersion(record: BankVersionRecord): Promise<void> {
    checkRecord(record);
    const value = JSON.stringify(record);
    await this.client
      .put(this.keys.version(record.bank, record.version))
      .value(value)
      .catch((err: Error) => Promise.reject(tooLargeOr(err, record, value)));
  }

  /** Writes a version record only if that version does not exist yet (two builders cannot both win). */
  async createVersion(record: BankVersionRecord): Promise<void> {
    checkRecord(record);
    const key = this.keys.version(record.bank, record.version);
    const value = JSON.stringify(record);
    const res = await this.client
      .if(key, 'Create', '==', 0)
      .then(this.client.put(key).value(value))
      .commit()
      .catch((err: Error) => Promise.reject(tooLargeOr(err, record, value)));
    if (!res.succeeded) {
      throw new SpiError('ALREADY_EXISTS', `bank ${record.bank} already has a version ${record.version}`);
    }
  }

  async getVersion(bank: string, version: number): Promise<BankVersionRecord | null> {
    const raw = await this.client.get(this.keys.version(checkBankName(bank), checkVersion(version))).string();
    return raw === null ? null : decodeRecord(raw, this.keys.version(bank, version));
  }

  /** Names of banks that have at least one version record or an active pointer. */
  async listBanks(): Promise<string[]> {
    const keys = await this.client.getAll().prefix(this.keys.banks()).keys();
    const names = new Set<string>();
    for (const key of keys) {
      const parsed = parseKey(this.keys.prefix, key);
      if (parsed?.kind === 'version' || parsed?.kind === 'active') names.add(parsed.bank);
    }
    return [...names].sort();
  }

  /** A bank's version records, oldest first. */
  async listVersions(bank: string): Promise<BankVersionRecord[]> {
    const all = await this.client
      .getAll()
      .prefix(this.keys.versions(checkBankName(bank)))
      .strings();
    const out: BankVersionRecord[] = [];
    for (const [key, value] of Object.entries(all)) {
      if (parseKey(this.keys.prefix, key)?.kind !== 'version') continue;
      out.push(decodeRecord(value, key));
    }
    return out.sort((a, b) => a.version - b.version);
  }

  async getActive(bank: string): Promise<number | null> {
    const raw = await this.client.get(this.keys.active(checkBankName(bank))).string();
    return raw === null ? null : Number(raw);
  }

  /**
   * Points the bank at `version` in one transaction that also checks the record is unchanged since we
   * saw it 'ready' (so a concurrent retire cannot slip in between the check and the switch).
   */
  async activate(bank: string, version: number): Promise<void> {
    const key = this.keys.version(checkBankName(bank), checkVersion(version));
    for (let attempt = 0; attempt < ACTIVATE_ATTEMPTS; attempt++) {
      const res = await this.client.get(key).exec();
      const kv = res.kvs[0];
      if (!kv) throw notFound(`bank ${bank} has no version ${version}`);
      const record = decodeRecord(kv.value.toString(), key);
      if (record.state !== 'ready') {
        throw new SpiError(
          'FAILED_PRECONDITION',
          `bank ${bank} version ${version} is '${record.state}', only a 'ready' version can be activated`,
        );
      }
      const txn = await this.client
        .if(key, 'Mod', '==', kv.mod_revision)
        .then(this.client.put(this.keys.active(bank)).value(String(version)))
        .commit();
      if (txn.succeeded) return;
    }
    throw new SpiError(
      'FAILED_PRECONDITION',
      `bank ${bank} version ${version} kept changing while activating it`,
    );
  }

  /** Deletes one version record; refuses the active version. Returns false if it did not exist. */
  async deleteVersion(bank: string, version: number): Promise<boolean> {
    const key = this.keys.version(checkBankName(bank), checkVersion(version));
    const activeKey = this.keys.active(bank);
    const res = await this.client.get(activeKey).exec();
    const active = res.kvs[0];
    if (active && Number(active.value.toString()) === version) {
      throw new SpiError(
        'FAILED_PRECONDITION',
        `bank ${bank} version ${version} is active; activate another first`,
      );
    }
    // Mod revision 0 = "still absent": the comparison holds for a missing key too.
    const txn = await this.client
      .if(activeKey, 'Mod', '==', active ? active.mod_revision : 0)
      .then(this.client.delete().key(key))
      .commit();
    if (!txn.succeeded) {
      throw new SpiError('FAILED_PRECONDITION', `bank ${bank}'s active version changed meanwhile; try again`);
    }
    const deleted = txn.responses[0]?.response_delete_range?.deleted;
    return Number(deleted ?? 0) > 0;
  }

  /** Deletes every record of a bank (versions and active pointer); returns the versions removed. */
  async deleteBank(bank: string): Promise<number[]> {
    // From the keys, not the records: a corrupt record must not block its own removal.
    const keys = await this.client
      .getAll()
      .prefix(this.keys.versions(checkBankName(bank)))
      .keys();
    const versions: number[] = [];
    for (const key of keys) {
      const parsed = parseKey(this.keys.prefix, key);
      if (parsed?.kind === 'version') versions.push(parsed.version);
    }
    await this.client.delete().prefix(this.keys.bank(bank));
    await this.client.delete().prefix(this.keys.feedbackBank(bank));
    return versions.sort((a, b) => a - b);
  }

  // -------------------------------------------------------------------------------------------
  // Operator feedback (feedback.ts)
  // -------------------------------------------------------------------------------------------

  async queueFeedback(entry: FeedbackEntry): Promise<number> {
    const prefix = this.keys.feedbackBank(checkBankName(entry.bank));
    const queued = (await this.client.getAll().prefix(prefix).keys()).length;
    if (queued >= MAX_FEEDBACK_PER_BANK) throw queueFull(entry.bank);
    await this.client.put(this.keys.feedback(entry.bank, entry.id)).value(JSON.stringify(entry));
    return queued + 1;
  }

  async listFeedback(bank: string): Promise<FeedbackEntry[]> {
    const all = await this.client
      .getAll()
      .prefix(this.keys.feedbackBank(checkBankName(bank)))
      .strings();
    return Object.keys(all)
      .sort()
      .map((key) => tryJson<FeedbackEntry>(all[key]))
      .filter((e): e is FeedbackEntry => !!e);
  }

  async deleteFeedback(bank: string, ids: string[]): Promise<void> {
    checkBankName(bank);
    await Promise.all(ids.map((id) => this.client.delete().key(this.keys.feedback(bank, id))));
  }

  // -------------------------------------------------------------------------------------------
  // Views
  // -------------------------------------------------------------------------------------------

  /** One consistent snapshot, read now. */
  async readView(): Promise<ClusterView> {
    const res = await this.client.getAll().prefix(this.keys.prefix).exec();
    const kvs = res.kvs.map((kv) => ({ key: kv.key.toString(), value: kv.value.toString() }));
    return viewFromKvs(this.keys.prefix, kvs, Number(res.header.revision));
  }

  /** A live view: `watcher.view` is always the latest snapshot; `onChange` hears every new one. */
  watchView(onChange?: ViewListener): ViewWatcher {
    const watcher = new ViewWatcher(this.client, this.keys.prefix, onChange, this.log);
    this.watchers.add(watcher);
    return watcher;
  }

  /** Deregisters the shard (revokes its lease), stops the watches, closes the client. */
  async close(): Promise<void> {
    await this.registration?.close();
    this.registration = null;
    await Promise.all([...this.watchers].map((w) => w.close()));
    this.watchers.clear();
    this.client.close();
  }
}

function tryJson<T>(raw: string): T | null {
  try {
    return JSON.parse(raw) as T;
  } catch {
    return null;
  }
}

/**
 * etcd takes at most --max-request-bytes (1.5 MiB by default) in one request, and its gRPC server
 * 2 MiB: a version record over that is refused with a message that names neither the bank nor why.
 */
function tooLargeOr(err: Error, r: BankVersionRecord, value: string): Error {
  if (!/request is too large|larger than max/i.test(err.message)) return err;
  const kib = Math.ceil(Buffer.byteLength(value) / 1024);
  return new SpiError(
    'RESOURCE_EXHAUSTED',
    `bank ${r.bank} v${r.version}: its record (${kib} KiB of metadata) is more than etcd takes in one ` +
      `request (--max-request-bytes, 1.5 MiB by default). It grows with a nominal reference (one value ` +
      `per patch cell) and with the source image list: build without the reference, with fewer tiles ` +
      `or images, or raise etcd's limit (${err.message})`,
  );
}

function checkRecord(r: BankVersionRecord): void {
  checkBankName(r.bank);
  checkVersion(r.version);
  if (!VERSION_STATES.includes(r.state)) {
    throw new SpiError('INVALID_ARGUMENT', `version state must be one of ${VERSION_STATES.join(', ')}`);
  }
  for (const p of r.partitions) {
    checkPartition(p.partition);
    p.shards.forEach(checkShardId);
  }
}

function decodeRecord(raw: string, key: string): BankVersionRecord {
  const value = tryJson<unknown>(raw);
  if (!isVersionRecord(value))
    throw new SpiError('DATA_LOSS', `etcd key ${key} does not hold a valid version record`);
  return value;
}
