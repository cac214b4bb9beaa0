/**
 * A discriminator head beside a memory bank (issue #20): fitted on the bank's own training split,
 * stored in the bank folder (`head.onnx`, `head.int8.onnx`, `BankMeta.head`), and scored with it.
 *
 * Three scores from one embedding per image: the bank alone (k-NN distances, as before), the head
 * alone (an MLP per patch, no search), and the two combined the way fused banks combine members
 * (lib/patchcore/fusion.ts): each map standardised by the mean and spread of its held-out good
 * maps, then averaged; every mode has its own threshold from the same held-out good images. The
 * bank's own threshold stays in `BankMeta.threshold`, so a reader that ignores the head still
 * judges correctly with the bank alone. Beside a fused bank the head scores the first member's
 * embedding and its map is one more term of the fused average (head-base.ts).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { BankMeta } from '../bank/bank-meta';
import { sha256 } from '../bank/bank-store';
import { DecodeLimits, DEFAULT_DECODE_LIMITS, RgbImage, decodeImage } from '../image/decode';
import { encodeModel } from '../../models/onnx/io';
import { FeatureExtractor, ImageEmbedding } from '../patchcore/feature-extractor';
import { BackbonePool, extractorForBank } from '../patchcore/engine';
import {
  FittedBank,
  ImageSource,
  LocalSearcher,
  splitHoldout,
  FitSettings,
  completeMeta,
} from '../patchcore/fit';
import {
  FittedFusion,
  FusedInspector,
  FusionMember,
  fuseMaps,
  fusedInspector,
  pixelStats,
} from '../patchcore/fusion';
import { Inspection, Inspector, scorePatches, verdict } from '../patchcore/inspector';
import { maxOf } from '../score/anomaly-map';
import { pixelAuroc, pro, rocAuc } from '../eval/metrics';
import { Threshold, thresholdFromNominal } from '../threshold/threshold';
import { SpiError, invalid } from '../errors';
import { spread } from '../autoconfig/select';
import {
  EmbeddedValidation,
  embedValidation,
  headTrainingData,
  validationMaps,
  validationScore,
} from './data';
import { HeadSession, buildHeadModel, quantizeHead } from './onnx';
import { DEFAULT_HEAD_TRAIN, EpochReport, HeadTrainConfig, trainHead } from './train';
import { HeadWeights, foldWeights } from './weights';
import { HeadBase, HeadFitBase, bankFitBase, fusedFitBase, headBaseOf } from './head-base';
import { OwnedExtractor, headExtractorFor, headStagesFor, ownHeadExtractor } from './head-embedding';

/** Head kinds `spi fit --head` accepts. */
export const HEAD_KINDS = ['glass'] as const;
export type HeadKind = (typeof HEAD_KINDS)[number];
export type HeadMode = 'combined' | 'head' | 'bank';
export const HEAD_MODES: readonly HeadMode[] = ['combined', 'head', 'bank'];
export type HeadPrecision = 'float' | 'int8';

export const HEAD_FILE = 'head.onnx';
export const HEAD_INT8_FILE = 'head.int8.onnx';

export interface HeadMeta {
  kind: HeadKind;
  /** Which model inspection runs (its maps gave the statistics and thresholds below). */
  precision: HeadPrecision;
  /** What `spi inspect` and the verdict use unless told otherwise. */
  mode: HeadMode;
  files: {
    float: { file: string; sha256: string; bytes: number };
    int8: { file: string; sha256: string; bytes: number };
  };
  /**
   * The models themselves, base64, where the bank has no folder: a cluster version's metadata in
   * the registry, which every gateway reads (banks on disk keep the files instead).
   */
  inline?: { float: string; int8: string };
  dim: number;
  hidden: number;
  /**
   * The head's own stages of the bank's backbone when they are not the bank's (`--head-stages`,
   * head-embedding.ts): its embedding is made beside the bank's, on the same view, unprojected.
   */
  stages?: string[];
  /**
   * Beside a fused bank: the member whose embeddings the head scores (the first). The combined map
   * is then the members' standardised terms and the head's, and `standardisation.bank` is 0 and 1
   * (the fused map is on that scale already).
   */
  fused?: { member: number; stages: string[] };
  /** Mean and spread of the held-out good maps' pixels, per member: [bank, head]. */
  standardisation: { bank: Pick<FusionMember, 'mean' | 'std'>; head: Pick<FusionMember, 'mean' | 'std'> };
  /**
   * The head's weight in the combined map (the bank's is 1 - it), chosen on the synthetic validation
   * set among HEAD_WEIGHTS, with each weight's validation scores.
   */
  combination: {
    headWeight: number;
    table: { headWeight: number; imageAuroc: number; pixelAuroc: number; score: number }[];
  };
  thresholds: { head: Threshold; combined: Threshold };
  /**
   * Incremental versions this head was carried into (head-growth.ts): not retrained, its thresholds
   * recalibrated on `heldOut` new images (pooled with the old scores, or from a threshold folder).
   */
  carried?: { version: number; heldOut: number; fromScratch: boolean }[];
  training: {
    config: HeadTrainConfig;
    realPatches: number;
    localPatches: number;
    localImages: number;
    localByKind: Record<string, number>;
    validation: { goods: number; defects: number; seed: number };
    epochs: { epoch: number; loss: number; validation: number }[];
    bestEpoch: number;
    stoppedEarly: boolean;
    trainMs: number;
    embedMs: number;
  };
}

export interface HeadFitOptions {
  train: HeadTrainConfig;
  /** The head's own stages of the bank's backbone (head-embedding.ts); absent: the bank's embedding. */
  stages?: string[];
  /** Training images that get a synthetic-defect copy (local anomalies). */
  localImages: number;
  /** Held-out good images the validation set is made of (at most). */
  validationGoods: number;
  seed: number;
  precision: HeadPrecision;
  limits?: DecodeLimits;
  onProgress?: (stage: string, done: number, total: number) => void;
  onEpoch?: (r: EpochReport) => void;
}

export const DEFAULT_HEAD_FIT: HeadFitOptions = {
  train: DEFAULT_HEAD_TRAIN,
  localImages: 64,
  validationGoods: 12,
  seed: 1,
  precision: 'float',
};

export interface FittedHead {
  meta: HeadMeta;
  float: Uint8Array;
  int8: Uint8Array;
  /** The trained weights (not saved: the ONNX files are the head). */
  weights: HeadWeights;
}

/**
 * Trains a head for a fitted bank on the bank's own split of `images` (its training images; the
 * held-out ones give the validation set, the standardisation and the thresholds). A bank fitted
 * with keepHeldOutMaps lends its held-out maps as its threshold saw them (leave-one-out with a
 * reference); otherwise they are made again.
 */
export function fitHead(
  extractor: FeatureExtractor,
  bank: FittedBank,
  images: ImageSource[],
  settings: FitSettings,
  options: HeadFitOptions,
  thresholdImages?: ImageSource[],
): Promise<FittedHead> {
  return fitHeadBeside(extractor, bankFitBase(bank), images, settings, options, thresholdImages);
}

/**
 * A head beside a fused bank, on its first member's embeddings (`extractors[0]`); `settings` are
 * the first member's (the split every member shared).
 */
export async function fitFusedHead(
  fitted: FittedFusion,
  extractors: FeatureExtractor[],
  images: ImageSource[],
  settings: FitSettings,
  options: HeadFitOptions,
  thresholdImages?: ImageSource[],
): Promise<FittedHead> {
  // fitFused's split: every member's threshold automatic, so images are always held out.
  const split = { ...settings, threshold: undefined };
  const base = fusedFitBase(fitted, extractors);
  return fitHeadBeside(extractors[0], base, images, split, options, thresholdImages);
}

async function fitHeadBeside(
  extractor: FeatureExtractor,
  base: HeadFitBase,
  images: ImageSource[],
  settings: FitSettings,
  options: HeadFitOptions,
  thresholdImages?: ImageSource[],
): Promise<FittedHead> {
  const limits = options.limits ?? DEFAULT_DECODE_LIMITS;
  const split = splitHoldout(images, settings, thresholdImages);
  if (split.holdout.length < 2) throw invalid('a head needs at least 2 held-out good images (see --holdout)');
  // The head's maps are paired with the bank's image by image: the two splits must be the same.
  if (base.heldOutMaps && base.heldOutMaps.length !== split.holdout.length)
    throw new SpiError(
      'INTERNAL',
      `the head's held-out split has ${split.holdout.length} images, the bank's ${base.heldOutMaps.length}`,
    );
  const stages = headStagesFor(base.primary, options.stages);
  const own = stages ? await ownHeadExtractor(extractor, stages) : undefined;
  try {
    const headOptions = { ...options, stages };
    return await fitHeadOn(
      own?.extractor ?? extractor,
      own ? extractor : undefined,
      base,
      split,
      headOptions,
      limits,
    );
  } finally {
    await own?.close();
  }
}

/**
 * The head's training, validation, standardisation and thresholds on `extractor`'s embeddings; the
 * bank's maps from `bankExtractor`'s where the head has stages of its own (else from the same).
 */
async function fitHeadOn(
  extractor: FeatureExtractor,
  bankExtractor: FeatureExtractor | undefined,
  base: HeadFitBase,
  split: ReturnType<typeof splitHoldout>,
  options: HeadFitOptions,
  limits: DecodeLimits,
): Promise<FittedHead> {
  const bankEmbedding = (image: RgbImage, e: ImageEmbedding) =>
    bankExtractor ? bankExtractor.embed(image) : e;
  const t0 = performance.now();
  const data = await headTrainingData(extractor, split.train, {
    seed: options.seed,
    localImages: options.localImages,
    limits,
    onProgress: (d, t) => options.onProgress?.('head data', d, t),
  });
  const heldOut: RgbImage[] = [];
  for (const s of split.holdout) heldOut.push(await decodeImage(await s.read(), limits));
  const goods = spread(heldOut, options.validationGoods).map((image, i) => ({
    name: `held-out-${i}`,
    image,
  }));
  const validation = await embedValidation(extractor, goods, options.seed);
  const embedMs = performance.now() - t0;
  const scoreMeta = { view: base.primary.view, score: base.primary.score };
  const trained = await trainHead(data, options.train, {
    validate: (score) => validationScore(validation, validationMaps(validation, scoreMeta, score)).score,
    onEpoch: (r) => {
      options.onEpoch?.(r);
      options.onProgress?.('head train', r.epoch, r.epochs);
    },
  });
  const float = buildHeadModel(foldWeights(trained.weights));
  const floatBytes = encodeModel(float);
  // Calibrated on the good patches and those under synthetic defects: the range covers anomalies too.
  const calibration = new Float32Array(data.real.length + data.local.length);
  calibration.set(data.real);
  calibration.set(data.local, data.real.length);
  const int8Bytes = encodeModel((await quantizeHead(float, calibration, data.dim)).model);
  // Standardisation and thresholds from the held-out good images, scored by the model that runs.
  const session = await HeadSession.create(options.precision === 'int8' ? int8Bytes : floatBytes, data.dim);
  const headMaps: Float32Array[] = [];
  const bankMaps = base.heldOutMaps ?? [];
  let combination: HeadMeta['combination'];
  let standardisation: HeadMeta['standardisation'];
  try {
    for (const image of heldOut) {
      const e = await extractor.embed(image);
      headMaps.push(scorePatches(base.primary, e, await session.score(e.vectors), image, Infinity).map);
      if (!base.heldOutMaps) bankMaps.push(await base.mapOf(image, await bankEmbedding(image, e)));
    }
    standardisation = {
      bank: base.standardised ? { mean: 0, std: 1 } : pixelStats(bankMaps),
      head: pixelStats(headMaps),
    };
    combination = await chooseCombination(validation, base, session, standardisation, bankEmbedding);
  } finally {
    await session.close();
  }
  const members = combinationMembers(standardisation, combination.headWeight);
  const combined = bankMaps.map((m, i) => maxOf(fuseMaps(members, (j) => (j === 0 ? m : headMaps[i]))));
  const file = (name: string, bytes: Uint8Array) => ({
    file: name,
    sha256: sha256(bytes),
    bytes: bytes.length,
  });
  const meta: HeadMeta = {
    kind: 'glass',
    precision: options.precision,
    mode: 'combined',
    files: { float: file(HEAD_FILE, floatBytes), int8: file(HEAD_INT8_FILE, int8Bytes) },
    dim: data.dim,
    hidden: trained.weights.hidden,
    ...(bankExtractor ? { stages: options.stages } : {}),
    ...(base.fused ? { fused: base.fused } : {}),
    standardisation,
    combination,
    thresholds: { head: thresholdFromNominal(headMaps.map(maxOf)), combined: thresholdFromNominal(combined) },
    training: {
      config: trained.config,
      realPatches: data.real.length / data.dim,
      localPatches: data.local.length / data.dim,
      localImages: data.localImages,
      localByKind: data.localByKind,
      validation: {
        goods: goods.length,
        defects: validation.items.filter((i) => i.label === 1).length,
        seed: options.seed,
      },
      epochs: trained.history,
      bestEpoch: trained.bestEpoch,
      stoppedEarly: trained.stoppedEarly,
      trainMs: trained.trainMs,
      embedMs,
    },
  };
  return { meta, float: floatBytes, int8: int8Bytes, weights: trained.weights };
}

/** Head weights the combination is chosen among (0: the bank alone; 1: the head alone). */
export const HEAD_WEIGHTS = [0, 0.25, 0.5, 0.75, 1];

export function combinationMembers(s: HeadMeta['standardisation'], headWeight: number) {
  return [
    { ...s.bank, weight: 1 - headWeight },
    { ...s.head, weight: headWeight },
  ];
}

/**
 * Scores every head weight's combined maps on the synthetic validation set (the selector's ranking
 * score) and keeps the best; ties go to the weight nearest an even mix (every term alike: a half
 * beside a single bank, a third beside a fused pair).
 */
async function chooseCombination(
  v: EmbeddedValidation,
  base: HeadFitBase,
  session: HeadSession,
  standardisation: HeadMeta['standardisation'],
  bankEmbedding: (image: RgbImage, headEmbedding: ImageEmbedding) => Promise<ImageEmbedding> | ImageEmbedding,
): Promise<HeadMeta['combination']> {
  const bankMaps: Float32Array[] = [];
  const headMaps: Float32Array[] = [];
  for (const [i, item] of v.items.entries()) {
    const e = v.embeddings[i];
    bankMaps.push(await base.mapOf(item.image, await bankEmbedding(item.image, e)));
    headMaps.push(scorePatches(base.primary, e, await session.score(e.vectors), item.image, Infinity).map);
  }
  const table = HEAD_WEIGHTS.map((headWeight) => {
    const members = combinationMembers(standardisation, headWeight);
    const maps = bankMaps.map((m, i) => fuseMaps(members, (j) => (j === 0 ? m : headMaps[i])));
    return { headWeight, ...validationScore(v, maps) };
  });
  const even = 1 / (base.terms + 1);
  const best = [...table].sort(
    (a, b) => b.score - a.score || Math.abs(a.headWeight - even) - Math.abs(b.headWeight - even),
  )[0];
  return { headWeight: best.headWeight, table };
}

/** The head's files for saveBank's extra files. */
export function headFiles(head: FittedHead): Record<string, Uint8Array> {
  return { [head.meta.files.float.file]: head.float, [head.meta.files.int8.file]: head.int8 };
}

/** A stored head's files, read back and checked, for another version's folder (spi fit --add). */
export function storedHeadFiles(dir: string, head: HeadMeta): Record<string, Uint8Array> {
  return {
    [head.files.float.file]: readHeadModel(dir, head, 'float'),
    [head.files.int8.file]: readHeadModel(dir, head, 'int8'),
  };
}

/**
 * The model bytes of a stored head (inline in its metadata, or a file in the bank folder `dir`),
 * checked against their checksum.
 */
export function readHeadModel(
  dir: string | undefined,
  head: HeadMeta,
  precision: HeadPrecision = head.precision,
): Uint8Array {
  const entry = head.files[precision];
  if (head.inline) {
    const bytes = Buffer.from(head.inline[precision], 'base64');
    if (sha256(bytes) !== entry.sha256)
      throw new SpiError(
        'DATA_LOSS',
        `the ${precision} head model in the bank's metadata does not match its checksum`,
      );
    return bytes;
  }
  if (dir === undefined)
    throw new SpiError('FAILED_PRECONDITION', 'the bank records a head but carries no model');
  const file = path.join(dir, entry.file);
  if (!fs.existsSync(file))
    throw new SpiError(
      'FAILED_PRECONDITION',
      `bank ${dir} records a head but has no ${entry.file} (a version grown by spi fit --add before heads were carried: fit again with --head)`,
    );
  const bytes = fs.readFileSync(file);
  if (sha256(bytes) !== entry.sha256)
    throw new SpiError('DATA_LOSS', `bank ${dir}: ${entry.file} does not match its checksum (corrupt file)`);
  return bytes;
}

/** The three maps of one image, from one embedding. */
export interface HeadInspection {
  bank: Inspection;
  head: Inspection;
  combined: Inspection;
  /** The bank's embedding (all three came from it unless the head has stages of its own). */
  embedding: ImageEmbedding;
  /** The embedding the head scored: `embedding`, or the head's own stages' (HeadMeta.stages). */
  headEmbedding: ImageEmbedding;
  timingsMs: { embed: number; search: number; head: number; score: number };
}

/**
 * Inspects with a bank (or a fused bank) and its head. `mode` picks which of the three verdicts
 * inspectImage returns; the threshold is that mode's own unless one is given.
 */
export class HeadInspector {
  /** The bank side: a single bank's Inspector, or a FusedInspector (head-base.ts). */
  readonly base: HeadBase;
  readonly mode: HeadMode;

  constructor(
    bank: Inspector | HeadBase,
    /** The extractor of the embeddings the head scores (a fused bank's first member's). */
    private readonly extractor: FeatureExtractor,
    private readonly session: HeadSession,
    mode?: HeadMode,
    private readonly limits: DecodeLimits = DEFAULT_DECODE_LIMITS,
    /** The head's own stages' extractor (HeadMeta.stages), closed with this inspector when owned. */
    private readonly own?: Partial<OwnedExtractor> & Pick<OwnedExtractor, 'extractor'>,
  ) {
    this.base = bank instanceof Inspector ? headBaseOf(bank) : bank;
    const head = this.base.meta.head;
    if (!head) throw new SpiError('FAILED_PRECONDITION', `bank ${this.base.meta.name} has no head`);
    this.mode = mode ?? head.mode;
  }

  /** The bank's metadata with the threshold of this inspector's mode. */
  get meta(): BankMeta {
    return { ...this.base.meta, threshold: this.thresholdOf(this.mode), thresholdByCategory: undefined };
  }

  thresholdOf(mode: HeadMode): Threshold {
    const meta = this.base.meta;
    return mode === 'bank' ? meta.threshold : meta.head!.thresholds[mode];
  }

  async inspectBytes(bytes: Uint8Array, threshold?: number, deadline?: number): Promise<Inspection> {
    const t0 = performance.now();
    const image = await decodeImage(bytes, this.limits);
    const decode = performance.now() - t0;
    const r = await this.inspectImage(image, threshold, deadline);
    r.timingsMs.decode = decode;
    return r;
  }

  async inspectImage(image: RgbImage, threshold?: number, deadline?: number): Promise<Inspection> {
    if (this.mode === 'head') {
      const t0 = performance.now();
      const embedding = await (this.own?.extractor ?? this.extractor).embed(image);
      const t1 = performance.now();
      const scores = await this.session.score(embedding.vectors);
      const t2 = performance.now();
      const r = scorePatches(
        this.base.primary,
        embedding,
        scores,
        image,
        threshold ?? this.thresholdOf('head').value,
      );
      r.timingsMs = { decode: 0, embed: t1 - t0, search: t2 - t1, score: performance.now() - t2 };
      return r;
    }
    const all = await this.inspectAll(image, deadline, threshold);
    const r = all[this.mode];
    r.timingsMs = {
      decode: 0,
      embed: all.timingsMs.embed,
      search: all.timingsMs.search + all.timingsMs.head,
      score: all.timingsMs.score,
    };
    return r;
  }

  /** All three verdicts of an image, each at its own threshold (or `threshold` for all). */
  async inspectAll(image: RgbImage, deadline?: number, threshold?: number): Promise<HeadInspection> {
    const meta = this.base.meta;
    const head = meta.head!;
    const primary = this.base.primary;
    const { inspection: bankR, embedding } = await this.base.inspectEmbedded(
      image,
      threshold ?? meta.threshold.value,
      deadline,
    );
    const t0 = performance.now();
    const headEmbedding = this.own ? await this.own.extractor.embed(image) : embedding;
    const headScores = await this.session.score(headEmbedding.vectors);
    const headMs = performance.now() - t0;
    const t1 = performance.now();
    const headR = scorePatches(
      primary,
      headEmbedding,
      headScores,
      image,
      threshold ?? head.thresholds.head.value,
    );
    const members = combinationMembers(head.standardisation, head.combination.headWeight);
    const map = fuseMaps(members, (i) => (i === 0 ? bankR.map : headR.map));
    const combined = verdict(
      primary,
      map,
      bankR.canvasWidth,
      bankR.canvasHeight,
      maxOf(map),
      Math.max(bankR.maxPatchScore, headR.maxPatchScore),
      image,
      threshold ?? head.thresholds.combined.value,
    );
    const scoreMs = performance.now() - t1;
    const { embed, search, score } = bankR.timingsMs;
    return {
      bank: bankR,
      head: headR,
      combined,
      embedding,
      headEmbedding,
      timingsMs: { embed, search, head: headMs, score: score + scoreMs },
    };
  }

  async close(): Promise<void> {
    await this.session.close();
    await this.own?.close?.();
  }
}

/**
 * The inspector of an opened bank (or fused bank) with its head (the bank's own inspector when it
 * has none and `mode` is not asked for): `mode` and `precision` default to what the bank records.
 */
export async function headInspectorFor(
  pool: BackbonePool,
  /** The bank folder (absent for a cluster version: its head is inline). */
  dir: string | undefined,
  bank: Inspector | FusedInspector,
  options: { mode?: HeadMode; precision?: HeadPrecision } = {},
): Promise<HeadInspector | undefined> {
  const base = headBaseOf(bank);
  const head = base.meta.head;
  if (!head) {
    if (options.mode && options.mode !== 'bank')
      throw invalid(`bank ${base.meta.name} has no head (build it with spi fit --head glass)`);
    return undefined;
  }
  const session = await HeadSession.create(readHeadModel(dir, head, options.precision), head.dim);
  const own = head.stages
    ? { extractor: await headExtractorFor(pool, base.primary, head.stages) }
    : undefined;
  return new HeadInspector(
    base,
    await extractorForBank(pool, base.primary),
    session,
    options.mode ?? head.mode,
    base.limits,
    own,
  );
}

/** A head fitted beside a freshly fitted bank, ready to inspect in this process (spi eval). */
export async function fitHeadInspector(
  extractor: FeatureExtractor,
  bank: FittedBank,
  images: ImageSource[],
  settings: FitSettings,
  options: HeadFitOptions & { mode?: HeadMode },
): Promise<HeadInspector> {
  const head = await fitHead(extractor, bank, images, settings, options);
  const meta = completeMeta(
    { ...bank.meta, head: { ...head.meta, mode: options.mode ?? 'combined' } },
    bank.dim,
    bank.index.size,
  );
  return inspectorWith(
    new Inspector(meta, extractor, new LocalSearcher(bank.index, bank.vectors)),
    extractor,
    head,
  );
}

/** The same beside a freshly fitted fused bank (its metadata gets the head). */
export async function fitFusedHeadInspector(
  fitted: FittedFusion,
  extractors: FeatureExtractor[],
  images: ImageSource[],
  settings: FitSettings,
  options: HeadFitOptions & { mode?: HeadMode },
  /** The extractors the inspector embeds with (default: `extractors`, the fit's). */
  inspectWith: FeatureExtractor[] = extractors,
): Promise<HeadInspector> {
  const head = await fitFusedHead(fitted, extractors, images, settings, options);
  fitted.meta.head = { ...head.meta, mode: options.mode ?? 'combined' };
  return inspectorWith(fusedInspector(fitted, inspectWith), inspectWith[0], head);
}

async function inspectorWith(
  bank: Inspector | FusedInspector,
  extractor: FeatureExtractor,
  head: FittedHead,
) {
  const session = await HeadSession.create(
    head.meta.precision === 'int8' ? head.int8 : head.float,
    head.meta.dim,
  );
  const base = headBaseOf(bank);
  const own = head.meta.stages ? await ownHeadExtractor(extractor, head.meta.stages) : undefined;
  return new HeadInspector(base, extractor, session, undefined, base.limits, own);
}

/** Image AUROC, pixel AUROC and PRO of each of the three scores (spi eval with a head). */
export class HeadModeMetrics {
  private readonly scores: Record<HeadMode, number[]> = { bank: [], head: [], combined: [] };
  private readonly maps: Record<HeadMode, Float32Array[]> = { bank: [], head: [], combined: [] };
  private readonly labels: number[] = [];
  private readonly masks: Uint8Array[] = [];
  private readonly widths: number[] = [];
  private headMs = 0;

  /** `pixels` false: the image counts for the image metrics only (a defective image without a mask). */
  add(all: HeadInspection, label: number, mask: Uint8Array, pixels = true): void {
    for (const m of HEAD_MODES) {
      this.scores[m].push(all[m].score);
      if (pixels) this.maps[m].push(all[m].map);
    }
    this.labels.push(label);
    if (pixels) {
      this.masks.push(mask);
      this.widths.push(all.bank.canvasWidth);
    }
    this.headMs += all.timingsMs.head;
  }

  summary(): Record<HeadMode, { imageAuroc: number; pixelAuroc?: number; pro?: number }> & {
    headMsPerImage: number;
  } {
    const hasMasks = this.masks.some((m) => m.some((v) => v > 0));
    const row = (m: HeadMode) => ({
      imageAuroc: rocAuc(this.scores[m], this.labels),
      ...(hasMasks
        ? {
            pixelAuroc: pixelAuroc(this.maps[m], this.masks),
            pro: pro(this.maps[m], this.masks, 0.3, { width: this.widths }),
          }
        : {}),
    });
    return {
      bank: row('bank'),
      head: row('head'),
      combined: row('combined'),
      headMsPerImage: this.headMs / Math.max(1, this.labels.length),
    };
  }
}

/** What a cluster build asks for (structured-clone safe: it travels to the fit worker). */
export type HeadRequest = Omit<HeadFitOptions, 'onProgress' | 'onEpoch' | 'limits'> & { mode: HeadMode };

/**
 * Trains a head beside a bank fitted in this process and records it, models inline, in the bank's
 * metadata (the cluster's fit worker: a version's metadata is all a gateway reads).
 */
export async function inlineHead(
  pool: BackbonePool,
  fitted: FittedBank,
  images: ImageSource[],
  settings: FitSettings,
  request: HeadRequest,
  onProgress?: (stage: string, done: number, total: number) => void,
): Promise<void> {
  const extractor = await extractorForBank(pool, completeMeta(fitted.meta, fitted.dim, fitted.index.size));
  const head = await fitHead(extractor, fitted, images, settings, { ...request, onProgress });
  fitted.meta.head = inlined(head, request.mode);
}

/** The same beside a fused bank fitted in this process: the fusion metadata gets the head. */
export async function inlineFusedHead(
  fitted: FittedFusion,
  extractors: FeatureExtractor[],
  images: ImageSource[],
  settings: FitSettings,
  request: HeadRequest,
  onProgress?: (stage: string, done: number, total: number) => void,
): Promise<void> {
  const head = await fitFusedHead(fitted, extractors, images, settings, { ...request, onProgress });
  fitted.meta.head = inlined(head, request.mode);
}

function inlined(head: FittedHead, mode: HeadMode): HeadMeta {
  return {
    ...head.meta,
    mode,
    inline: {
      float: Buffer.from(head.float).toString('base64'),
      int8: Buffer.from(head.int8).toString('base64'),
    },
  };
}
