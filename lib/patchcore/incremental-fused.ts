/**
 * Incremental fused banks (fusion.ts): every member grows by the same new images through one split
 * (incremental.ts `growBank`), so the same held-out images recalibrate each member's threshold and
 * reference and give its maps against its grown bank. Each member's standardisation is recomputed on
 * those maps pooled with the old statistics weighted by the maps they came from (the first fit's
 * held-out images are not kept; their statistics stand for them, as the old scores do for a single
 * bank's threshold). The fused threshold is recalibrated on the held-out fused scores pooled with the
 * old ones: on the standardised scale, where a good image scores about the same as the bank grows
 * (its maps and the statistics fall together). A threshold folder recomputes all from it alone.
 */
import { BankMeta } from '../bank/bank-meta';
import { SpiError, invalid } from '../errors';
import { maxOf } from '../score/anomaly-map';
import { FeatureExtractor } from './feature-extractor';
import { FittedBank, ImageSource } from './fit';
import { FittedFusion, FusedMeta, FusionMember, fuseMaps, pixelStats } from './fusion';
import { AddOptions, checkAddition, growBank, recalibrated, splitAddition } from './incremental';

export interface FusedBase {
  meta: FusedMeta;
  members: { meta: BankMeta; vectors: Float32Array }[];
}

/** The next version of a fused bank: `extractors[i]` embeds for member i. */
export async function addToFused(
  extractors: FeatureExtractor[],
  base: FusedBase,
  images: ImageSource[],
  options: AddOptions = {},
): Promise<FittedFusion> {
  // fitFused refuses unified banks: one that says so was not made here.
  if (base.meta.categories.length > 1)
    throw new SpiError(
      'FAILED_PRECONDITION',
      `fused bank ${base.meta.name} names several products: a fused bank covers one`,
    );
  checkAddition([base.meta, ...base.members.map((m) => m.meta)], images);
  if (extractors.length !== base.members.length)
    throw new Error(`${extractors.length} extractors for ${base.members.length} members`);
  // The standardisation is recalibrated whatever the threshold: hold back as an automatic one does.
  const split = splitAddition(images, options, true);
  if (split.fromScratch && split.holdout.length < 2)
    throw invalid('a fused bank needs at least 2 held-out good images: give more threshold images');
  const version = options.version ?? base.meta.version + 1;
  const grown: FittedBank[] = [];
  const maps: Float32Array[][] = [];
  for (const [i, member] of base.members.entries()) {
    const memberMaps: Float32Array[] = [];
    grown.push(await growBank(extractors[i], member, split, { ...options, version }, memberMaps));
    maps.push(memberMaps);
  }
  const members = base.meta.members.map((m, i) => ({
    ...m,
    ...pooledStats(m, base.members[i].meta, maps[i], split.fromScratch),
  }));
  const scores = split.holdout.map((_, j) => maxOf(fuseMaps(members, (i) => maps[i][j])));
  const old = base.meta;
  const threshold =
    old.threshold.method === 'nominal'
      ? recalibrated(old.threshold, scores, split.fromScratch)
      : old.threshold;
  const { images: added, heldOut, createdAt, reason } = grown[0].meta.additions!.at(-1)!;
  const meta: FusedMeta = {
    ...old,
    version,
    createdAt,
    members,
    threshold,
    additions: [
      ...(old.additions ?? []),
      { version, createdAt, images: added, heldOut, ...(reason ? { reason } : {}) },
    ],
  };
  return { meta, members: grown };
}

/**
 * A member's map statistics: the new held-out maps' pooled with the old ones by map count (every
 * map of a fused bank has the canvas' size), or theirs alone from scratch; the old when none came.
 */
export function pooledStats(
  old: Pick<FusionMember, 'mean' | 'std' | 'count'>,
  oldMember: Pick<BankMeta, 'threshold'>,
  maps: readonly Float32Array[],
  fromScratch: boolean,
): Pick<FusionMember, 'mean' | 'std' | 'count'> {
  // Banks fitted before the count was recorded: the member's threshold saw the same held-out maps.
  const oldCount = old.count ?? oldMember.threshold.nominal?.count ?? 1;
  if (maps.length === 0) return { mean: old.mean, std: old.std, count: oldCount };
  const fresh = pixelStats(maps);
  if (fromScratch) return { ...fresh, count: maps.length };
  const count = oldCount + maps.length;
  const mean = (oldCount * old.mean + maps.length * fresh.mean) / count;
  const square = (s: { mean: number; std: number }) => s.std * s.std + s.mean * s.mean;
  const second = (oldCount * square(old) + maps.length * square(fresh)) / count;
  return { mean, std: Math.sqrt(Math.max(0, second - mean * mean)), count };
}
