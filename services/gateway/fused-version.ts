/**
 * A fused bank version in the cluster (lib/patchcore/fusion.ts). Its members' vectors are ordinary
 * partitions of the one version, member-major: member m owns a contiguous run of partition numbers,
 * and its rows are numbered from 0 within the member (the labels its searches give back). Loading,
 * replication, readiness, rotation, retirement and deletion walk `record.partitions` and treat it
 * like any version; each shard partition keeps its own vector width, so members of different dims
 * sit side by side. The record's `meta` holds the fusion metadata (FusedMeta: members' weights and
 * standardisation, the fused threshold, the automatic choice) and each member's own bank metadata
 * and partition run.
 */
import { BankMeta } from '../../lib/bank/bank-meta';
import { BankVersionRecord } from '../../lib/cluster/types';
import { FUSED_BANK_FORMAT, FusedMeta } from '../../lib/patchcore/fusion';

export interface FusedVersionMeta extends FusedMeta {
  memberBanks: { meta: BankMeta; partitions: { first: number; count: number } }[];
}

/** The record's fusion metadata, or undefined for a single bank. */
export function fusedMetaOf(record: Pick<BankVersionRecord, 'meta'>): FusedVersionMeta | undefined {
  const meta = record.meta as Partial<FusedVersionMeta>;
  return meta.kind === 'fused' && meta.format === FUSED_BANK_FORMAT && Array.isArray(meta.memberBanks)
    ? (meta as FusedVersionMeta)
    : undefined;
}

/** Member `i` of a fused version as a version of its own: its metadata and only its partitions. */
export function memberRecord(
  record: BankVersionRecord,
  fused: FusedVersionMeta,
  i: number,
): BankVersionRecord {
  const { meta, partitions } = fused.memberBanks[i];
  const own = record.partitions.filter(
    (p) => p.partition >= partitions.first && p.partition < partitions.first + partitions.count,
  );
  return { ...record, meta: meta as unknown as Record<string, unknown>, partitions: own };
}

/** "fused bank (2 members: block_5_add+block_9_add, block_2_add+block_5_add)", for messages. */
export function describeFused(fused: FusedVersionMeta): string {
  const stages = fused.memberBanks.map((m) => m.meta.model.stages.join('+'));
  return `fused bank (${stages.length} members: ${stages.join(', ')})`;
}
