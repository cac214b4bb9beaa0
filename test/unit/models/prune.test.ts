/**
 * Structured channel pruning (models/prune): which convs residual Adds block, how expand ->
 * depthwise -> project chains lose the same channels, and that ratio 0 changes nothing.
 */
import { strict as assert } from 'assert';
import * as ort from 'onnxruntime-node';
import { backboneById } from '../../../models/backbones';
import { BuiltBackbone, buildBackbone } from '../../../models/backbone-build';
import { GraphBuilder, intAttr, intsAttr } from '../../../models/onnx/builder';
import { decodeModel, encodeModel } from '../../../models/onnx/io';
import { ModelProto, TensorProto, int64ToNumber } from '../../../models/onnx/proto';
import { readFloatTensor, tensorDims } from '../../../models/onnx/tensors';
import { buildPruned } from '../../../models/prune/build';
import { channelGroups, nodeLabel } from '../../../models/prune/channel-groups';
import { filterL1, keepChannels, keptCount } from '../../../models/prune/l1';
import { channelMeans } from '../../../models/prune/means';
import { compensationTensors, pruneModel } from '../../../models/prune/prune';
import { randnSet } from '../../../models/quantize/calibration-data';
import { quantizeModel } from '../../../models/quantize/quantize';
import { mulberry32 } from '../../../lib/util/random';

/**
 * A MobileNetV2-like block: stem 3x3 (4 ch) -> ReLU; expand 1x1 (8 ch) -> Clip (a stage output);
 * depthwise 3x3 -> Clip; project 1x1 (4 ch); residual Add with the stem.
 */
function tinyBlock(): ModelProto {
  const rand = mulberry32(11);
  const values = (n: number) => new Float32Array(n).map(() => rand() - 0.5);
  const b = new GraphBuilder('block');
  b.addInput('input', ['N', 3, 'H', 'W']);
  b.addFloat('zero', [], Float32Array.of(0));
  b.addFloat('six', [], Float32Array.of(6));
  const conv = (name: string, input: string, w: number[], attrs = [intsAttr('pads', [0, 0, 0, 0])]) => {
    b.addFloat(`${name}/W`, w, values(w.reduce((x, y) => x * y, 1)));
    b.addFloat(`${name}/B`, [w[0]], values(w[0]));
    b.addNode('Conv', [input, `${name}/W`, `${name}/B`], [name], attrs);
  };
  conv('stem', 'input', [4, 3, 3, 3], [intsAttr('pads', [1, 1, 1, 1])]);
  b.addNode('Relu', ['stem'], ['stem_relu']);
  conv('expand', 'stem_relu', [8, 4, 1, 1]);
  b.addNode('Clip', ['expand', 'zero', 'six'], ['expand_relu']);
  conv('depthwise', 'expand_relu', [8, 1, 3, 3], [intAttr('group', 8), intsAttr('pads', [1, 1, 1, 1])]);
  b.addNode('Clip', ['depthwise', 'zero', 'six'], ['depthwise_relu']);
  conv('project', 'depthwise_relu', [4, 8, 1, 1]);
  b.addNode('Add', ['stem_relu', 'project'], ['add']);
  b.addOutput('expand_relu', ['N', 8, null, null]);
  b.addOutput('add', ['N', 4, null, null]);
  return b.model({ producerName: 'test', producerVersion: '1', opset: 13, irVersion: 7 });
}

async function run(model: ModelProto | Uint8Array, input: Float32Array, size: number) {
  const bytes = model instanceof Uint8Array ? model : encodeModel(model);
  const session = await ort.InferenceSession.create(bytes);
  try {
    return await session.run({ input: new ort.Tensor('float32', input, [1, 3, size, size]) });
  } finally {
    await session.release();
  }
}

function dims(model: ModelProto, name: string): number[] {
  return tensorDims(model.graph.initializer.find((t) => t.name === name) as TensorProto);
}

describe('models: channel pruning on a tiny residual block', function () {
  this.timeout(20_000);
  const model = tinyBlock();
  const input = randnSet(1, [6, 6], 4).inputs[0];

  it('frees the expand conv and blocks convs feeding the residual Add', () => {
    const groups = new Map(channelGroups(model.graph).map((g) => [nodeLabel(g.producer), g]));
    assert.match(groups.get('stem')?.blocked ?? '', /Add add ties the channels/);
    assert.match(groups.get('project')?.blocked ?? '', /Add add/);
    const expand = groups.get('expand');
    assert.equal(expand?.blocked, undefined);
    assert.deepEqual(expand?.depthwise.map(nodeLabel), ['depthwise']);
    assert.deepEqual(expand?.readers.map(nodeLabel), ['project']);
    assert.deepEqual(expand?.outputs, ['expand_relu']);
  });

  it('removes the lowest-L1 channels from expand, depthwise and project together', async () => {
    const keep = keepChannels(
      filterL1(model.graph.initializer.find((t) => t.name === 'expand/W') as TensorProto),
      0.5,
    );
    assert.equal(keep.length, 4);
    const r = pruneModel(model, { ratio: 0.5 });
    assert.deepEqual(
      r.pruned.map((p) => [p.conv, p.channels, p.kept]),
      [['expand', 8, 4]],
    );
    assert.deepEqual(dims(r.model, 'expand/W'), [4, 4, 1, 1]);
    assert.deepEqual(dims(r.model, 'expand/B'), [4]);
    assert.deepEqual(dims(r.model, 'depthwise/W'), [4, 1, 3, 3]);
    assert.deepEqual(dims(r.model, 'project/W'), [4, 4, 1, 1]);
    const dw = r.model.graph.node.find((n) => n.name === 'depthwise');
    assert.equal(int64ToNumber(dw?.attribute.find((a) => a.name === 'group')?.i), 4);
    assert.deepEqual([...r.outputChannels], [['expand_relu', 4]]);
    const [a, b] = [await run(model, input, 6), await run(r.model, input, 6)];
    assert.deepEqual(b.expand_relu.dims, [1, 4, 6, 6]);
    assert.deepEqual(b.add.dims, [1, 4, 6, 6]);
    // Upstream of the cut nothing changed: kept channels are bit-identical.
    const full = a.expand_relu.data as Float32Array;
    const cut = b.expand_relu.data as Float32Array;
    keep.forEach((c, k) =>
      assert.deepEqual(cut.subarray(k * 36, (k + 1) * 36), full.subarray(c * 36, (c + 1) * 36)),
    );
    // The kept weights are the parent's, not re-derived.
    const w = readFloatTensor(model.graph.initializer.find((t) => t.name === 'project/W') as TensorProto);
    const wp = readFloatTensor(r.model.graph.initializer.find((t) => t.name === 'project/W') as TensorProto);
    assert.equal(wp[1], w[keep[1]]);
  });

  it('ratio 0 gives the identical model', async () => {
    const r = pruneModel(model, { ratio: 0 });
    assert.deepEqual(encodeModel(r.model), encodeModel(model));
    const [a, b] = [await run(model, input, 6), await run(r.model, input, 6)];
    assert.deepEqual(b.add.data, a.add.data);
  });

  it('bias compensation keeps the mean of what the pruned channels fed', async () => {
    const set = randnSet(4, [6, 6], 9);
    assert.deepEqual(compensationTensors(model), ['depthwise_relu']);
    const means = await channelMeans(model, 'input', ['depthwise_relu'], set);
    const mean = (t: ort.Tensor) => Array.from(t.data as Float32Array).reduce((a, b) => a + b, 0) / t.size;
    let plain = 0;
    let compensated = 0;
    for (const x of set.inputs) {
      const ref = mean((await run(model, x, 6)).add);
      plain += Math.abs(mean((await run(pruneModel(model, { ratio: 0.5 }).model, x, 6)).add) - ref);
      compensated += Math.abs(
        mean((await run(pruneModel(model, { ratio: 0.5, means }).model, x, 6)).add) - ref,
      );
    }
    assert.ok(compensated < plain / 2, `mean shift ${compensated} with compensation vs ${plain} without`);
  });

  it('rounds kept channel counts to a multiple of --align (a tie keeps fewer)', () => {
    assert.equal(keptCount(144, 0.25), 108);
    assert.equal(keptCount(144, 0.25, 16), 112);
    assert.equal(keptCount(144, 0.5, 16), 64); // 72 is a tie between 64 and 80
    assert.equal(keptCount(192, 0.334, 16), 128);
    assert.equal(keptCount(32, 0.9, 16), 16); // at least one multiple
    assert.equal(keptCount(8, 0.5, 16), 8); // never more than there are
    assert.equal(keptCount(7, 0.99), 1);
    assert.throws(() => keptCount(16, 0.5, 0), /alignment must be an integer >= 1/);
    assert.throws(() => keptCount(16, 1), /ratio must be in \[0, 1\)/);
    const norms = Float64Array.from([5, 1, 4, 2, 3, 8, 7, 6]);
    assert.deepEqual(keepChannels(norms, 0.5, 4), [0, 5, 6, 7]);
  });

  it('takes a ratio per conv, which also selects it', () => {
    const r = pruneModel(model, { ratio: 0, ratios: new Map([['expand', 0.75]]) });
    assert.deepEqual(
      r.pruned.map((p) => [p.conv, p.channels, p.kept]),
      [['expand', 8, 2]],
    );
    assert.throws(
      () => pruneModel(model, { ratio: 0, ratios: new Map([['nope', 0.5]]) }),
      /no regular Conv named nope/,
    );
  });

  it('can keep stage widths, and refuses unknown conv names', () => {
    const r = pruneModel(model, { ratio: 0.5, keepOutputWidths: true });
    assert.equal(r.pruned.length, 0);
    assert.throws(() => pruneModel(model, { ratio: 0.5, convs: ['nope'] }), /no regular Conv named nope/);
  });
});

describe('models: pruned MobileNetV2 (64x64)', function () {
  this.timeout(60_000);
  let built: BuiltBackbone;
  before(async () => {
    built = await buildBackbone(backboneById('mobilenet_v2-imagenet'));
  });

  it('prunes the expand convs, updates stage channels and still runs with the new shapes', async () => {
    const p = await buildPruned(built.spec, decodeModel(built.onnx), { id: 'mnv2-pruned25', ratio: 0.25 });
    const channels = Object.fromEntries(p.derived.spec.stages.map((s) => [s.name, s.channels]));
    assert.deepEqual(channels, {
      block_2_add: 24,
      block_5_add: 32,
      block_6_expand_relu: 144,
      block_9_add: 64,
      block_10_expand_relu: 288,
      block_10_project_BN: 72,
    });
    assert.ok(p.result.skipped.some((s) => s.conv === 'block_2_project_BN' && /Add/.test(s.reason)));
    assert.ok(p.derived.card.cost.flops < 0.8 * 0.334e9, `FLOPs ${p.derived.card.cost.flops}`);
    const out = await run(p.derived.onnx, randnSet(1, [64, 64], 2).inputs[0], 64);
    for (const s of p.derived.spec.stages) assert.equal(out[s.tensor].dims[1], s.channels, s.name);
    assert.deepEqual(out.block_10_expand_relu.dims, [1, 288, 4, 4]);
    // Pruned then quantised still runs (the "pruned + INT8" variant).
    const q = await quantizeModel(p.model, 'input', randnSet(2, [64, 64]), { method: 'minmax' });
    const qout = await run(encodeModel(q.model), randnSet(1, [64, 64], 2).inputs[0], 64);
    assert.deepEqual(qout.block_6_expand_relu.dims, [1, 144, 8, 8]);
  });

  it('ratio 0 leaves every stage output identical', async () => {
    const r = pruneModel(decodeModel(built.onnx), { ratio: 0 });
    const x = randnSet(1, [64, 64], 3).inputs[0];
    const [a, b] = [await run(built.onnx, x, 64), await run(r.model, x, 64)];
    for (const s of built.spec.stages) assert.deepEqual(b[s.tensor].data, a[s.tensor].data, s.name);
  });
});
