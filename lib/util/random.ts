/** Seeded randomness, so projections, samples and synthetic data reproduce across machines. */

export function gaussianMatrix(inDim: number, outDim: number, seed: number): Float32Array {
  const rand = mulberry32(seed);
  const m = new Float32Array(inDim * outDim);
  const scale = 1 / Math.sqrt(outDim);
  for (let i = 0; i < m.length; i += 2) {
    // Box-Muller: two normals per two uniforms.
    const u = Math.max(rand(), 1e-12);
    const v = rand();
    const r = Math.sqrt(-2 * Math.log(u));
    m[i] = r * Math.cos(2 * Math.PI * v) * scale;
    if (i + 1 < m.length) m[i + 1] = r * Math.sin(2 * Math.PI * v) * scale;
  }
  return m;
}

/** Small seeded PRNG: reproducible projections and samples across machines. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** k distinct indices from [0, n), in ascending order (partial Fisher-Yates). */
export function sampleIndices(n: number, k: number, seed: number): Int32Array {
  const rand = mulberry32(seed);
  const pool = new Int32Array(n);
  for (let i = 0; i < n; i++) pool[i] = i;
  const take = Math.min(k, n);
  for (let i = 0; i < take; i++) {
    const j = i + Math.floor(rand() * (n - i));
    const t = pool[i];
    pool[i] = pool[j];
    pool[j] = t;
  }
  return pool.slice(0, take).sort();
}
