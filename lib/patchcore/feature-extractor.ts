/**
 * Image -> patch embeddings: canvas, tiles, backbone in batches, patch embedding per tile. The one
 * implementation both the in-process engine and the cluster gateway use.
 */
import { createHash } from 'node:crypto';
import { Backbone, FeatureMap } from '../backbone/backbone';
import { DecodeSize, RgbImage } from '../image/decode';
import { Tile, ViewConfig, canvasOf, reflectPad, tileGrid, toCanvas } from '../image/views';
import { RandomProjection, embedPatches } from '../embed/patch-embed';
import { CellPlacement } from '../backbone/geometry';

export interface ImageEmbedding {
  /** Size of what the backbone saw: the canvas plus `pad` mirrored pixels on every side. */
  canvasWidth: number;
  canvasHeight: number;
  /** Edge padding (ViewConfig.pad) to crop off the map; absent = 0. */
  pad?: number;
  tiles: Tile[];
  gridHeight: number;
  gridWidth: number;
  dim: number;
  /** Where the patch grid's cells sit on each tile (absent: spread evenly over the tile). */
  placement?: CellPlacement;
  /** All tiles' patches, tile after tile: [tiles*gridHeight*gridWidth x dim]. */
  vectors: Float32Array;
}

export interface ExtractorOptions {
  view: ViewConfig;
  /** Target width of a random projection (0 = none). */
  projectionDim: number;
  projectionSeed: number;
  /** Tiles per backbone call. */
  batchSize: number;
  /**
   * Place stage cells where the graph says they are (backbone/geometry.ts; default). False keeps the
   * even spread that banks built before it (no `embedding.cellPlacement` in their metadata) used.
   */
  cellPlacement?: boolean;
  /**
   * Which of the backbone's stage outputs make this extractor's patches, by index (default: all of
   * them, in order). Set when one backbone run serves several stage sets (shared-run.ts).
   */
  stageSelection?: number[];
}

export class FeatureExtractor {
  private projection?: RandomProjection;

  constructor(
    readonly backbone: Backbone,
    readonly options: ExtractorOptions,
  ) {}

  async embed(image: RgbImage): Promise<ImageEmbedding> {
    return (await this.embedMany([image]))[0];
  }

  /**
   * Several images at once: their tiles share backbone batches (of equal-sized tiles, up to
   * batchSize), which is how the embedding workers batch concurrent requests.
   */
  async embedMany(images: RgbImage[]): Promise<ImageEmbedding[]> {
    return (await embedGroup([this], images))[0];
  }

  projectionFor(inDim: number): RandomProjection | undefined {
    if (this.options.projectionDim <= 0 || this.options.projectionDim >= inDim) return undefined;
    if (!this.projection || this.projection.inDim !== inDim) {
      this.projection = new RandomProjection(inDim, this.options.projectionDim, this.options.projectionSeed);
    }
    return this.projection;
  }
}

/**
 * The embeddings of `images` for each extractor of `group` ([extractor][image]), from one backbone
 * run per batch of tiles: the extractors share one backbone, view, batch size and cell placement and
 * differ only in the stage outputs they take (`stageSelection`) and their projection. One extractor
 * alone is FeatureExtractor.embedMany.
 */
export async function embedGroup(group: FeatureExtractor[], images: RgbImage[]): Promise<ImageEmbedding[][]> {
  const { backbone, options } = group[0];
  const view = options.view;
  const evenSpread = options.cellPlacement === false;
  if (
    group.some(
      (x) =>
        x.backbone !== backbone ||
        x.options.view !== view ||
        (x.options.cellPlacement === false) !== evenSpread,
    )
  )
    throw new Error('embedGroup: the extractors must share their backbone, view and cell placement');
  const pad = view.pad ?? 0;
  const canvases = await Promise.all(
    images.map(async (image) => reflectPad(await toCanvas(image, view), pad)),
  );
  const jobs = canvases.map((canvas) => ({
    canvas,
    tiles: tileGrid(canvas.width, canvas.height, view),
    done: 0,
    // Per extractor: the image's patches and their grid.
    out: group.map(() => ({
      vectors: null as Float32Array | null,
      grid: { gridHeight: 0, gridWidth: 0, dim: 0 } as Grid,
    })),
  }));
  const all = jobs.flatMap((job) => job.tiles.map((tile) => ({ job, tile })));
  for (let b = 0; b < all.length; ) {
    let e = b + 1;
    while (e < all.length && e - b < options.batchSize && sameSize(all[e].tile, all[b].tile)) e++;
    const batch = all.slice(b, e);
    // The tiles are read where they lie in the canvas (no copy per tile).
    const stageMaps = await backbone.runRegions(
      batch.map(({ job, tile }) => ({ image: job.canvas, ...tile })),
    );
    if (evenSpread) for (const maps of stageMaps) for (const m of maps) delete m.placement;
    batch.forEach(({ job }, i) => {
      group.forEach((x, g) => {
        const selection = x.options.stageSelection;
        const maps = (selection ? selection.map((s) => stageMaps[s]) : stageMaps).map(
          (perStage) => perStage[i],
        );
        embedTile(x, maps, job.tiles.length, job.done, job.out[g]);
      });
      job.done++;
    });
    b = e;
  }
  return group.map((_, g) =>
    jobs.map((job) => ({
      canvasWidth: job.canvas.width,
      canvasHeight: job.canvas.height,
      ...(pad > 0 ? { pad } : {}),
      tiles: job.tiles,
      ...job.out[g].grid,
      vectors: job.out[g].vectors ?? new Float32Array(0),
    })),
  );
}

/** One tile's patches (tile `done` of `tiles`) into the image's array for extractor `x`. */
function embedTile(
  x: FeatureExtractor,
  maps: FeatureMap[],
  tiles: number,
  done: number,
  out: { vectors: Float32Array | null; grid: Grid },
): void {
  const inDim = maps.reduce((sum, m) => sum + m.channels, 0);
  const projection = x.projectionFor(inDim);
  // Without a projection each tile's patches go straight into the image's one array (a sheet's 36
  // tiles no longer each allocate theirs, then a concatenation of all of them).
  const perTile = maps[0].height * maps[0].width * inDim;
  if (!projection && !out.vectors) out.vectors = new Float32Array(tiles * perTile);
  const emb = projection
    ? embedPatches(maps, projection)
    : embedPatches(maps, undefined, out.vectors!.subarray(done * perTile, (done + 1) * perTile));
  if (projection) {
    out.vectors ??= new Float32Array(tiles * emb.vectors.length);
    out.vectors.set(emb.vectors, done * emb.vectors.length);
  }
  out.grid = { gridHeight: emb.gridHeight, gridWidth: emb.gridWidth, dim: emb.dim };
  if (emb.placement) out.grid.placement = emb.placement;
}

type Grid = Pick<ImageEmbedding, 'gridHeight' | 'gridWidth' | 'dim' | 'placement'>;

/**
 * The size to decode an image to for this extractor: its view's canvas (decodeImage's `sizeFor`), so
 * a large image is never held at full size; none for an extractor without a view (test stand-ins
 * that embed the image as it is).
 */
export function decodeSizeFor(extractor: Pick<FeatureExtractor, 'options'>): DecodeSize | undefined {
  const view = extractor.options?.view;
  return view ? canvasOf(view) : undefined;
}

function sameSize(a: Tile, b: Tile): boolean {
  return a.width === b.width && a.height === b.height;
}

export function concat(parts: Float32Array[]): Float32Array {
  if (parts.length === 1) return parts[0];
  const out = new Float32Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/**
 * Remembers embeddings by image content, for evaluations that score the same images under several
 * coreset or threshold settings (the backbone then runs once per image, not once per setting).
 */
export class CachedExtractor extends FeatureExtractor {
  private readonly cache = new Map<string, Promise<ImageEmbedding>>();

  override embed(image: RgbImage): Promise<ImageEmbedding> {
    const key = createHash('sha1').update(image.data).update(`${image.width}x${image.height}`).digest('hex');
    let hit = this.cache.get(key);
    if (!hit) {
      hit = super.embed(image);
      this.cache.set(key, hit);
    }
    return hit;
  }
}
