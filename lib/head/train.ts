/**
 * Training the discriminator head (issue #20) on a job's good images only: real patch embeddings
 * (label 0) against synthesised anomalous ones (label 1), with binary cross-entropy and Adam, in
 * TensorFlow.js on its WebAssembly backend (lib/head/tf.ts). The fakes of each batch are
 *   - Gaussian: a real patch's adapted feature plus N(0, noiseStd^2) per dimension (SimpleNet);
 *   - gradient ascent: Gaussian fakes moved `gasSteps` times along the normalised gradient that makes
 *     the discriminator call them normal, then projected back into a ring around the real feature
 *     (GLASS's global anomaly synthesis: hard fakes just outside the normal manifold);
 *   - local: patches of the good images under image-level synthetic defects (lib/autoconfig's
 *     print defects, CutPaste, scars, blur/contrast/colour; GLASS's local anomalies), from
 *     lib/head/data.ts.
 * Inputs are standardised per dimension (featureStats), so noiseStd is in units of each
 * dimension's spread over the good patches. After every epoch `validate` scores the current head
 * (the synthetic validation set); the best epoch's weights are kept and training stops after
 * `patience` epochs without improvement.
 */
import { mulberry32 } from '../util/random';
import { HeadWeights, featureStats } from './weights';
import { loadTf } from './tf';
import type { Tensor } from '@tensorflow/tfjs-core';

type T = Tensor;

export interface HeadTrainConfig {
  hidden: number;
  /** Most epochs; early stopping may end sooner. */
  epochs: number;
  stepsPerEpoch: number;
  /** Real rows per step (as many fakes again). */
  batch: number;
  learningRate: number;
  /** Gaussian perturbation's standard deviation, in standardised feature units. */
  noiseStd: number;
  /** Gradient-ascent steps per global fake (0: Gaussian fakes only). */
  gasSteps: number;
  /** Shares of the fake rows: gradient-ascent, local (the rest Gaussian). */
  gasShare: number;
  localShare: number;
  /** Epochs without a better validation score before stopping (0: never stop early). */
  patience: number;
  seed: number;
}

export const DEFAULT_HEAD_TRAIN: HeadTrainConfig = {
  hidden: 128,
  epochs: 24,
  stepsPerEpoch: 60,
  batch: 256,
  learningRate: 1e-3,
  noiseStd: 0.5,
  gasSteps: 3,
  gasShare: 0.25,
  localShare: 0.25,
  patience: 4,
  seed: 20,
};

export interface HeadTrainData {
  /** Real (good) patch embeddings, rows x dim. */
  real: Float32Array;
  dim: number;
  /** Patch embeddings under synthetic image-level defects (rows x dim); may be empty. */
  local: Float32Array;
}

export interface EpochReport {
  epoch: number;
  epochs: number;
  loss: number;
  /** The validation score (higher is better), NaN without a validator. */
  validation: number;
  best: number;
  elapsedMs: number;
  /** Estimated time left at the current pace, if every remaining epoch runs. */
  etaMs: number;
}

export interface TrainedHead {
  weights: HeadWeights;
  history: { epoch: number; loss: number; validation: number }[];
  bestEpoch: number;
  stoppedEarly: boolean;
  trainMs: number;
  config: HeadTrainConfig;
}

/** Scores raw embedding rows with the head as it is now (a validator's view of it). */
export type RowScorer = (vectors: Float32Array) => Float32Array;

export async function trainHead(
  data: HeadTrainData,
  config: HeadTrainConfig,
  options: {
    validate?: (score: RowScorer) => number | Promise<number>;
    onEpoch?: (r: EpochReport) => void;
  } = {},
): Promise<TrainedHead> {
  const tf = await loadTf();
  const t0 = performance.now();
  const d = data.dim;
  const realRows = data.real.length / d;
  const localRows = data.local.length / d;
  if (realRows < 2) throw new Error('the head needs good patches to train on');
  const stats = featureStats(data.real, d);
  const rand = mulberry32(config.seed);
  const normal = () => Math.sqrt(-2 * Math.log(Math.max(rand(), 1e-12))) * Math.cos(2 * Math.PI * rand());
  const h = config.hidden;

  const mean = tf.tensor1d(stats.mean);
  const invStd = tf.tensor1d(stats.invStd);
  const wa = tf.variable(tf.eye(d));
  const ba = tf.variable(tf.zeros([d]));
  const w1 = tf.variable(
    tf.tensor2d(
      Float32Array.from({ length: d * h }, () => normal() * Math.sqrt(2 / d)),
      [d, h],
    ),
  );
  const b1 = tf.variable(tf.zeros([h]));
  const w2 = tf.variable(
    tf.tensor2d(
      Float32Array.from({ length: h }, () => normal() * Math.sqrt(1 / h)),
      [h, 1],
    ),
  );
  const b2 = tf.variable(tf.zeros([1]));
  const vars = [wa, ba, w1, b1, w2, b2];
  const optimizer = tf.train.adam(config.learningRate);

  const adapt = (x: T) => tf.add(tf.matMul(tf.mul(tf.sub(x, mean), invStd), wa), ba);
  const discriminate = (a: T) => tf.add(tf.matMul(tf.relu(tf.add(tf.matMul(a, w1), b1)), w2), b2);

  const nFake = config.batch;
  const nLocal = localRows > 0 ? Math.round(nFake * config.localShare) : 0;
  const nGas = config.gasSteps > 0 ? Math.round(nFake * config.gasShare) : 0;
  const nGauss = nFake - nLocal - nGas;
  const ringNorm = config.noiseStd * Math.sqrt(d);

  const rows = (src: Float32Array, total: number, count: number) => {
    const out = new Float32Array(count * d);
    for (let i = 0; i < count; i++) {
      const r = Math.floor(rand() * total);
      out.set(src.subarray(r * d, (r + 1) * d), i * d);
    }
    return out;
  };
  const gaussian = (count: number) =>
    Float32Array.from({ length: count * d }, () => normal() * config.noiseStd);

  /** GLASS global fakes: a perturbation of the adapted feature, ascended and projected to the ring. */
  const ascend = (x: T, count: number) =>
    tf.tidy(() => {
      const base = adapt(x);
      let delta: T = tf.tensor2d(gaussian(count), [count, d]);
      const grad = tf.grad((a: T) => tf.sum(discriminate(a)));
      for (let s = 0; s < config.gasSteps; s++) {
        const g = grad(tf.add(base, delta));
        const norm = tf.add(tf.norm(g, 'euclidean', 1, true), 1e-8);
        // Towards what the discriminator calls normal (lower logit): the hardest nearby fakes.
        delta = tf.sub(delta, tf.mul(tf.div(g, norm), 0.2 * ringNorm));
      }
      const len = tf.add(tf.norm(delta, 'euclidean', 1, true), 1e-8);
      const clipped = tf.clipByValue(len, 0.5 * ringNorm, 1.5 * ringNorm);
      return tf.mul(delta, tf.div(clipped, len));
    });

  const labels = tf.concat([tf.zeros([config.batch, 1]), tf.ones([nFake, 1])]);
  const history: TrainedHead['history'] = [];
  let best = -Infinity;
  let bestEpoch = 0;
  let bestWeights: HeadWeights | undefined;
  let stale = 0;
  let stoppedEarly = false;

  const snapshot = async (): Promise<HeadWeights> => ({
    inDim: d,
    hidden: h,
    mean: stats.mean,
    invStd: stats.invStd,
    wa: (await wa.data()) as Float32Array,
    ba: (await ba.data()) as Float32Array,
    w1: (await w1.data()) as Float32Array,
    b1: (await b1.data()) as Float32Array,
    w2: (await w2.data()) as Float32Array,
    b2: (await b2.data()) as Float32Array,
  });
  const scorer: RowScorer = (vectors) =>
    tf.tidy(() => {
      const x = tf.tensor2d(vectors, [vectors.length / d, d]);
      return discriminate(adapt(x)).dataSync() as Float32Array;
    });

  try {
    for (let epoch = 1; epoch <= config.epochs; epoch++) {
      let lossSum = 0;
      for (let step = 0; step < config.stepsPerEpoch; step++) {
        const real = tf.tensor2d(rows(data.real, realRows, config.batch), [config.batch, d]);
        const gaussX = tf.tensor2d(rows(data.real, realRows, nGauss), [nGauss, d]);
        const gaussN = tf.tensor2d(gaussian(nGauss), [nGauss, d]);
        const gasX = nGas > 0 ? tf.tensor2d(rows(data.real, realRows, nGas), [nGas, d]) : undefined;
        const gasDelta = gasX ? ascend(gasX, nGas) : undefined;
        const localX = nLocal > 0 ? tf.tensor2d(rows(data.local, localRows, nLocal), [nLocal, d]) : undefined;
        const loss = optimizer.minimize(
          () => {
            const parts = [adapt(real), tf.add(adapt(gaussX), gaussN)];
            if (gasX && gasDelta) parts.push(tf.add(adapt(gasX), gasDelta));
            if (localX) parts.push(adapt(localX));
            const logits = discriminate(tf.concat(parts));
            return tf.losses.sigmoidCrossEntropy(labels, logits) as import('@tensorflow/tfjs-core').Scalar;
          },
          true,
          vars,
        );
        lossSum += (await loss!.data())[0];
        tf.dispose([real, gaussX, gaussN, loss!, ...[gasX, gasDelta, localX].filter((t) => t !== undefined)]);
      }
      const loss = lossSum / config.stepsPerEpoch;
      const validation = options.validate ? await options.validate(scorer) : NaN;
      history.push({ epoch, loss, validation });
      const improved = !options.validate || validation > best;
      if (improved) {
        best = options.validate ? validation : best;
        bestEpoch = epoch;
        bestWeights = await snapshot();
        stale = 0;
      } else stale++;
      const elapsedMs = performance.now() - t0;
      options.onEpoch?.({
        epoch,
        epochs: config.epochs,
        loss,
        validation,
        best,
        elapsedMs,
        etaMs: (elapsedMs / epoch) * (config.epochs - epoch),
      });
      if (config.patience > 0 && stale >= config.patience && epoch < config.epochs) {
        stoppedEarly = true;
        break;
      }
    }
  } finally {
    tf.dispose([mean, invStd, labels, ...vars]);
    optimizer.dispose();
  }
  return {
    weights: bestWeights!,
    history,
    bestEpoch,
    stoppedEarly,
    trainMs: performance.now() - t0,
    config,
  };
}
