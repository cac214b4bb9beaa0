/**
 * Synthetic patch embeddings for the search bench: a seeded mixture of a few thousand low-rank
 * Gaussians. Real patch embeddings lie near a low-dimensional manifold with dense and sparse parts,
 * which is what makes IVF work; uniform or isotropic random vectors would make it look worse than it
 * is (no structure) or better (well-separated blobs), so: components grouped under super-clusters
 * (siblings overlap), each spread along a few random directions with its own scale, plus a little
 * isotropic noise, and lognormal component weights (some parts of the bank are much denser).
 */
import { mulberry32 } from '../lib/util/random';

export interface MixtureOptions {
  dim: number;
  components: number;
  /** Directions each component spreads along (its intrinsic dimension). */
  rank: number;
  /** Super-clusters the component centres are grouped under. */
  groups: number;
  seed: number;
}

export const DEFAULT_MIXTURE: Omit<MixtureOptions, 'dim'> = {
  components: 2048,
  rank: 8,
  groups: 64,
  seed: 11,
};

export interface Mixture {
  options: MixtureOptions;
  centres: Float32Array;
  /** Per component, `rank` directions of length ~scale, row-major [components][rank][dim]. */
  bases: Float32Array;
  /** Cumulative component weights, last = 1. */
  cumulative: Float64Array;
}

const NOISE = 0.1;
const SIBLING_SPREAD = 0.35;

function normals(seed: number): () => number {
  const rand = mulberry32(seed);
  let spare: number | null = null;
  return () => {
    if (spare !== null) {
      const s = spare;
      spare = null;
      return s;
    }
    const r = Math.sqrt(-2 * Math.log(Math.max(rand(), 1e-12)));
    const t = 2 * Math.PI * rand();
    spare = r * Math.sin(t);
    return r * Math.cos(t);
  };
}

export function makeMixture(options: MixtureOptions): Mixture {
  const { dim, components, rank, groups, seed } = options;
  const gauss = normals(seed);
  const supers = Float32Array.from({ length: groups * dim }, gauss);
  const centres = new Float32Array(components * dim);
  const bases = new Float32Array(components * rank * dim);
  const weights = new Float64Array(components);
  for (let c = 0; c < components; c++) {
    const g = c % groups;
    for (let j = 0; j < dim; j++) centres[c * dim + j] = supers[g * dim + j] + SIBLING_SPREAD * gauss();
    // Scales from 0.3 to 1.5 (log-uniform): tight and loose parts of the bank.
    const scale = 0.3 * Math.exp(Math.log(5) * (gauss() * 0.5 + 0.5));
    const b = c * rank * dim;
    for (let j = 0; j < rank * dim; j++) bases[b + j] = (scale * gauss()) / Math.sqrt(dim / rank);
    weights[c] = Math.exp(gauss());
  }
  const cumulative = new Float64Array(components);
  let sum = 0;
  for (let c = 0; c < components; c++) cumulative[c] = sum += weights[c];
  for (let c = 0; c < components; c++) cumulative[c] /= sum;
  return { options, centres, bases, cumulative };
}

/** `rows` vectors drawn from the mixture; different seeds give independent draws (bank vs queries). */
export function sampleMixture(m: Mixture, rows: number, seed: number): Float32Array {
  const { dim, rank } = m.options;
  const rand = mulberry32(seed);
  const gauss = normals(seed + 1);
  const out = new Float32Array(rows * dim);
  const z = new Float64Array(rank);
  for (let i = 0; i < rows; i++) {
    const c = pick(m.cumulative, rand());
    for (let r = 0; r < rank; r++) z[r] = gauss();
    const o = i * dim;
    for (let j = 0; j < dim; j++) {
      let v = m.centres[c * dim + j] + NOISE * gauss();
      for (let r = 0; r < rank; r++) v += z[r] * m.bases[(c * rank + r) * dim + j];
      out[o + j] = v;
    }
  }
  return out;
}

function pick(cumulative: Float64Array, u: number): number {
  let lo = 0;
  let hi = cumulative.length - 1;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (cumulative[mid] < u) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
