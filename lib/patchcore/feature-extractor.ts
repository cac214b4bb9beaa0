/**
 * Image -> patch embeddings: canvas, tiles, backbone in batches, patch embedding per tile. The one
 * implementation both the in-process engine and the cluster gateway use.
 */
import { createHash } from 'node:crypto';
import { Backbone } from '../backbone/backbone';
import { RgbImage } from '../image/decode';
import { Tile, ViewConfig, tileGrid, toCanvas } from '../image/views';
import { cropRgb } from '../image/decode';
import { RandomProjection, embedPatches } from '../embed/patch-embed';
import { CellPlacement } from '../backbone/geometry';

export interface ImageEmbedding {
  canvasWidth: number;
  canvasHeight: number;
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
}

export class FeatureExtractor {
  private projection?: RandomProjection;

  constructor(
    readonly backbone: Backbone,
    readonly options: ExtractorOptions,
  ) {}

  async embed(image: RgbImage): Promise<ImageEmbedding> {
    const canvas = await toCanvas(image, this.options.view);
    const tiles = tileGrid(canvas.width, canvas.height, this.options.view);
    const parts: Float32Array[] = [];
    let grid: { gridHeight: number; gridWidth: number; dim: number; placement?: CellPlacement } = {
      gridHeight: 0,
      gridWidth: 0,
      dim: 0,
    };
    for (let b = 0; b < tiles.length; b += this.options.batchSize) {
      const batch = tiles.slice(b, b + this.options.batchSize);
      const pixels = batch.map((t) => cropRgb(canvas, t.left, t.top, t.width, t.height));
      const stageMaps = await this.backbone.run(pixels);
      if (this.options.cellPlacement === false)
        for (const maps of stageMaps) for (const m of maps) delete m.placement;
      for (let i = 0; i < batch.length; i++) {
        const e = embedPatches(
          stageMaps.map((maps) => maps[i]),
          this.projectionFor(stageMaps.reduce((sum, maps) => sum + maps[i].channels, 0)),
        );
        grid = { gridHeight: e.gridHeight, gridWidth: e.gridWidth, dim: e.dim };
        if (e.placement) grid.placement = e.placement;
        parts.push(e.vectors);
      }
    }
    return { canvasWidth: canvas.width, canvasHeight: canvas.height, tiles, ...grid, vectors: concat(parts) };
  }

  private projectionFor(inDim: number): RandomProjection | undefined {
    if (this.options.projectionDim <= 0 || this.options.projectionDim >= inDim) return undefined;
    if (!this.projection || this.projection.inDim !== inDim) {
      this.projection = new RandomProjection(inDim, this.options.projectionDim, this.options.projectionSeed);
    }
    return this.projection;
  }
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
