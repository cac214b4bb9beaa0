/**
 * Command-line flags shared by `spi fit`, `spi eval` and friends, turned into engine settings in one
 * visible hop. Every flag has a default that works for a 224 px inspection.
 */
import { ParseArgsConfig, parseArgs } from 'node:util';
import { DEFAULT_AUTO_SEED, DEFAULT_BUDGET_MS, MIN_AUTO_IMAGES } from '../../lib/autoconfig/select';
import { autoModels } from '../../lib/autoconfig/plan';
import { CoresetMethod, DEFAULT_CORESET } from '../../lib/coreset/coreset';
import { DEFAULT_OUTLIER_FILTER, OutlierFilterConfig } from '../../lib/coreset/outliers';
import { DEFAULT_SCORE, ImageScoreMethod, SHARED_CELL_RULES, SharedCellRule } from '../../lib/bank/bank-meta';
import { DEFAULT_FIT, FitSettings } from '../../lib/patchcore/fit';
import { MemoryBudget, defaultMaxMemory, formatBytes, parseBytes } from '../../lib/patchcore/memory-budget';
import { AUTO_HNSW_MIN_ROWS, DEFAULT_KNN, INDEX_PRESETS, resolveKnn } from '../../lib/knn/index';
import { DEFAULT_MODEL, ExtractorSettings } from '../../lib/patchcore/engine';
import { ViewConfig } from '../../lib/image/views';
import { ReferenceMethod } from '../../lib/score/reference';
import { invalid } from '../../lib/errors';
import { numberFlag } from '../common/numeric-flags';

export const ENGINE_FLAGS = {
  model: { type: 'string', default: DEFAULT_MODEL },
  stages: { type: 'string' },
  resize: { type: 'string', default: '224' },
  crop: { type: 'string', default: '0' },
  scale: { type: 'string', default: '1' },
  tile: { type: 'string', default: '0' },
  overlap: { type: 'string', default: '32' },
  pad: { type: 'string', default: '0' },
  projection: { type: 'string', default: '0' },
  coreset: { type: 'string', default: DEFAULT_CORESET.method },
  ratio: { type: 'string', default: String(DEFAULT_CORESET.ratio) },
  'coreset-size': { type: 'string', default: '0' },
  'coreset-per-image': { type: 'string', default: String(DEFAULT_CORESET.perImage ?? 0) },
  'outlier-filter': { type: 'string', default: String(DEFAULT_FIT.outliers?.fraction ?? 0) },
  index: { type: 'string', default: DEFAULT_KNN.factory },
  nprobe: { type: 'string', default: '8' },
  k: { type: 'string', default: String(DEFAULT_SCORE.k) },
  sigma: { type: 'string', default: String(DEFAULT_SCORE.sigma) },
  'image-score': { type: 'string', default: DEFAULT_SCORE.imageScore },
  'shared-cells': { type: 'string', default: DEFAULT_SCORE.sharedCells },
  reference: { type: 'string', default: DEFAULT_SCORE.reference },
  fuse: { type: 'string' },
  'fuse-ratio': { type: 'string' },
  'fuse-per-image': { type: 'string' },
  holdout: { type: 'string', default: String(DEFAULT_FIT.holdoutFraction) },
  threshold: { type: 'string' },
  name: { type: 'string' },
  batch: { type: 'string', default: '8' },
  auto: { type: 'string', default: 'on' },
  'budget-ms': { type: 'string', default: String(DEFAULT_BUDGET_MS) },
  'auto-seed': { type: 'string', default: String(DEFAULT_AUTO_SEED) },
  'auto-fusion': { type: 'string', default: 'on' },
} satisfies ParseArgsConfig['options'];

/**
 * Flags that set the configuration by hand: any of them turns the automatic choice off (explicit
 * flags win). --model does not: the automatic fit then chooses among that backbone's stages and views.
 */
export const MANUAL_CONFIG_FLAGS = [
  'stages',
  'resize',
  'crop',
  'scale',
  'tile',
  'overlap',
  'pad',
  'projection',
  'reference',
  'fuse',
  'fuse-ratio',
  'fuse-per-image',
] as const;
const CORESET_FLAGS = ['coreset', 'ratio', 'coreset-size', 'coreset-per-image'];

const D = ENGINE_FLAGS;

/** --help lines of ENGINE_FLAGS (spi fit, spi eval); the defaults come from the flags themselves. */
export const ENGINE_USAGE = `backbone:
  --model ID|DIR      a model id under build/models (SPI_MODELS_DIR), a model folder or its spec.json
                      (env SPI_MODEL; default ${D.model.default})
  --stages A,B        layers whose feature maps make a patch's features (default: the model's own
                      default stages; block_5_add,block_9_add for mobilenet_v2-imagenet)
  --projection N      seeded random projection of patch features to N dims; 0 = full width (default ${D.projection.default})
  --batch N           images per backbone call (default ${D.batch.default})
view (how an image becomes what the backbone sees):
  --resize N          canvas: the image resized to NxN; 0 = its own size times --scale (default ${D.resize.default})
  --crop N            centre crop of the canvas, 0 = none (default ${D.crop.default})
  --scale F           canvas scale factor when --resize is 0 (default ${D.scale.default})
  --tile N            tile side fed to the backbone; 0 = the whole canvas in one pass (default ${D.tile.default})
  --overlap N         overlap of neighbouring tiles in pixels, with --tile (default ${D.overlap.default})
  --pad N             mirror the canvas by N px before the backbone and crop the map back, so parts
                      at the frame's edge are not judged on the network's zero padding (default ${D.pad.default})
coreset (which patches the bank keeps):
  --coreset M         greedy (k-center coreset) | random | none = keep every patch (default ${D.coreset.default})
  --ratio R           fraction of the patches kept (default ${D.ratio.default})
  --coreset-size N    number of patches kept; overrides --ratio when > 0 (default ${D['coreset-size'].default})
  --coreset-per-image R  fraction of each image's patches a per-image greedy keeps before the
                      global greedy; 0 = one global greedy (default ${D['coreset-per-image'].default})
  --outlier-filter F  drop the most isolated fraction F of the candidate patches (distance to the
                      ${DEFAULT_OUTLIER_FILTER.k}rd nearest patch of another image) before the coreset: a few
                      defective sheets in the good folder stay out of the bank; 0 = off (default ${D['outlier-filter'].default})
index and scores:
  --index F           faiss factory string, search parameters after it: Flat (exact), hnsw (=
                      ${INDEX_PRESETS.hnsw}: approximate, the 2 % farthest queries
                      searched again exactly), e.g. IVF1024,Flat; auto = Flat below ${AUTO_HNSW_MIN_ROWS} bank rows,
                      hnsw from there (default ${D.index.default})
  --nprobe N          IVF cells searched per query (default ${D.nprobe.default})
  --k N               nearest neighbours per patch; its score is their mean distance (default ${D.k.default})
  --sigma S           Gaussian smoothing of the anomaly map, in canvas pixels (default ${D.sigma.default})
  --image-score M     map-max (max of the smoothed map) | patch-max (max raw patch score) |
                      reweighted (PatchCore: the top patch's score weighted by how sparse the bank
                      is around its match; not with --reference mean) (default ${D['image-score'].default})
  --reference M       none | mean: subtract the held-out good images' mean score at each position;
                      for products always framed the same way, not for varying layouts or unified
                      banks (default ${D.reference.default})
  --shared-cells M    interior | average: a place two overlapping tiles both see is searched once,
                      in the tile that sees it farthest from its edge, or in both and averaged
                      (banks before 2026-12-07) (default ${D['shared-cells'].default})
fused bank (a second member with other stages; maps standardised on held-out good images, averaged):
  --fuse A,B          the second member's stages, e.g. block_2_add,block_5_add; empty = no fusion
  --fuse-ratio R      its coreset ratio (default: --ratio)
  --fuse-per-image R  its per-image greedy fraction (default: --coreset-per-image)
automatic configuration (when none of the view, stage, reference or fuse flags is given):
  --auto on|off       choose backbone, stages, view, reference and fusion on a synthetic validation
                      set made from the good images only (default ${D.auto.default})
  --budget-ms MS      inspection cost allowed per image on this machine; the cheapest candidate
                      within half a point of the best within it is chosen (default ${D['budget-ms'].default})
  --auto-seed N       seed of the synthetic defects (default ${D['auto-seed'].default})
  --auto-fusion on|off  offer fused banks among the candidates (default ${D['auto-fusion'].default}, as CreateBank
                      does; with --head too: the head then scores the first member's embeddings)
threshold and bank:
  --holdout F         fraction of the good images held back to set the threshold (default ${D.holdout.default})
  --threshold T       a manual threshold instead of the automatic one (score >= T is defective)
  --name NAME         name recorded in the bank (default: the data folder's name)`;

/** The option names given on the command line (parseArgs fills defaults, so values cannot tell). */
export function givenFlags(argv: string[], options: ParseArgsConfig['options']): Set<string> {
  const { tokens } = parseArgs({ args: argv, options, tokens: true, allowPositionals: true, strict: false });
  return new Set(tokens.filter((t) => t.kind === 'option').map((t) => t.name));
}

export interface AutoRequest {
  models: string[];
  budgetMs: number;
  seed: number;
  fusion: boolean;
  /** The user's coreset flags win over the candidate's coreset. */
  overrides: { coreset: boolean };
}

/**
 * The automatic fit's settings, or undefined when it is off: --auto off, a manual configuration
 * flag given (explicit flags win), or fewer good images than it can validate on.
 */
export function autoFrom(v: EngineFlagValues, given: Set<string>, images: number): AutoRequest | undefined {
  if (!onOff(v.auto ?? 'on', '--auto') || MANUAL_CONFIG_FLAGS.some((f) => given.has(f))) return undefined;
  if (images < MIN_AUTO_IMAGES) {
    console.error(
      `only ${images} good images: too few to validate candidates on (${MIN_AUTO_IMAGES} needed); using the default configuration`,
    );
    return undefined;
  }
  const budgetMs = v['budget-ms'] === undefined ? DEFAULT_BUDGET_MS : num(v, 'budget-ms');
  if (!(budgetMs > 0)) throw invalid('--budget-ms must be a positive number of milliseconds');
  return {
    models: autoModels(given.has('model') || process.env.SPI_MODEL ? v.model : undefined),
    budgetMs,
    seed: v['auto-seed'] === undefined ? DEFAULT_AUTO_SEED : num(v, 'auto-seed'),
    fusion: onOff(v['auto-fusion'] ?? 'on', '--auto-fusion'),
    overrides: { coreset: CORESET_FLAGS.some((f) => given.has(f)) },
  };
}

function onOff(value: string, flag: string): boolean {
  if (value !== 'on' && value !== 'off') throw invalid(`${flag} must be on or off, got "${value}"`);
  return value === 'on';
}

export type EngineFlagValues = { [K in keyof typeof ENGINE_FLAGS]?: string };

/** A number flag that has a value (a default or the user's). */
export function num(values: Record<string, unknown>, key: string): number {
  const raw = values[key];
  return numberFlag(key, raw === undefined ? undefined : String(raw));
}

export function viewFrom(v: EngineFlagValues): ViewConfig {
  const pad = num(v, 'pad');
  if (!Number.isInteger(pad) || pad < 0) throw invalid(`--pad must be a whole number of pixels >= 0`);
  return {
    resize: num(v, 'resize'),
    crop: num(v, 'crop'),
    scale: num(v, 'scale'),
    tile: num(v, 'tile'),
    overlap: num(v, 'overlap'),
    pad,
  };
}

export function extractorFrom(v: EngineFlagValues): ExtractorSettings {
  return {
    model: v.model ?? DEFAULT_MODEL,
    stages: v.stages ? v.stages.split(',').map((s) => s.trim()) : undefined,
    view: viewFrom(v),
    projectionDim: num(v, 'projection'),
    projectionSeed: DEFAULT_FIT.projectionSeed,
    batchSize: num(v, 'batch'),
  };
}

export function fitFrom(v: EngineFlagValues, name: string, categories: string[]): FitSettings {
  const method = (v.coreset ?? 'greedy') as CoresetMethod;
  if (!['greedy', 'random', 'none'].includes(method))
    throw invalid(`--coreset must be greedy, random or none, got "${method}"`);
  const imageScore = (v['image-score'] ?? 'map-max') as ImageScoreMethod;
  if (!['map-max', 'patch-max', 'reweighted'].includes(imageScore))
    throw invalid(`--image-score must be map-max, patch-max or reweighted`);
  const reference = (v.reference ?? 'none') as ReferenceMethod;
  if (!['none', 'mean'].includes(reference)) throw invalid(`--reference must be none or mean`);
  if (imageScore === 'reweighted' && reference === 'mean')
    throw invalid('--image-score reweighted does not go with --reference mean');
  const sharedCells = (v['shared-cells'] ?? DEFAULT_SCORE.sharedCells) as SharedCellRule;
  if (!SHARED_CELL_RULES.includes(sharedCells))
    throw invalid(`--shared-cells must be ${SHARED_CELL_RULES.join(' or ')}, got "${sharedCells}"`);
  return {
    ...DEFAULT_FIT,
    name: v.name ?? name,
    categories,
    view: viewFrom(v),
    projectionDim: num(v, 'projection'),
    coreset: {
      ...DEFAULT_CORESET,
      method,
      ratio: num(v, 'ratio'),
      size: num(v, 'coreset-size'),
      perImage: num(v, 'coreset-per-image'),
    },
    knn: resolveKnn({ factory: v.index ?? DEFAULT_KNN.factory, nprobe: num(v, 'nprobe') }),
    score: { ...DEFAULT_SCORE, k: num(v, 'k'), sigma: num(v, 'sigma'), imageScore, reference, sharedCells },
    outliers: outliersFrom(v),
    holdoutFraction: num(v, 'holdout'),
    threshold: v.threshold !== undefined ? num(v, 'threshold') : undefined,
  };
}

/** `--max-memory` (spi fit, spi eval): the fit's memory budget. */
export const MEMORY_FLAGS = { 'max-memory': { type: 'string' } } satisfies ParseArgsConfig['options'];

export const MEMORY_USAGE = `  --max-memory SIZE   memory budget of the fit, e.g. 2GiB or 800MiB: beyond it the patches (each
                      image's reduced by --coreset-per-image as it comes) spill to a temporary file
                      in $TMPDIR and the coreset is chosen chunk by chunk, so thousands of images
                      fit in fixed memory; new images added to a bank go in chunks that fit, each
                      added to it in turn; an error when not even the bank fits (default: half
                      this machine's RAM, 1 to 16 GiB: ${formatBytes(defaultMaxMemory())} here)`;

/** `--max-memory SIZE` (spi fit, spi eval): the fit's memory budget; absent = the machine's default. */
export function memoryFrom(v: { 'max-memory'?: string }): MemoryBudget {
  const raw = v['max-memory'];
  if (raw === undefined) return { maxBytes: defaultMaxMemory() };
  const maxBytes = parseBytes(raw);
  if (!maxBytes) throw invalid(`--max-memory must be a size such as 2GiB or 800MiB, got "${raw}"`);
  return { maxBytes };
}

function outliersFrom(v: EngineFlagValues): OutlierFilterConfig {
  const fraction =
    v['outlier-filter'] === undefined ? (DEFAULT_FIT.outliers?.fraction ?? 0) : num(v, 'outlier-filter');
  if (!(fraction >= 0 && fraction < 0.5))
    throw invalid('--outlier-filter must be a fraction from 0 to below 0.5');
  return { ...DEFAULT_OUTLIER_FILTER, fraction };
}

/**
 * The further members of a fused bank (patchcore/fusion.ts): `--fuse` names the stages of a second
 * member (e.g. block_2_add,block_5_add beside the default block_5_add,block_9_add), with its own
 * coreset ratio and per-image fraction (`--fuse-ratio`, `--fuse-per-image`; default: the first
 * member's). Every other setting is shared. Empty when there is no --fuse.
 */
export function fuseMembersFrom(v: EngineFlagValues): EngineFlagValues[] {
  if (!v.fuse) return [];
  return [
    {
      ...v,
      stages: v.fuse,
      ratio: v['fuse-ratio'] || v.ratio,
      'coreset-per-image': v['fuse-per-image'] || v['coreset-per-image'],
    },
  ];
}
