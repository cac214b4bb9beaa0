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
 * The smoothed anomaly map: tile grids upsampled, stitched and Gaussian-blurred. Tiles on a regular
 * grid (every view's tiles, and the usual 224 px frame as one tile) take the composed path below;
 * any other layout stitches at full resolution first and blurs that.
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
  const layout = sigma > 0 ? tileLayout(tiles, canvasWidth, canvasHeight) : undefined;
  if (layout) {
    const ax = composedAxis(gridWidth, layout.lefts, layout.tileWidth, canvasWidth, sigma, placement?.x);
    const ay = composedAxis(gridHeight, layout.tops, layout.tileHeight, canvasHeight, sigma, placement?.y);
    const grid = layout.order.length === 1 ? grids[0] : tileMosaic(grids, gridHeight, gridWidth, layout);
    return applyComposed(grid, layout.tops.length * gridHeight, layout.lefts.length * gridWidth, ax, ay);
  }
  const raw = stitchTiles(grids, gridHeight, gridWidth, tiles, canvasWidth, canvasHeight, placement);
  return gaussianBlur(raw, canvasWidth, canvasHeight, sigma);
}

/** Equal tiles at every (top, left) of two sorted lists, each once: what tileGrid() makes. */
interface TileLayout {
  tops: number[];
  lefts: number[];
  tileWidth: number;
  tileHeight: number;
  /** order[r * lefts.length + c]: the index in `tiles` of the tile at (tops[r], lefts[c]). */
  order: number[];
}

function tileLayout(tiles: Tile[], canvasWidth: number, canvasHeight: number): TileLayout | undefined {
  if (tiles.length === 0) return undefined;
  const { width: tileWidth, height: tileHeight } = tiles[0];
  const tops = [...new Set(tiles.map((t) => t.top))].sort((a, b) => a - b);
  const lefts = [...new Set(tiles.map((t) => t.left))].sort((a, b) => a - b);
  if (tops.length * lefts.length !== tiles.length) return undefined;
  const order = new Array<number>(tiles.length).fill(-1);
  for (let i = 0; i < tiles.length; i++) {
    const t = tiles[i];
    const inside =
      t.left >= 0 && t.top >= 0 && t.left + t.width <= canvasWidth && t.top + t.height <= canvasHeight;
    if (t.width !== tileWidth || t.height !== tileHeight || !inside) return undefined;
    const at = tops.indexOf(t.top) * lefts.length + lefts.indexOf(t.left);
    if (order[at] !== -1) return undefined;
    order[at] = i;
  }
  return { tops, lefts, tileWidth, tileHeight, order };
}

/** The tiles' grids side by side as one (rows*gh x cols*gw) grid, in layout order. */
function tileMosaic(grids: Float32Array[], gh: number, gw: number, layout: TileLayout): Float32Array {
  const cols = layout.lefts.length;
  const width = cols * gw;
  const out = new Float32Array(layout.tops.length * gh * width);
  layout.order.forEach((tile, at) => {
    const r = Math.floor(at / cols);
    const c = at % cols;
    for (let i = 0; i < gh; i++)
      out.set(grids[tile].subarray(i * gw, (i + 1) * gw), (r * gh + i) * width + c * gw);
  });
  return out;
}

/**
 * blur(upsample(grid)) in one step, for a single grid covering the canvas. See applyComposed.
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
  const ax = composedAxis(gridWidth, [0], width, width, sigma, placement?.x);
  const ay = composedAxis(gridHeight, [0], height, height, sigma, placement?.y);
  return applyComposed(grid, gridHeight, gridWidth, ax, ay);
}

/**
 * blur(stitch(upsample(tiles))) in one step. Upsampling, the stitch's average over overlapping
 * tiles and the blur are all linear and separable over a regular tile layout, so per axis they
 * compose into one (output x cells) matrix A, and the map is A_y * mosaic * A_x^T. Each output pixel
 * only reaches the few cells within the kernel's radius, so the band is narrow: several times less
 * work than blurring the full-resolution map, with the same result to float rounding.
 */
function applyComposed(
  grid: Float32Array,
  gridHeight: number,
  gridWidth: number,
  ax: ComposedAxis,
  ay: ComposedAxis,
): Float32Array {
  const width = ax.lo.length;
  const height = ay.lo.length;
  // A finite value times zero adds nothing, so the tap sums below equal the band sums.
  const finite = grid.every(Number.isFinite);
  const xTaps = finite ? ax.taps : null;
  const yTaps = finite ? ay.taps : null;
  // Rows: grid (gh x gw) * A_x^T -> gh x width.
  const rows = new Float64Array(gridHeight * width);
  for (let g = 0; g < gridHeight; g++) {
    const src = g * gridWidth;
    const dst = g * width;
    for (let x = 0; x < width; x++) {
      if (xTaps) {
        let s = 0;
        for (let t = 0; t < xTaps.used[x]; t += TAPS) s = eightTaps(s, grid, src, xTaps, x, t);
        rows[dst + x] = s;
        continue;
      }
      const lo = ax.lo[x];
      const hi = ax.hi[x];
      const w = x * gridWidth;
      let s = 0;
      for (let j = lo; j < hi; j++) s += ax.weights[w + j] * grid[src + j];
      rows[dst + x] = s;
    }
  }
  // Columns: A_y * rows -> height x width, accumulating whole rows (contiguous inner loops).
  const out = new Float32Array(width * height);
  const acc = new Float64Array(width);
  for (let y = 0; y < height; y++) {
    acc.fill(0);
    if (yTaps) {
      for (let t = 0; t < yTaps.used[y]; t += TAPS) eightRows(acc, rows, width, yTaps, y, t);
    } else {
      const w = y * gridHeight;
      for (let g = ay.lo[y]; g < ay.hi[y]; g++) {
        const a = ay.weights[w + g];
        const src = g * width;
        for (let x = 0; x < width; x++) acc[x] += a * rows[src + x];
      }
    }
    out.set(acc, y * width);
  }
  return out;
}

/**
 * Per output index, its non-zero cells (ascending) and their weights, `perIndex` slots each (a
 * multiple of TAPS), padded with the first cell at weight zero. Summed TAPS at a time in the band's
 * order with the zero terms left out, they give the band's sum bit for bit, in a fraction of the
 * loads: a whole frame at sigma 4 has 6 per index in a band of 6, an overlap of a tiled canvas two
 * tiles' few cells in a band of ~30. Null where some index has more than MAX_TAPS.
 */
interface AxisTaps {
  perIndex: number;
  /** Per output index, the slots worth summing: its non-zero taps rounded up to eights. */
  used: Uint8Array;
  cells: Int32Array;
  weights: Float64Array;
}

const TAPS = 8;
const MAX_TAPS = 32;

function axisTaps(weights: Float64Array, lo: Int32Array, hi: Int32Array, cells: number): AxisTaps | null {
  let most = 0;
  for (let o = 0; o < lo.length; o++) {
    let count = 0;
    for (let g = lo[o]; g < hi[o]; g++) if (weights[o * cells + g] !== 0) count++;
    if (count === 0 || count > MAX_TAPS) return null;
    most = Math.max(most, count);
  }
  const perIndex = Math.ceil(most / TAPS) * TAPS;
  const out = {
    perIndex,
    used: new Uint8Array(lo.length),
    cells: new Int32Array(lo.length * perIndex),
    weights: new Float64Array(lo.length * perIndex),
  };
  for (let o = 0; o < lo.length; o++) {
    const at = o * perIndex;
    let t = 0;
    for (let g = lo[o]; g < hi[o]; g++) {
      const w = weights[o * cells + g];
      if (w === 0) continue;
      out.cells[at + t] = g;
      out.weights[at + t++] = w;
    }
    out.used[o] = Math.ceil(t / TAPS) * TAPS;
    for (; t < perIndex; t++) out.cells[at + t] = out.cells[at];
  }
  return out;
}

/** `s` plus output `o`'s taps `from`..`from + 7` times `values[base + cell]`, in order. */
function eightTaps(
  s: number,
  values: Float32Array,
  base: number,
  taps: AxisTaps,
  o: number,
  from: number,
): number {
  const c = taps.cells;
  const w = taps.weights;
  const t = o * taps.perIndex + from;
  return (
    s +
    w[t] * values[base + c[t]] +
    w[t + 1] * values[base + c[t + 1]] +
    w[t + 2] * values[base + c[t + 2]] +
    w[t + 3] * values[base + c[t + 3]] +
    w[t + 4] * values[base + c[t + 4]] +
    w[t + 5] * values[base + c[t + 5]] +
    w[t + 6] * values[base + c[t + 6]] +
    w[t + 7] * values[base + c[t + 7]]
  );
}

/**
 * Adds output row `y`'s taps `from`..`from + 7` times whole rows of `rows` to `acc`, in one pass:
 * ~2.5x faster than a pass per row (a 1,024 px frame's map 10 -> 5 ms).
 */
function eightRows(
  acc: Float64Array,
  rows: Float64Array,
  width: number,
  taps: AxisTaps,
  y: number,
  from: number,
): void {
  const t = y * taps.perIndex + from;
  const w = taps.weights;
  const c = taps.cells;
  const a0 = w[t];
  const a1 = w[t + 1];
  const a2 = w[t + 2];
  const a3 = w[t + 3];
  const a4 = w[t + 4];
  const a5 = w[t + 5];
  const a6 = w[t + 6];
  const a7 = w[t + 7];
  const r0 = c[t] * width;
  const r1 = c[t + 1] * width;
  const r2 = c[t + 2] * width;
  const r3 = c[t + 3] * width;
  const r4 = c[t + 4] * width;
  const r5 = c[t + 5] * width;
  const r6 = c[t + 6] * width;
  const r7 = c[t + 7] * width;
  for (let x = 0; x < width; x++)
    acc[x] =
      acc[x] +
      a0 * rows[r0 + x] +
      a1 * rows[r1 + x] +
      a2 * rows[r2 + x] +
      a3 * rows[r3 + x] +
      a4 * rows[r4 + x] +
      a5 * rows[r5 + x] +
      a6 * rows[r6 + x] +
      a7 * rows[r7 + x];
}

interface ComposedAxis {
  /** Dense (outSize x cells) weights of Blur * Stitch * Upsample along one axis. */
  weights: Float64Array;
  /** Per output index, the band [lo, hi) of cells with non-zero weight. */
  lo: Int32Array;
  hi: Int32Array;
  /** The same weights as a few taps per output index (axisTaps). */
  taps: AxisTaps | null;
}

const composedCache = new Map<string, ComposedAxis>();

/**
 * One axis of the composed operator: tiles of `tileSize` px starting at `starts`, each with `inSize`
 * cells (cell r * inSize + i is tile r's i-th), on a canvas of `outSize` px.
 */
function composedAxis(
  inSize: number,
  starts: number[],
  tileSize: number,
  outSize: number,
  sigma: number,
  placed?: AxisPlacement,
): ComposedAxis {
  const where = placed ? `${placed.scale}:${placed.offset}` : 'even';
  const key = `${inSize}/${starts.join(',')}/${tileSize}/${outSize}/${sigma}/${where}`;
  let axis = composedCache.get(key);
  if (axis) return axis;
  // The same upsampling as upsampleInto: where the cells really are, or spread evenly.
  const up = placed ? affineAxisWeights(inSize, tileSize, pixelAxis(placed)) : axisWeights(inSize, tileSize);
  // The stitched canvas along this axis: per pixel, its cells and weights (overlaps averaged).
  const stitched = Array.from({ length: outSize }, () => [] as [number, number][]);
  for (let p = 0; p < outSize; p++) {
    const covering = starts.map((s, r) => [s, r]).filter(([s]) => p >= s && p < s + tileSize);
    for (const [s, r] of covering) {
      const q = p - s;
      const share = 1 / covering.length;
      stitched[p].push(
        [r * inSize + up.i0[q], share * (1 - up.f[q])],
        [r * inSize + up.i1[q], share * up.f[q]],
      );
    }
  }
  const cells = starts.length * inSize;
  const kernel = gaussianKernel(sigma);
  const radius = kernel.length - 1;
  const weights = new Float64Array(outSize * cells);
  const lo = new Int32Array(outSize).fill(cells);
  const hi = new Int32Array(outSize);
  for (let o = 0; o < outSize; o++) {
    for (let k = -radius; k <= radius; k++) {
      const b = kernel[Math.abs(k)];
      for (const [cell, w] of stitched[reflect(o + k, outSize)]) weights[o * cells + cell] += b * w;
    }
    for (let g = 0; g < cells; g++) {
      if (weights[o * cells + g] === 0) continue;
      lo[o] = Math.min(lo[o], g);
      hi[o] = g + 1;
    }
  }
  axis = { weights, lo, hi, taps: axisTaps(weights, lo, hi, cells) };
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
