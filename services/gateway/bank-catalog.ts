/**
 * Which bank version answers a request, and the Inspector for it. A request resolves the version
 * once, at its start, and keeps that version's record and searcher to the end: an answer never
 * mixes versions, even if the active pointer flips meanwhile.
 */
import { BankMeta } from '../../lib/bank/bank-meta';
import { BankVersionRecord } from '../../lib/cluster/types';
import { BackbonePool, extractorForBank } from '../../lib/patchcore/engine';
import { FeatureExtractor } from '../../lib/patchcore/feature-extractor';
import { extractorsForBanks } from '../../lib/patchcore/shared-run';
import { Inspector } from '../../lib/patchcore/inspector';
import { SpiError, notFound } from '../../lib/errors';
import { ClusterSearcher, FanOutSettings, ShardDirectory } from './cluster-searcher';
import { headInspectorFor } from '../../lib/head/head-bank';
import { FusedInspector } from '../../lib/patchcore/fusion';
import { FusedVersionMeta, fusedMetaOf, memberRecord } from './fused-version';

export interface ResolvedBank {
  record: BankVersionRecord;
  /**
   * The bank's Inspector, or for a fused version the FusedInspector over one Inspector per member
   * (fused-version.ts); with a discriminator head, the HeadInspector over either (lib/head/).
   */
  inspector: Pick<Inspector, 'meta' | 'inspectBytes'>;
}

export class BankCatalog {
  private readonly inspectors = new Map<string, Promise<ResolvedBank>>();

  constructor(
    private readonly shards: ShardDirectory,
    private readonly backbones: BackbonePool,
    private readonly fanOut: FanOutSettings,
  ) {}

  /** The active version of `bank`, or the pinned `version` when non-zero. */
  resolve(bank: string, version = 0): Promise<ResolvedBank> {
    const view = this.shards.view();
    if (view.revision === 0)
      throw new SpiError('UNAVAILABLE', 'the gateway has no view of the cluster yet (etcd not reached)');
    const v = version || view.active.get(bank);
    if (!v) {
      const known = [...view.active.keys()].sort();
      throw notFound(
        `bank "${bank}" does not exist or has no active version` +
          (known.length ? ` (banks: ${known.join(', ')})` : ''),
      );
    }
    const record = view.versions.get(`${bank}/${v}`);
    if (!record || record.state === 'retired') throw notFound(`bank "${bank}" has no version ${v}`);
    if (record.state !== 'ready')
      throw new SpiError('FAILED_PRECONDITION', `bank "${bank}" v${v} is still ${record.state}`);
    const key = `${bank}/${v}`;
    let resolved = this.inspectors.get(key);
    if (!resolved) {
      resolved = this.open(record);
      resolved.catch(() => this.inspectors.delete(key));
      this.inspectors.set(key, resolved);
    }
    return resolved;
  }

  /** Forgets inspectors of versions that are gone from the view. */
  prune(): void {
    const view = this.shards.view();
    for (const key of this.inspectors.keys()) {
      const record = view.versions.get(key);
      if (!record || record.state === 'retired') this.inspectors.delete(key);
    }
  }

  private async open(record: BankVersionRecord): Promise<ResolvedBank> {
    const fused = fusedMetaOf(record);
    if (fused) return { record, inspector: await this.openFused(record, fused) };
    const inspector = await this.inspectorOf(record);
    const meta = inspector.meta;
    // A head runs here, on the embeddings this gateway computes; the shards still give the k-NN part.
    const withHead = meta.head ? await headInspectorFor(this.backbones, undefined, inspector) : undefined;
    return { record, inspector: withHead ?? inspector };
  }

  /**
   * An Inspector over the version's partitions (a fused version's member: only its own), with the
   * extractor given (a fused version's members share one backbone run) or the bank's own.
   */
  private async inspectorOf(record: BankVersionRecord, extractor?: FeatureExtractor): Promise<Inspector> {
    const meta = record.meta as unknown as BankMeta;
    extractor ??= await extractorForBank(this.backbones, meta);
    return new Inspector(meta, extractor, new ClusterSearcher(record, this.shards, this.fanOut));
  }

  /**
   * Each member searches its own partitions; their maps are standardised and averaged. A head
   * (inline in the fusion metadata) scores the first member's embeddings here, beside the searches.
   */
  private async openFused(
    record: BankVersionRecord,
    fused: FusedVersionMeta,
  ): Promise<ResolvedBank['inspector']> {
    const extractors = await extractorsForBanks(
      this.backbones,
      fused.memberBanks.map((m) => m.meta),
    );
    const members: Inspector[] = [];
    for (let i = 0; i < fused.memberBanks.length; i++)
      members.push(await this.inspectorOf(memberRecord(record, fused, i), extractors[i]));
    const inspector = new FusedInspector(fused, members);
    return (await headInspectorFor(this.backbones, undefined, inspector)) ?? inspector;
  }
}
