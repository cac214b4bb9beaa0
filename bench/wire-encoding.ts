/**
 * Float16 queries on the shard hop against float32, without a cluster: the SearchRequest bytes
 * (serialised by grpc's own serializer) per 224 px image and per 2048 px sheet (scale 0.5, 224 px
 * tiles), and how far the anomaly maps and image scores move when the queries go through the
 * wire's float16 packing and the shard's decoding (lib/cluster/vector-encoding.ts) before an exact
 * search, on generated prints, with and without a nominal reference; and what the packing costs.
 *
 * node --import tsx bench/wire-encoding.ts [--out wire-encoding.json]
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { BackbonePool, DEFAULT_MODEL, createExtractor } from '../lib/patchcore/engine';
import { DEFAULT_FIT, FitSettings, LocalSearcher, fitBank, fittedInspector } from '../lib/patchcore/fit';
import { NeighbourSearcher, scoreEmbedding } from '../lib/patchcore/inspector';
import { KnnIndex, KnnResult } from '../lib/knn/index';
import { FeatureExtractor } from '../lib/patchcore/feature-extractor';
import { DEFAULT_VIEW, ViewConfig } from '../lib/image/views';
import { decodeImage } from '../lib/image/decode';
import { fileSources, listImages } from '../lib/data/mvtec';
import { generateDataset } from '../lib/synth';
import { serviceDefinition } from '../lib/rpc/proto';
import { VectorEncoding, WireQueries, shardQueries, encodingMsg } from '../lib/cluster/vector-encoding';
import { toHalves } from '../lib/knn/faiss';
import { TEST_TMP } from '../services/local/processes';

export interface MapDifference {
  bank: string;
  images: number;
  /** max over pixels of |f16 - f32| / max over pixels of |f32|, worst image. */
  maxDiffOverPeak: number;
  /** max over pixels of |f16 - f32| / |f32| (pixels with |f32| >= 1e-3 of the peak), worst image. */
  maxPixelRelative: number;
  /** |score16 - score32| / |score32|, worst image. */
  maxScoreRelative: number;
  /** Largest absolute embedding value seen (float16 holds up to 65504). */
  maxAbsEmbedding: number;
}

export interface WireBytes {
  what: string;
  rows: number;
  dim: number;
  f32: number;
  f16: number;
  /** p50 ms of the gateway's float32 -> float16 packing (the shard widens natively, on its search thread). */
  encodeMs: number;
}

/** Median ms of `runs` calls (after as many warm-up calls). */
function medianMs(fn: () => unknown, runs = 51): number {
  for (let i = 0; i < runs; i++) fn();
  const ms: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t = performance.now();
    fn();
    ms.push(performance.now() - t);
  }
  return ms.sort((a, b) => a - b)[runs >> 1];
}

const SEARCH = serviceDefinition('BankShard').Search;

/**
 * An in-process exact search that sees the queries as a shard does: packed for the wire in
 * `encoding` (as the gateway packs them) and widened back (as the shard widens them).
 */
export class WireSearcher implements NeighbourSearcher {
  constructor(
    readonly index: KnnIndex,
    readonly encoding: VectorEncoding = 'f16',
    /** The bank's rows, which ReadRows serves as loaded (float32). */
    private readonly vectors?: Float32Array,
  ) {}

  search(queries: Float32Array, _dim: number, k: number): Promise<KnnResult> {
    const p = new WireQueries(queries).payload(this.encoding);
    return this.index.search(shardQueries(p.bytes, encodingMsg(p.encoding)), k);
  }

  bankRows(ids: ArrayLike<number>, dim: number): Promise<Float32Array> {
    return new LocalSearcher(this.index, this.vectors).bankRows(ids, dim);
  }
}

/** The SearchRequest as it goes on the wire, in bytes. */
function requestBytes(vectors: Float32Array, dim: number, encoding: VectorEncoding): number {
  const p = new WireQueries(vectors).payload(encoding);
  const msg = {
    partition: { bank: 'job-42', version: 1, partition: 0 },
    queries: p.bytes,
    dim,
    k: 1,
    encoding: encodingMsg(p.encoding),
  };
  return SEARCH.requestSerialize(msg).length;
}

export async function wireBytes(extractor: FeatureExtractor, what: string, file: string): Promise<WireBytes> {
  const e = await extractor.embed(await decodeImage(fs.readFileSync(file)));
  const rows = e.vectors.length / e.dim;
  const halves = new Uint16Array(e.vectors.length);
  return {
    what,
    rows,
    dim: e.dim,
    f32: requestBytes(e.vectors, e.dim, 'f32'),
    f16: requestBytes(e.vectors, e.dim, 'f16'),
    // The gateway's packing (WireQueries): native, into a fresh array per request.
    encodeMs: medianMs(() => toHalves(e.vectors, halves)),
  };
}

/** Fits a bank on `train` and compares the float32 and float16 maps of `test`. */
export async function mapDifference(
  pool: BackbonePool,
  bank: string,
  root: string,
  train: string[],
  test: string[],
  settings: Partial<FitSettings> = {},
): Promise<MapDifference> {
  const extractor = await createExtractor(pool, {
    model: DEFAULT_MODEL,
    view: DEFAULT_VIEW,
    projectionDim: 0,
    projectionSeed: 0,
  });
  const fitted = await fitBank(extractor, fileSources(train, root), {
    ...DEFAULT_FIT,
    ...settings,
    name: bank,
  });
  const meta = fittedInspector(fitted, extractor).meta;
  const out: MapDifference = {
    bank,
    images: test.length,
    maxDiffOverPeak: 0,
    maxPixelRelative: 0,
    maxScoreRelative: 0,
    maxAbsEmbedding: 0,
  };
  for (const file of test) {
    const image = await decodeImage(fs.readFileSync(file));
    const embedding = await extractor.embed(image);
    for (const v of embedding.vectors) out.maxAbsEmbedding = Math.max(out.maxAbsEmbedding, Math.abs(v));
    const [a, b] = await Promise.all(
      (['f32', 'f16'] as const).map(async (encoding) => {
        const searcher = new WireSearcher(fitted.index, encoding);
        const knn = await searcher.search(embedding.vectors, embedding.dim, meta.score.k);
        return scoreEmbedding(meta, embedding, knn, image, meta.threshold.value);
      }),
    );
    let peak = 0;
    for (const v of a.map) peak = Math.max(peak, Math.abs(v));
    for (let i = 0; i < a.map.length; i++) {
      const d = Math.abs(b.map[i] - a.map[i]);
      out.maxDiffOverPeak = Math.max(out.maxDiffOverPeak, d / peak);
      if (Math.abs(a.map[i]) >= 1e-3 * peak)
        out.maxPixelRelative = Math.max(out.maxPixelRelative, d / Math.abs(a.map[i]));
    }
    out.maxScoreRelative = Math.max(out.maxScoreRelative, Math.abs(b.score - a.score) / Math.abs(a.score));
  }
  return out;
}

export const SHEET_VIEW: ViewConfig = { resize: 0, crop: 0, scale: 0.5, tile: 224, overlap: 32 };

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { out: { type: 'string' } } });
  const root = path.join(TEST_TMP, 'wire-prints-224');
  await generateDataset(root, { seed: 7, size: 224, trainGood: 10, testGood: 3, perDefect: 1 });
  const sheetRoot = path.join(TEST_TMP, 'wire-sheet-2048');
  await generateDataset(sheetRoot, { seed: 7, size: 2048, trainGood: 1, testGood: 0, perDefect: 0 });
  const train = listImages(path.join(root, 'train', 'good'));
  const testDir = path.join(root, 'test');
  const test = fs.readdirSync(testDir).flatMap((t) => listImages(path.join(testDir, t)));
  const pool = new BackbonePool();
  try {
    const viewOf = (view: ViewConfig) =>
      createExtractor(pool, { model: DEFAULT_MODEL, view, projectionDim: 0, projectionSeed: 0 });
    const bytes = [
      await wireBytes(await viewOf(DEFAULT_VIEW), '224 px image', test[0]),
      await wireBytes(
        await viewOf(SHEET_VIEW),
        '2048 px sheet (scale 0.5, 224 px tiles)',
        listImages(path.join(sheetRoot, 'train', 'good'))[0],
      ),
    ];
    const maps = [
      await mapDifference(pool, 'default', root, train, test),
      await mapDifference(pool, 'nominal reference', root, train, test, {
        score: { ...DEFAULT_FIT.score, reference: 'mean' },
        holdoutFraction: 0.3,
      }),
    ];
    const result = { bytes, maps };
    console.log(JSON.stringify(result, null, 2));
    if (values.out) fs.writeFileSync(values.out, JSON.stringify(result, null, 2));
  } finally {
    await pool.close();
  }
}

if (require.main === module) {
  main().catch((err: unknown) => {
    console.error(err);
    process.exit(1);
  });
}
