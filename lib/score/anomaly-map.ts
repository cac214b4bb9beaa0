/**
 * From per-patch k-NN distances to an anomaly map at canvas resolution: patch scores per tile,
 * bilinear upsampling of each tile's patch grid to its pixels, stitching overlapping tiles by their
 * mean, and Gaussian smoothing (sigma 4 px at 224, as PatchCore).
 */
import { affineAxisWeights, axisWeights, pixelAxis } from '../embed/patch-embed';
import { CellPlacement } from '../backbone/geometry';
import { Tile } from '../image/views';

/** Score of each patch: the mean of its k nearest distances (k = 1: nearest-patch distance). */
export function patchScores(distances: Float32Array, k: number, useK: number): Float32Array {
  const n = distances.length / k;
  const kk = Math.max(1, Math.min(useK, k));
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    let s = 0;
    for (let j = 0; j < kk; j++) s += distances[i * k + j];
    out[i] = s / kk;
  }
  return out;
}

/** Accumulates tile grids onto the canvas; overlapping tiles average. */
export function stitchTiles(
  grids: Float32Array[],
  gridHeight: number,
  gridWidth: number,
  tiles: Tile[],
  canvasWidth: number,
  canvasHeight: number,
  /** Where the grid's cells sit on a tile; without it, cells are spread evenly (align_corners = false). */
  placement?: CellPlacement,
): Float32Array {
  const sum = new Float32Array(canvasWidth * canvasHeight);
  if (tiles.length === 1) {
    upsampleInto(grids[0], gridHeight, gridWidth, tiles[0], canvasWidth, sum, placement);
    return sum;
  }
  const weight = new Float32Array(canvasWidth * canvasHeight);
  tiles.forEach((tile, t) => {
    upsampleInto(grids[t], gridHeight, gridWidth, tile, canvasWidth, sum, placement);
    for (let y = 0; y < tile.height; y++) {
      const row = (tile.top + y) * canvasWidth + tile.left;
      for (let x = 0; x < tile.width; x++) weight[row + x] += 1;
    }
  });
  for (let i = 0; i < sum.length; i++) sum[i] /= weight[i] || 1;
  return sum;
}

function upsampleInto(
  grid: Float32Array,
  gh: number,
  gw: number,
  tile: Tile,
  canvasWidth: number,
  out: Float32Array,
  placement?: CellPlacement,
): void {
  const xs = placement
    ? affineAxisWeights(gw, tile.width, pixelAxis(placement.x))
    : axisWeights(gw, tile.width);
  const ys = placement
    ? affineAxisWeights(gh, tile.height, pixelAxis(placement.y))
    : axisWeights(gh, tile.height);
  for (let y = 0; y < tile.height; y++) {
    const r0 = ys.i0[y] * gw;
    const r1 = ys.i1[y] * gw;
    const fy = ys.f[y];
    const row = (tile.top + y) * canvasWidth + tile.left;
    for (let x = 0; x < tile.width; x++) {
      const x0 = xs.i0[x];
      const x1 = xs.i1[x];
      const fx = xs.f[x];
      const top = grid[r0 + x0] + (grid[r0 + x1] - grid[r0 + x0]) * fx;
      const bottom = grid[r1 + x0] + (grid[r1 + x1] - grid[r1 + x0]) * fx;
      out[row + x] += top + (bottom - top) * fy;
    }
  }
}

/** Separable Gaussian blur, kernel truncated at 4 sigma, borders reflected. */
export function gaussianBlur(map: Float32Array, width: number, height: number, sigma: number): Float32Array {
  if (sigma <= 0) return map;
  const radius = Math.max(1, Math.ceil(4 * sigma));
  // Half kernel: weights[0] is the centre; the kernel is symmetric, so each pair shares one multiply.
  const weights = new Float32Array(radius + 1);
  let total = 0;
  for (let i = 0; i <= radius; i++) {
    weights[i] = Math.exp((-i * i) / (2 * sigma * sigma));
    total += i === 0 ? weights[i] : 2 * weights[i];
  }
  for (let i = 0; i <= radius; i++) weights[i] /= total;
  const tmp = new Float32Array(map.length);
  const out = new Float32Array(map.length);
  for (let y = 0; y < height; y++) blurLine(map, tmp, y * width, 1, width, weights);
  // Vertical pass row by row, so the inner loop runs over contiguous memory.
  for (let y = 0; y < height; y++) {
    const o = y * width;
    for (let x = 0; x < width; x++) out[o + x] = weights[0] * tmp[o + x];
    for (let k = 1; k <= radius; k++) {
      const a = reflect(y - k, height) * width;
      const b = reflect(y + k, height) * width;
      const wk = weights[k];
      for (let x = 0; x < width; x++) out[o + x] += wk * (tmp[a + x] + tmp[b + x]);
    }
  }
  return out;
}

/** scipy's 'reflect' border: ... 1 0 | 0 1 2 ... n-1 | n-1 n-2 ... */
function reflect(i: number, n: number): number {
  if (n === 1) return 0;
  while (i < 0 || i >= n) i = i < 0 ? -i - 1 : 2 * n - i - 1;
  return i;
}

/** One row (start, stride 1) of the horizontal pass. */
function blurLine(
  src: Float32Array,
  dst: Float32Array,
  start: number,
  stride: number,
  n: number,
  w: Float32Array,
): void {
  const radius = w.length - 1;
  const at = (i: number): number => src[start + reflect(i, n) * stride];
  for (let i = 0; i < n; i++) {
    let s = w[0] * src[start + i * stride];
    if (i >= radius && i + radius < n) {
      // Interior: no reflection needed, plain strided reads.
      for (let k = 1; k <= radius; k++)
        s += w[k] * (src[start + (i - k) * stride] + src[start + (i + k) * stride]);
    } else {
      for (let k = 1; k <= radius; k++) s += w[k] * (at(i - k) + at(i + k));
    }
    dst[start + i * stride] = s;
  }
}

export function maxOf(values: Float32Array): number {
  let m = -Infinity;
  for (let i = 0; i < values.length; i++) if (values[i] > m) m = values[i];
  return m;
}
