/**
 * A fused bank: several member banks over the same images, each with its own backbone stages (a
 * coarse stride-8 pair and a fine stride-4 one), whose anomaly maps are put on one scale and
 * averaged. The stages see different defects: the fine grid outlines small breaks, the deeper
 * context finds contamination that looks locally plausible. Each member's map is standardised by
 * the mean and spread of its held-out good maps (the ones its threshold was set on), so neither
 * member's distance units dominate; the fused map's maximum is the image score, and the fused
 * held-out maps give the threshold (the same conformal rule as a single bank).
 *
 * On disk: `<dir>/bank.json` with `format: 3` and the fusion metadata, and one ordinary bank per
 * member under `<dir>/members/<i>`. Readers of formats 1-2 refuse it, as they must: they would
 * inspect with one member only.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { BankAddition, BankMeta } from '../bank/bank-meta';
import type { AutoConfigRecord } from '../autoconfig/select';
import type { HeadMeta } from '../head/head-bank';
import { StoredBank, loadBank, saveBank } from '../bank/bank-store';
import { DecodeSize, RgbImage } from '../image/decode';
import { KnnIndex } from '../knn/index';
import { Threshold, manualThreshold, thresholdFromNominal } from '../threshold/threshold';
import { maxOf } from '../score/anomaly-map';
import { SpiError, invalid } from '../errors';
import { BackbonePool } from './engine';
import { extractorsForBanks } from './shared-run';
import { FeatureExtractor } from './feature-extractor';
import {
  FitProgress,
  FitSettings,
  FittedBank,
  ImageSource,
  LocalSearcher,
  completeMeta,
  fitBank,
} from './fit';
import { Inspection, Inspector, inspectDecoded, verdict } from './inspector';
import { EmbeddedInspection, inspectEmbedded } from './embedded-inspection';

export const FUSED_BANK_FORMAT = 3;

export interface FusionMember {
  /** Sub-folder of the member bank. */
  dir: string;
  weight: number;
  /** Mean and standard deviation of the member's held-out good map pixels. */
  mean: number;
  std: number;
  /** How many held-out maps they are of (absent in banks fitted before; an addition pools by it). */
  count?: number;
}

export interface FusedMeta {
  format: typeof FUSED_BANK_FORMAT;
  kind: 'fused';
  name: string;
  version: number;
  createdAt: string;
  categories: string[];
  members: FusionMember[];
  /** On the fused (standardised) scale. */
  threshold: Threshold;
  /** How the automatic fit chose this configuration (absent when flags set it). */
  autoConfig?: AutoConfigRecord;
  /**
   * A discriminator head on the first member's embeddings, its map one more standardised term of
   * the fused average (lib/head/; docs/glass-head.md); `threshold` stays the members' fusion.
   */
  head?: HeadMeta;
  /** Images added by incremental versions (incremental-fused.ts); each member's own record has its patches. */
  additions?: FusedAddition[];
}

export type FusedAddition = Pick<BankAddition, 'version' | 'createdAt' | 'images' | 'heldOut' | 'reason'>;

/** One member to fit: its extractor (stages) and its settings (coreset, reference). */
export interface MemberFit {
  extractor: FeatureExtractor;
  settings: FitSettings;
  weight?: number;
}

export interface FittedFusion {
  meta: FusedMeta;
  members: FittedBank[];
  /** The held-out images' fused maps as the threshold scored them (only with keepHeldOutMaps). */
  heldOutMaps?: Float32Array[];
}

/**
 * Fits every member on the same images (so the same held-out split), then the fused threshold.
 * A manual threshold in `settings` applies to the fused scale; members set their own automatically.
 */
export async function fitFused(
  images: ImageSource[],
  members: MemberFit[],
  settings: Pick<FitSettings, 'name' | 'version' | 'categories' | 'threshold'>,
  options: { thresholdImages?: ImageSource[]; onProgress?: FitProgress; keepHeldOutMaps?: boolean } = {},
): Promise<FittedFusion> {
  if (members.length < 2) throw invalid('a fused bank needs at least 2 members');
  if (settings.categories.length > 1)
    throw invalid('a fused bank covers one product: not available for a unified multi-category bank');
  const fitted: FittedBank[] = [];
  for (const m of members) {
    const s = { ...m.settings, threshold: undefined, categories: settings.categories };
    fitted.push(await fitBank(m.extractor, images, s, { ...options, keepHeldOutMaps: true }));
  }
  const standardised = fitted.map((f, i) => {
    const maps = f.heldOutMaps ?? [];
    if (maps.length < 2)
      throw invalid(
        'a fused bank needs at least 2 held-out good images: raise the held-out fraction (spi fit --holdout, BuildSpec.holdout_fraction)',
      );
    const { mean, std } = pixelStats(maps);
    return { dir: String(i), weight: members[i].weight ?? 1, mean, std, count: maps.length, maps };
  });
  const fusedMaps = standardised[0].maps.map((_, j) =>
    fuseMaps(standardised, (i) => standardised[i].maps[j]),
  );
  const scores = fusedMaps.map(maxOf);
  const threshold =
    settings.threshold !== undefined ? manualThreshold(settings.threshold) : thresholdFromNominal(scores);
  const meta: FusedMeta = {
    format: FUSED_BANK_FORMAT,
    kind: 'fused',
    name: settings.name,
    version: settings.version,
    createdAt: new Date().toISOString(),
    categories: settings.categories,
    members: standardised.map(({ dir, weight, mean, std, count }) => ({ dir, weight, mean, std, count })),
    threshold,
  };
  for (const f of fitted) delete f.heldOutMaps;
  return { meta, members: fitted, ...(options.keepHeldOutMaps ? { heldOutMaps: fusedMaps } : {}) };
}

/** Weighted mean of the members' standardised maps (all of one size). */
export function fuseMaps(
  members: readonly Pick<FusionMember, 'weight' | 'mean' | 'std'>[],
  mapOf: (member: number) => Float32Array,
): Float32Array {
  const total = members.reduce((s, m) => s + m.weight, 0);
  let out: Float32Array | undefined;
  members.forEach((m, i) => {
    const map = mapOf(i);
    out ??= new Float32Array(map.length);
    if (map.length !== out.length) throw new Error('fused members give maps of different sizes');
    const a = m.weight / total / (m.std || 1);
    for (let p = 0; p < map.length; p++) out[p] += a * (map[p] - m.mean);
  });
  return out ?? new Float32Array(0);
}

export function pixelStats(maps: readonly Float32Array[]): { mean: number; std: number } {
  let n = 0;
  let sum = 0;
  let sq = 0;
  for (const map of maps) {
    n += map.length;
    for (const v of map) {
      sum += v;
      sq += v * v;
    }
  }
  const mean = sum / n;
  return { mean, std: Math.sqrt(Math.max(0, sq / n - mean * mean)) };
}

/** Inspects with every member and fuses their maps; the same Inspection as a single bank gives. */
export class FusedInspector {
  constructor(
    readonly fused: FusedMeta,
    readonly members: Inspector[],
  ) {}

  /** The first member's metadata under the fused name and threshold (for reports and callers). */
  get meta(): BankMeta {
    const first = this.members[0].meta;
    return {
      ...first,
      name: this.fused.name,
      version: this.fused.version,
      threshold: this.fused.threshold,
      thresholdByCategory: undefined,
      model: { ...first.model, stages: this.members.map((m) => m.meta.model.stages.join('+')) },
      head: this.fused.head,
    };
  }

  /** The member whose embeddings a discriminator head scores (the first). */
  get primary(): BankMeta {
    return this.members[0].meta;
  }

  get limits() {
    return this.members[0].limits;
  }

  /** Decodes once (within the first member's limits), then inspects with every member. */
  inspectBytes(bytes: Uint8Array, threshold?: number, deadline?: number): Promise<Inspection> {
    return inspectDecoded(
      bytes,
      this.members[0].limits,
      (image) => this.inspectImage(image, threshold, deadline),
      sharedCanvas(this.members),
    );
  }

  async inspectImage(image: RgbImage, threshold?: number, deadline?: number): Promise<Inspection> {
    const results: Inspection[] = [];
    for (const member of this.members) results.push(await member.inspectImage(image, Infinity, deadline));
    return this.fuse(results, threshold);
  }

  /** The fused inspection with the first member's embedding (what a discriminator head scores). */
  async inspectEmbedded(image: RgbImage, threshold?: number, deadline?: number): Promise<EmbeddedInspection> {
    const results: EmbeddedInspection[] = [];
    for (const member of this.members) results.push(await inspectEmbedded(member, image, Infinity, deadline));
    const inspection = this.fuse(
      results.map((r) => r.inspection),
      threshold,
    );
    return { inspection, embedding: results[0].embedding };
  }

  /** The members' maps standardised and averaged; the verdict at the fused threshold. */
  private fuse(results: Inspection[], threshold?: number): Inspection {
    const map = fuseMaps(this.fused.members, (i) => results[i].map);
    const first = results[0];
    const r = verdict(
      this.members[0].meta,
      map,
      first.canvasWidth,
      first.canvasHeight,
      maxOf(map),
      Math.max(...results.map((x) => x.maxPatchScore)),
      { width: first.imageWidth, height: first.imageHeight },
      threshold ?? this.fused.threshold.value,
    );
    r.timingsMs = { decode: 0, embed: 0, search: 0, score: 0 };
    for (const x of results)
      for (const k of ['embed', 'search', 'score'] as const) r.timingsMs[k] += x.timingsMs[k];
    return r;
  }
}

/** An in-process inspector over a freshly fitted fusion. */
export function fusedInspector(fitted: FittedFusion, extractors: FeatureExtractor[]): FusedInspector {
  return new FusedInspector(
    fitted.meta,
    fitted.members.map(
      (f, i) =>
        new Inspector(
          completeMeta(f.meta, f.dim, f.index.size),
          extractors[i],
          new LocalSearcher(f.index, f.vectors),
        ),
    ),
  );
}

/** Writes the fused bank folder at once (a rename); `extraFiles` go beside bank.json (a head's models). */
export function saveFused(
  dir: string,
  fitted: FittedFusion,
  extraFiles: Record<string, Uint8Array> = {},
): FusedMeta {
  const tmp = `${dir}.tmp-fused`;
  fs.rmSync(tmp, { recursive: true, force: true });
  fitted.members.forEach((f, i) =>
    saveBank(path.join(tmp, 'members', fitted.meta.members[i].dir), f.meta, f.vectors, f.dim),
  );
  for (const [name, bytes] of Object.entries(extraFiles)) fs.writeFileSync(path.join(tmp, name), bytes);
  fs.writeFileSync(path.join(tmp, 'bank.json'), JSON.stringify(fitted.meta, null, 2));
  fs.rmSync(dir, { recursive: true, force: true });
  fs.renameSync(tmp, dir);
  return fitted.meta;
}

/** True when `dir` holds a fused bank (format 3). */
export function isFusedBank(dir: string): boolean {
  const file = path.join(dir, 'bank.json');
  if (!fs.existsSync(file)) return false;
  return (JSON.parse(fs.readFileSync(file, 'utf8')) as { format?: number }).format === FUSED_BANK_FORMAT;
}

/** A fused bank's metadata and its members as stored (refused when `dir` holds no fused bank). */
export function loadFused(dir: string): { meta: FusedMeta; members: StoredBank[] } {
  const meta = JSON.parse(fs.readFileSync(path.join(dir, 'bank.json'), 'utf8')) as FusedMeta;
  if (meta.format !== FUSED_BANK_FORMAT || meta.kind !== 'fused')
    throw new SpiError('FAILED_PRECONDITION', `bank ${dir} is not a fused bank`);
  return { meta, members: meta.members.map((m) => loadBank(path.join(dir, 'members', m.dir))) };
}

export async function openFused(pool: BackbonePool, dir: string): Promise<FusedInspector> {
  const { meta, members: stored } = loadFused(dir);
  // The members share one backbone run per image where their views agree (shared-run.ts).
  const extractors = await extractorsForBanks(
    pool,
    stored.map((m) => m.meta),
  );
  const members = stored.map((m, i) => {
    const index = KnnIndex.build(m.vectors, m.meta.vectors.dim, m.meta.knn);
    return new Inspector(m.meta, extractors[i], new LocalSearcher(index, m.vectors));
  });
  return new FusedInspector(meta, members);
}

/** The members' common canvas size, decoded to directly; members that differ get the full image. */
function sharedCanvas(members: Inspector[]): DecodeSize | undefined {
  const each = members.map((m) => m.decodeSize);
  if (each.some((f) => !f)) return undefined;
  return (width, height) => {
    const sizes = each.map((f) => f!(width, height));
    const same = sizes.every((s) => s.width === sizes[0].width && s.height === sizes[0].height);
    return same ? sizes[0] : { width, height };
  };
}
