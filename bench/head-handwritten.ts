/**
 * The contender that lost (bench/head-train-backends.ts): the discriminator head's network with
 * hand-written training kernels, as plain TypeScript over Float32Arrays. The product trains with
 * TensorFlow.js' WebAssembly backend instead (lib/head/train.ts), 3-4x faster here.
 *
 *   z = (x - mean) * invStd          input standardisation, fixed from the training patches
 *   a = z Wa + ba                    feature adaptor (D x D, starts as the identity)
 *   h = relu(a' W1 + b1)             a' = a, or a + a synthetic perturbation for a fake patch
 *   logit = h w2 + b2                > 0: anomalous
 *
 * All kernels loop with the innermost index contiguous in memory (Float32Array), which V8 compiles
 * to tight scalar loops; XNNPACK's SIMD kernels in the wasm backend still beat them (docs/glass-head.md).
 */
import { mulberry32 } from '../lib/util/random';
import type { HeadWeights } from '../lib/head/weights';

/** The same weights the product trains (lib/head/weights.ts). */
export type HeadParams = HeadWeights;

/** The trainable arrays, in one fixed order (Adam's state follows it). */
export const TRAINABLE = ['wa', 'ba', 'w1', 'b1', 'w2', 'b2'] as const;
export type Trainable = (typeof TRAINABLE)[number];

/** Y[n x O] = X[n x I] W[I x O] + b. */
export function linear(
  x: Float32Array,
  n: number,
  inDim: number,
  w: Float32Array,
  b: Float32Array,
  outDim: number,
  y: Float32Array,
): void {
  for (let r = 0; r < n; r++) {
    const yo = r * outDim;
    for (let o = 0; o < outDim; o++) y[yo + o] = b[o];
    const xo = r * inDim;
    for (let i = 0; i < inDim; i++) {
      const v = x[xo + i];
      if (v === 0) continue;
      const wo = i * outDim;
      for (let o = 0; o < outDim; o++) y[yo + o] += v * w[wo + o];
    }
  }
}

/** dW[I x O] += X^T dY, db[O] += column sums of dY. */
export function linearGradParams(
  x: Float32Array,
  dy: Float32Array,
  n: number,
  inDim: number,
  outDim: number,
  dw: Float32Array,
  db: Float32Array,
): void {
  for (let r = 0; r < n; r++) {
    const yo = r * outDim;
    for (let o = 0; o < outDim; o++) db[o] += dy[yo + o];
    const xo = r * inDim;
    for (let i = 0; i < inDim; i++) {
      const v = x[xo + i];
      if (v === 0) continue;
      const wo = i * outDim;
      for (let o = 0; o < outDim; o++) dw[wo + o] += v * dy[yo + o];
    }
  }
}

/** dX[n x I] = dY W^T. */
export function linearGradInput(
  dy: Float32Array,
  n: number,
  inDim: number,
  w: Float32Array,
  outDim: number,
  dx: Float32Array,
): void {
  for (let r = 0; r < n; r++) {
    const yo = r * outDim;
    const xo = r * inDim;
    for (let i = 0; i < inDim; i++) {
      const wo = i * outDim;
      let s = 0;
      for (let o = 0; o < outDim; o++) s += dy[yo + o] * w[wo + o];
      dx[xo + i] = s;
    }
  }
}

/** A fresh head: identity adaptor, He-initialised MLP (seeded). */
export function initHead(
  inDim: number,
  hidden: number,
  stats: { mean: Float32Array; invStd: Float32Array },
  seed: number,
): HeadParams {
  const rand = mulberry32(seed);
  const normal = () => {
    const u = Math.max(rand(), 1e-12);
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * rand());
  };
  const wa = new Float32Array(inDim * inDim);
  for (let i = 0; i < inDim; i++) wa[i * inDim + i] = 1;
  const w1 = Float32Array.from({ length: inDim * hidden }, () => normal() * Math.sqrt(2 / inDim));
  const w2 = Float32Array.from({ length: hidden }, () => normal() * Math.sqrt(1 / hidden));
  return {
    inDim,
    hidden,
    mean: stats.mean,
    invStd: stats.invStd,
    wa,
    ba: new Float32Array(inDim),
    w1,
    b1: new Float32Array(hidden),
    w2,
    b2: new Float32Array(1),
  };
}

/**
 * Scratch buffers and the forward/backward pass for batches of up to `capacity` rows. The batch is
 * given already standardised (z); `perturb` (n x D, or null) is added after the adaptor.
 */
export class HeadNet {
  private readonly z: Float32Array;
  private readonly a: Float32Array;
  private readonly h1: Float32Array;
  private readonly r: Float32Array;
  readonly logits: Float32Array;
  private readonly dLogit: Float32Array;
  private readonly dH: Float32Array;
  /** Gradient of the loss with respect to a' (the adapted, perturbed features), after backward(). */
  readonly dA: Float32Array;
  readonly grads: Record<Trainable, Float32Array>;

  constructor(
    readonly params: HeadParams,
    readonly capacity: number,
  ) {
    const { inDim: d, hidden: h } = params;
    this.z = new Float32Array(capacity * d);
    this.a = new Float32Array(capacity * d);
    this.h1 = new Float32Array(capacity * h);
    this.r = new Float32Array(capacity * h);
    this.logits = new Float32Array(capacity);
    this.dLogit = new Float32Array(capacity);
    this.dH = new Float32Array(capacity * h);
    this.dA = new Float32Array(capacity * d);
    this.grads = {
      wa: new Float32Array(d * d),
      ba: new Float32Array(d),
      w1: new Float32Array(d * h),
      b1: new Float32Array(h),
      w2: new Float32Array(h),
      b2: new Float32Array(1),
    };
  }

  /** Adapted features of standardised rows (n x D), without perturbation, into a new array. */
  adapt(z: Float32Array, n: number): Float32Array {
    const p = this.params;
    const out = new Float32Array(n * p.inDim);
    linear(z, n, p.inDim, p.wa, p.ba, p.inDim, out);
    return out;
  }

  /** Logits of standardised rows; fills this.logits[0..n). */
  forward(z: Float32Array, n: number, perturb: Float32Array | null): Float32Array {
    const p = this.params;
    const d = p.inDim;
    this.z.set(z.subarray(0, n * d));
    linear(this.z, n, d, p.wa, p.ba, d, this.a);
    if (perturb) for (let i = 0; i < n * d; i++) this.a[i] += perturb[i];
    return this.discriminate(n);
  }

  /** Logits of already-adapted rows a' (n x D): the discriminator alone (the GLASS ascent's view). */
  forwardAdapted(a: Float32Array, n: number): Float32Array {
    this.a.set(a.subarray(0, n * this.params.inDim));
    return this.discriminate(n);
  }

  private discriminate(n: number): Float32Array {
    const p = this.params;
    const h = p.hidden;
    linear(this.a, n, p.inDim, p.w1, p.b1, h, this.h1);
    for (let i = 0; i < n * h; i++) this.r[i] = this.h1[i] > 0 ? this.h1[i] : 0;
    for (let row = 0; row < n; row++) {
      let s = p.b2[0];
      const o = row * h;
      for (let j = 0; j < h; j++) s += this.r[o + j] * p.w2[j];
      this.logits[row] = s;
    }
    return this.logits;
  }

  /**
   * Mean binary cross-entropy of the last forward pass against `labels` (1 = anomalous), weighted
   * per row; its gradients are added to this.grads (unless `paramsToo` is false) and dA is set.
   * Returns the loss.
   */
  backward(labels: Float32Array, weights: Float32Array, n: number, paramsToo = true): number {
    const p = this.params;
    const d = p.inDim;
    const h = p.hidden;
    let total = 0;
    let wsum = 0;
    for (let i = 0; i < n; i++) wsum += weights[i];
    const norm = wsum > 0 ? 1 / wsum : 0;
    for (let i = 0; i < n; i++) {
      const x = this.logits[i];
      const y = labels[i];
      // log(1 + e^x) - y x, computed stably.
      total += weights[i] * (Math.max(x, 0) - x * y + Math.log1p(Math.exp(-Math.abs(x))));
      this.dLogit[i] = weights[i] * norm * (1 / (1 + Math.exp(-x)) - y);
    }
    for (let row = 0; row < n; row++) {
      const g = this.dLogit[row];
      const o = row * h;
      for (let j = 0; j < h; j++) this.dH[o + j] = this.h1[o + j] > 0 ? g * p.w2[j] : 0;
    }
    linearGradInput(this.dH, n, d, p.w1, h, this.dA);
    if (paramsToo) {
      const g = this.grads;
      for (let row = 0; row < n; row++) {
        const dl = this.dLogit[row];
        g.b2[0] += dl;
        const o = row * h;
        for (let j = 0; j < h; j++) g.w2[j] += dl * this.r[o + j];
      }
      linearGradParams(this.a, this.dH, n, d, h, g.w1, g.b1);
      // Through the adaptor (a perturbation is a constant: d a'/d a = 1).
      linearGradParams(this.z, this.dA, n, d, d, g.wa, g.ba);
    }
    return total * norm;
  }

  zeroGrads(): void {
    for (const k of TRAINABLE) this.grads[k].fill(0);
  }
}

/** Adam (Kingma & Ba) over the trainable arrays, with decoupled weight decay on the weights. */
export class Adam {
  private readonly m: Record<Trainable, Float32Array>;
  private readonly v: Record<Trainable, Float32Array>;
  private t = 0;

  constructor(
    private readonly params: HeadParams,
    private readonly lr: number,
    private readonly weightDecay = 1e-5,
    private readonly beta1 = 0.9,
    private readonly beta2 = 0.999,
  ) {
    const zeros = () =>
      Object.fromEntries(TRAINABLE.map((k) => [k, new Float32Array(params[k].length)])) as Record<
        Trainable,
        Float32Array
      >;
    this.m = zeros();
    this.v = zeros();
  }

  step(grads: Record<Trainable, Float32Array>): void {
    this.t++;
    const c1 = 1 - this.beta1 ** this.t;
    const c2 = 1 - this.beta2 ** this.t;
    for (const k of TRAINABLE) {
      const p = this.params[k];
      const g = grads[k];
      const m = this.m[k];
      const v = this.v[k];
      const decay = k.startsWith('w') ? this.weightDecay : 0;
      for (let i = 0; i < p.length; i++) {
        m[i] = this.beta1 * m[i] + (1 - this.beta1) * g[i];
        v[i] = this.beta2 * v[i] + (1 - this.beta2) * g[i] * g[i];
        p[i] -= this.lr * (m[i] / c1 / (Math.sqrt(v[i] / c2) + 1e-8) + decay * p[i]);
      }
    }
  }
}
