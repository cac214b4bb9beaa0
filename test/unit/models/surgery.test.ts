/**
 * Graph surgery on a small ResNet-shaped ONNX model built here (stem, layer1..layer4 of residual
 * blocks with torchvision-style tensor names, global pool, classifier): the cut model returns exactly
 * the original intermediate values and runs nothing after the stages. Also the surgery CLI end to end.
 */
import { strict as assert } from 'assert';
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as ort from 'onnxruntime-node';
import { GraphBuilder, floatAttr, intAttr, intsAttr, tensorValueInfo } from '../../../models/onnx/builder';
import { decodeModel, encodeModel } from '../../../models/onnx/io';
import { DataType, ModelProto } from '../../../models/onnx/proto';
import { ancestorTensors } from '../../../models/onnx/prune';
import { resolveModel } from '../../../models/registry';
import { cutAtStages } from '../../../models/surgery';

const STAGES = ['/layer2/layer2.1/relu_1/Relu_output_0', '/layer3/layer3.1/relu_1/Relu_output_0'];
const REPO = path.resolve(__dirname, '../../..');

/** Deterministic pseudo-random floats (a fixed LCG), so the model is the same on every run. */
function randoms(count: number, seed: number, scale: number): Float32Array {
  let state = seed >>> 0;
  const out = new Float32Array(count);
  for (let i = 0; i < count; i++) {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    out[i] = (state / 2 ** 32 - 0.5) * 2 * scale;
  }
  return out;
}

function buildResNetLike(): ModelProto {
  const b = new GraphBuilder('resnet_like');
  let seed = 1;
  b.addInput('input', ['N', 3, 'H', 'W']);
  const convBn = (scope: string, x: string, cin: number, cout: number, k: number, stride: number): string => {
    const w = b.addFloat(
      `${scope}.conv.weight`,
      [cout, cin, k, k],
      randoms(cout * cin * k * k, seed++, Math.sqrt(2 / (cin * k * k))),
    );
    const conv = `${scope}/conv/Conv_output_0`;
    const pad = (k - 1) >> 1;
    b.addNode(
      'Conv',
      [x, w],
      [conv],
      [
        intsAttr('kernel_shape', [k, k]),
        intsAttr('strides', [stride, stride]),
        intsAttr('pads', [pad, pad, pad, pad]),
      ],
      `${scope}/conv/Conv`,
    );
    const p = ['scale', 'bias', 'mean', 'var'].map((n, i) => {
      const values = randoms(cout, seed++, 0.2).map((v) => (i === 0 || i === 3 ? 1 + v : v));
      return b.addFloat(`${scope}.bn.${n}`, [cout], values);
    });
    const out = `${scope}/bn/BatchNormalization_output_0`;
    b.addNode(
      'BatchNormalization',
      [conv, ...p],
      [out],
      [floatAttr('epsilon', 1e-5)],
      `${scope}/bn/BatchNormalization`,
    );
    return out;
  };
  const relu = (name: string, x: string): string => {
    b.addNode('Relu', [x], [`${name}/Relu_output_0`], [], `${name}/Relu`);
    return `${name}/Relu_output_0`;
  };
  const block = (scope: string, x: string, cin: number, cout: number, stride: number): string => {
    const y1 = relu(`${scope}/relu`, convBn(`${scope}/1`, x, cin, cout, 3, stride));
    const y2 = convBn(`${scope}/2`, y1, cout, cout, 3, 1);
    const shortcut =
      stride !== 1 || cin !== cout ? convBn(`${scope}/downsample`, x, cin, cout, 1, stride) : x;
    b.addNode('Add', [y2, shortcut], [`${scope}/Add_output_0`], [], `${scope}/Add`);
    return relu(`${scope}/relu_1`, `${scope}/Add_output_0`);
  };
  let x = relu('/relu', convBn('/stem', 'input', 3, 8, 7, 2));
  b.addNode(
    'MaxPool',
    [x],
    ['/maxpool/MaxPool_output_0'],
    [intsAttr('kernel_shape', [3, 3]), intsAttr('strides', [2, 2]), intsAttr('pads', [1, 1, 1, 1])],
    '/maxpool/MaxPool',
  );
  x = '/maxpool/MaxPool_output_0';
  const widths = [8, 16, 32, 64];
  let cin = 8;
  widths.forEach((cout, i) => {
    const layer = `layer${i + 1}`;
    for (let j = 0; j < 2; j++) {
      x = block(`/${layer}/${layer}.${j}`, x, j === 0 ? cin : cout, cout, j === 0 && i > 0 ? 2 : 1);
    }
    cin = cout;
  });
  b.addNode(
    'GlobalAveragePool',
    [x],
    ['/avgpool/GlobalAveragePool_output_0'],
    [],
    '/avgpool/GlobalAveragePool',
  );
  b.addNode(
    'Flatten',
    ['/avgpool/GlobalAveragePool_output_0'],
    ['/Flatten_output_0'],
    [intAttr('axis', 1)],
    '/Flatten',
  );
  const fcW = b.addFloat('fc.weight', [10, 64], randoms(640, seed++, 0.1));
  const fcB = b.addFloat('fc.bias', [10], randoms(10, seed++, 0.1));
  b.addNode('Gemm', ['/Flatten_output_0', fcW, fcB], ['logits'], [intAttr('transB', 1)], '/fc/Gemm');
  b.addOutput('logits', ['N', 10]);
  return b.model({ producerName: 'test', producerVersion: '0', opset: 13, irVersion: 7 });
}

async function run(
  model: ModelProto,
  input: Float32Array,
  size: number,
): Promise<ort.InferenceSession.OnnxValueMapType> {
  const session = await ort.InferenceSession.create(encodeModel(model));
  const out = await session.run({ input: new ort.Tensor('float32', input, [2, 3, size, size]) });
  await session.release();
  return out;
}

describe('models: ONNX graph surgery', function () {
  this.timeout(60_000);
  // Parsed back from bytes, as a user's model would be (protobufjs messages, Long int64s).
  const original = decodeModel(encodeModel(buildResNetLike()));
  const size = 64;
  const input = randoms(2 * 3 * size * size, 99, 1);

  it('outputs exactly the original intermediate tensors', async () => {
    // Reference: the untouched graph with the stage tensors exposed as extra outputs.
    const probe: ModelProto = {
      ...original,
      graph: {
        ...original.graph,
        output: [...original.graph.output, ...STAGES.map((s) => tensorValueInfo(s, DataType.FLOAT))],
      },
    };
    const reference = await run(probe, input, size);
    assert.deepEqual(reference.logits.dims, [2, 10]);
    const cut = cutAtStages(original, STAGES);
    const got = await run(decodeModel(encodeModel(cut)), input, size);
    assert.deepEqual(Object.keys(got).sort(), [...STAGES].sort());
    for (const stage of STAGES) {
      assert.deepEqual(got[stage].dims, reference[stage].dims);
      const a = got[stage].data as Float32Array;
      const r = reference[stage].data as Float32Array;
      let maxDiff = 0;
      for (let i = 0; i < r.length; i++) maxDiff = Math.max(maxDiff, Math.abs(a[i] - r[i]));
      assert.ok(maxDiff <= 1e-5, `${stage}: max |diff| ${maxDiff}`);
    }
    assert.deepEqual(got[STAGES[0]].dims, [2, 16, 8, 8]);
    assert.deepEqual(got[STAGES[1]].dims, [2, 32, 4, 4]);
  });

  it('removes every node after the stages, with their weights', () => {
    const cut = cutAtStages(original, STAGES);
    const graph = cut.graph;
    assert.deepEqual(
      graph.output.map((o) => o.name),
      STAGES,
    );
    assert.ok(!graph.node.some((n) => /layer4|avgpool|Flatten|fc/.test(n.name ?? '')));
    assert.ok(!graph.initializer.some((t) => /layer4|fc\./.test(t.name)));
    const needed = ancestorTensors(graph, STAGES);
    for (const node of graph.node)
      assert.ok(
        node.output.some((o) => needed.has(o)),
        `${node.name} is not needed`,
      );
    assert.ok(graph.node.length < original.graph.node.length);
    assert.deepEqual(
      graph.input.map((v) => v.name),
      ['input'],
    );
  });

  it('names a stage tensor that does not exist, with suggestions', () => {
    assert.throws(
      () => cutAtStages(original, ['/layer2/layer2.9/relu_1/Relu_output_0']),
      /stage tensor "\/layer2\/layer2\.9\/relu_1\/Relu_output_0" does not exist.*similar names: .*layer2/,
    );
  });

  it('surgery-cli writes a model.onnx + spec.json that the registry loads', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'spi-surgery-'));
    try {
      const modelPath = path.join(dir, 'resnet_like.onnx');
      fs.writeFileSync(modelPath, encodeModel(original));
      const out = path.join(dir, 'out');
      const result = spawnSync(
        process.execPath,
        [
          '--import',
          'tsx',
          'models/surgery-cli.ts',
          '--in',
          modelPath,
          '--stages',
          `layer2=${STAGES[0]},layer3=${STAGES[1]}`,
          '--out',
          out,
          '--id',
          'resnet-like',
          '--input-size',
          '64',
        ],
        { cwd: REPO, encoding: 'utf8' },
      );
      assert.equal(result.status, 0, result.stderr + result.stdout);
      const { spec, onnxPath } = resolveModel(out);
      assert.equal(onnxPath, path.join(out, 'model.onnx'));
      assert.equal(spec.id, 'resnet-like');
      assert.equal(spec.inputName, 'input');
      assert.deepEqual(spec.stages, [
        { name: 'layer2', tensor: STAGES[0], stride: 8, channels: 16 },
        { name: 'layer3', tensor: STAGES[1], stride: 16, channels: 32 },
      ]);
      assert.deepEqual(spec.normalize.mean, [0.485, 0.456, 0.406]);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
