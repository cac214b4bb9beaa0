/**
 * The automatic fit's choice: which backbone, stages, view and reference a new job gets, chosen
 * from its good images only. The held-out good images (the threshold's) and defective copies of
 * them (validation-set.ts) form a synthetic validation set; every candidate (candidates.ts) is
 * scored on it by successive halving: all of them with a bank from a few training images, the
 * better half again with twice as many, and so on. The final pick respects a cost budget: among
 * the candidates within it, the cheapest whose score is within half a point of the best.
 *
 * Nothing here ever reads a test image: callers hand it the training sources and nothing else.
 */
import { RgbImage, DecodeLimits, DEFAULT_DECODE_LIMITS, decodeImage } from '../image/decode';
import { BackbonePool, createExtractor } from '../patchcore/engine';
import { DEFAULT_FIT, ImageSource, splitHoldout } from '../patchcore/fit';
import { SpiError, invalid } from '../errors';
import {
  BackboneInfo,
  BaseCandidate,
  Configuration,
  baseCandidates,
  configurationsOf,
  describe,
  int8BuildsOf,
  variantsOf,
} from './candidates';
import { listModels } from '../../models/registry';
import { Registration, measureRegistration } from './registration';
import { BaseRun, BaseTrial, calibrateSearch, maskToGrid, scoreConfiguration, startClock } from './trial';
import { ValidationItem, buildValidationSet, validationSummary } from './validation-set';

/**
 * Default cost budget, ms per image on the machine that fits (2 cores here): room for a 640 px
 * board in stride-4 tiles, the one view that sees few-pixel defects on it, predicted at ~2.1 s
 * here; whole-frame candidates cost 40-500 ms, and the budget keeps out what would need a rack per
 * press (stride-4 tiles of larger frames, InceptionV3 on tiles). Within it, the half-point rule
 * still prefers the cheap candidate whenever it is as good.
 */
export const DEFAULT_BUDGET_MS = 3000;
/** Candidates within this much of the best score count as equally good; the cheapest wins. */
export const SCORE_TOLERANCE = 0.005;
/** Costs within this factor of the cheapest count as equal (timing noise must not decide). */
export const COST_TIE = 1.25;
/** Training images of the first rung; each later rung doubles them. */
export const FIRST_RUNG_IMAGES = 8;
export const MAX_RUNGS = 3;
/** Held-out good images the validation needs at least (more than the threshold alone would). */
export const MIN_HELD_OUT = 10;
/** Held-out images the validation uses at most (each gets two defective copies). */
export const MAX_VALIDATION_GOODS = 12;
export const DEFAULT_AUTO_SEED = 1;
/** Fewer good images than this leave too few to validate on: the defaults are used instead. */
export const MIN_AUTO_IMAGES = 8;

export interface AutoOptions {
  pool: BackbonePool;
  /** Backbone ids or folders to choose among. */
  models: string[];
  budgetMs?: number;
  seed?: number;
  /** The caller's holdout fraction; raised when it leaves fewer than MIN_HELD_OUT images. */
  holdoutFraction?: number;
  /** Separate good images for the threshold (--threshold-dir): they are the validation's good half. */
  heldOut?: ImageSource[];
  /** Offer fused banks (default true). */
  fusion?: boolean;
  /** The index the final bank will be built with (`--index`; default `auto`): what costs are priced as. */
  index?: string;
  /** Installed INT8 backbone builds to try for the finalists (default: what build/models holds). */
  int8Builds?: string[];
  /** Keep the trials and every configuration in the result (AutoChoice.study). */
  keepTrials?: boolean;
  limits?: DecodeLimits;
  onProgress?: (stage: string, done: number, total: number) => void;
}

export interface AutoTableRow {
  id: string;
  description: string;
  /** Last rung it was scored at (0 = first) and the training images of that rung. */
  rung: number;
  trainImages: number;
  imageAuroc: number;
  pixelAuroc: number;
  score: number;
  msPerImage: number;
  status: 'chosen' | 'finalist' | 'halved' | 'over budget';
  /** A finalist's cheaper variant ("bank50%", "int8"), scored on the last rung only. */
  variant?: string;
  /** The finalist it is a variant of. */
  variantOf?: string;
  /** Its scores at the first rung, where every configuration had the same images (for ranking studies). */
  firstRung: { imageAuroc: number; pixelAuroc: number; score: number };
}

/** What the bank records of the choice (BankMeta.autoConfig) and the report shows. */
export interface AutoConfigRecord {
  chosen: string;
  description: string;
  reason: string;
  budgetMs: number;
  seed: number;
  images: { train: number; heldOut: number; syntheticDefects: number; byKind: Record<string, number> };
  registration: Registration;
  rungs: { trainImages: number; configurations: number }[];
  /** Every configuration scored, best first. */
  table: AutoTableRow[];
  /** Bases dropped before any scoring because embedding alone exceeded the budget. */
  skipped: { key: string; embedMs: number }[];
  /** Time spent on each base (embedding, coreset, search) over all rungs, seconds. */
  secondsByBase: Record<string, number>;
  selectionMs: number;
  /** The chosen configuration's fit on all the images, after the selection (filled in then). */
  fitMs?: number;
  /** Measured exact-search speed the costs were predicted with (ns per multiply-add). */
  searchNsPerMac: number;
  /** Measured `hnsw` graph-search speed (ns per query, width unit and doubling of the bank). */
  searchHnswNs?: number;
  /** Synthetic defects the fitted bank flags at its threshold (filled in after the final fit). */
  syntheticRecall?: number;
}

export interface AutoChoice {
  configuration: Configuration;
  /** The holdout fraction the final fit must use to hold back the same images. */
  holdoutFraction: number;
  record: AutoConfigRecord;
  /** The synthetic validation items (kept in memory for the recall after the final fit). */
  validation: ValidationItem[];
  /** With AutoOptions.keepTrials: everything scored, for studies (bench/auto-ranking.ts). */
  study?: {
    configurations: Configuration[];
    trials: Map<string, BaseTrial>;
    trainPool: RgbImage[];
    finalImages: number;
    heldOut: { name: string; image: RgbImage }[];
  };
}

export async function chooseConfiguration(sources: ImageSource[], o: AutoOptions): Promise<AutoChoice> {
  const started = performance.now();
  const budgetMs = o.budgetMs ?? DEFAULT_BUDGET_MS;
  const seed = o.seed ?? DEFAULT_AUTO_SEED;
  if (!(budgetMs > 0))
    throw invalid(`--budget-ms must be a positive number of milliseconds, got ${budgetMs}`);
  if (sources.length < MIN_AUTO_IMAGES)
    throw invalid(`the automatic fit needs at least ${MIN_AUTO_IMAGES} good images, got ${sources.length}`);
  const limits = o.limits ?? DEFAULT_DECODE_LIMITS;
  const heldOut = Math.max(
    Math.round(sources.length * (o.holdoutFraction ?? DEFAULT_FIT.holdoutFraction)),
    Math.min(MIN_HELD_OUT, Math.floor(sources.length / 4)),
  );
  const holdoutFraction = heldOut / sources.length;
  const split = splitHoldout(sources, { ...DEFAULT_FIT, name: '', holdoutFraction }, o.heldOut);
  if (split.holdout.length < 2) throw invalid('the automatic fit needs at least 2 good images to hold back');
  const rungSizes = rungs(split.train.length);
  o.onProgress?.('auto: decode', 0, split.holdout.length + rungSizes.at(-1)!);
  const goods = await decodeAll(split.holdout, limits);
  const trainPool = (await decodeAll(spread(split.train, rungSizes.at(-1)!), limits)).map((t) => t.image);
  // The threshold uses every held-out image; the validation a spread of them (its cost is per item).
  const validation = buildValidationSet(spread(goods, MAX_VALIDATION_GOODS), { seed });
  const gridMasks = validation.map((v) => maskToGrid(v.mask, v.image.width, v.image.height));
  const registration = measureRegistration([...goods.map((g) => g.image), ...trainPool.slice(0, 12)]);

  const backbones = await Promise.all(o.models.map((m) => backboneInfo(o.pool, m)));
  const rates = { ...(await calibrateSearch()), index: o.index };
  // The views fit the job's typical frame (a folder may mix sizes), and are timed on it.
  const typical = typicalImage([...goods.map((g) => g.image), ...trainPool]);
  const { trials, skipped } = await screenBases(
    o.pool,
    baseCandidates({ width: typical.width, height: typical.height, backbones }),
    typical,
    budgetMs,
  );

  const all = configurationsOf(
    [...trials.values()].map((t) => t.base),
    registration.registered,
    o.fusion ?? true,
  );
  let alive = all;
  const finalTrain = split.train.length;
  const rows = new Map<string, AutoTableRow>();
  const rungLog: AutoConfigRecord['rungs'] = [];
  const secondsByBase: Record<string, number> = {};
  let evaluated = 0;
  let toEvaluate = rungSizes.length * trials.size;
  // Runs the configurations' bases on a rung (bases already run there are kept) and scores them.
  const scoreRung = async (r: number, configs: Configuration[], runs: Map<string, BaseRun>) => {
    const size = rungSizes[r];
    // The first rung, where every candidate runs, judges on half the defects; later rungs on all.
    const items = validation.filter(
      (v, i) => r > 0 || rungSizes.length === 1 || v.label === 0 || i % 2 === 0,
    );
    const masks = items.map((v) => gridMasks[validation.indexOf(v)]);
    const bases = new Map(configs.flatMap((c) => c.members.map((m) => [m.key, m] as const)));
    for (const key of bases.keys()) {
      if (runs.has(key)) continue;
      const t0 = performance.now();
      runs.set(key, await trials.get(key)!.run(trainPool.slice(0, size), items, finalTrain));
      secondsByBase[key] = (secondsByBase[key] ?? 0) + (performance.now() - t0) / 1000;
      o.onProgress?.('auto: candidates', ++evaluated, toEvaluate);
    }
    const finalBank = (b: BaseCandidate) => trials.get(b.key)!.bankPatchesFor(finalTrain);
    for (const c of configs) {
      const s = scoreConfiguration(c, runs, items, masks, finalBank, rates);
      const scores = {
        imageAuroc: round4(s.imageAuroc),
        pixelAuroc: round4(s.pixelAuroc),
        score: round4(s.score),
      };
      rows.set(c.id, {
        ...scores,
        firstRung: rows.get(c.id)?.firstRung ?? scores,
        id: c.id,
        description: describe(c),
        rung: r,
        trainImages: size,
        msPerImage: Math.round(s.msPerImage * 10) / 10,
        status: s.msPerImage > budgetMs ? 'over budget' : 'halved',
        ...(c.variant ? { variant: c.variant, variantOf: c.variantOf } : {}),
      });
    }
  };
  let lastRuns = new Map<string, BaseRun>();
  for (const r of rungSizes.keys()) {
    lastRuns = new Map();
    await scoreRung(r, alive, lastRuns);
    rungLog.push({ trainImages: rungSizes[r], configurations: alive.length });
    if (r < rungSizes.length - 1) alive = halve(alive, rows);
  }
  // Last, the finalists' cheaper variants on the last rung: smaller banks (sharing the embeddings)
  // and INT8 builds of the backbone where installed. The pick below weighs them like any other.
  const variants = alive.flatMap((c) =>
    variantsOf(c, int8BuildsOf(c.members[0].model, o.int8Builds ?? listModels())),
  );
  for (const v of variants) {
    for (const m of v.members) {
      const same = m.sharesEmbeddingsOf ? trials.get(m.sharesEmbeddingsOf) : undefined;
      if (same && !trials.has(m.key)) trials.set(m.key, same.sharing(m));
    }
  }
  const int8Bases = variants.flatMap((v) => v.members).filter((m) => !trials.has(m.key));
  const screened = await screenBases(o.pool, uniqueBases(int8Bases), goods[0].image, budgetMs, false);
  for (const [key, trial] of screened.trials) trials.set(key, trial);
  const runnable = variants.filter((v) => v.members.every((m) => trials.has(m.key)));
  toEvaluate += new Set(runnable.flatMap((v) => v.members.map((m) => m.key))).size;
  await scoreRung(rungSizes.length - 1, runnable, lastRuns);
  if (runnable.length) rungLog.push({ trainImages: rungSizes.at(-1)!, configurations: runnable.length });
  const finalists = [...alive, ...runnable].map((c) => rows.get(c.id)!);
  for (const row of finalists) if (row.status !== 'over budget') row.status = 'finalist';
  const { chosen, reason } = pick(finalists, budgetMs);
  chosen.status = 'chosen';
  const configuration = [...alive, ...runnable].find((c) => c.id === chosen.id)!;
  return {
    configuration,
    holdoutFraction,
    validation,
    ...(o.keepTrials
      ? { study: { configurations: all, trials, trainPool, finalImages: finalTrain, heldOut: goods } }
      : {}),
    record: {
      chosen: chosen.id,
      description: chosen.description,
      reason,
      budgetMs,
      seed,
      images: {
        train: split.train.length,
        heldOut: split.holdout.length,
        syntheticDefects: validationSummary(validation).defective,
        byKind: validationSummary(validation).byKind,
      },
      registration,
      rungs: rungLog,
      table: [...rows.values()].sort(byRank),
      skipped,
      secondsByBase: Object.fromEntries(
        Object.entries(secondsByBase).map(([k, v]) => [k, Math.round(v * 10) / 10]),
      ),
      selectionMs: Math.round(performance.now() - started),
      searchNsPerMac: Math.round(rates.nsPerMac * 1e4) / 1e4,
      searchHnswNs: Math.round(rates.hnswNs * 1e4) / 1e4,
    },
  };
}

/**
 * One trial per base, after a look at its cost: a base whose backbone alone is over budget on one
 * image is not worth a rung (the best of two timed runs, after a warm-up).
 */
async function screenBases(
  pool: BackbonePool,
  bases: BaseCandidate[],
  probe: RgbImage,
  budgetMs: number,
  required = true,
): Promise<{ trials: Map<string, BaseTrial>; skipped: AutoConfigRecord['skipped'] }> {
  const trials = new Map<string, BaseTrial>();
  const skipped: AutoConfigRecord['skipped'] = [];
  for (const base of bases) {
    const extractor = await createExtractor(pool, {
      model: base.model,
      stages: base.stages,
      view: base.view,
      projectionDim: 0,
      projectionSeed: DEFAULT_FIT.projectionSeed,
    });
    await extractor.embed(probe);
    let embedMs = Infinity;
    for (let i = 0; i < 2; i++) {
      const clock = startClock();
      await extractor.embed(probe);
      embedMs = Math.min(embedMs, clock());
    }
    if (embedMs > budgetMs) skipped.push({ key: base.key, embedMs: Math.round(embedMs) });
    else trials.set(base.key, new BaseTrial(base, extractor));
  }
  if (trials.size === 0 && required)
    throw new SpiError(
      'FAILED_PRECONDITION',
      `no candidate embeds an image within --budget-ms ${budgetMs} (fastest: ${Math.min(...skipped.map((s) => s.embedMs))} ms)`,
    );
  return { trials, skipped };
}

function uniqueBases(bases: BaseCandidate[]): BaseCandidate[] {
  return [...new Map(bases.map((b) => [b.key, b])).values()];
}

/** Training images per rung: 8, 16, 32 (capped at what there is). */
export function rungs(trainImages: number): number[] {
  const out: number[] = [];
  for (let r = 0; r < MAX_RUNGS; r++) {
    const n = Math.min(trainImages, FIRST_RUNG_IMAGES * 2 ** r);
    if (out.at(-1) !== n) out.push(n);
  }
  return out;
}

/** The better half (at least two), ranked as the final pick ranks: within budget first, then score. */
export function halve(configs: Configuration[], rows: Map<string, AutoTableRow>): Configuration[] {
  const ranked = [...configs].sort((a, b) => byRank(rows.get(a.id)!, rows.get(b.id)!));
  return ranked.slice(0, Math.max(2, Math.ceil(configs.length / 2)));
}

/**
 * Within the budget (or, when nothing is, the cheapest), the cheapest configuration whose score is
 * within SCORE_TOLERANCE of the best; among those as cheap as the cheapest (within COST_TIE), the
 * best score.
 */
export function pick(rows: AutoTableRow[], budgetMs: number): { chosen: AutoTableRow; reason: string } {
  const choice = pickCredited(credited(rows), budgetMs);
  return { chosen: rows.find((r) => r.id === choice.chosen.id)!, reason: choice.reason };
}

/**
 * The rows as the pick weighs them: a variant (a smaller bank, INT8) approximates its finalist and
 * is credited with no more than the finalist's score. On two dozen synthetic defects a half bank
 * can score a point above its own full bank by chance, and the half-point rule would then take it
 * over a better configuration (seen on bottle); a variant may make a near-best configuration
 * cheaper, never make a configuration near-best.
 */
function credited(rows: AutoTableRow[]): AutoTableRow[] {
  const byId = new Map(rows.map((r) => [r.id, r]));
  return rows.map((r) => {
    const parent = r.variantOf ? byId.get(r.variantOf) : undefined;
    return parent && parent.score < r.score ? { ...r, score: parent.score } : r;
  });
}

function pickCredited(rows: AutoTableRow[], budgetMs: number): { chosen: AutoTableRow; reason: string } {
  const within = rows.filter((r) => r.msPerImage <= budgetMs);
  if (within.length === 0) {
    const cheapest = [...rows].sort((a, b) => a.msPerImage - b.msPerImage)[0];
    return { chosen: cheapest, reason: `nothing within --budget-ms ${budgetMs}: the cheapest candidate` };
  }
  const best = Math.max(...within.map((r) => r.score));
  const near = within.filter((r) => r.score >= best - SCORE_TOLERANCE);
  const cheapest = Math.min(...near.map((r) => r.msPerImage));
  const chosen = near
    .filter((r) => r.msPerImage <= cheapest * COST_TIE)
    .sort((a, b) => b.score - a.score || a.id.localeCompare(b.id))[0];
  const top = within.find((r) => r.score === best)!;
  const reason =
    chosen.id === top.id
      ? `best synthetic score (${chosen.score.toFixed(4)}) within --budget-ms ${budgetMs}`
      : `within ${SCORE_TOLERANCE * 100} points of the best (${top.id}, ${best.toFixed(4)}) at ${chosen.msPerImage} ms/image against ${top.msPerImage}`;
  return { chosen, reason };
}

function byRank(a: AutoTableRow, b: AutoTableRow): number {
  const over = (r: AutoTableRow) => (r.status === 'over budget' ? 1 : 0);
  return (
    (a.status === 'chosen' ? -1 : 0) - (b.status === 'chosen' ? -1 : 0) ||
    over(a) - over(b) ||
    b.rung - a.rung ||
    b.score - a.score ||
    a.id.localeCompare(b.id)
  );
}

async function backboneInfo(pool: BackbonePool, model: string): Promise<BackboneInfo> {
  const { spec } = await pool.get(model);
  return {
    id: spec.id,
    inputSize: spec.inputSize[0],
    defaultStages: spec.defaultStages,
    stages: spec.stages,
  };
}

async function decodeAll(
  sources: ImageSource[],
  limits: DecodeLimits,
): Promise<{ name: string; image: RgbImage }[]> {
  const out = [];
  for (const s of sources) {
    try {
      out.push({ name: s.path, image: await decodeImage(await s.read(), limits) });
    } catch (err) {
      if (err instanceof SpiError) throw new SpiError(err.kind, `image "${s.path}": ${err.message}`);
      throw err;
    }
  }
  return out;
}

/** `count` items spread evenly over the list, in a fixed order (nested: a prefix is a smaller spread). */
/**
 * The first image (in folder order) of the median area (the lower median): a folder's typical frame.
 * A folder of one size gives its first image.
 */
export function typicalImage<T extends { width: number; height: number }>(images: T[]): T {
  const areas = images.map(area).sort((a, b) => a - b);
  const median = areas[(areas.length - 1) >> 1];
  return images.find((image) => area(image) === median)!;
}

function area(image: { width: number; height: number }): number {
  return image.width * image.height;
}

export function spread<T>(items: T[], count: number): T[] {
  if (count >= items.length) return items;
  const picked: T[] = [];
  const used = new Set<number>();
  // Bit-reversal-like order: each prefix covers the list evenly, so rung r's images are rung r+1's first.
  for (let step = items.length; picked.length < count; step /= 2) {
    for (let x = step / 2; x < items.length && picked.length < count; x += step) {
      const i = Math.floor(x);
      if (!used.has(i)) {
        used.add(i);
        picked.push(items[i]);
      }
    }
    if (step < 1) break;
  }
  return picked;
}

function round4(v: number): number {
  return Math.round(v * 10000) / 10000;
}
