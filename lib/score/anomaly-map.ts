/**
 * From per-patch k-NN distances to an anomaly map at canvas resolution: patch scores per tile,
 * bilinear upsampling of each tile's patch grid to its pixels, stitching overlapping tiles by their
 * mean, and Gaussian smoothing (sigma 4 px at 224, as PatchCore).
 */
import { affineAxisWeights, axisWeights, pixelAxis } from '../embed/patch-embed';
import { AxisPlacement, CellPlacement } from '../backbone/geometry';
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

/**
 * The smoothed anomaly map: tile grids upsampled, stitched and Gaussian-blurred. A single tile that
 * covers the canvas (the usual 224 px frame) takes the fused path below; tiled views stitch first.
 */
export function anomalyMap(
  grids: Float32Array[],
  gridHeight: number,
  gridWidth: number,
  tiles: Tile[],
  canvasWidth: number,
  canvasHeight: number,
  sigma: number,
  /** Where the grid's cells sit on a tile (see stitchTiles). */
  placement?: CellPlacement,
): Float32Array {
  const t = tiles[0];
  const whole = tiles.length === 1 && t.left === 0 && t.top === 0;
  if (whole && t.width === canvasWidth && t.height === canvasHeight && sigma > 0) {
    return smoothUpsample(grids[0], gridHeight, gridWidth, canvasWidth, canvasHeight, sigma, placement);
  }
  const raw = stitchTiles(grids, gridHeight, gridWidth, tiles, canvasWidth, canvasHeight, placement);
  return gaussianBlur(raw, canvasWidth, canvasHeight, sigma);
}

/**
 * blur(upsample(grid)) in one step. Both are linear and separable, so per axis they compose into one
 * (output x grid) matrix A = Blur * Upsample, and the map is A_y * grid * A_x^T. Each output pixel
 * only reaches the few grid cells within the kernel's radius, so the band is narrow: about ten times
 * less work than blurring the full-resolution map, with the same result to float rounding.
 */
export function smoothUpsample(
  grid: Float32Array,
  gridHeight: number,
  gridWidth: number,
  width: number,
  height: number,
  sigma: number,
  placement?: CellPlacement,
): Float32Array {
  const ax = composedAxis(gridWidth, width, sigma, placement?.x);
  const ay = composedAxis(gridHeight, height, sigma, placement?.y);
  // Rows: grid (gh x gw) * A_x^T -> gh x width.
  const rows = new Float64Array(gridHeight * width);
  for (let g = 0; g < gridHeight; g++) {
    const src = g * gridWidth;
    const dst = g * width;
    for (let x = 0; x < width; x++) {
      const lo = ax.lo[x];
      const hi = ax.hi[x];
      const w = x * gridWidth;
      let s = 0;
      for (let j = lo; j < hi; j++) s += ax.weights[w + j] * grid[src + j];
      rows[dst + x] = s;
    }
  }
  // Columns: A_y * rows -> height x width, accumulating whole rows (contiguous inner loop).
  const out = new Float32Array(width * height);
  const acc = new Float64Array(width);
  for (let y = 0; y < height; y++) {
    acc.fill(0);
    const w = y * gridHeight;
    for (let g = ay.lo[y]; g < ay.hi[y]; g++) {
      const a = ay.weights[w + g];
      const src = g * width;
      for (let x = 0; x < width; x++) acc[x] += a * rows[src + x];
    }
    out.set(acc, y * width);
  }
  return out;
}

interface ComposedAxis {
  /** Dense (outSize x inSize) weights of Blur * Upsample along one axis. */
  weights: Float64Array;
  /** Per output index, the band [lo, hi) of grid cells with non-zero weight. */
  lo: Int32Array;
  hi: Int32Array;
}

const composedCache = new Map<string, ComposedAxis>();

function composedAxis(inSize: number, outSize: number, sigma: number, placed?: AxisPlacement): ComposedAxis {
  const key = `${inSize}/${outSize}/${sigma}/${placed ? `${placed.scale}:${placed.offset}` : 'even'}`;
  let axis = composedCache.get(key);
  if (axis) return axis;
  // The same upsampling as upsampleInto: where the cells really are, or spread evenly.
  const up = placed ? affineAxisWeights(inSize, outSize, pixelAxis(placed)) : axisWeights(inSize, outSize);
  const kernel = gaussianKernel(sigma);
  const radius = kernel.length - 1;
  const weights = new Float64Array(outSize * inSize);
  const lo = new Int32Array(outSize).fill(inSize);
  const hi = new Int32Array(outSize);
  for (let o = 0; o < outSize; o++) {
    for (let k = -radius; k <= radius; k++) {
      const p = reflect(o + k, outSize);
      const b = kernel[Math.abs(k)];
      weights[o * inSize + up.i0[p]] += b * (1 - up.f[p]);
      weights[o * inSize + up.i1[p]] += b * up.f[p];
    }
    for (let g = 0; g < inSize; g++) {
      if (weights[o * inSize + g] === 0) continue;
      lo[o] = Math.min(lo[o], g);
      hi[o] = g + 1;
    }
  }
  axis = { weights, lo, hi };
  if (composedCache.size > 64) composedCache.clear();
  composedCache.set(key, axis);
  return axis;
}

/** Half of a normalised Gaussian kernel truncated at 4 sigma: [0] is the centre. */
function gaussianKernel(sigma: number): Float64Array {
  const radius = Math.max(1, Math.ceil(4 * sigma));
  const weights = new Float64Array(radius + 1);
  let total = 0;
  for (let i = 0; i <= radius; i++) {
    weights[i] = Math.exp((-i * i) / (2 * sigma * sigma));
    total += i === 0 ? weights[i] : 2 * weights[i];
  }
  for (let i = 0; i <= radius; i++) weights[i] /= total;
  return weights;
}

/** Separable Gaussian blur, kernel truncated at 4 sigma, borders reflected. */
export function gaussianBlur(map: Float32Array, width: number, height: number, sigma: number): Float32Array {
  if (sigma <= 0) return map;
  const kernel = gaussianKernel(sigma);
  const line = new Float64Array(Math.max(width, height) + 2 * (kernel.length - 1));
  // Each pass blurs rows and writes them transposed, so both passes read contiguous memory.
  const transposed = new Float32Array(map.length);
  const out = new Float32Array(map.length);
  blurRowsTransposed(map, transposed, width, height, kernel, line);
  blurRowsTransposed(transposed, out, height, width, kernel, line);
  return out;
}

/** scipy's 'reflect' border: ... 1 0 | 0 1 2 ... n-1 | n-1 n-2 ... */
function reflect(i: number, n: number): number {
  if (n === 1) return 0;
  while (i < 0 || i >= n) i = i < 0 ? -i - 1 : 2 * n - i - 1;
  return i;
}

/** Blurs each of the h rows (width w) of src and writes row y as column y of dst (w rows of h). */
function blurRowsTransposed(
  src: Float32Array,
  dst: Float32Array,
  w: number,
  h: number,
  kernel: Float64Array,
  line: Float64Array,
): void {
  const r = kernel.length - 1;
  for (let y = 0; y < h; y++) {
    const o = y * w;
    // The row with its reflected borders, so the convolution below needs no bounds checks.
    for (let i = -r; i < w + r; i++) line[i + r] = src[o + (i >= 0 && i < w ? i : reflect(i, w))];
    for (let x = 0; x < w; x++) {
      const c = x + r;
      let s = kernel[0] * line[c];
      for (let j = 1; j <= r; j++) s += kernel[j] * (line[c - j] + line[c + j]);
      dst[x * h + y] = s;
    }
  }
}

export function maxOf(values: Float32Array): number {
  let m = -Infinity;
  for (let i = 0; i < values.length; i++) if (values[i] > m) m = values[i];
  return m;
}
