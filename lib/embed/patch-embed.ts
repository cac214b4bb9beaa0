/**
 * PatchCore's locally aware patch embedding: each stage's feature map is averaged over a 3x3
 * neighbourhood, deeper (coarser) stages are bilinearly upsampled to the first stage's grid, and the
 * stages are concatenated per patch. Output is one row-major Float32Array [patches x width]; no
 * per-patch JS arrays on the hot path.
 */
import { FeatureMap } from '../backbone/backbone';
import { AxisPlacement, CellPlacement } from '../backbone/geometry';
import { gaussianMatrix } from '../util/random';
import { matmul } from '../knn/faiss';

export interface PatchEmbedding {
  /** Row-major [gridHeight*gridWidth x dim]. */
  vectors: Float32Array;
  gridHeight: number;
  gridWidth: number;
  dim: number;
  /** Where the grid's cells sit on the tile (from the first stage), when the backbone knows. */
  placement?: CellPlacement;
}

/**
 * Embeds one tile from its stage maps (shallow stage first). `into`: where to write the patches
 * (gh * gw * width floats; not with a projection), instead of a fresh array.
 */
export function embedPatches(
  stages: FeatureMap[],
  projection?: RandomProjection,
  into?: Float32Array,
): PatchEmbedding {
  const { height: gh, width: gw } = stages[0];
  const dim = stages.reduce((sum, s) => sum + s.channels, 0);
  const patches = gh * gw;
  if (into && (projection || into.length !== patches * dim))
    throw new Error(`embedPatches: the output must hold ${patches} x ${dim} floats and take no projection`);
  const out = into ?? new Float32Array(patches * dim);
  let offset = 0;
  for (const stage of stages) {
    let pooled = avgPool3x3(stage);
    const first = stages[0].placement;
    if (first && stage.placement && stage !== stages[0]) {
      // Sample the deeper stage where the first stage's cells really are (see backbone/geometry.ts).
      pooled = resampleAffine(
        pooled,
        gh,
        gw,
        relativeAxis(first.y, stage.placement.y),
        relativeAxis(first.x, stage.placement.x),
      );
    } else if (stage.height !== gh || stage.width !== gw) pooled = resizeBilinear(pooled, gh, gw);
    interleave(pooled, out, dim, offset);
    offset += stage.channels;
  }
  const embedding: PatchEmbedding = { vectors: out, gridHeight: gh, gridWidth: gw, dim };
  if (stages[0].placement) embedding.placement = stages[0].placement;
  return projection ? projection.apply(embedding) : embedding;
}

/** 3x3 mean over the valid neighbours of each cell (borders average fewer cells, not zeros). */
export function avgPool3x3(map: FeatureMap): FeatureMap {
  const { channels: c, height: h, width: w, data } = map;
  const out = new Float32Array(data.length);
  const rows = new Float32Array(w); // horizontal 3-sums of one row
  const counts = new Float32Array(h * w);
  for (let y = 0; y < h; y++) {
    const ny = (y > 0 ? 1 : 0) + 1 + (y < h - 1 ? 1 : 0);
    for (let x = 0; x < w; x++) counts[y * w + x] = 1 / (ny * ((x > 0 ? 1 : 0) + 1 + (x < w - 1 ? 1 : 0)));
  }
  const hsum = new Float32Array(h * w);
  for (let ch = 0; ch < c; ch++) {
    const base = ch * h * w;
    for (let y = 0; y < h; y++) {
      const r = base + y * w;
      for (let x = 0; x < w; x++) {
        rows[x] = data[r + x] + (x > 0 ? data[r + x - 1] : 0) + (x < w - 1 ? data[r + x + 1] : 0);
      }
      hsum.set(rows, y * w);
    }
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        const i = y * w + x;
        const s = hsum[i] + (y > 0 ? hsum[i - w] : 0) + (y < h - 1 ? hsum[i + w] : 0);
        out[base + i] = s * counts[i];
      }
    }
  }
  return { data: out, channels: c, height: h, width: w };
}

/** Bilinear resize of every channel (align_corners = false, as torch's interpolate default). */
export function resizeBilinear(map: FeatureMap, outH: number, outW: number): FeatureMap {
  const sy = map.height / outH;
  const sx = map.width / outW;
  return resampleAffine(map, outH, outW, { a: sy, b: 0.5 * sy - 0.5 }, { a: sx, b: 0.5 * sx - 0.5 });
}

/** Bilinear resampling of every channel at affine positions per axis (clamped at the borders). */
export function resampleAffine(
  map: FeatureMap,
  outH: number,
  outW: number,
  yAxis: AffineAxis,
  xAxis: AffineAxis,
): FeatureMap {
  const { channels: c, height: h, width: w, data } = map;
  const out = new Float32Array(c * outH * outW);
  const xs = affineAxisWeights(w, outW, xAxis);
  const ys = affineAxisWeights(h, outH, yAxis);
  for (let ch = 0; ch < c; ch++) {
    const src = ch * h * w;
    const dst = ch * outH * outW;
    for (let oy = 0; oy < outH; oy++) {
      const r0 = src + ys.i0[oy] * w;
      const r1 = src + ys.i1[oy] * w;
      const fy = ys.f[oy];
      for (let ox = 0; ox < outW; ox++) {
        const x0 = xs.i0[ox];
        const x1 = xs.i1[ox];
        const fx = xs.f[ox];
        const top = data[r0 + x0] + (data[r0 + x1] - data[r0 + x0]) * fx;
        const bottom = data[r1 + x0] + (data[r1 + x1] - data[r1 + x0]) * fx;
        out[dst + oy * outW + ox] = top + (bottom - top) * fy;
      }
    }
  }
  return { data: out, channels: c, height: outH, width: outW };
}

/** Source indices and weights along one axis for align_corners = false sampling. */
export function axisWeights(
  inSize: number,
  outSize: number,
): { i0: Int32Array; i1: Int32Array; f: Float32Array } {
  const scale = inSize / outSize;
  return affineAxisWeights(inSize, outSize, { a: scale, b: 0.5 * scale - 0.5 });
}

/** Output index o samples the input at a * o + b (clamped to the input), linearly interpolated. */
export interface AffineAxis {
  a: number;
  b: number;
}

/** The first stage's cell i, in the deeper stage's cell coordinates: (s0 * i + o0 - o1) / s1. */
export function relativeAxis(first: AxisPlacement, deeper: AxisPlacement): AffineAxis {
  return { a: first.scale / deeper.scale, b: (first.offset - deeper.offset) / deeper.scale };
}

/** Pixel x of a tile (centre x + 0.5) in cell coordinates of a grid placed as `grid`. */
export function pixelAxis(grid: AxisPlacement): AffineAxis {
  return { a: 1 / grid.scale, b: (0.5 - grid.offset) / grid.scale };
}

/** Source indices and weights along one axis for an affine sampling position. */
export function affineAxisWeights(
  inSize: number,
  outSize: number,
  axis: AffineAxis,
): { i0: Int32Array; i1: Int32Array; f: Float32Array } {
  const i0 = new Int32Array(outSize);
  const i1 = new Int32Array(outSize);
  const f = new Float32Array(outSize);
  for (let o = 0; o < outSize; o++) {
    const src = Math.min(Math.max(axis.a * o + axis.b, 0), inSize - 1);
    const lo = Math.floor(src);
    i0[o] = lo;
    i1[o] = Math.min(lo + 1, inSize - 1);
    f[o] = src - lo;
  }
  return { i0, i1, f };
}

/** CHW planes -> rows of [patch x dim] at a column offset. */
function interleave(map: FeatureMap, out: Float32Array, dim: number, offset: number): void {
  const plane = map.height * map.width;
  for (let ch = 0; ch < map.channels; ch++) {
    const src = ch * plane;
    for (let p = 0, o = offset + ch; p < plane; p++, o += dim) out[o] = map.data[src + p];
  }
}

/**
 * A fixed, seeded Gaussian random projection to a target width (Johnson-Lindenstrauss keeps
 * distances up to a small factor). Stored by (seed, width) in the bank so it is reproducible.
 */
export class RandomProjection {
  readonly matrix: Float32Array; // [inDim x outDim]

  constructor(
    readonly inDim: number,
    readonly outDim: number,
    readonly seed: number,
  ) {
    this.matrix = gaussianMatrix(inDim, outDim, seed);
  }

  apply(e: PatchEmbedding): PatchEmbedding {
    if (e.dim !== this.inDim) throw new Error(`projection expects width ${this.inDim}, got ${e.dim}`);
    return { ...e, vectors: project(e.vectors, this.inDim, this.matrix, this.outDim), dim: this.outDim };
  }
}

/**
 * rows [n x inDim] times matrix [inDim x outDim], by BLAS (sgemm through our faiss-node build): the
 * coreset's projection of an automatic fit's wide candidates took ~20 s as a JavaScript loop.
 */
export function project(
  rows: Float32Array,
  inDim: number,
  matrix: Float32Array,
  outDim: number,
): Float32Array {
  return matmul(rows, inDim, matrix, outDim);
}
