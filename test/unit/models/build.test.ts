/**
 * `make models` output (built here into a temp dir, independent of build/models): spec shapes,
 * model cards, reproducible bytes, and the registry that loads models by id, folder or spec path.
 */
import { strict as assert } from 'assert';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { BACKBONES } from '../../../models/backbones';
import { BuiltBackbone, buildBackbone, writeBackbone } from '../../../models/backbone-build';
import { sha256File } from '../../../models/hash';
import { listModels, resolveModel } from '../../../models/registry';
import { readSpec } from '../../../models/spec-file';

describe('models: build output and registry', function () {
  this.timeout(60_000);
  let dir: string;
  const built = new Map<string, BuiltBackbone>();

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'spi-models-'));
    for (const def of BACKBONES) {
      const b = await buildBackbone(def);
      built.set(def.id, b);
      writeBackbone(path.join(dir, def.id), b);
    }
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('writes specs with measured stage shapes and strides', () => {
    const mobilenet = resolveModel('mobilenet_v2-imagenet', dir).spec;
    assert.deepEqual(mobilenet.inputSize, [224, 224]);
    assert.deepEqual(mobilenet.normalize, { mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5] });
    assert.deepEqual(mobilenet.defaultStages, ['block_5_add', 'block_9_add']);
    const stage = (spec: typeof mobilenet, name: string) => spec.stages.find((s) => s.name === name);
    assert.deepEqual(stage(mobilenet, 'block_6_expand_relu'), {
      name: 'block_6_expand_relu',
      tensor: 'block_6_expand_relu',
      stride: 8,
      channels: 192,
    });
    assert.deepEqual(stage(mobilenet, 'block_10_expand_relu'), {
      name: 'block_10_expand_relu',
      tensor: 'block_10_expand_relu',
      stride: 16,
      channels: 384,
    });
    const inception = resolveModel('inception_v3-imagenet', dir).spec;
    assert.deepEqual(stage(inception, 'mixed2'), {
      name: 'mixed2',
      tensor: 'mixed2',
      stride: 8,
      channels: 288,
    });
    assert.deepEqual(stage(inception, 'mixed5'), {
      name: 'mixed5',
      tensor: 'mixed5',
      stride: 16,
      channels: 768,
    });
    const card = built.get('inception_v3-imagenet')?.card;
    assert.deepEqual(card?.stages.find((s) => s.name === 'mixed2')?.shape, [288, 35, 35]);
    assert.deepEqual(card?.stages.find((s) => s.name === 'mixed5')?.shape, [768, 17, 17]);
  });

  it('writes model cards with source, layers, FLOPs and parameters', () => {
    const card = JSON.parse(fs.readFileSync(path.join(dir, 'mobilenet_v2-imagenet', 'card.json'), 'utf8'));
    assert.equal(card.source.package, 'nsfwjs');
    assert.equal(card.source.version, '4.4.0');
    assert.ok(card.source.files.includes('dist/models/mobilenet_v2/model.min.js'));
    assert.equal(card.layersUsed.last, 'block_10_project_BN');
    assert.ok(!card.layersUsed.names.includes('block_11_expand'));
    assert.ok(card.cost.flops > 1e8 && card.cost.params > 1e5);
    assert.equal(card.onnx.sha256, sha256File(path.join(dir, 'mobilenet_v2-imagenet', 'model.onnx')));
    const md = fs.readFileSync(path.join(dir, 'mobilenet_v2-imagenet', 'card.md'), 'utf8');
    assert.match(md, /nsfwjs@4\.4\.0/);
    assert.match(md, /block_5_add \| `block_5_add` \| 32 x 28 x 28 \| 8 \| yes/);
  });

  it('is reproducible: a second build gives the same bytes', async () => {
    const again = await buildBackbone(BACKBONES[0]);
    const first = built.get(BACKBONES[0].id);
    assert.equal(again.spec.sha256, first?.spec.sha256);
    assert.deepEqual(again.card, first?.card);
  });

  it('resolves ids, folders and spec paths, and lists ids when not found', () => {
    assert.deepEqual(listModels(dir), ['inception_v3-imagenet', 'mobilenet_v2-imagenet']);
    const byId = resolveModel('mobilenet_v2-imagenet', dir);
    const byDir = resolveModel(path.join(dir, 'mobilenet_v2-imagenet'), '/nonexistent');
    const bySpec = resolveModel(path.join(dir, 'mobilenet_v2-imagenet', 'spec.json'), '/nonexistent');
    assert.equal(byId.onnxPath, path.join(dir, 'mobilenet_v2-imagenet', 'model.onnx'));
    assert.deepEqual(byDir, byId);
    assert.deepEqual(bySpec, byId);
    assert.throws(
      () => resolveModel('resnet9000', dir),
      /model "resnet9000" not found.*inception_v3-imagenet, mobilenet_v2-imagenet/,
    );
  });

  it('refuses an ONNX file whose sha256 differs from the spec', () => {
    const copy = path.join(dir, 'tampered');
    fs.mkdirSync(copy);
    fs.copyFileSync(path.join(dir, 'mobilenet_v2-imagenet', 'spec.json'), path.join(copy, 'spec.json'));
    const bytes = fs.readFileSync(path.join(dir, 'mobilenet_v2-imagenet', 'model.onnx'));
    bytes[bytes.length - 1] ^= 1;
    fs.writeFileSync(path.join(copy, 'model.onnx'), bytes);
    assert.throws(() => resolveModel(copy), /sha256 mismatch/);
  });

  it('ships a valid example spec for a user-exported ResNet-50', () => {
    const spec = readSpec(path.resolve(__dirname, '../../../models/specs/resnet50-torchvision.example.json'));
    assert.deepEqual(
      spec.stages.map((s) => [s.name, s.stride, s.channels]),
      [
        ['layer2', 8, 512],
        ['layer3', 16, 1024],
      ],
    );
    assert.equal(spec.sha256, undefined);
  });
});
