/**
 * The discriminator head's pieces without a backbone: the folded export weights against the
 * unfolded network, training on a separable toy problem (TensorFlow.js, wasm backend), early
 * stopping, the ONNX graph from our builder in onnxruntime, and mask -> cell coverage.
 */
import { strict as assert } from 'node:assert';
import {
  RELATIVE_STD_FLOOR,
  featureStats,
  foldWeights,
  scoreRowsReference,
  HeadWeights,
} from '../../../lib/head/weights';
import { DEFAULT_HEAD_TRAIN, trainHead } from '../../../lib/head/train';
import { HeadSession, buildHeadModel, quantizeHead } from '../../../lib/head/onnx';
import { cellCoverage } from '../../../lib/head/data';
import { encodeModel } from '../../../models/onnx/io';
import { mulberry32 } from '../../../lib/util/random';
import { rocAuc } from '../../../lib/eval/metrics';

const rand = mulberry32(5);
const normal = () => Math.sqrt(-2 * Math.log(Math.max(rand(), 1e-12))) * Math.cos(2 * Math.PI * rand());
const D = 8;

/** Good patches: a tight cluster around (3, 3, ...) with a spread of 0.2. */
function goods(n: number): Float32Array {
  return Float32Array.from({ length: n * D }, () => 3 + 0.2 * normal());
}

/** The unfolded network, written out step by step. */
function unfolded(w: HeadWeights, x: Float32Array): number {
  const d = w.inDim;
  const z = Array.from({ length: d }, (_, i) => (x[i] - w.mean[i]) * w.invStd[i]);
  const a = Array.from(
    { length: d },
    (_, o) => w.ba[o] + z.reduce((s, zi, i) => s + zi * w.wa[i * d + o], 0),
  );
  let out = w.b2[0];
  for (let j = 0; j < w.hidden; j++) {
    const h = w.b1[j] + a.reduce((s, ai, i) => s + ai * w.w1[i * w.hidden + j], 0);
    if (h > 0) out += h * w.w2[j];
  }
  return out;
}

describe('discriminator head (lib/head)', function () {
  this.timeout(60_000);

  it('folds standardisation, adaptor and first layer into one layer with the same logits', () => {
    const r = (n: number) => Float32Array.from({ length: n }, normal);
    const w: HeadWeights = {
      inDim: D,
      hidden: 5,
      mean: r(D),
      invStd: Float32Array.from({ length: D }, () => 0.5 + rand()),
      wa: r(D * D),
      ba: r(D),
      w1: r(D * 5),
      b1: r(5),
      w2: r(5),
      b2: r(1),
    };
    const x = r(4 * D);
    const folded = scoreRowsReference(foldWeights(w), x);
    for (let i = 0; i < 4; i++)
      assert.ok(Math.abs(folded[i] - unfolded(w, x.subarray(i * D, (i + 1) * D))) < 1e-4);
  });

  it('learns to call perturbed patches anomalous, from good patches only', async () => {
    const real = goods(2000);
    const trained = await trainHead(
      { real, dim: D, local: new Float32Array(0) },
      {
        ...DEFAULT_HEAD_TRAIN,
        hidden: 16,
        epochs: 4,
        stepsPerEpoch: 40,
        batch: 64,
        noiseStd: 1,
        patience: 0,
      },
    );
    assert.equal(trained.history.length, 4);
    assert.ok(trained.history[3].loss < trained.history[0].loss, 'loss goes down');
    const head = foldWeights(trained.weights);
    // Held-out goods against points 2 spreads off the cluster in every dimension.
    const test = goods(200);
    const far = Float32Array.from(goods(200), (v, i) => v + (i % 2 ? 0.4 : -0.4) * (1 + rand()));
    const scores = [...scoreRowsReference(head, test), ...scoreRowsReference(head, far)];
    const labels = [...new Array(200).fill(0), ...new Array(200).fill(1)];
    assert.ok(rocAuc(scores, labels) > 0.9, `AUROC ${rocAuc(scores, labels)}`);
  });

  it('stops early when the validation score stops improving, keeping the best epoch', async () => {
    const seen = [0.5, 0.7, 0.6, 0.6, 0.6, 0.9];
    let calls = 0;
    const trained = await trainHead(
      { real: goods(300), dim: D, local: goods(50) },
      { ...DEFAULT_HEAD_TRAIN, hidden: 8, epochs: 6, stepsPerEpoch: 2, batch: 16, patience: 2 },
      { validate: () => seen[calls++] },
    );
    assert.equal(trained.history.length, 4); // best at 2, then 2 epochs without improvement
    assert.equal(trained.bestEpoch, 2);
    assert.ok(trained.stoppedEarly);
  });

  it('exports to ONNX that onnxruntime scores like the reference; INT8 close to it', async () => {
    const real = goods(500);
    const trained = await trainHead(
      { real, dim: D, local: new Float32Array(0) },
      { ...DEFAULT_HEAD_TRAIN, hidden: 16, epochs: 2, stepsPerEpoch: 20, batch: 64, patience: 0 },
    );
    const folded = foldWeights(trained.weights);
    const model = buildHeadModel(folded);
    const rows = Float32Array.from(goods(64), (v, i) => (i < 32 * D ? v : v + normal()));
    const session = await HeadSession.create(encodeModel(model), D);
    const got = await session.score(rows);
    const want = scoreRowsReference(folded, rows);
    for (let i = 0; i < 64; i++) assert.ok(Math.abs(got[i] - want[i]) < 1e-3 * (1 + Math.abs(want[i])));
    const { model: q } = await quantizeHead(model, real, D);
    const ops = q.graph.node.map((n) => n.opType);
    assert.ok(ops.includes('QuantizeLinear') && ops.includes('DequantizeLinear'));
    const int8 = await HeadSession.create(encodeModel(q), D);
    const got8 = await int8.score(rows);
    // Rows inside the calibration range (goods) score as in float; rows outside it (the perturbed
    // half) saturate at the range's edge, yet mostly still rank above the goods.
    const spread = Math.max(...want) - Math.min(...want);
    const worst = Math.max(...want.slice(0, 32).map((w, i) => Math.abs(w - got8[i])));
    assert.ok(worst < 0.05 * spread, `INT8 error ${worst} against a spread of ${spread}`);
    const labels = [...new Array(32).fill(0), ...new Array(32).fill(1)];
    assert.ok(rocAuc(got8, labels) > 0.8 * rocAuc(want, labels), 'INT8 keeps the ranking');
    await session.close();
    await int8.close();
  });

  it('featureStats gives each dimension its mean and spread', () => {
    const x = Float32Array.from([1, 10, 3, 10, 5, 10]);
    const s = featureStats(x, 2);
    assert.deepEqual([...s.mean], [3, 10]);
    assert.ok(Math.abs(s.invStd[0] - 1 / Math.sqrt(8 / 3)) < 1e-5);
    // A constant channel: its spread floored at a tenth of the median's (here the other channel's).
    assert.ok(Math.abs(s.invStd[1] - 1 / (RELATIVE_STD_FLOOR * Math.sqrt(8 / 3))) < 1e-4);
    // All constant: floored at 1e-3, still finite.
    assert.deepEqual([...featureStats(Float32Array.from([5, 5, 5, 5]), 2).invStd], [1000, 1000]);
  });

  it("featureStats floors a dimension's spread at a tenth of the median dimension's", () => {
    // Five dimensions: spreads 1, 2, 3, 4 and a near-dead 0.01 (median 2: floor 0.2).
    const spreads = [1, 2, 3, 4, 0.01];
    const rows = 1000;
    const x = new Float32Array(rows * 5);
    for (let r = 0; r < rows; r++)
      for (let d = 0; d < 5; d++) x[r * 5 + d] = (r % 2 ? 1 : -1) * spreads[d] + 7;
    const s = featureStats(x, 5);
    for (let d = 0; d < 4; d++) assert.ok(Math.abs(s.invStd[d] - 1 / spreads[d]) < 1e-4, `dimension ${d}`);
    assert.ok(Math.abs(s.invStd[4] - 1 / (RELATIVE_STD_FLOOR * 2)) < 1e-4, `near-dead: ${s.invStd[4]}`);
  });

  it('maps a defect mask onto the embedding cells through the view', async () => {
    // A 64 x 64 image, left quarter masked; canvas 32 px (resize), one 4 x 4 grid.
    const mask = new Uint8Array(64 * 64);
    for (let y = 0; y < 64; y++) for (let x = 0; x < 16; x++) mask[y * 64 + x] = 255;
    const coverage = await cellCoverage(
      mask,
      64,
      64,
      { resize: 32, crop: 0, scale: 1, tile: 0, overlap: 0 },
      {
        tiles: [{ left: 0, top: 0, width: 32, height: 32 }],
        gridWidth: 4,
        gridHeight: 4,
      },
    );
    for (let y = 0; y < 4; y++) {
      assert.equal(coverage[y * 4], 1);
      assert.ok(coverage[y * 4 + 1] < 0.2);
      assert.equal(coverage[y * 4 + 3], 0);
    }
  });
});
