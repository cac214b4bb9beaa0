/**
 * Where a print sheet's time goes (backbone, search, map), and what faiss' search options do to the
 * search part: Flat (exact, the baseline), HNSW at several efSearch, SQ8, IVF with a small nlist,
 * a narrower embedding (the random projection, 96 -> 48) and a smaller bank (per-image
 * pre-reduction before the greedy coreset). Each with its recall@1 against Flat on the same bank,
 * its search ms per image, and the image and pixel AUROC its maps give.
 *
 * node --import tsx bench/search-options.ts [--data <mvtec-category>] [--view <json>] [--indexes a;b]
 *   [--banks N] [--max-train N] [--max-test N] [--out file.json] [--quick]
 *
 * Without --data: a synthetic print job (`spi synth`'s generator) of 2048 px sheets seen at scale
 * 0.5 in 224 px tiles (the cluster bench's sheet case): the ground the defaults are picked on. With
 * --data (e.g. ../shared/data/mvtec_ad/bottle): the same table for the figures file only; nothing
 * is tuned on those test defects. Embeddings are computed once per image and reused by every option,
 * so the options differ only in their bank and index.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { BankMeta, DEFAULT_SCORE } from '../lib/bank/bank-meta';
import { DEFAULT_CORESET, selectCoreset } from '../lib/coreset/coreset';
import { Category, readCategory } from '../lib/data/mvtec';
import { decodeImage } from '../lib/image/decode';
import { ViewConfig } from '../lib/image/views';
import { RandomProjection } from '../lib/embed/patch-embed';
import { KnnIndex, KnnResult, resolveKnn } from '../lib/knn/index';
import { maskToCanvas } from '../lib/eval/evaluate';
import { pixelAuroc, rocAuc } from '../lib/eval/metrics';
import { BackbonePool, createExtractor } from '../lib/patchcore/engine';
import { ImageEmbedding, concat } from '../lib/patchcore/feature-extractor';
import { scoreEmbedding } from '../lib/patchcore/inspector';
import { DEFECT_TYPES, generateDataset } from '../lib/synth';
import { TEST_TMP } from '../services/local/processes';
import { median, round, timeMs } from './stats';
import { runScript } from './lib/script';
import { gatherRows } from '../lib/util/rows';

export interface BankVariant {
  name: string;
  /** Random projection width (0 = the backbone's full width). */
  projectionDim: number;
  /** Per-image greedy fraction before the global greedy (0 = none). */
  perImage: number;
  /** Fraction of the patches the bank keeps. */
  ratio: number;
}

export interface SearchOptionsBenchOptions {
  /** MVTec-layout category, or null for the synthetic print job. */
  data: string | null;
  synth: { size: number; trainGood: number; testGood: number; perDefect: number; seed: number };
  view: ViewConfig;
  model: string;
  banks: BankVariant[];
  /** Factory strings (with search parameters) timed on every bank. */
  indexes: string[];
  /** At most this many train / test images (spread over the folder; 0 = all). */
  maxTrain: number;
  maxTest: number;
  /** An option slower than this many times Flat on the first image is timed on it alone. */
  slowFactor: number;
  log: (message: string) => void;
}

export const SHEET_VIEW: ViewConfig = { resize: 0, crop: 0, scale: 0.5, tile: 224, overlap: 32 };

export const FULL_OPTIONS: Omit<SearchOptionsBenchOptions, 'log'> = {
  data: null,
  synth: { size: 2048, trainGood: 6, testGood: 4, perDefect: 2, seed: 31 },
  view: SHEET_VIEW,
  model: 'mobilenet_v2-imagenet',
  banks: [
    { name: 'greedy 10%', projectionDim: 0, perImage: 0, ratio: 0.1 },
    { name: 'greedy 10%, projected to 48', projectionDim: 48, perImage: 0, ratio: 0.1 },
    { name: 'per-image 10% then greedy 2.5%', projectionDim: 0, perImage: 0.1, ratio: 0.025 },
  ],
  indexes: [
    'Flat',
    'HNSW32,Flat,efSearch=16',
    'HNSW32,Flat,efSearch=32',
    'HNSW16,Flat,efSearch=32',
    'HNSW32,Flat,efSearch=32,rerank=0.02',
    'hnsw',
    'IVF64,Flat,nprobe=4',
    'SQ8',
  ],
  maxTrain: 0,
  maxTest: 0,
  slowFactor: 3,
};

export const QUICK_OPTIONS: Omit<SearchOptionsBenchOptions, 'log'> = {
  ...FULL_OPTIONS,
  synth: { size: 1024, trainGood: 3, testGood: 2, perDefect: 1, seed: 31 },
  banks: FULL_OPTIONS.banks.slice(0, 1),
  indexes: ['Flat', 'hnsw'],
};

/** Where one image's time goes on the in-process path, full-width bank, Flat (ms, medians). */
export interface Breakdown {
  tilesPerImage: number;
  patchesPerImage: number;
  /** Decoding the image file (sharp), before the view. */
  decodeMs: number;
  /** Backbone + patch embedding of all tiles, at the extractor's default batch. */
  embedMs: number;
  /** The same with one tile per onnxruntime run. */
  embedBatch1Ms: number;
  searchMs: number;
  /** Patch scores -> stitched, upsampled, smoothed map, image score, regions. */
  mapMs: number;
  /**
   * CPU time (all threads of the process, ms per image) of the same steps: what sizing needs, and
   * less sensitive than wall time to other work on a shared machine.
   */
  cpuMs: { decode: number; embed: number; search: number; map: number };
}

export interface OptionRow {
  bank: string;
  bankPatches: number;
  dim: number;
  index: string;
  buildMs: number;
  /** The index as faiss serialises it (what a shard holds in memory for this bank, about). */
  indexBytes: number;
  /** Median search ms per image (one call with all the image's patches). */
  searchMs: number;
  /** Median CPU ms per image of the search (all threads). */
  searchCpuMs: number;
  /** Flat's searchMs on the same bank over this option's. */
  speedup: number;
  /** Nearest distance equal to Flat's on the same bank (ties count as hits). */
  recallAt1: number;
  /** Largest |image score - Flat's| / Flat's over the images (the verdict moves with it). */
  scoreShift: number | null;
  /** null when the option was slower than slowFactor x Flat and timed on one image only. */
  imageAuroc: number | null;
  pixelAuroc: number | null;
  /** Projection of the queries to the bank's width (gateway work), ms per image; 0 at full width. */
  projectMs: number;
  images: number;
}

export interface SearchOptionsResult {
  data: string;
  view: ViewConfig;
  trainImages: number;
  testImages: number;
  breakdown: Breakdown;
  rows: OptionRow[];
  machine: { cores: number; loadBefore: number; loadAfter: number };
}

interface TestImage {
  label: 0 | 1;
  embedding: ImageEmbedding;
  size: { width: number; height: number };
  mask: Uint8Array;
}

export async function benchSearchOptions(
  opts: Partial<SearchOptionsBenchOptions> = {},
): Promise<SearchOptionsResult> {
  const o: SearchOptionsBenchOptions = { ...FULL_OPTIONS, log: () => undefined, ...opts };
  if (o.indexes[0] !== 'Flat')
    throw new Error('the first index must be Flat: the others are measured against it');
  const loadBefore = os.loadavg()[0];
  const category = await categoryOf(o);
  const pool = new BackbonePool();
  try {
    const settings = { model: o.model, view: o.view, projectionDim: 0, projectionSeed: 7 };
    const extractor = await createExtractor(pool, settings);
    const single = await createExtractor(pool, { ...settings, batchSize: 1 });
    const train = spread(category.train, o.maxTrain);
    const tests = spread(category.test, o.maxTest);
    o.log(`search-options: embedding ${train.length} train and ${tests.length} test images`);
    const trainParts: Float32Array[] = [];
    let dim = 0;
    for (const file of train) {
      const e = await extractor.embed(await decodeImage(fs.readFileSync(file)));
      dim = e.dim;
      trainParts.push(e.vectors);
    }
    const decodeMs: number[] = [];
    const embedMs: number[] = [];
    const cpu = { decode: [] as number[], embed: [] as number[] };
    const embedBatch1Ms: number[] = [];
    const images: TestImage[] = [];
    for (const [i, item] of tests.entries()) {
      const bytes = fs.readFileSync(item.absPath);
      const t0 = performance.now();
      const c0 = process.cpuUsage();
      const rgb = await decodeImage(bytes);
      decodeMs.push(performance.now() - t0);
      cpu.decode.push(cpuMsSince(c0));
      let embedding: ImageEmbedding | undefined;
      const c1 = process.cpuUsage();
      embedMs.push(await timeMs(async () => (embedding = await extractor.embed(rgb))));
      cpu.embed.push(cpuMsSince(c1));
      // One tile per onnxruntime run, on the first three images: what batching saves.
      if (i < 3) embedBatch1Ms.push(await timeMs(() => single.embed(rgb)));
      const e = embedding!;
      const mask = item.maskPath
        ? await maskToCanvas(item.maskPath, { view: o.view }, e.canvasWidth, e.canvasHeight)
        : new Uint8Array(e.canvasWidth * e.canvasHeight);
      images.push({ label: item.label, embedding: e, size: { width: rgb.width, height: rgb.height }, mask });
    }
    const first = images[0].embedding;
    const breakdown: Breakdown = {
      tilesPerImage: first.tiles.length,
      patchesPerImage: first.vectors.length / first.dim,
      decodeMs: round(median(decodeMs), 1),
      embedMs: round(median(embedMs), 1),
      embedBatch1Ms: round(median(embedBatch1Ms), 1),
      searchMs: 0,
      mapMs: 0,
      cpuMs: { decode: round(median(cpu.decode), 1), embed: round(median(cpu.embed), 1), search: 0, map: 0 },
    };
    const rows: OptionRow[] = [];
    for (const variant of o.banks) {
      const bank = buildBank(trainParts, dim, variant);
      o.log(`search-options: bank "${variant.name}": ${bank.rows} patches of width ${bank.dim}`);
      const queries = images.map((im) => bank.project(im.embedding));
      const measured = measureBank(variant, bank, images, queries, o);
      if (variant === o.banks[0]) {
        breakdown.searchMs = measured.flatSearchMs;
        breakdown.mapMs = measured.flatMapMs;
        breakdown.cpuMs.search = measured.flatSearchCpuMs;
        breakdown.cpuMs.map = measured.flatMapCpuMs;
      }
      rows.push(...measured.rows);
    }
    return {
      data: o.data ?? `synthetic print job: ${JSON.stringify(o.synth)}`,
      view: o.view,
      trainImages: train.length,
      testImages: tests.length,
      breakdown,
      rows,
      machine: { cores: os.cpus().length, loadBefore: round(loadBefore), loadAfter: round(os.loadavg()[0]) },
    };
  } finally {
    await pool.close();
  }
}

/** The MVTec-layout category at `data`, or the synthetic print job (generated once, then reused). */
export async function categoryOf(
  o: Pick<SearchOptionsBenchOptions, 'data' | 'synth' | 'log'>,
): Promise<Category> {
  if (o.data) return readCategory(o.data);
  const s = o.synth;
  const root = path.join(
    TEST_TMP,
    `bench-print-job-${s.size}-${s.seed}-${s.trainGood}-${s.testGood}-${s.perDefect}`,
  );
  o.log(`search-options: generating ${s.size} px sheets in ${root}`);
  await generateDataset(root, {
    seed: s.seed,
    size: s.size,
    trainGood: s.trainGood,
    testGood: s.testGood,
    perDefect: s.perDefect,
    defects: [...DEFECT_TYPES],
  });
  return readCategory(root);
}

/** At most n items, evenly spread (every defect type keeps its share); 0 = all. */
export function spread<T>(items: T[], n: number): T[] {
  if (n <= 0 || n >= items.length) return items;
  return Array.from({ length: n }, (_, i) => items[Math.floor(((i + 0.5) * items.length) / n)]);
}

interface Bank {
  vectors: Float32Array;
  rows: number;
  dim: number;
  /** The queries of an image at the bank's width (timed: it is gateway work per image). */
  project(e: ImageEmbedding): { vectors: Float32Array; ms: number };
}

function buildBank(parts: Float32Array[], fullDim: number, v: BankVariant): Bank {
  const projection = v.projectionDim > 0 ? new RandomProjection(fullDim, v.projectionDim, 7) : null;
  const asBank = (x: Float32Array) =>
    projection ? projection.apply({ vectors: x, dim: fullDim, gridHeight: 0, gridWidth: 0 }).vectors : x;
  const projected = parts.map(asBank);
  const dim = projection ? v.projectionDim : fullDim;
  const all = concat(projected);
  const keep = selectCoreset(
    all,
    dim,
    { ...DEFAULT_CORESET, ratio: v.ratio, perImage: v.perImage },
    undefined,
    projected.map((p) => p.length / dim),
  );
  const vectors = gatherRows(all, dim, keep);
  return {
    vectors,
    rows: keep.length,
    dim,
    project: (e) => {
      const t0 = performance.now();
      const out = asBank(e.vectors);
      return { vectors: out, ms: projection ? performance.now() - t0 : 0 };
    },
  };
}

const META = { score: DEFAULT_SCORE, view: SHEET_VIEW } as unknown as BankMeta;

function measureBank(
  variant: BankVariant,
  bank: Bank,
  images: TestImage[],
  queries: { vectors: Float32Array; ms: number }[],
  o: SearchOptionsBenchOptions,
): {
  rows: OptionRow[];
  flatSearchMs: number;
  flatMapMs: number;
  flatSearchCpuMs: number;
  flatMapCpuMs: number;
} {
  const meta = { ...META, view: o.view } as BankMeta;
  const rows: OptionRow[] = [];
  let truth: KnnResult[] = [];
  let truthScores: number[] = [];
  let flatMs = 0;
  let flatMapMs = 0;
  let flatSearchCpuMs = 0;
  let flatMapCpuMs = 0;
  const projectMs = round(median(queries.map((q) => q.ms)), 1);
  for (const factory of o.indexes) {
    let index: KnnIndex;
    const buildMs = timeSync(() => (index = KnnIndex.build(bank.vectors, bank.dim, { factory })));
    const searchMs: number[] = [];
    const searchCpuMs: number[] = [];
    const mapMs: number[] = [];
    const mapCpuMs: number[] = [];
    const results: KnnResult[] = [];
    const maps: Float32Array[] = [];
    const scores: number[] = [];
    index!.searchSync(queries[0].vectors.subarray(0, bank.dim * 64), 1); // warm-up
    for (const [i, im] of images.entries()) {
      let knn: KnnResult | undefined;
      const c0 = process.cpuUsage();
      searchMs.push(timeSync(() => (knn = index.searchSync(queries[i].vectors, 1))));
      searchCpuMs.push(cpuMsSince(c0));
      results.push(copyOf(knn!));
      // No contender: its time and recall on the first image are enough.
      if (i === 0 && factory !== 'Flat' && searchMs[0] > o.slowFactor * flatMs) break;
      let inspection: ReturnType<typeof scoreEmbedding> | undefined;
      const c1 = process.cpuUsage();
      mapMs.push(timeSync(() => (inspection = scoreEmbedding(meta, im.embedding, knn!, im.size, Infinity))));
      mapCpuMs.push(cpuMsSince(c1));
      maps.push(inspection!.map);
      scores.push(inspection!.score);
    }
    if (factory === 'Flat') {
      truth = results;
      truthScores = scores;
      flatMs = median(searchMs);
      flatMapMs = median(mapMs);
      flatSearchCpuMs = median(searchCpuMs);
      flatMapCpuMs = median(mapCpuMs);
    }
    const complete = maps.length === images.length;
    const row: OptionRow = {
      bank: variant.name,
      bankPatches: bank.rows,
      dim: bank.dim,
      index: resolveKnn({ factory }).factory,
      buildMs: round(buildMs, 0),
      indexBytes: index!.serialize().length,
      searchMs: round(median(searchMs), 1),
      searchCpuMs: round(median(searchCpuMs), 1),
      speedup: round(flatMs / median(searchMs), 2),
      recallAt1: round(recall(results, truth), 4),
      scoreShift: complete
        ? round(Math.max(...scores.map((x, i) => Math.abs(x - truthScores[i]) / truthScores[i])), 4)
        : null,
      imageAuroc: complete
        ? round(
            rocAuc(
              scores,
              images.map((im) => im.label),
            ),
            4,
          )
        : null,
      pixelAuroc: complete
        ? round(
            pixelAuroc(
              maps,
              images.map((im) => im.mask),
            ),
            4,
          )
        : null,
      projectMs,
      images: searchMs.length,
    };
    o.log(
      `search-options: ${variant.name} ${factory}: ${row.searchMs} ms/image (${row.speedup}x), recall@1 ${row.recallAt1}, AUROC ${row.imageAuroc}/${row.pixelAuroc}`,
    );
    rows.push(row);
  }
  return {
    rows,
    flatSearchMs: round(flatMs, 1),
    flatMapMs: round(flatMapMs, 1),
    flatSearchCpuMs: round(flatSearchCpuMs, 1),
    flatMapCpuMs: round(flatMapCpuMs, 1),
  };
}

/** CPU ms (user + system, every thread of the process) since `start`. */
function cpuMsSince(start: NodeJS.CpuUsage): number {
  const d = process.cpuUsage(start);
  return (d.user + d.system) / 1000;
}

function timeSync(fn: () => unknown): number {
  const t0 = performance.now();
  fn();
  return performance.now() - t0;
}

function copyOf(r: KnnResult): KnnResult {
  return { distances: Float32Array.from(r.distances), labels: r.labels.slice(), k: r.k };
}

/**
 * Share of query patches whose nearest bank patch is Flat's: the same row, or one at the same
 * distance (ties; SQ8 returns approximate distances, so for it only the row can match).
 */
function recall(got: KnnResult[], truth: KnnResult[]): number {
  let hits = 0;
  let total = 0;
  got.forEach((r, i) => {
    const t = truth[i];
    for (let j = 0; j < r.distances.length; j++) {
      const tie = Math.abs(r.distances[j] - t.distances[j]) <= 1e-4 * t.distances[j] + 1e-6;
      if (tie || r.labels[j] === t.labels[j]) hits++;
      total++;
    }
  });
  return total === 0 ? NaN : hits / total;
}

/** The markdown table of one run (bench/results.md and the figures in docs/sizing.md). */
export function searchOptionsMarkdown(r: SearchOptionsResult): string[] {
  const b = r.breakdown;
  const total = b.decodeMs + b.embedMs + b.searchMs + b.mapMs;
  const pct = (ms: number) => `${Math.round((100 * ms) / total)} %`;
  return [
    `Data: ${r.data}; view ${JSON.stringify(r.view)}; ${r.trainImages} train, ${r.testImages} test images;`,
    `load average ${r.machine.loadBefore} -> ${r.machine.loadAfter} on ${r.machine.cores} cores.`,
    '',
    `Where one image's time goes (in-process, full-width bank, Flat; ${b.tilesPerImage} tiles, ${b.patchesPerImage} patches):`,
    '',
    '| step | ms | share | CPU ms (all threads) |',
    '|---|---|---|---|',
    `| decode | ${b.decodeMs} | ${pct(b.decodeMs)} | ${b.cpuMs.decode} |`,
    `| backbone + patch embedding (batch 8) | ${b.embedMs} | ${pct(b.embedMs)} | ${b.cpuMs.embed} |`,
    `| search (one call, all tiles' patches) | ${b.searchMs} | ${pct(b.searchMs)} | ${b.cpuMs.search} |`,
    `| map, image score, regions | ${b.mapMs} | ${pct(b.mapMs)} | ${b.cpuMs.map} |`,
    '',
    `(Backbone with one tile per run instead of 8: ${b.embedBatch1Ms} ms.)`,
    '',
    '| bank | patches | width | index | bytes | build ms | search ms/image | search CPU ms | vs Flat | recall@1 | max image-score shift | image AUROC | pixel AUROC | projection ms |',
    '|---|---|---|---|---|---|---|---|---|---|---|---|---|---|',
    ...r.rows.map(
      (x) =>
        `| ${x.bank} | ${x.bankPatches} | ${x.dim} | ${x.index} | ${x.indexBytes} | ${x.buildMs} | ${x.searchMs}${x.images === 1 ? ' (1 image)' : ''} | ${x.searchCpuMs} | ${x.speedup}x | ${x.recallAt1} | ${x.scoreShift ?? '–'} | ${x.imageAuroc ?? '–'} | ${x.pixelAuroc ?? '–'} | ${x.projectMs} |`,
    ),
  ];
}

async function main(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      data: { type: 'string' },
      out: { type: 'string' },
      quick: { type: 'boolean', default: false },
      'max-train': { type: 'string' },
      'max-test': { type: 'string' },
      view: { type: 'string' },
      indexes: { type: 'string' },
      banks: { type: 'string' },
    },
    strict: true,
  });
  const base = values.quick ? QUICK_OPTIONS : FULL_OPTIONS;
  const result = await benchSearchOptions({
    ...base,
    data: values.data ?? null,
    ...(values.view ? { view: { ...SHEET_VIEW, ...(JSON.parse(values.view) as Partial<ViewConfig>) } } : {}),
    ...(values.indexes ? { indexes: values.indexes.split(';') } : {}),
    ...(values.banks ? { banks: base.banks.slice(0, Number(values.banks)) } : {}),
    maxTrain: Number(values['max-train'] ?? 0),
    maxTest: Number(values['max-test'] ?? 0),
    log: (m) => console.log(`[bench] ${m}`),
  });
  if (values.out) fs.writeFileSync(values.out, `${JSON.stringify(result, null, 2)}\n`);
  console.log(searchOptionsMarkdown(result).join('\n'));
  return 0;
}

if (require.main === module) runScript(() => main(process.argv.slice(2)));
