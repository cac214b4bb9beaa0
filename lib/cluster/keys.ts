/**
 * The etcd key layout, in one place. Under a prefix (default `/spi/`):
 *   shards/<shardId>                               ShardInfo, under the shard's lease
 *   loaded/<bank>/<version>/<partition>/<shardId>  LoadedInfo, under the shard's lease
 *   banks/<bank>/versions/<version>                BankVersionRecord
 *   banks/<bank>/active                            active version, decimal string
 */
import { PartitionRef } from './types';

export const DEFAULT_PREFIX = '/spi/';

export function normalizePrefix(prefix: string = DEFAULT_PREFIX): string {
  return prefix.endsWith('/') ? prefix : `${prefix}/`;
}

export interface KeyLayout {
  prefix: string;
  shards(): string;
  shard(shardId: string): string;
  loadedAll(): string;
  loadedBank(bank: string): string;
  loadedVersion(bank: string, version: number): string;
  loaded(ref: PartitionRef, shardId: string): string;
  banks(): string;
  bank(bank: string): string;
  versions(bank: string): string;
  version(bank: string, version: number): string;
  active(bank: string): string;
  /** Operator feedback queued for a bank's next incremental version (feedback.ts). */
  feedbackBank(bank: string): string;
  feedback(bank: string, id: string): string;
}

export function keyLayout(prefix?: string): KeyLayout {
  const p = normalizePrefix(prefix);
  return {
    prefix: p,
    shards: () => `${p}shards/`,
    shard: (id) => `${p}shards/${id}`,
    loadedAll: () => `${p}loaded/`,
    loadedBank: (bank) => `${p}loaded/${bank}/`,
    loadedVersion: (bank, version) => `${p}loaded/${bank}/${version}/`,
    loaded: (ref, id) => `${p}loaded/${ref.bank}/${ref.version}/${ref.partition}/${id}`,
    banks: () => `${p}banks/`,
    bank: (bank) => `${p}banks/${bank}/`,
    versions: (bank) => `${p}banks/${bank}/versions/`,
    version: (bank, version) => `${p}banks/${bank}/versions/${version}`,
    active: (bank) => `${p}banks/${bank}/active`,
    feedbackBank: (bank) => `${p}feedback/${bank}/`,
    feedback: (bank, id) => `${p}feedback/${bank}/${id}`,
  };
}

export type ParsedKey =
  | { kind: 'shard'; shardId: string }
  | { kind: 'loaded'; ref: PartitionRef; shardId: string }
  | { kind: 'version'; bank: string; version: number }
  | { kind: 'active'; bank: string };

const UINT = /^(0|[1-9][0-9]{0,9})$/;
const uint = (s: string): number | null => (UINT.test(s) ? Number(s) : null);

/** The meaning of a key under `prefix`, or null for keys this layout does not define. */
export function parseKey(prefix: string, key: string): ParsedKey | null {
  const p = normalizePrefix(prefix);
  if (!key.startsWith(p)) return null;
  const parts = key.slice(p.length).split('/');
  if (parts.some((s) => s === '')) return null;
  if (parts[0] === 'shards' && parts.length === 2) return { kind: 'shard', shardId: parts[1] };
  if (parts[0] === 'loaded' && parts.length === 5) {
    const version = uint(parts[2]);
    const partition = uint(parts[3]);
    if (version === null || partition === null) return null;
    return { kind: 'loaded', ref: { bank: parts[1], version, partition }, shardId: parts[4] };
  }
  if (parts[0] === 'banks' && parts.length === 4 && parts[2] === 'versions') {
    const version = uint(parts[3]);
    return version === null ? null : { kind: 'version', bank: parts[1], version };
  }
  if (parts[0] === 'banks' && parts.length === 3 && parts[2] === 'active')
    return { kind: 'active', bank: parts[1] };
  return null;
}

/** Map keys of ClusterView: "bank/version/partition" and "bank/version". */
export const partitionKey = (ref: PartitionRef): string => `${ref.bank}/${ref.version}/${ref.partition}`;
export const versionKey = (bank: string, version: number): string => `${bank}/${version}`;
