/**
 * The discriminator head's weights (issue #20): a linear feature adaptor and a 2-layer MLP over
 * patch embeddings, SimpleNet/GLASS style.
 *
 *   z = (x - mean) * invStd          input standardisation, fixed from the training patches
 *   a = z Wa + ba                    feature adaptor (D x D, starts as the identity)
 *   h = relu(a W1 + b1)              hidden layer (H units)
 *   logit = h w2 + b2                > 0: anomalous; the patch's anomaly score
 *
 * The first three steps are affine, so the exported graph folds them into one D x H layer
 * (`foldWeights`): the same numbers, half the multiply-adds at inspection.
 */

export interface HeadWeights {
  inDim: number;
  hidden: number;
  mean: Float32Array;
  invStd: Float32Array;
  /** [inDim x inDim], input-major: wa[i * inDim + o]. */
  wa: Float32Array;
  ba: Float32Array;
  /** [inDim x hidden]. */
  w1: Float32Array;
  b1: Float32Array;
  /** [hidden]. */
  w2: Float32Array;
  b2: Float32Array;
}

/**
 * A dimension's spread is taken as at least this share of the median dimension's. Wide ReLU
 * activations (MobileNetV2's expanded stages) have channels that hardly vary on good patches;
 * standardised by their own spread they would weigh up to a thousand times a typical channel, and
 * folded into the first layer's weights (foldWeights) those rows set the INT8 weight scale, which
 * rounds every other row to nothing. The 96-wide residual embedding's least spread is half its
 * median, so the floor never applies there.
 */
export const RELATIVE_STD_FLOOR = 0.1;

/**
 * Per-dimension mean and 1/std of `rows` vectors; std floored at RELATIVE_STD_FLOOR of the median
 * dimension's (and at 1e-3, so a dead channel stays finite).
 */
export function featureStats(
  vectors: Float32Array,
  dim: number,
): { mean: Float32Array; invStd: Float32Array } {
  const n = vectors.length / dim;
  const sum = new Float64Array(dim);
  const sq = new Float64Array(dim);
  for (let r = 0; r < n; r++)
    for (let d = 0; d < dim; d++) {
      const v = vectors[r * dim + d];
      sum[d] += v;
      sq[d] += v * v;
    }
  const mean = new Float32Array(dim);
  const std = new Float64Array(dim);
  for (let d = 0; d < dim; d++) {
    const m = sum[d] / Math.max(1, n);
    mean[d] = m;
    std[d] = Math.sqrt(Math.max(0, sq[d] / Math.max(1, n) - m * m));
  }
  const median = [...std].sort((a, b) => a - b)[dim >> 1] ?? 0;
  const floor = Math.max(1e-3, RELATIVE_STD_FLOOR * median);
  const invStd = Float32Array.from(std, (s) => 1 / Math.max(floor, s));
  return { mean, invStd };
}

/** The network as one affine layer, ReLU, one output: logit = relu(x W + b) w2 + b2. */
export interface FoldedHead {
  inDim: number;
  hidden: number;
  /** [inDim x hidden]. */
  w: Float32Array;
  b: Float32Array;
  w2: Float32Array;
  b2: number;
}

export function foldWeights(h: HeadWeights): FoldedHead {
  const { inDim: d, hidden: n } = h;
  // A = diag(invStd) Wa (D x D), c = ba - (mean * invStd) Wa; then W = A W1, b = c W1 + b1.
  const a = new Float64Array(d * d);
  const c = Float64Array.from(h.ba);
  for (let i = 0; i < d; i++)
    for (let o = 0; o < d; o++) {
      a[i * d + o] = h.invStd[i] * h.wa[i * d + o];
      c[o] -= h.mean[i] * h.invStd[i] * h.wa[i * d + o];
    }
  const w = new Float32Array(d * n);
  const b = new Float32Array(n);
  for (let j = 0; j < n; j++) {
    let s = h.b1[j];
    for (let k = 0; k < d; k++) s += c[k] * h.w1[k * n + j];
    b[j] = s;
  }
  for (let i = 0; i < d; i++)
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let k = 0; k < d; k++) s += a[i * d + k] * h.w1[k * n + j];
      w[i * n + j] = s;
    }
  return { inDim: d, hidden: n, w, b, w2: h.w2.slice(), b2: h.b2[0] };
}

/** Anomaly logits of raw embedding rows in plain TypeScript: the reference the ONNX head is held to. */
export function scoreRowsReference(head: FoldedHead, vectors: Float32Array): Float32Array {
  const { inDim: d, hidden: n } = head;
  const rows = vectors.length / d;
  const out = new Float32Array(rows);
  const hid = new Float64Array(n);
  for (let r = 0; r < rows; r++) {
    hid.set(head.b);
    for (let i = 0; i < d; i++) {
      const v = vectors[r * d + i];
      for (let j = 0; j < n; j++) hid[j] += v * head.w[i * n + j];
    }
    let s = head.b2;
    for (let j = 0; j < n; j++) if (hid[j] > 0) s += hid[j] * head.w2[j];
    out[r] = s;
  }
  return out;
}
