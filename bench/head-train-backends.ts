/**
 * How to train the discriminator head (issue #20) on the CPU: the hand-written kernels of
 * lib/head/mlp.ts against TensorFlow.js' plain CPU backend and its WebAssembly backend, on the same
 * network (identity-initialised D x D adaptor, D -> H ReLU -> 1), the same batches and Adam.
 *
 *   node --import tsx bench/head-train-backends.ts [--dim 96] [--hidden 128] [--batch 512] [--steps 60]
 *       [--tfjs-dir DIR] [--out eval-results/head-train-backends.json]
 *
 * --tfjs-dir: a node_modules folder holding @tensorflow/tfjs-core, -backend-cpu and -backend-wasm of
 * one version (the wasm backend is not a dependency of the product: it lost, see docs/glass-head.md;
 * `npm install --prefix /tmp/tfw --ignore-scripts @tensorflow/tfjs-core@4.22.0
 * @tensorflow/tfjs-backend-cpu@4.22.0 @tensorflow/tfjs-backend-wasm@4.22.0`). Without it only the
 * repository's @tensorflow/tfjs (CPU backend) is measured.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { Adam, HeadNet, initHead } from './head-handwritten';
import { mulberry32 } from '../lib/util/random';

interface Row {
  backend: string;
  msPerStep: number;
  rowsPerSecond: number;
  finalLoss: number;
}

const { values } = parseArgs({
  options: {
    dim: { type: 'string', default: '96' },
    hidden: { type: 'string', default: '128' },
    batch: { type: 'string', default: '512' },
    steps: { type: 'string', default: '60' },
    'tfjs-dir': { type: 'string' },
    out: { type: 'string', default: 'eval-results/head-train-backends.json' },
  },
});
const D = Number(values.dim);
const H = Number(values.hidden);
const B = Number(values.batch);
const STEPS = Number(values.steps);
const WARMUP = 5;

/** Half real rows (label 0), half the same rows plus Gaussian noise (label 1), like a SimpleNet batch. */
function batches(count: number): { x: Float32Array; noise: Float32Array; y: Float32Array }[] {
  const rand = mulberry32(11);
  const normal = () => Math.sqrt(-2 * Math.log(Math.max(rand(), 1e-12))) * Math.cos(2 * Math.PI * rand());
  return Array.from({ length: count }, () => {
    const x = Float32Array.from({ length: B * D }, normal);
    const noise = new Float32Array(B * D);
    const y = new Float32Array(B);
    for (let r = B / 2; r < B; r++) {
      y[r] = 1;
      x.copyWithin(r * D, (r - B / 2) * D, (r - B / 2 + 1) * D);
      for (let d = 0; d < D; d++) noise[r * D + d] = 0.5 * normal();
    }
    return { x, noise, y };
  });
}

function handWritten(data: ReturnType<typeof batches>): Row {
  const params = initHead(D, H, { mean: new Float32Array(D), invStd: new Float32Array(D).fill(1) }, 3);
  const net = new HeadNet(params, B);
  const adam = new Adam(params, 1e-3);
  const w = new Float32Array(B).fill(1);
  let loss = 0;
  let t0 = 0;
  data.forEach((b, i) => {
    if (i === WARMUP) t0 = performance.now();
    net.zeroGrads();
    net.forward(b.x, B, b.noise);
    loss = net.backward(b.y, w, B);
    adam.step(net.grads);
  });
  return row('hand-written (bench/head-handwritten.ts)', performance.now() - t0, loss);
}

type Tf = typeof import('@tensorflow/tfjs');

async function tfjs(tf: Tf, backend: string, data: ReturnType<typeof batches>): Promise<Row> {
  await tf.setBackend(backend);
  await tf.ready();
  const eye = tf.eye(D);
  const wa = tf.variable(eye);
  const ba = tf.variable(tf.zeros([D]));
  const w1 = tf.variable(tf.randomNormal([D, H], 0, Math.sqrt(2 / D), 'float32', 3));
  const b1 = tf.variable(tf.zeros([H]));
  const w2 = tf.variable(tf.randomNormal([H, 1], 0, Math.sqrt(1 / H), 'float32', 4));
  const b2 = tf.variable(tf.zeros([1]));
  const opt = tf.train.adam(1e-3);
  let loss = 0;
  let t0 = 0;
  for (const [i, b] of data.entries()) {
    if (i === WARMUP) t0 = performance.now();
    const x = tf.tensor2d(b.x, [B, D]);
    const noise = tf.tensor2d(b.noise, [B, D]);
    const y = tf.tensor2d(b.y, [B, 1]);
    const l = opt.minimize(
      () => {
        // Functional ops: tfjs-core alone has no chained ops registered.
        const a = tf.add(tf.add(tf.matMul(x, wa), ba), noise);
        const logits = tf.add(tf.matMul(tf.relu(tf.add(tf.matMul(a, w1), b1)), w2), b2);
        return tf.losses.sigmoidCrossEntropy(y, logits) as import('@tensorflow/tfjs').Scalar;
      },
      true,
      [wa, ba, w1, b1, w2, b2],
    );
    loss = (await l!.data())[0];
    tf.dispose([x, noise, y, l!]);
  }
  const elapsed = performance.now() - t0;
  tf.dispose([eye, wa, ba, w1, b1, w2, b2]);
  opt.dispose();
  return row(`tfjs ${backend}`, elapsed, loss);
}

function row(backend: string, elapsedMs: number, loss: number): Row {
  const msPerStep = elapsedMs / (STEPS - WARMUP);
  return { backend, msPerStep, rowsPerSecond: (B * 1000) / msPerStep, finalLoss: loss };
}

async function main(): Promise<void> {
  const data = batches(STEPS);
  const rows: Row[] = [handWritten(data)];
  const dir = values['tfjs-dir'];
  const load = (m: string) => require(dir ? path.join(path.resolve(dir), m) : m) as unknown;
  const tf = load(dir ? '@tensorflow/tfjs-core' : '@tensorflow/tfjs') as Tf;
  // tfjs-core alone registers no gradients (the @tensorflow/tfjs bundle does).
  if (dir) load('@tensorflow/tfjs-core/dist/register_all_gradients');
  if (dir) load('@tensorflow/tfjs-backend-cpu');
  rows.push(await tfjs(tf, 'cpu', data));
  if (dir) {
    load('@tensorflow/tfjs-backend-wasm');
    rows.push(await tfjs(tf, 'wasm', data));
  }
  const result = {
    measuredAt: new Date().toISOString(),
    machine: { cpus: os.cpus().length, model: os.cpus()[0]?.model, loadAverage: os.loadavg() },
    shape: { dim: D, hidden: H, batchRows: B, steps: STEPS - WARMUP },
    tfjsVersion: (tf as unknown as { version_core?: string }).version_core,
    rows,
  };
  fs.writeFileSync(values.out!, JSON.stringify(result, null, 2) + '\n');
  for (const r of rows)
    console.log(
      `${r.backend.padEnd(32)} ${r.msPerStep.toFixed(2).padStart(8)} ms/step  ${Math.round(r.rowsPerSecond)
        .toString()
        .padStart(8)} rows/s  loss ${r.finalLoss.toFixed(4)}`,
    );
}

void main();
