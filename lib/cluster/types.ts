/**
 * What the cluster records in etcd, and the checks on names that end up inside etcd keys (a '/' in a
 * bank name would shift every later key segment).
 */
import { invalid } from '../errors';

export interface PartitionRef {
  bank: string;
  version: number;
  partition: number;
}

/** A live bank-shard node: `shards/<id>`, under the node's lease. */
export interface ShardInfo {
  id: string;
  /** host:port that gateways dial. */
  address: string;
  startedAt: string;
  /** Query encodings its Search decodes ('f32', 'f16'); absent (earlier releases) = float32 only. */
  vectorEncodings?: string[];
}

/** A partition a shard holds, loaded and searchable: `loaded/<bank>/<v>/<p>/<shardId>`. */
export interface LoadedInfo {
  rows: number;
  dim: number;
  /** faiss factory string. */
  index: string;
}

/** Where loads and drops are announced (the etcd registration; absent when running unregistered). */
export interface Announcer {
  markLoaded(ref: PartitionRef, info: LoadedInfo): Promise<void>;
  markDropped(ref: PartitionRef): Promise<void>;
}

export type VersionState = 'building' | 'loading' | 'ready' | 'retired';
export const VERSION_STATES: readonly VersionState[] = ['building', 'loading', 'ready', 'retired'];

export interface PartitionAssignment {
  partition: number;
  /** First bank row of the partition (shards report global rows). */
  rowOffset: number;
  rows: number;
  /** Shard ids assigned to hold a replica. */
  shards: string[];
}

/** `banks/<bank>/versions/<version>`. */
export interface BankVersionRecord {
  bank: string;
  version: number;
  state: VersionState;
  createdAt: string;
  /** The engine's bank metadata, opaque to the cluster layer. */
  meta: Record<string, unknown>;
  partitions: PartitionAssignment[];
  /** faiss factory string and IVF probes of the shard indexes. */
  index: string;
  nprobe: number;
}

const BANK_NAME = /^[A-Za-z0-9_.-]{1,64}$/;
const SHARD_ID = /^[A-Za-z0-9_.:-]{1,128}$/;

export function checkBankName(bank: string): string {
  if (typeof bank !== 'string' || !BANK_NAME.test(bank) || bank === '.' || bank === '..') {
    throw invalid(
      `bank name ${JSON.stringify(bank)} is invalid: use letters, digits, '-', '_' and '.', at most 64`,
    );
  }
  return bank;
}

export function checkVersion(version: number): number {
  if (!Number.isInteger(version) || version < 1 || version > 0xffffffff) {
    throw invalid(`bank version must be an integer from 1 to 2^32-1, got ${version}`);
  }
  return version;
}

export function checkPartition(partition: number): number {
  if (!Number.isInteger(partition) || partition < 0 || partition > 0xffffffff) {
    throw invalid(`partition must be an integer from 0 to 2^32-1, got ${partition}`);
  }
  return partition;
}

export function checkShardId(id: string): string {
  if (typeof id !== 'string' || !SHARD_ID.test(id)) {
    throw invalid(`shard id ${JSON.stringify(id)} is invalid: use letters, digits, '-', '_', '.', ':'`);
  }
  return id;
}

export function checkRef(ref: PartitionRef): PartitionRef {
  checkBankName(ref.bank);
  checkVersion(ref.version);
  checkPartition(ref.partition);
  return ref;
}

export function refString(ref: PartitionRef): string {
  return `${ref.bank}/${ref.version}/${ref.partition}`;
}
