/**
 * The gateway's reduce step: each partition returns its own k nearest bank patches per query
 * patch; the global k nearest are the k smallest of their union. With exact (Flat) partitions this
 * equals one search over the whole bank.
 */
import { KnnResult } from '../../lib/knn/index';

export function mergeTopK(parts: KnnResult[], rows: number, k: number): KnnResult {
  if (parts.length === 1 && parts[0].k === k) return parts[0];
  const total = parts.reduce((n, p) => n + p.k, 0);
  const kk = Math.min(k, total);
  const distances = new Float32Array(rows * kk);
  const labels = new Float64Array(rows * kk);
  const cursor = new Int32Array(parts.length);
  for (let r = 0; r < rows; r++) {
    cursor.fill(0);
    // Each part's row is sorted ascending: a k-way merge of the heads.
    for (let out = 0; out < kk; out++) {
      let best = -1;
      let bestD = Infinity;
      for (let p = 0; p < parts.length; p++) {
        const part = parts[p];
        if (cursor[p] >= part.k) continue;
        const d = part.distances[r * part.k + cursor[p]];
        if (d < bestD || best < 0) {
          bestD = d;
          best = p;
        }
      }
      const part = parts[best];
      distances[r * kk + out] = bestD;
      labels[r * kk + out] = part.labels[r * part.k + cursor[best]];
      cursor[best]++;
    }
  }
  return { distances, labels, k: kk };
}
