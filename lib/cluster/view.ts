/**
 * ClusterView: an in-memory snapshot of the registry, built from a range read and kept current from
 * watch events. Each update makes a new snapshot (copy-on-write), so a request that took a view keeps
 * a consistent one for its whole life, whatever etcd does meanwhile.
 */
import { ParsedKey, parseKey, partitionKey, versionKey } from './keys';
import { BankVersionRecord, PartitionRef, ShardInfo, VERSION_STATES } from './types';

export interface ClusterView {
  /** Live shards by id. */
  readonly shards: ReadonlyMap<string, ShardInfo>;
  /** "bank/version/partition" -> ids of shards that hold it loaded. */
  readonly loaded: ReadonlyMap<string, ReadonlySet<string>>;
  /** "bank/version" -> record. */
  readonly versions: ReadonlyMap<string, BankVersionRecord>;
  /** bank -> active version. */
  readonly active: ReadonlyMap<string, number>;
  /** etcd revision the snapshot reflects (0 before the first read). */
  readonly revision: number;
  /** False while etcd is unreachable: the snapshot is the last one seen. */
  readonly connected: boolean;
}

export type KvChange = { type: 'put'; key: string; value: string } | { type: 'delete'; key: string };

export function emptyView(): ClusterView {
  return {
    shards: new Map(),
    loaded: new Map(),
    versions: new Map(),
    active: new Map(),
    revision: 0,
    connected: false,
  };
}

/** A view built from a full range read of the prefix. */
export function viewFromKvs(
  prefix: string,
  kvs: { key: string; value: string }[],
  revision: number,
  connected = true,
): ClusterView {
  const changes: KvChange[] = kvs.map((kv) => ({ type: 'put', key: kv.key, value: kv.value }));
  return { ...applyChanges(emptyView(), prefix, changes, revision), connected };
}

/** A new view with the changes applied; `view` is left untouched. Unknown or corrupt keys are skipped. */
export function applyChanges(
  view: ClusterView,
  prefix: string,
  changes: KvChange[],
  revision?: number,
): ClusterView {
  const shards = new Map(view.shards);
  const loaded = new Map(view.loaded);
  const versions = new Map(view.versions);
  const active = new Map(view.active);
  const touchedSets = new Set<string>();
  const editableSet = (key: string): Set<string> => {
    if (!touchedSets.has(key)) {
      loaded.set(key, new Set(loaded.get(key)));
      touchedSets.add(key);
    }
    return loaded.get(key) as Set<string>;
  };

  for (const change of changes) {
    const parsed = parseKey(prefix, change.key);
    if (!parsed) continue;
    const value = change.type === 'put' ? decode(parsed, change.value) : undefined;
    // A put that does not decode is treated as a delete: better no entry than a stale one.
    const present = value !== undefined;
    switch (parsed.kind) {
      case 'shard':
        if (present) shards.set(parsed.shardId, value as ShardInfo);
        else shards.delete(parsed.shardId);
        break;
      case 'loaded': {
        const key = partitionKey(parsed.ref);
        const set = editableSet(key);
        if (present) set.add(parsed.shardId);
        else set.delete(parsed.shardId);
        if (set.size === 0) loaded.delete(key);
        break;
      }
      case 'version':
        if (present) versions.set(versionKey(parsed.bank, parsed.version), value as BankVersionRecord);
        else versions.delete(versionKey(parsed.bank, parsed.version));
        break;
      case 'active':
        if (present) active.set(parsed.bank, value as number);
        else active.delete(parsed.bank);
        break;
    }
  }
  return { shards, loaded, versions, active, revision: revision ?? view.revision, connected: view.connected };
}

function decode(parsed: ParsedKey, raw: string): unknown {
  if (parsed.kind === 'active') {
    const n = Number(raw);
    return Number.isInteger(n) && n > 0 ? n : undefined;
  }
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch {
    return undefined;
  }
  if (typeof value !== 'object' || value === null) return undefined;
  switch (parsed.kind) {
    case 'shard': {
      const s = value as Partial<ShardInfo>;
      return typeof s.address === 'string' && s.address ? { ...s, id: parsed.shardId } : undefined;
    }
    case 'loaded':
      return value;
    case 'version':
      return isVersionRecord(value) && value.bank === parsed.bank && value.version === parsed.version
        ? value
        : undefined;
  }
}

export function isVersionRecord(v: unknown): v is BankVersionRecord {
  const r = v as Partial<BankVersionRecord>;
  return (
    typeof r === 'object' &&
    r !== null &&
    typeof r.bank === 'string' &&
    Number.isInteger(r.version) &&
    VERSION_STATES.includes(r.state as never) &&
    Array.isArray(r.partitions)
  );
}

// ---------------------------------------------------------------------------------------------
// Questions gateways ask of a view.
// ---------------------------------------------------------------------------------------------

/** Live shards that hold the partition loaded (a loaded key without a live shard key is skipped). */
export function replicasOf(view: ClusterView, ref: PartitionRef): ShardInfo[] {
  const ids = view.loaded.get(partitionKey(ref));
  if (!ids) return [];
  const out: ShardInfo[] = [];
  for (const id of ids) {
    const shard = view.shards.get(id);
    if (shard) out.push(shard);
  }
  return out;
}

/** The version record the bank's active pointer names, if both exist. */
export function activeRecord(view: ClusterView, bank: string): BankVersionRecord | undefined {
  const v = view.active.get(bank);
  return v === undefined ? undefined : view.versions.get(versionKey(bank, v));
}

/** Partitions of a version that have no live replica now (empty = fully servable). */
export function missingPartitions(view: ClusterView, record: BankVersionRecord): number[] {
  return record.partitions
    .filter(
      (p) =>
        replicasOf(view, { bank: record.bank, version: record.version, partition: p.partition }).length === 0,
    )
    .map((p) => p.partition);
}
