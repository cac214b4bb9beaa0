/**
 * What a gateway needs from the cluster's registry. The etcd-backed Registry implements it for a
 * real cluster; MemoryRegistry implements it for `spi serve --embedded` (one process, no etcd).
 */
import { BankVersionRecord } from './types';
import { FeedbackQueue } from './feedback';
import { ClusterView } from './view';

export interface LiveView {
  /** The latest snapshot; never mutated, take it once per request. */
  readonly view: ClusterView;
  /** Resolves after the first complete read. */
  readonly ready: Promise<void>;
  close(): Promise<void>;
}

export interface ClusterRegistry extends FeedbackQueue {
  createVersion(record: BankVersionRecord): Promise<void>;
  putVersion(record: BankVersionRecord): Promise<void>;
  getVersion(bank: string, version: number): Promise<BankVersionRecord | null>;
  listBanks(): Promise<string[]>;
  listVersions(bank: string): Promise<BankVersionRecord[]>;
  getActive(bank: string): Promise<number | null>;
  activate(bank: string, version: number): Promise<void>;
  deleteVersion(bank: string, version: number): Promise<boolean>;
  deleteBank(bank: string): Promise<number[]>;
  watchView(onChange?: (view: ClusterView) => void): LiveView;
  close(): Promise<void>;
}
