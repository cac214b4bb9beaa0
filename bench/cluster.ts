/**
 * End-to-end Inspect speed: the in-process engine (the baseline) vs the gRPC cluster (etcd, bank
 * shards and a gateway as real processes on loopback) with the bank split over 1, 2 and 4 shards,
 * on 224 px print images; then a 2048 px print sheet inspected in tiles.
 *
 * The CPU may be shared with other work, so the baseline is measured interleaved with each cluster:
 * request by request (alternating which goes first) for latency, block by block for throughput.
 * A cluster figure and its in-process baseline thus always come from the same seconds.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { BuildSpec, InspectionClient } from '../lib/client/inspection-client';
import { fileSources, listImages } from '../lib/data/mvtec';
import { BANK_FORMAT } from '../lib/bank/bank-meta';
import { encodeBmp } from '../lib/image/bmp';
import { decodeImage } from '../lib/image/decode';
import { ViewConfig, tileGrid } from '../lib/image/views';
import { BackbonePool, createExtractor } from '../lib/patchcore/engine';
import { FitSettings, LocalSearcher, fitBank } from '../lib/patchcore/fit';
import { Inspector } from '../lib/patchcore/inspector';
import { DEFECT_TYPES, generateDataset } from '../lib/synth';
import { DEFAULT_ADMIN, toBuildRequest } from '../services/gateway/admin-service';
import { buildSpec } from '../lib/rpc/messages';
import { LocalCluster, startLocalCluster } from '../services/local/cluster';
import { TEST_TMP } from '../services/local/processes';
import { mean, percentile, round, timeMs, timed } from './stats';
import { HopResult, benchHop } from './hop';

export interface SheetOptions {
  size: number;
  trainSheets: number;
  testSheets: number;
  scale: number;
  tile: number;
  overlap: number;
  /** Timed inspections per path (median reported), after one warm-up. */
  runs: number;
  /** Bank indexes measured, each in-process and through the cluster (factory strings or presets). */
  indexes: string[];
  /**
   * Also the same canvas in one backbone pass (tile 0), with these indexes: a fully convolutional
   * backbone needs no tiles, and 224 px tiles every 192 px run it over 1.7x the canvas's pixels.
   */
  wholeCanvasIndexes?: string[];
  /**
   * The whole-canvas sheets also sent as uncompressed 24-bit BMP, the frame a colour camera writes:
   * no inflate on the gateway (a PNG sheet's decode is a quarter of its time).
   */
  wholeCanvasBmp?: boolean;
}

export interface ClusterBenchOptions {
  shardCounts: number[];
  /** Samples of the hop-cost measurement (bench/hop.ts). */
  hopRuns: number;
  /** Gateway embedding workers tried at one shard (0 = on the event loop); other counts use 0. */
  embedWorkers: number[];
  trainImages: number;
  coresetRatio: number;
  /** Sequential requests for the latency percentiles. */
  requests: number;
  /** Requests kept in flight for the throughput figure, and how many in all. */
  concurrency: number;
  throughputRequests: number;
  warmup: number;
  /** The tiled sheet, inspected in-process and through the cluster with this many shards. */
  sheet: SheetOptions | null;
  sheetShards: number;
  log: (message: string) => void;
}

export const FULL_CLUSTER: Omit<ClusterBenchOptions, 'log'> = {
  shardCounts: [1, 2, 4],
  embedWorkers: [0, 1, 2],
  hopRuns: 250,
  trainImages: 20,
  coresetRatio: 0.1,
  requests: 60,
  concurrency: 4,
  throughputRequests: 60,
  warmup: 3,
  sheet: {
    size: 2048,
    trainSheets: 4,
    testSheets: 2,
    scale: 0.5,
    tile: 224,
    overlap: 32,
    runs: 8,
    indexes: ['Flat', 'hnsw'],
    wholeCanvasIndexes: ['Flat'],
    wholeCanvasBmp: true,
  },
  sheetShards: 1,
};

export const QUICK_CLUSTER: Omit<ClusterBenchOptions, 'log'> = {
  ...FULL_CLUSTER,
  shardCounts: [1],
  trainImages: 6,
  requests: 10,
  throughputRequests: 8,
  warmup: 2,
  hopRuns: 15,
  sheet: {
    size: 1024,
    trainSheets: 2,
    testSheets: 1,
    scale: 0.5,
    tile: 224,
    overlap: 32,
    runs: 2,
    indexes: ['Flat', 'hnsw'],
  },
};

export interface Stages {
  decode: number;
  embed: number;
  search: number;
  score: number;
  total: number;
}

export interface Measurement {
  requests: number;
  errors: number;
  firstError?: string;
  p50Ms: number;
  p99Ms: number;
  meanMs: number;
  /** Images/s with `concurrency` requests in flight. */
  throughput: number;
  concurrency: number;
  /** Mean per-stage ms reported by the engine (the gateway's InspectResponse.timings). */
  stages: Stages;
}

export interface E2eRow {
  path: 'in-process' | 'cluster';
  shards: number | null;
  /** The gateway's --embed-workers (null in-process). */
  embedWorkers: number | null;
  /** Seconds to build the bank (upload + embed + coreset + index + threshold + load on shards). */
  buildS: number;
  m: Measurement;
  /** This row over the in-process baseline measured interleaved with it (1 for the baseline). */
  p50VsInProcess: number;
  p99VsInProcess: number;
  throughputVsInProcess: number;
}

export interface SheetRow {
  /** "every copy searched": overlapping tiles' shared positions searched in each tile and averaged. */
  path: 'in-process' | 'in-process, every copy searched' | 'cluster';
  /** The bank's index (factory string). */
  index: string;
  /** How the sheet was sent: PNG (the generator's files) or BMP (the same pixels uncompressed). */
  format: 'PNG' | 'BMP';
  shards: number | null;
  view: string;
  tiles: number;
  bankPatches: number;
  buildS: number;
  msPerSheet: number;
  stages: Stages;
  vsInProcess: number;
}

export interface ClusterBenchResult {
  images: { source: string; train: number; probes: number; size: number };
  rows: E2eRow[];
  /** p50 at 1 shard over in-process p50, minus 1 (target < 0.15). */
  overheadAt1Shard: number | null;
  sheet: SheetRow[];
  /** What one gRPC hop costs here (bench/hop.ts), measured first. */
  hop: HopResult | null;
  notes: string[];
}

type InspectFn = (image: Buffer) => Promise<Stages>;

const OVERHEAD_TARGET = 0.15;
const DEADLINE_MS = 120_000;

export async function benchCluster(opts: Partial<ClusterBenchOptions> = {}): Promise<ClusterBenchResult> {
  const o: ClusterBenchOptions = { ...FULL_CLUSTER, log: () => undefined, ...opts };
  const prints = await printImages(o);
  const pool = new BackbonePool();
  const result: ClusterBenchResult = {
    images: { source: prints.root, train: prints.train.length, probes: prints.probes.length, size: 224 },
    rows: [],
    overheadAt1Shard: null,
    sheet: [],
    hop: null,
    notes: [],
  };
  try {
    o.log('cluster: the cost of one gRPC hop');
    result.hop = await benchHop(o.hopRuns);
    o.log('cluster: building the in-process bank');
    const local = await timed(() => localInspector(pool, prints, o.coresetRatio));
    const localBuildS = local.ms / 1000;
    const inspectLocal = localInspectFn(local.value);
    const setups = o.shardCounts.flatMap((shards) =>
      (shards === 1 ? o.embedWorkers : [0]).map((workers) => ({ shards, workers })),
    );
    for (const { shards, workers } of setups) {
      await withCluster(shards, workers, async (cluster) => {
        const { buildS, inspect } = await clusterBank(cluster, shards, prints, o);
        o.log(
          `cluster: ${shards} shard(s), ${workers} embed workers: measuring, interleaved with in-process`,
        );
        const [base, m] = await measurePaired([inspectLocal, inspect], prints.probes, o);
        result.rows.push(e2eRow('in-process', null, null, localBuildS, base, base));
        result.rows.push(e2eRow('cluster', shards, workers, buildS, m, base));
        if (o.sheet && shards === o.sheetShards && workers === 0)
          result.sheet = await benchSheet(pool, cluster, o.sheet, o);
      });
    }
  } finally {
    await pool.close();
  }
  const ones = result.rows.filter((r) => r.path === 'cluster' && r.shards === 1);
  const one = ones.sort((a, b) => a.p50VsInProcess - b.p50VsInProcess)[0];
  if (one) result.overheadAt1Shard = round(one.p50VsInProcess - 1, 3);
  result.notes.push(
    `cluster overhead at 1 shard = cluster p50 / in-process p50 - 1 (target < ${OVERHEAD_TARGET})`,
    'client, gateway, shards and etcd share the same cores; latencies are measured at the client',
  );
  return result;
}

/** Starts a cluster and always stops it, whatever fn does. */
async function withCluster<T>(
  shards: number,
  embedWorkers: number,
  fn: (c: LocalCluster) => Promise<T>,
): Promise<T> {
  const cluster = await startLocalCluster({ shards, gatewayArgs: ['--embed-workers', String(embedWorkers)] });
  try {
    return await fn(cluster);
  } finally {
    await cluster.stop();
  }
}

interface Prints {
  root: string;
  train: string[];
  probes: Buffer[];
}

/** 224 px prints (the engine's canvas size, so no resize in the way), made once under .test-tmp. */
async function printImages(o: ClusterBenchOptions): Promise<Prints> {
  const root = path.join(TEST_TMP, `bench-prints-224-${o.trainImages}`);
  await generateDataset(root, { seed: 21, size: 224, trainGood: o.trainImages, testGood: 6, perDefect: 1 });
  const test = path.join(root, 'test');
  const probes = fs
    .readdirSync(test)
    .sort()
    .flatMap((d) => listImages(path.join(test, d)))
    .map((f) => fs.readFileSync(f));
  return { root, train: listImages(path.join(root, 'train', 'good')), probes };
}

/** The in-process engine with the settings the gateway derives from the same BuildSpec. */
async function localInspector(pool: BackbonePool, prints: Prints, coresetRatio: number): Promise<Inspector> {
  const bank = 'bench-local';
  const req = toBuildRequest(
    'create',
    buildSpec({ bank, coresetRatio, auto: 'off' }),
    fileSources(prints.train, prints.root),
    DEFAULT_ADMIN,
  );
  return fitInspector(pool, req.model, { ...req.settings, name: bank, version: 1 }, req.images);
}

async function fitInspector(
  pool: BackbonePool,
  model: string,
  settings: FitSettings,
  images: Parameters<typeof fitBank>[1],
): Promise<Inspector> {
  const extractor = await createExtractor(pool, {
    model,
    view: settings.view,
    projectionDim: 0,
    projectionSeed: 0,
  });
  const fitted = await fitBank(extractor, images, settings);
  const meta = {
    ...fitted.meta,
    format: BANK_FORMAT,
    vectors: { rows: fitted.index.size, dim: fitted.dim, sha256: '', file: '' },
  };
  return new Inspector(meta, extractor, new LocalSearcher(fitted.index));
}

function localInspectFn(inspector: Inspector): InspectFn {
  return async (image) => {
    const t = (await inspector.inspectBytes(image)).timingsMs;
    return { ...t, total: t.decode + t.embed + t.search + t.score };
  };
}

function clusterInspectFn(client: InspectionClient, bank: string): InspectFn {
  return async (image) => {
    const t = (await client.inspect({ bank, image }, DEADLINE_MS)).timings;
    return {
      decode: t?.decodeMs ?? NaN,
      embed: t?.embedMs ?? NaN,
      search: t?.searchMs ?? NaN,
      score: t?.scoreMs ?? NaN,
      total: t?.totalMs ?? NaN,
    };
  };
}

/** Builds the bank through the gateway (upload included in the time). */
async function clusterBank(cluster: LocalCluster, shards: number, prints: Prints, o: ClusterBenchOptions) {
  const client = cluster.client({ deadlineMs: DEADLINE_MS });
  const bank = `bench-${shards}`;
  const upload = prints.train.map((f) => ({ name: path.basename(f), data: fs.readFileSync(f) }));
  o.log(`cluster: ${shards} shard(s): building the bank`);
  const buildMs = await timeMs(() =>
    client.createBank(
      { bank, coresetRatio: o.coresetRatio, partitions: shards, replicas: 1, auto: 'off' },
      upload,
    ),
  );
  return { buildS: buildMs / 1000, inspect: clusterInspectFn(client, bank) };
}

function e2eRow(
  kind: E2eRow['path'],
  shards: number | null,
  embedWorkers: number | null,
  buildS: number,
  m: Measurement,
  base: Measurement,
): E2eRow {
  return {
    path: kind,
    shards,
    embedWorkers,
    buildS: round(buildS, 1),
    m,
    p50VsInProcess: round(m.p50Ms / base.p50Ms, 3),
    p99VsInProcess: round(m.p99Ms / base.p99Ms, 3),
    throughputVsInProcess: round(m.throughput / base.throughput, 3),
  };
}

/** One path's samples: sequential latencies with their stage timings, throughput blocks, errors. */
class Samples {
  readonly latencies: number[] = [];
  readonly stages: Stages[] = [];
  errors: string[] = [];
  done = 0;
  wallMs = 0;

  constructor(
    private readonly inspect: InspectFn,
    private readonly images: Buffer[],
  ) {}

  async attempt(i: number): Promise<Stages | null> {
    try {
      return await this.inspect(this.images[i % this.images.length]);
    } catch (err) {
      this.errors.push(err instanceof Error ? err.message : String(err));
      return null;
    }
  }

  async timed(i: number): Promise<void> {
    const t0 = performance.now();
    const s = await this.attempt(i);
    if (!s) return;
    this.latencies.push(performance.now() - t0);
    this.stages.push(s);
  }

  /** `count` requests from `start` on, `concurrency` in flight. */
  async block(start: number, count: number, concurrency: number): Promise<void> {
    let next = start;
    this.wallMs += await timeMs(() =>
      Promise.all(
        Array.from({ length: concurrency }, async () => {
          while (next < start + count) if (await this.attempt(next++)) this.done++;
        }),
      ),
    );
  }

  summary(o: MeasureOptions): Measurement {
    if (this.latencies.length === 0) throw new Error(`every request failed: ${this.errors[0]}`);
    return {
      requests: o.requests + o.throughputRequests,
      errors: this.errors.length,
      ...(this.errors.length > 0 ? { firstError: this.errors[0] } : {}),
      p50Ms: round(percentile(this.latencies, 50), 1),
      p99Ms: round(percentile(this.latencies, 99), 1),
      meanMs: round(mean(this.latencies), 1),
      throughput: this.wallMs > 0 ? round((this.done * 1000) / this.wallMs, 2) : 0,
      concurrency: o.concurrency,
      stages: meanStages(this.stages),
    };
  }
}

type MeasureOptions = Pick<ClusterBenchOptions, 'requests' | 'concurrency' | 'throughputRequests' | 'warmup'>;

/** Throughput is measured in this many alternating blocks per path. */
const THROUGHPUT_BLOCKS = 4;

/**
 * Latency (sequential requests) and throughput (`concurrency` in flight) of several paths, taken in
 * turns on the same images: request i of every path runs before request i + 1 of any, the first
 * path alternating; throughput blocks alternate the same way. Load from elsewhere hits all alike.
 */
async function measurePaired(
  inspects: InspectFn[],
  images: Buffer[],
  o: MeasureOptions,
): Promise<Measurement[]> {
  const paths = inspects.map((fn) => new Samples(fn, images));
  const turn = (i: number) => (i % 2 === 0 ? paths : [...paths].reverse());
  for (const p of paths) {
    for (let i = 0; i < o.warmup; i++) await p.attempt(i);
    p.errors = [];
  }
  for (let i = 0; i < o.requests; i++) for (const p of turn(i)) await p.timed(i);
  const per = Math.ceil(o.throughputRequests / THROUGHPUT_BLOCKS);
  for (let b = 0; b * per < o.throughputRequests; b++) {
    const count = Math.min(per, o.throughputRequests - b * per);
    for (const p of turn(b)) await p.block(b * per, count, o.concurrency);
  }
  return paths.map((p) => p.summary(o));
}

function meanStages(all: Stages[]): Stages {
  const of = (k: keyof Stages) => round(mean(all.map((s) => s[k])), 1);
  return {
    decode: of('decode'),
    embed: of('embed'),
    search: of('search'),
    score: of('score'),
    total: of('total'),
  };
}

interface Sheets {
  root: string;
  train: string[];
  test: Buffer[];
  /** The test sheets as 24-bit BMP, in the same order. */
  testBmp: Buffer[];
}

async function sheetImages(s: SheetOptions): Promise<Sheets> {
  const root = path.join(TEST_TMP, `bench-sheets-${s.size}-${s.trainSheets}`);
  await generateDataset(root, {
    seed: 23,
    size: s.size,
    trainGood: s.trainSheets,
    testGood: s.testSheets,
    perDefect: 1,
    defects: [DEFECT_TYPES[0]],
  });
  const testDir = path.join(root, 'test');
  const files = fs
    .readdirSync(testDir)
    .sort()
    .flatMap((d) => listImages(path.join(testDir, d)));
  const test = files.map((f) => fs.readFileSync(f));
  const testBmp = [];
  for (const png of test) testBmp.push(encodeBmp(await decodeImage(png)));
  return { root, train: listImages(path.join(root, 'train', 'good')), test, testBmp };
}

/**
 * A print sheet in tiles. In-process uses the engine's scale view; BuildSpec has no scale, so the
 * cluster gets the same canvas as resize = size * scale (equal for a square sheet) with the same tiles.
 */
async function benchSheet(
  pool: BackbonePool,
  cluster: LocalCluster,
  s: SheetOptions,
  o: ClusterBenchOptions,
): Promise<SheetRow[]> {
  o.log(`sheet: generating ${s.size} px sheets`);
  const sheets = await sheetImages(s);
  const rows: SheetRow[] = [];
  for (const [i, index] of s.indexes.entries())
    rows.push(...(await sheetWithIndex(pool, cluster, sheets, s, index, `bench-sheet-${i}`, o)));
  for (const [i, index] of (s.wholeCanvasIndexes ?? []).entries())
    rows.push(
      ...(await sheetWithIndex(pool, cluster, sheets, { ...s, tile: 0 }, index, `bench-whole-${i}`, o)),
    );
  return rows;
}

/** One bank index: the sheet in-process and through the cluster, interleaved. */
async function sheetWithIndex(
  pool: BackbonePool,
  cluster: LocalCluster,
  sheets: Sheets,
  s: SheetOptions,
  index: string,
  bank: string,
  o: ClusterBenchOptions,
): Promise<SheetRow[]> {
  const canvas = Math.round(s.size * s.scale);
  const view: ViewConfig = { resize: 0, crop: 0, scale: s.scale, tile: s.tile, overlap: s.overlap };
  const req = toBuildRequest(
    'create',
    buildSpec({ bank, coresetRatio: o.coresetRatio, auto: 'off', index }),
    fileSources(sheets.train, sheets.root),
    DEFAULT_ADMIN,
  );
  o.log(`sheet: in-process bank (${index})`);
  const local = await timed(() =>
    fitInspector(pool, req.model, { ...req.settings, view, name: bank, version: 1 }, req.images),
  );
  const common = { tiles: tileGrid(canvas, canvas, view).length, index: req.settings.knn.factory };
  const tiling = s.tile > 0 ? `tile ${s.tile}, overlap ${s.overlap}` : 'whole canvas, one backbone pass';
  o.log(`sheet: cluster bank (${index})`);
  const client = cluster.client({ deadlineMs: DEADLINE_MS });
  const upload = sheets.train.map((f) => ({ name: path.basename(f), data: fs.readFileSync(f) }));
  const sheetSpec: BuildSpec = {
    bank,
    coresetRatio: o.coresetRatio,
    partitions: o.sheetShards,
    replicas: 1,
    resize: canvas,
    tile: s.tile,
    tileOverlap: s.overlap,
    index,
  };
  const buildMs = await timeMs(() => client.createBank(sheetSpec, upload));
  const info = await client.getBank(bank);
  o.log('sheet: measuring, interleaved');
  const everyCopy = local.value.withScore({ sharedCells: 'average' });
  // BMP paths get the same sheet as the PNG paths, in its BMP form.
  const bmp = s.tile === 0 && s.wholeCanvasBmp;
  const asBmp =
    (fn: InspectFn): InspectFn =>
    (png) =>
      fn(sheets.testBmp[sheets.test.indexOf(png)]);
  const [localTimes, remote, everyCopyTimes, localBmp, remoteBmp] = await measurePaired(
    [
      localInspectFn(local.value),
      clusterInspectFn(client, bank),
      localInspectFn(everyCopy),
      ...(bmp ? [asBmp(localInspectFn(local.value)), asBmp(clusterInspectFn(client, bank))] : []),
    ],
    sheets.test,
    { requests: s.runs, concurrency: 1, throughputRequests: 0, warmup: 1 },
  );
  const inProcess = {
    format: 'PNG' as const,
    shards: null,
    view: `resize 0, scale ${s.scale} (canvas ${canvas}), ${tiling}`,
    ...common,
    bankPatches: local.value.meta.vectors.rows,
    buildS: round(local.ms / 1000, 1),
  };
  const clusterRow = {
    path: 'cluster' as const,
    format: 'PNG' as const,
    shards: o.sheetShards,
    view: `resize ${canvas}, ${tiling} (BuildSpec has no scale)`,
    ...common,
    bankPatches: info.versions[0]?.patches ?? 0,
    buildS: round(buildMs / 1000, 1),
  };
  const bmpRows: SheetRow[] =
    localBmp && remoteBmp
      ? [
          {
            path: 'in-process',
            ...inProcess,
            format: 'BMP',
            msPerSheet: localBmp.p50Ms,
            stages: localBmp.stages,
            vsInProcess: 1,
          },
          {
            ...clusterRow,
            format: 'BMP',
            msPerSheet: remoteBmp.p50Ms,
            stages: remoteBmp.stages,
            vsInProcess: round(remoteBmp.p50Ms / localBmp.p50Ms, 3),
          },
        ]
      : [];
  return [
    {
      path: 'in-process',
      ...inProcess,
      msPerSheet: localTimes.p50Ms,
      stages: localTimes.stages,
      vsInProcess: 1,
    },
    {
      path: 'in-process, every copy searched',
      ...inProcess,
      msPerSheet: everyCopyTimes.p50Ms,
      stages: everyCopyTimes.stages,
      vsInProcess: round(everyCopyTimes.p50Ms / localTimes.p50Ms, 3),
    },
    {
      ...clusterRow,
      msPerSheet: remote.p50Ms,
      stages: remote.stages,
      vsInProcess: round(remote.p50Ms / localTimes.p50Ms, 3),
    },
    ...bmpRows,
  ];
}
