/**
 * Building a memory bank from good images: embed every patch, subsample by coreset, index, and set
 * the threshold from held-out good images (or a separate folder, or a manual value).
 */
import { BankMeta, DEFAULT_SCORE, ScoreConfig, bankFormatOf, categoryOfSource } from '../bank/bank-meta';
import { sha256 } from '../bank/bank-store';
import { CoresetConfig, CoresetSelection, DEFAULT_CORESET, selectFiltered } from '../coreset/coreset';
import { DEFAULT_OUTLIER_FILTER, OutlierFilterConfig, suspectImages } from '../coreset/outliers';
import { DecodeLimits, DEFAULT_DECODE_LIMITS, DecodeSize, decodeImage, sentSize } from '../image/decode';
import { DEFAULT_VIEW, ViewConfig } from '../image/views';
import { DEFAULT_KNN, KnnConfig, KnnIndex, resolveKnn } from '../knn/index';
import { manualThreshold, thresholdFromNominal } from '../threshold/threshold';
import { FeatureExtractor, ImageEmbedding, concat, decodeSizeFor } from './feature-extractor';
import { BoundedChoice, chooseBounded } from './bounded-fit';
import { MemoryBudget } from './memory-budget';
import { Inspector, NeighbourSearcher, scorePatches } from './inspector';
import { patchScores } from '../score/anomaly-map';
import { NominalReference, leaveOneOut, referenceFrom } from '../score/reference';
import { SpiError, invalid } from '../errors';
import { gatherRows } from '../util/rows';

export interface ImageSource {
  /** Name recorded in the bank (a relative path, an upload name). */
  path: string;
  read(): Promise<Uint8Array>;
  /**
   * The file the bytes lie in on this machine, when they do: a fit on a worker thread reads them
   * there itself instead of being handed a copy of every image.
   */
  file?: string;
}

export interface FitSettings {
  name: string;
  version: number;
  categories: string[];
  view: ViewConfig;
  projectionDim: number;
  projectionSeed: number;
  coreset: CoresetConfig;
  knn: KnnConfig;
  score: ScoreConfig;
  /** Fraction of the good images held back to set the threshold (ignored with thresholdImages). */
  holdoutFraction: number;
  /** A manual threshold; skips the automatic one. */
  threshold?: number;
  /** Patch-level outlier filter before the coreset (coreset/outliers.ts); absent or fraction 0 = off. */
  outliers?: OutlierFilterConfig;
  /** A memory budget: candidates spill to disk beyond it (bounded-fit.ts); absent = all in memory. */
  memory?: MemoryBudget;
}

export const DEFAULT_FIT: Omit<FitSettings, 'name'> = {
  version: 1,
  categories: [],
  view: DEFAULT_VIEW,
  projectionDim: 0,
  projectionSeed: 7,
  coreset: DEFAULT_CORESET,
  knn: DEFAULT_KNN,
  score: DEFAULT_SCORE,
  holdoutFraction: 0.1,
  outliers: DEFAULT_OUTLIER_FILTER,
};

export type FitProgress = (stage: 'embed' | 'coreset' | 'threshold', done: number, total: number) => void;

export interface FittedBank {
  meta: Omit<BankMeta, 'vectors' | 'format'>;
  vectors: Float32Array;
  dim: number;
  index: KnnIndex;
  /** The held-out images' maps as the threshold scored them (only with keepHeldOutMaps; not saved). */
  heldOutMaps?: Float32Array[];
}

/**
 * Local faiss search behind the searcher interface the inspector uses; with the bank's `vectors`,
 * also its rows (the re-weighted image score reads its match's neighbourhood).
 */
export class LocalSearcher implements NeighbourSearcher {
  constructor(
    readonly index: KnnIndex,
    private readonly vectors?: Float32Array,
  ) {}

  search(queries: Float32Array, _dim: number, k: number) {
    return this.index.search(queries, k);
  }

  async bankRows(ids: ArrayLike<number>, dim: number): Promise<Float32Array> {
    if (!this.vectors)
      throw new SpiError('FAILED_PRECONDITION', 'this in-process bank was opened without its rows');
    return copyRows(this.vectors, dim, ids);
  }
}

/** Rows `ids` of a row-major [rows x dim] array, one after another; an id outside it is refused. */
export function copyRows(vectors: Float32Array, dim: number, ids: ArrayLike<number>): Float32Array {
  const rows = vectors.length / dim;
  for (let i = 0; i < ids.length; i++)
    if (!Number.isInteger(ids[i]) || ids[i] < 0 || ids[i] >= rows)
      throw invalid(`bank row ${ids[i]} is outside 0..${rows - 1}`);
  return gatherRows(vectors, dim, ids);
}

export async function fitBank(
  extractor: FeatureExtractor,
  images: ImageSource[],
  settings: FitSettings,
  options: {
    thresholdImages?: ImageSource[];
    limits?: DecodeLimits;
    onProgress?: FitProgress;
    /** Keep the held-out maps (a fused bank normalises its members by them). */
    keepHeldOutMaps?: boolean;
  } = {},
): Promise<FittedBank> {
  if (images.length === 0) throw invalid('no good images to build the bank from');
  // Checked before the (long) embedding: one mean per position only means something for one product.
  if (settings.score.reference === 'mean' && settings.categories.length > 1)
    throw invalid('a nominal reference is per product: not available in a unified multi-category bank');
  if (settings.score.imageScore === 'reweighted' && settings.score.reference === 'mean')
    throw invalid('the reweighted image score does not go with a nominal reference');
  const limits = options.limits ?? DEFAULT_DECODE_LIMITS;
  const split = splitHoldout(images, settings, options.thresholdImages);
  const sources: { path: string; sha256: string }[] = [];
  const embedded = embedSources(extractor, split.train, limits, sources, options.onProgress);
  const onCoreset = (d: number, t: number) => options.onProgress?.('coreset', d, t);
  const chosen = settings.memory
    ? await chooseBounded(
        embedded,
        split.train.length,
        settings.coreset,
        settings.outliers,
        settings.memory,
        onCoreset,
      )
    : await chooseInMemory(embedded, settings, onCoreset);
  const { vectors, dim } = chosen;
  const knn = resolveKnn(settings.knn, vectors.length / dim);
  const index = KnnIndex.build(vectors, dim, knn);
  const meta: FittedBank['meta'] = {
    name: settings.name,
    version: settings.version,
    createdAt: new Date().toISOString(),
    model: {
      id: extractor.backbone.id,
      sha256: extractor.backbone.spec.sha256,
      stages: extractor.backbone.stages.map((s) => s.name),
    },
    view: settings.view,
    embedding: {
      dim,
      projection:
        settings.projectionDim > 0 ? { dim: settings.projectionDim, seed: settings.projectionSeed } : null,
      cellPlacement: extractor.options.cellPlacement !== false,
    },
    coreset: { ...settings.coreset, inputPatches: chosen.inputPatches, keptPatches: vectors.length / dim },
    knn,
    score: settings.score,
    threshold: { value: Infinity, method: 'manual' },
    categories: settings.categories,
    sources,
    ...outlierMeta(chosen, settings.outliers, sources),
    ...(chosen.memory ? { memory: chosen.memory } : {}),
  };
  const heldOutMaps = options.keepHeldOutMaps ? [] : undefined;
  Object.assign(
    meta,
    await chooseThreshold(
      meta,
      extractor,
      new LocalSearcher(index, vectors),
      split.holdout,
      settings.threshold,
      limits,
      options.onProgress,
      heldOutMaps,
    ),
  );
  return { meta, vectors, dim, index, ...(heldOutMaps ? { heldOutMaps } : {}) };
}

/** Each training image decoded and embedded in turn; `sources` gets its name and digest. */
async function* embedSources(
  extractor: FeatureExtractor,
  train: ImageSource[],
  limits: DecodeLimits,
  sources: { path: string; sha256: string }[],
  onProgress?: FitProgress,
): AsyncGenerator<{ index: number; embedding: ImageEmbedding }> {
  for (const [index, source] of train.entries()) {
    const bytes = await source.read();
    sources.push({ path: source.path, sha256: sha256(bytes) });
    const image = await decodeNamed(source.path, bytes, limits, decodeSizeFor(extractor));
    yield { index, embedding: await extractor.embed(image) };
    onProgress?.('embed', index + 1, train.length);
  }
}

/** Every image's patches in memory at once, then the coreset (the fit without a memory budget). */
async function chooseInMemory(
  embedded: AsyncIterable<{ embedding: ImageEmbedding }>,
  settings: FitSettings,
  onProgress: (done: number, total: number) => void,
): Promise<Omit<BoundedChoice, 'memory'> & { memory?: undefined }> {
  const parts: Float32Array[] = [];
  let dim = 0;
  for await (const { embedding } of embedded) {
    dim = embedding.dim;
    parts.push(embedding.vectors);
  }
  const all = concat(parts);
  const groups = parts.map((p) => p.length / dim);
  parts.length = 0;
  const selection = selectFiltered(all, dim, settings.coreset, settings.outliers, onProgress, groups);
  return {
    vectors: gatherRows(all, dim, selection.rows),
    dim,
    inputPatches: all.length / dim,
    outliers: selection.outliers,
  };
}

/** The outlier filter's record for the bank's metadata (nothing when it was off). */
export function outlierMeta(
  selection: Pick<CoresetSelection, 'outliers'>,
  config: OutlierFilterConfig | undefined,
  sources: { path: string }[],
): Pick<BankMeta, 'outliers'> {
  const o = selection.outliers;
  if (!o || !config) return {};
  return {
    outliers: {
      ...config,
      considered: o.considered,
      dropped: o.dropped,
      droppedFraction: o.considered > 0 ? o.dropped / o.considered : 0,
      suspects: suspectImages(o).map((s) => ({
        path: sources[s.group].path,
        dropped: s.dropped,
        candidates: s.candidates,
        share: s.share,
      })),
    },
  };
}

/**
 * The bank's threshold and, in a unified bank, each category's own (from its held-out images); with
 * score.reference 'mean', also the nominal reference those images give (score/reference.ts).
 */
async function chooseThreshold(
  meta: FittedBank['meta'],
  extractor: FeatureExtractor,
  searcher: LocalSearcher,
  holdout: ImageSource[],
  manual: number | undefined,
  limits: DecodeLimits,
  onProgress?: FitProgress,
  maps?: Float32Array[],
): Promise<Pick<BankMeta, 'threshold' | 'thresholdByCategory' | 'reference'>> {
  const withReference = meta.score.reference === 'mean';
  if (manual !== undefined && !withReference) return { threshold: manualThreshold(manual) };
  const inspector = new Inspector(
    completeMeta(meta, searcher.index.dim, searcher.index.size),
    extractor,
    searcher,
    limits,
  );
  if (withReference) {
    const { reference, scores } = await referenceAndScores(inspector, holdout, limits, onProgress, maps);
    return {
      reference,
      threshold: manual !== undefined ? manualThreshold(manual) : thresholdFromNominal(scores),
    };
  }
  const scores: number[] = [];
  for (const [i, source] of holdout.entries()) {
    const { score, map } = await inspector.inspectBytes(await source.read());
    maps?.push(map);
    scores.push(score);
    onProgress?.('threshold', i + 1, holdout.length);
  }
  if (scores.length === 0) {
    throw invalid('need at least 2 good images (one is held back for the threshold), or a manual threshold');
  }
  const threshold = thresholdFromNominal(scores);
  const byCategory = scoresByCategory(holdout, scores, meta.categories);
  if (byCategory.size === 0) return { threshold };
  const thresholdByCategory = Object.fromEntries(
    [...byCategory].map(([category, s]) => [category, thresholdFromNominal(s)]),
  );
  return { threshold, thresholdByCategory };
}

/** A unified bank's held-out scores per product (`scores[i]` is `sources[i]`'s); empty otherwise. */
export function scoresByCategory(
  sources: Pick<ImageSource, 'path'>[],
  scores: number[],
  categories: string[],
): Map<string, number[]> {
  const out = new Map<string, number[]>();
  scores.forEach((score, i) => {
    const category = categoryOfSource(sources[i].path, categories);
    if (category) out.set(category, [...(out.get(category) ?? []), score]);
  });
  return out;
}

/**
 * The held-out images' mean patch scores (the reference) and their image scores, each against the
 * reference of the others (leave-one-out), so the threshold sees them as it will see new images.
 * `prior`: an earlier reference pooled in (score/reference.ts `referenceFrom`; incremental banks).
 */
export async function referenceAndScores(
  inspector: Inspector,
  holdout: ImageSource[],
  limits: DecodeLimits,
  onProgress?: FitProgress,
  maps?: Float32Array[],
  prior?: NominalReference,
): Promise<{ reference: NominalReference; scores: number[] }> {
  const meta = inspector.meta;
  const measured = [];
  const grids: Float32Array[] = [];
  for (const [i, source] of holdout.entries()) {
    const image = await decodeNamed(source.path, await source.read(), limits, inspector.decodeSize);
    const { embedding, knn } = await inspector.search(image);
    grids.push(patchScores(knn.distances, knn.k, meta.score.k));
    // Only the grid geometry is needed from here on, not the patch vectors.
    measured.push({
      embedding: { ...embedding, vectors: undefined },
      size: sentSize(image),
    });
    onProgress?.('threshold', i + 1, holdout.length);
  }
  const reference = referenceFrom(grids, prior);
  const scores = measured.map((m, j) => {
    const r = scorePatches(meta, m.embedding, leaveOneOut(grids, j, prior), m.size, Infinity);
    maps?.push(r.map);
    return r.score;
  });
  return { reference, scores };
}

/** Every n-th image is held back; deterministic so a rebuild gives the same bank. */
export function splitHoldout(images: ImageSource[], settings: FitSettings, thresholdImages?: ImageSource[]) {
  if (thresholdImages && thresholdImages.length > 0) return { train: images, holdout: thresholdImages };
  // A manual threshold needs no held-out images, unless they are to give the nominal reference.
  const needHoldout = settings.threshold === undefined || settings.score.reference === 'mean';
  if (!needHoldout || images.length < 2) return { train: images, holdout: [] };
  const count = Math.max(1, Math.round(images.length * settings.holdoutFraction));
  const step = images.length / count;
  const held = new Set(Array.from({ length: count }, (_, i) => Math.floor(i * step + step / 2)));
  return {
    train: images.filter((_, i) => !held.has(i)),
    holdout: images.filter((_, i) => held.has(i)),
  };
}

/**
 * Decodes a training image (straight to its canvas size with `sizeFor`: the pixels the view would
 * resize it to, in one pass); a bad one is named in the error, so the engineer knows which to fix.
 */
export async function decodeNamed(
  name: string,
  bytes: Uint8Array,
  limits: DecodeLimits,
  sizeFor?: DecodeSize,
) {
  try {
    return await decodeImage(bytes, limits, sizeFor);
  } catch (err) {
    if (err instanceof SpiError) throw new SpiError(err.kind, `image "${name}": ${err.message}`);
    throw err;
  }
}

/** A fitted bank's metadata as stored, for code that inspects with it before (or without) saving. */
export function completeMeta(
  meta: FittedBank['meta'],
  dim: number,
  rows: number,
  vectorsSha256 = '',
): BankMeta {
  return { ...meta, format: bankFormatOf(meta), vectors: { rows, dim, sha256: vectorsSha256, file: '' } };
}

/** An in-process inspector over a freshly fitted bank. */
export function fittedInspector(fitted: FittedBank, extractor: FeatureExtractor): Inspector {
  return new Inspector(
    completeMeta(fitted.meta, fitted.dim, fitted.index.size),
    extractor,
    new LocalSearcher(fitted.index, fitted.vectors),
  );
}
