/**
 * Connected components of a binary mask (8-connectivity, like MVTec's evaluation uses for PRO).
 * Iterative flood fill with one preallocated stack: no recursion, no per-pixel allocation.
 */

export interface Components {
  /** Per pixel: 0 for background, 1..count for the component it belongs to. */
  labels: Int32Array;
  count: number;
  /** Pixels per component, indexed by label (index 0 unused, always 0). */
  areas: Int32Array;
}

/** Labels the nonzero pixels of `mask` (row-major, width x height) into 8-connected components. */
export function connectedComponents(mask: ArrayLike<number>, width: number, height: number): Components {
  const n = width * height;
  if (mask.length !== n) throw new RangeError(`mask has ${mask.length} pixels, expected ${width}x${height}`);
  const labels = new Int32Array(n);
  const stack = new Int32Array(n);
  const areas: number[] = [0];
  let count = 0;
  for (let start = 0; start < n; start++) {
    if (mask[start] === 0 || labels[start] !== 0) continue;
    const label = ++count;
    let area = 0;
    let top = 0;
    stack[top++] = start;
    labels[start] = label;
    while (top > 0) {
      const p = stack[--top];
      area++;
      const x = p % width;
      const y = (p - x) / width;
      const x0 = x > 0 ? x - 1 : x;
      const x1 = x < width - 1 ? x + 1 : x;
      const y0 = y > 0 ? y - 1 : y;
      const y1 = y < height - 1 ? y + 1 : y;
      for (let yy = y0; yy <= y1; yy++) {
        const row = yy * width;
        for (let xx = x0; xx <= x1; xx++) {
          const q = row + xx;
          // Each pixel is labelled when pushed, so it enters the stack at most once (stack size n suffices).
          if (mask[q] !== 0 && labels[q] === 0) {
            labels[q] = label;
            stack[top++] = q;
          }
        }
      }
    }
    areas.push(area);
  }
  return { labels, count, areas: Int32Array.from(areas) };
}
