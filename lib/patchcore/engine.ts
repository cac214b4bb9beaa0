/**
 * Wiring for callers (CLI, gateway): backbones shared per (model, stages), extractors built from a
 * bank's own settings, and banks opened from disk into a ready Inspector.
 */
import { Backbone, SessionSettings, sessionSettingsFromEnv } from '../backbone/backbone';
import { BankMeta } from '../bank/bank-meta';
import { loadBank } from '../bank/bank-store';
import { KnnIndex } from '../knn/index';
import { EmbedPool } from './embed-pool';
import { ExtractorSettings } from './extractor-settings';
import { FeatureExtractor, ImageEmbedding } from './feature-extractor';
import { RgbImage } from '../image/decode';
import { LocalSearcher } from './fit';
import { Inspector, NeighbourSearcher } from './inspector';
import { SpiError } from '../errors';

export const DEFAULT_MODEL = process.env.SPI_MODEL ?? 'mobilenet_v2-imagenet';
export const DEFAULT_BATCH = 8;

/**
 * One onnxruntime session per (model, stages), shared by every bank that uses it; with `embedWorkers`
 * the extractors it hands out embed on that many worker threads (EmbedPool) instead of this one.
 */
export class BackbonePool {
  private readonly sessions = new Map<string, Promise<Backbone>>();
  readonly embedPool: EmbedPool | null;

  constructor(
    private readonly settings: SessionSettings = sessionSettingsFromEnv(),
    options: { embedWorkers?: number } = {},
  ) {
    this.embedPool = options.embedWorkers ? new EmbedPool({ workers: options.embedWorkers }) : null;
  }

  get(model: string, stages?: string[]): Promise<Backbone> {
    const key = `${model}|${(stages ?? []).join(',')}`;
    let backbone = this.sessions.get(key);
    if (!backbone) {
      backbone = Backbone.load(model, stages, this.settings);
      backbone.catch(() => this.sessions.delete(key));
      this.sessions.set(key, backbone);
    }
    return backbone;
  }

  async close(): Promise<void> {
    await this.embedPool?.close();
    const all = await Promise.allSettled(this.sessions.values());
    this.sessions.clear();
    for (const r of all) if (r.status === 'fulfilled') await r.value.close();
  }
}

export type { ExtractorSettings } from './extractor-settings';

export async function createExtractor(pool: BackbonePool, s: ExtractorSettings): Promise<FeatureExtractor> {
  const backbone = await pool.get(s.model, s.stages);
  const options = extractorOptions(s);
  if (!pool.embedPool) return new FeatureExtractor(backbone, options);
  await pool.embedPool.warm(s);
  return new PooledExtractor(backbone, options, pool.embedPool, s);
}

/** The same extractor, embedding on the pool's worker threads (the backbone here gives its identity). */
export class PooledExtractor extends FeatureExtractor {
  constructor(
    backbone: Backbone,
    options: FeatureExtractor['options'],
    private readonly pool: EmbedPool,
    private readonly settings: ExtractorSettings,
  ) {
    super(backbone, options);
  }

  override embed(image: RgbImage): Promise<ImageEmbedding> {
    return this.pool.embed(this.settings, image);
  }

  override async embedMany(images: RgbImage[]): Promise<ImageEmbedding[]> {
    return Promise.all(images.map((image) => this.embed(image)));
  }
}

/** A FeatureExtractor's options from extractor settings. */
export function extractorOptions(s: ExtractorSettings): FeatureExtractor['options'] {
  return {
    view: s.view,
    projectionDim: s.projectionDim,
    projectionSeed: s.projectionSeed,
    batchSize: s.batchSize ?? DEFAULT_BATCH,
    cellPlacement: s.cellPlacement ?? true,
  };
}

/** The extractor settings a bank was built with. */
export function bankExtractorSettings(meta: BankMeta): ExtractorSettings {
  return {
    model: meta.model.id,
    stages: meta.model.stages,
    view: meta.view,
    projectionDim: meta.embedding.projection?.dim ?? 0,
    projectionSeed: meta.embedding.projection?.seed ?? 0,
    // Banks from before cell placement was read off the graph keep their (even-spread) embedding.
    cellPlacement: meta.embedding.cellPlacement === true,
  };
}

/** The extractor a bank was built with; refuses a backbone whose weights changed since. */
export async function extractorForBank(pool: BackbonePool, meta: BankMeta): Promise<FeatureExtractor> {
  const extractor = await createExtractor(pool, bankExtractorSettings(meta));
  checkModelFile(meta, extractor.backbone);
  return extractor;
}

/** Refuses a backbone whose weights changed since the bank was built with it. */
export function checkModelFile(meta: BankMeta, backbone: Backbone): void {
  const have = backbone.spec.sha256;
  if (meta.model.sha256 && have && meta.model.sha256 !== have) {
    throw new SpiError(
      'FAILED_PRECONDITION',
      `bank ${meta.name} v${meta.version} was built with a different ${meta.model.id} file (sha256 ${meta.model.sha256.slice(0, 12)}…, installed ${have.slice(0, 12)}…); rebuild the bank`,
    );
  }
}

export interface OpenedBank {
  meta: BankMeta;
  index: KnnIndex;
  inspector: Inspector;
}

/** Loads a bank folder and builds its in-process index and inspector. */
export async function openBank(
  pool: BackbonePool,
  dir: string,
  searcher?: NeighbourSearcher,
): Promise<OpenedBank> {
  const { meta, vectors } = loadBank(dir);
  const index = KnnIndex.build(vectors, meta.vectors.dim, meta.knn);
  const inspector = new Inspector(
    meta,
    await extractorForBank(pool, meta),
    searcher ?? new LocalSearcher(index, vectors),
  );
  return { meta, index, inspector };
}
