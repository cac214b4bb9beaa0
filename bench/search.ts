/**
 * Nearest-neighbour search speed: exact (Flat) vs IVF at bank sizes a shard holds, on clustered
 * synthetic embeddings (bench/mixture.ts), 784 queries = one 224 px image. Flat is the baseline
 * (speed ratios and recall@1 are against it, same run).
 *
 * Timings call the faiss-node methods KnnIndex wraps (searchAsync = KnnIndex.search, searchBuffer =
 * KnnIndex.searchSync; KnnIndex only adds a square root per result) on one index per factory with
 * nprobe changed in place, since KnnIndex fixes nprobe when it is built.
 */
import { Index } from '../lib/knn/faiss';
import { DEFAULT_MIXTURE, MixtureOptions, makeMixture, sampleMixture } from './mixture';
import { alternating, collectGarbage, medianMs, round, rssMb, timeMs } from './stats';

export interface BankPlan {
  rows: number;
  factories: string[];
}

export interface SearchBenchOptions {
  banks: BankPlan[];
  dim: number;
  queries: number;
  nprobes: number[];
  /** Timed runs per setting (median reported), after one warm-up search per index... */
  runs: number;
  /** ...fewer once a setting has spent this long (ms), so slow non-contenders cost little. */
  budgetMs: number;
  /** IVF k-means runs on at most this many rows per cell (faiss itself caps at 256). */
  trainPerCell: number;
  /** Also time the upstream number[] path on the largest bank of at most 100k rows. */
  arrayPath: boolean;
  mixture: Omit<MixtureOptions, 'dim'>;
  log: (message: string) => void;
}

export const FULL_SEARCH: Omit<SearchBenchOptions, 'log'> = {
  banks: [
    { rows: 100_000, factories: ['IVF256,Flat', 'IVF512,Flat'] },
    { rows: 1_000_000, factories: ['IVF1024,Flat', 'IVF4096,Flat'] },
  ],
  dim: 96,
  queries: 784,
  nprobes: [1, 4, 8, 16, 32, 64],
  runs: 3,
  budgetMs: 3000,
  trainPerCell: 40,
  arrayPath: true,
  mixture: DEFAULT_MIXTURE,
};

export const QUICK_SEARCH: Omit<SearchBenchOptions, 'log'> = {
  ...FULL_SEARCH,
  banks: [{ rows: 100_000, factories: ['IVF256,Flat'] }],
  nprobes: [1, 8, 32],
  runs: 2,
};

/** The accuracy the issue asks of an approximate index, and the speed-up it should bring at 1M. */
export const RECALL_TARGET = 0.99;
export const SPEEDUP_TARGET = 5;

export interface BuildRow {
  bank: number;
  factory: string;
  trainRows: number;
  trainMs: number;
  addMs: number;
  /** Build time (train + add) over Flat's (add only) on the same bank. */
  vsFlat: number;
  /** Process RSS with the index built (the bank's vectors and queries included). */
  rssMb: number;
  /** RSS growth from building this index (its own copy of the vectors, lists, centroids). */
  indexMb: number;
}

export interface SearchRow {
  bank: number;
  factory: string;
  nprobe: number | null;
  /** null: not timed (see runs). */
  asyncMs: number | null;
  syncMs: number;
  recallAt1: number;
  /** Timed runs behind the medians: fewer than asked when a setting is slow; 0 = one sync search
   * (for recall) standing for both modes, once a lower nprobe was already slower than Flat. */
  runs: number;
  /** Flat's ms over this setting's ms, same mode. */
  speedupAsync: number | null;
  speedupSync: number;
  /** Fastest setting of this bank with recall@1 >= RECALL_TARGET. */
  best: boolean;
}

export interface ArrayPathRow {
  bank: number;
  step: string;
  /** Float32Array straight into faiss (our patched addBuffer/trainBuffer/searchBuffer). */
  bufferMs: number;
  /** Upstream number[] methods, Array.from included. */
  arrayMs: number;
  /** Of arrayMs, the Array.from conversion alone. */
  conversionMs: number;
  ratio: number;
}

export interface SearchBenchResult {
  data: { generator: string; dim: number; queries: number; mixture: MixtureOptions };
  builds: BuildRow[];
  rows: SearchRow[];
  arrays: ArrayPathRow[];
  /** Flat's async ms/image before and after the IVF runs of a bank (the baseline is their mean). */
  flatDrift: { bank: number; beforeMs: number; afterMs: number }[];
  targets: { recall: number; speedup: number; bank: number; met: boolean | null; note: string };
}

/** Upstream faiss-node methods our type declarations leave out. */
interface ArrayIndex {
  add(x: number[]): void;
  train(x: number[]): void;
  search(x: number[], k: number): { distances: number[]; labels: number[] };
}

interface GroundTruth {
  labels: Float64Array;
  distances: Float32Array;
}

export async function benchSearch(opts: Partial<SearchBenchOptions> = {}): Promise<SearchBenchResult> {
  const o: SearchBenchOptions = { ...FULL_SEARCH, log: () => undefined, ...opts };
  const mixture = makeMixture({ ...o.mixture, dim: o.dim });
  const queries = sampleMixture(mixture, o.queries, o.mixture.seed + 2);
  const result: SearchBenchResult = {
    data: {
      generator: 'bench/mixture.ts: low-rank Gaussian mixture, components under super-clusters',
      dim: o.dim,
      queries: o.queries,
      mixture: mixture.options,
    },
    builds: [],
    rows: [],
    arrays: [],
    flatDrift: [],
    targets: { recall: RECALL_TARGET, speedup: SPEEDUP_TARGET, bank: 0, met: null, note: '' },
  };
  for (const plan of o.banks) {
    o.log(`search: generating ${plan.rows} bank vectors`);
    const bank = sampleMixture(mixture, plan.rows, o.mixture.seed + 1);
    await benchBank(plan, bank, queries, o, result);
    if (o.arrayPath && plan.rows === arrayBankRows(o.banks)) {
      result.arrays = await benchArrayPath(plan, bank, queries, o);
    }
  }
  markBest(result.rows);
  result.targets = targetCheck(result.rows);
  return result;
}

async function benchBank(
  plan: BankPlan,
  bank: Float32Array,
  queries: Float32Array,
  o: SearchBenchOptions,
  result: SearchBenchResult,
): Promise<void> {
  collectGarbage();
  const base = rssMb();
  const flat = Index.fromFactory(o.dim, 'Flat');
  const flatAddMs = await timeMs(() => flat.addBuffer(bank));
  result.builds.push(buildRow(plan.rows, 'Flat', 0, 0, flatAddMs, flatAddMs, base));
  // The ground truth search doubles as Flat's warm-up.
  const truth: GroundTruth = flat.searchBuffer(queries, 1);
  const before = await timeBoth(flat, queries, o.runs);
  o.log(`search: ${plan.rows} Flat ${before.asyncMs.toFixed(0)} ms/image`);
  const measured: { factory: string; nprobe: number; times: Times; recall: number }[] = [];
  for (const factory of plan.factories) {
    collectGarbage();
    const rssBefore = rssMb();
    const { index, trainRows, trainMs, addMs } = await buildIvf(factory, bank, o);
    result.builds.push(buildRow(plan.rows, factory, trainRows, trainMs, addMs, flatAddMs, rssBefore));
    o.log(`search: ${plan.rows} ${factory} built in ${((trainMs + addMs) / 1000).toFixed(1)} s`);
    index.searchBuffer(queries, 1);
    const slowAt = Math.max(before.asyncMs, before.syncMs);
    for (const m of await timeNprobes(index, queries, truth, slowAt, o)) {
      o.log(
        `search: ${factory} nprobe ${m.nprobe}: ${m.times.asyncMs.toFixed(1)} ms, recall@1 ${m.recall.toFixed(4)}`,
      );
      measured.push({ factory, ...m });
    }
  }
  // Flat again at the end: the baseline is the mean of both, and their gap shows the CPU's drift.
  const after = await timeBoth(flat, queries, o.runs);
  result.flatDrift.push({
    bank: plan.rows,
    beforeMs: round(before.asyncMs, 1),
    afterMs: round(after.asyncMs, 1),
  });
  const baseline: Times = {
    asyncMs: (before.asyncMs + after.asyncMs) / 2,
    syncMs: (before.syncMs + after.syncMs) / 2,
    runs: before.runs + after.runs,
  };
  result.rows.push(searchRow(plan.rows, 'Flat', null, baseline, 1, baseline));
  for (const m of measured)
    result.rows.push(searchRow(plan.rows, m.factory, m.nprobe, m.times, m.recall, baseline));
}

/**
 * Every nprobe: times and recall@1. A larger nprobe only scans more, so once a setting is slower
 * than Flat (`slowAtMs`) the rest are no contenders and get one sync search, for their recall.
 */
async function timeNprobes(
  index: Index,
  queries: Float32Array,
  truth: GroundTruth,
  slowAtMs: number,
  o: SearchBenchOptions,
): Promise<{ nprobe: number; times: Times; recall: number }[]> {
  const out: { nprobe: number; times: Times; recall: number }[] = [];
  let slow = false;
  for (const nprobe of o.nprobes) {
    index.setNprobe(nprobe);
    if (slow) {
      out.push({ nprobe, ...(await timeOnce(index, queries, truth)) });
      continue;
    }
    const times = await timeBoth(index, queries, o.runs, o.budgetMs);
    out.push({ nprobe, times, recall: recallAt1(index.searchBuffer(queries, 1), truth) });
    slow = Math.min(times.asyncMs, times.syncMs) > slowAtMs;
  }
  return out;
}

/** One sync search: its recall, and its time standing for both modes. */
async function timeOnce(index: Index, queries: Float32Array, truth: GroundTruth) {
  const t0 = performance.now();
  const recall = recallAt1(index.searchBuffer(queries, 1), truth);
  const ms = performance.now() - t0;
  return { times: { asyncMs: ms, syncMs: ms, runs: 0 }, recall };
}

/** Trains on an evenly spaced sample (at most trainPerCell rows per cell), then adds every row. */
async function buildIvf(factory: string, bank: Float32Array, o: SearchBenchOptions) {
  const rows = bank.length / o.dim;
  const cells = Number(/^IVF(\d+)/.exec(factory)?.[1] ?? 0);
  const trainRows = Math.min(rows, cells * o.trainPerCell);
  const sample = evenRows(bank, o.dim, trainRows);
  const index = Index.fromFactory(o.dim, factory);
  const trainMs = await timeMs(() => index.trainBuffer(sample));
  const addMs = await timeMs(() => index.addBuffer(bank));
  return { index, trainRows, trainMs, addMs };
}

function evenRows(x: Float32Array, dim: number, count: number): Float32Array {
  const rows = x.length / dim;
  if (count >= rows) return x;
  const out = new Float32Array(count * dim);
  for (let i = 0; i < count; i++) {
    const r = Math.floor((i * rows) / count);
    out.set(x.subarray(r * dim, (r + 1) * dim), i * dim);
  }
  return out;
}

interface Times {
  asyncMs: number;
  syncMs: number;
  runs: number;
}

/** Async and sync search of one image, in turns; `budgetMs` may cut the runs (not for baselines). */
async function timeBoth(
  index: Index,
  queries: Float32Array,
  runs: number,
  budgetMs = Infinity,
): Promise<Times> {
  const t = await alternating(
    [() => index.searchAsync(queries, 1), () => index.searchBuffer(queries, 1)],
    runs,
    budgetMs,
  );
  return { asyncMs: t.ms[0], syncMs: t.ms[1], runs: t.runs };
}

/** A hit is the exact neighbour or one at the same distance (ties, float rounding). */
function recallAt1(got: GroundTruth, truth: GroundTruth): number {
  let hits = 0;
  for (let i = 0; i < truth.labels.length; i++) {
    const same = got.labels[i] === truth.labels[i];
    const tie = Math.abs(got.distances[i] - truth.distances[i]) <= 1e-5 * truth.distances[i] + 1e-6;
    if (same || tie) hits++;
  }
  return hits / truth.labels.length;
}

function buildRow(
  bank: number,
  factory: string,
  trainRows: number,
  trainMs: number,
  addMs: number,
  flatMs: number,
  rssBefore: number,
): BuildRow {
  const rss = rssMb();
  return {
    bank,
    factory,
    trainRows,
    trainMs: round(trainMs, 1),
    addMs: round(addMs, 1),
    vsFlat: round((trainMs + addMs) / flatMs, 1),
    rssMb: round(rss, 0),
    indexMb: round(rss - rssBefore, 0),
  };
}

function searchRow(
  bank: number,
  factory: string,
  nprobe: number | null,
  t: Times,
  recall: number,
  flat: Times,
): SearchRow {
  return {
    bank,
    factory,
    nprobe,
    asyncMs: t.runs > 0 ? round(t.asyncMs, 1) : null,
    syncMs: round(t.syncMs, 1),
    recallAt1: round(recall, 4),
    runs: t.runs,
    speedupAsync: t.runs > 0 ? round(flat.asyncMs / t.asyncMs, 2) : null,
    speedupSync: round(flat.syncMs / t.syncMs, 2),
    best: false,
  };
}

function markBest(rows: SearchRow[]): void {
  for (const bank of new Set(rows.map((r) => r.bank))) {
    const ok = rows.filter(
      (r) => r.bank === bank && r.nprobe !== null && r.asyncMs !== null && r.recallAt1 >= RECALL_TARGET,
    );
    const best = ok.sort((a, b) => (a.asyncMs ?? Infinity) - (b.asyncMs ?? Infinity))[0];
    if (best) best.best = true;
  }
}

function targetCheck(rows: SearchRow[]): SearchBenchResult['targets'] {
  const bank = Math.max(...rows.map((r) => r.bank));
  const best = rows.find((r) => r.bank === bank && r.best);
  const base = { recall: RECALL_TARGET, speedup: SPEEDUP_TARGET, bank };
  if (!best) return { ...base, met: false, note: `no IVF setting reached recall@1 ${RECALL_TARGET}` };
  return {
    ...base,
    met: (best.speedupAsync ?? 0) >= SPEEDUP_TARGET,
    note: `best ${best.factory} nprobe ${best.nprobe}: ${best.speedupAsync}x Flat at recall@1 ${best.recallAt1}`,
  };
}

function arrayBankRows(banks: BankPlan[]): number {
  return Math.max(0, ...banks.map((b) => b.rows).filter((r) => r <= 100_000));
}

/**
 * Float32Array vs number[] into faiss: building a Flat and an IVF index, and one image's search on
 * each. Each path is timed on its own index so neither warms the other's memory.
 */
async function benchArrayPath(
  plan: BankPlan,
  bank: Float32Array,
  queries: Float32Array,
  o: SearchBenchOptions,
): Promise<ArrayPathRow[]> {
  o.log(`search: Float32Array vs number[] on ${plan.rows} rows`);
  const rows: ArrayPathRow[] = [];
  const row = (step: string, bufferMs: number, arrayMs: number, conversionMs: number) =>
    rows.push({
      bank: plan.rows,
      step,
      bufferMs: round(bufferMs, 1),
      arrayMs: round(arrayMs, 1),
      conversionMs: round(conversionMs, 1),
      ratio: round(arrayMs / bufferMs, 2),
    });
  const conversionMs = await timeMs(() => Array.from(bank));
  const queryConversionMs = await medianMs(() => Array.from(queries), o.runs);
  const factory = plan.factories[0] ?? 'IVF256,Flat';
  for (const f of ['Flat', factory]) {
    const buffer = Index.fromFactory(o.dim, f);
    const array = Index.fromFactory(o.dim, f);
    const asArray = array as unknown as ArrayIndex;
    if (f !== 'Flat') {
      const cells = Number(/^IVF(\d+)/.exec(f)?.[1] ?? 0);
      const sample = evenRows(bank, o.dim, Math.min(plan.rows, cells * o.trainPerCell));
      row(
        `train ${f}`,
        await timeMs(() => buffer.trainBuffer(sample)),
        await timeMs(() => asArray.train(Array.from(sample))),
        await timeMs(() => Array.from(sample)),
      );
    }
    row(
      `add ${f}`,
      await timeMs(() => buffer.addBuffer(bank)),
      await timeMs(() => asArray.add(Array.from(bank))),
      conversionMs,
    );
    if (f !== 'Flat') for (const index of [buffer, array]) index.setNprobe(8);
    const nprobe = f === 'Flat' ? '' : ' nprobe 8';
    const t = await alternating(
      [() => buffer.searchBuffer(queries, 1), () => asArray.search(Array.from(queries), 1)],
      o.runs,
    );
    row(`search ${f}${nprobe} (${o.queries} queries)`, t.ms[0], t.ms[1], queryConversionMs);
  }
  return rows;
}
