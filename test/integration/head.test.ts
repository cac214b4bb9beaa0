/**
 * The discriminator head on the real MobileNetV2 backbone (onnxruntime), faiss and TensorFlow.js:
 * trained beside a bank on generated good prints, exported to ONNX and INT8, stored in the bank, and
 * used by `spi inspect`; `spi fit --head glass` end to end. Few images and epochs: behaviour, not
 * accuracy (the figures are bench/head-eval.ts's).
 */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { run } from '../../services/cli/spi';
import { loadBank, saveBank } from '../../lib/bank/bank-store';
import { BackbonePool, createExtractor, openBank, DEFAULT_MODEL } from '../../lib/patchcore/engine';
import { DEFAULT_FIT, FitSettings, FittedBank, fitBank } from '../../lib/patchcore/fit';
import { FeatureExtractor } from '../../lib/patchcore/feature-extractor';
import { DEFAULT_VIEW } from '../../lib/image/views';
import { decodeImage } from '../../lib/image/decode';
import { fileSources } from '../../lib/data/mvtec';
import {
  DEFAULT_HEAD_FIT,
  FittedHead,
  HEAD_WEIGHTS,
  fitHead,
  headFiles,
  headInspectorFor,
} from '../../lib/head/head-bank';
import { HeadSession } from '../../lib/head/onnx';
import { foldWeights, scoreRowsReference } from '../../lib/head/weights';
import { TEST_TMP, spawnNodeService } from '../helpers/processes';
import { InspectionClient } from '../../lib/client/inspection-client';
import { upload } from '../helpers/fixtures';
import { printDataset, PrintDataset } from '../helpers/fixtures';

/** A bank with the default view and a head of one epoch (behaviour, not accuracy). */
const ONE_EPOCH = ['--holdout', '0.2', '--auto', 'off', '--head', 'glass', '--head-epochs', '1'];

describe('discriminator head beside a bank (real backbone)', function () {
  this.timeout(240_000);
  let data: PrintDataset;
  let out: string;
  const pool = new BackbonePool();
  const settings: FitSettings = { ...DEFAULT_FIT, name: 'prints', holdoutFraction: 0.2 };
  let head: FittedHead;
  let embedding: Float32Array;
  /** The first test's bank and its extractor, for the head on stages of its own. */
  let extractor: FeatureExtractor;
  let bank: FittedBank;

  before(async () => {
    data = await printDataset('prints-head', 10);
    fs.mkdirSync(TEST_TMP, { recursive: true });
    out = fs.mkdtempSync(path.join(TEST_TMP, 'head-'));
  });
  after(async () => {
    await pool.close();
    fs.rmSync(out, { recursive: true, force: true });
  });

  it('trains on good prints, exports float and INT8 ONNX that score like the trained network', async () => {
    extractor = await createExtractor(pool, {
      model: DEFAULT_MODEL,
      view: DEFAULT_VIEW,
      projectionDim: 0,
      projectionSeed: 7,
    });
    const images = fileSources(data.train, data.root);
    bank = await fitBank(extractor, images, settings, { keepHeldOutMaps: true });
    head = await fitHead(extractor, bank, images, settings, {
      ...DEFAULT_HEAD_FIT,
      train: { ...DEFAULT_HEAD_FIT.train, epochs: 2, stepsPerEpoch: 10, batch: 128 },
      localImages: 4,
    });
    const t = head.meta.training;
    assert.equal(head.meta.dim, bank.dim, "by default the bank's own embedding");
    assert.equal(head.meta.stages, undefined);
    assert.equal(t.epochs.length, 2);
    assert.ok(t.realPatches === 8 * 28 * 28, `real patches ${t.realPatches}`);
    assert.ok(t.localPatches > 0 && t.localImages === 4, 'patches under synthetic defects');
    assert.ok(t.validation.goods === 2 && t.validation.defects > 0);
    assert.ok(
      Number.isFinite(head.meta.thresholds.head.value) &&
        Number.isFinite(head.meta.thresholds.combined.value),
    );
    assert.ok(head.meta.standardisation.head.std > 0 && head.meta.standardisation.bank.std > 0);

    // The ONNX head on a real defective print's embeddings = the trained network in TypeScript.
    const image = await decodeImage(fs.readFileSync(data.testDefective[0]));
    embedding = (await extractor.embed(image)).vectors;
    const want = scoreRowsReference(foldWeights(head.weights), embedding);
    const float = await HeadSession.create(head.float, bank.dim);
    const got = await float.score(embedding);
    const spread = Math.max(...want) - Math.min(...want);
    assert.ok(want.every((w, i) => Math.abs(w - got[i]) < 1e-4 * (1 + spread)));
    const int8 = await HeadSession.create(head.int8, bank.dim);
    const got8 = await int8.score(embedding);
    const mean = (xs: Float32Array) => xs.reduce((s, v) => s + Math.abs(v), 0) / xs.length;
    const err = mean(got8.map((v, i) => v - got[i]));
    assert.ok(err < 0.05 * spread, `INT8 mean error ${err}, float spread ${spread}`);
    assert.ok(head.int8.length < head.float.length);
    await float.close();
    await int8.close();
    saveBank(
      path.join(out, 'bank'),
      { ...bank.meta, head: head.meta },
      bank.vectors,
      bank.dim,
      headFiles(head),
    );
  });

  it('is stored in the bank and read back, checked against its checksum', async () => {
    const dir = path.join(out, 'bank');
    const { meta } = loadBank(dir);
    assert.equal(meta.head?.kind, 'glass');
    assert.ok(fs.existsSync(path.join(dir, 'head.onnx')) && fs.existsSync(path.join(dir, 'head.int8.onnx')));
    const opened = await openBank(pool, dir);
    const combined = await headInspectorFor(pool, dir, opened.inspector);
    assert.equal(combined?.mode, 'combined');
    const image = await decodeImage(fs.readFileSync(data.testDefective[0]));
    // Bank mode is the bank alone, at the bank's own threshold.
    const bankOnly = await headInspectorFor(pool, dir, opened.inspector, { mode: 'bank' });
    const plain = await opened.inspector.inspectImage(image);
    const viaHead = await bankOnly!.inspectImage(image);
    assert.equal(viaHead.score, plain.score);
    assert.equal(viaHead.threshold, meta.threshold.value);
    // All three from one embedding; the combined map is the standardised weighted average, with the
    // head's weight chosen on the synthetic validation set.
    const all = await combined!.inspectAll(image);
    const s = meta.head!.standardisation;
    const w = meta.head!.combination.headWeight;
    assert.ok(meta.head!.combination.table.some((r) => r.headWeight === w));
    const p = all.combined.map.length >> 1;
    const expect =
      ((1 - w) * (all.bank.map[p] - s.bank.mean)) / s.bank.std +
      (w * (all.head.map[p] - s.head.mean)) / s.head.std;
    assert.ok(Math.abs(all.combined.map[p] - expect) < 1e-4);
    assert.equal(all.combined.threshold, meta.head!.thresholds.combined.value);
    assert.equal(all.head.threshold, meta.head!.thresholds.head.value);
    // A corrupt model file is refused, not run.
    fs.writeFileSync(path.join(out, 'corrupt.onnx'), Buffer.from('x'));
    fs.cpSync(dir, path.join(out, 'corrupt'), { recursive: true });
    fs.writeFileSync(path.join(out, 'corrupt', 'head.onnx'), Buffer.from('not a model'));
    const corrupt = await openBank(pool, path.join(out, 'corrupt'));
    await assert.rejects(
      headInspectorFor(pool, path.join(out, 'corrupt'), corrupt.inspector, { precision: 'float' }),
      /checksum/,
    );
    await combined!.close();
    await bankOnly!.close();
  });

  it('a head on stages of its own scores their wider embedding beside the bank, from disk too', async () => {
    const images = fileSources(data.train, data.root);
    const stages = ['block_6_expand_relu', 'block_10_expand_relu'];
    const wide = await fitHead(extractor, bank, images, settings, {
      ...DEFAULT_HEAD_FIT,
      stages,
      train: { ...DEFAULT_HEAD_FIT.train, epochs: 1, stepsPerEpoch: 5, batch: 64 },
      localImages: 2,
    });
    assert.deepEqual(wide.meta.stages, stages);
    assert.equal(wide.meta.dim, 192 + 384, 'the expanded activations, unprojected');
    assert.equal(bank.dim, 96);
    const dir = path.join(out, 'wide-head');
    saveBank(dir, { ...bank.meta, head: wide.meta }, bank.vectors, bank.dim, headFiles(wide));
    const opened = await openBank(pool, dir);
    const inspector = (await headInspectorFor(pool, dir, opened.inspector, { precision: 'float' }))!;
    const image = await decodeImage(fs.readFileSync(data.testDefective[0]));
    const all = await inspector.inspectAll(image);
    assert.equal(all.embedding.dim, 96);
    assert.equal(all.headEmbedding.dim, 576);
    // The head's map is the ONNX head on the wide embedding; the bank's is the bank's alone.
    const session = await HeadSession.create(wide.float, wide.meta.dim);
    const scores = await session.score(all.headEmbedding.vectors);
    await session.close();
    const want = scoreRowsReference(foldWeights(wide.weights), all.headEmbedding.vectors);
    const spread = Math.max(...want) - Math.min(...want);
    assert.ok(want.every((w, i) => Math.abs(w - scores[i]) < 1e-4 * (1 + spread)));
    assert.equal(all.bank.score, (await opened.inspector.inspectImage(image)).score);
    const s = wide.meta.standardisation;
    const w = wide.meta.combination.headWeight;
    const p = all.combined.map.length >> 2;
    const expect =
      ((1 - w) * (all.bank.map[p] - s.bank.mean)) / s.bank.std +
      (w * (all.head.map[p] - s.head.mean)) / s.head.std;
    assert.ok(Math.abs(all.combined.map[p] - expect) < 1e-4);
    await inspector.close();
    // A stage the model lacks is refused with its name.
    await assert.rejects(
      fitHead(extractor, bank, images, settings, { ...DEFAULT_HEAD_FIT, stages: ['block_99_add'] }),
      /no stage "block_99_add"/,
    );
  });

  it('spi inspect uses the head: verdicts at the chosen mode and precision', async () => {
    const dir = path.join(out, 'bank');
    const files = [...data.testGood, ...data.testDefective.slice(0, 2)];
    for (const [mode, precision] of [
      ['head', 'int8'],
      ['combined', 'float'],
    ] as const) {
      const target = path.join(out, `inspect-${mode}`);
      const code = await run([
        'inspect',
        '--bank',
        dir,
        '--out',
        target,
        '--head-mode',
        mode,
        '--head-precision',
        precision,
        ...files,
      ]);
      assert.equal(code, 0);
      const report = JSON.parse(fs.readFileSync(path.join(target, 'verdicts.json'), 'utf8'));
      assert.equal(report.head.mode, mode);
      assert.equal(report.verdicts.length, files.length);
      const { meta } = loadBank(dir);
      assert.ok(
        report.verdicts.every(
          (v: { threshold: number }) => v.threshold === meta.head!.thresholds[mode].value,
        ),
      );
    }
  });

  it('spi eval --head glass reports the bank, the head and the combined score', async () => {
    const dir = path.join(out, 'eval');
    const code = await run(['eval', '--data', data.root, '--out', dir, ...ONE_EPOCH, '--gallery', '0']);
    assert.equal(code, 0);
    const metrics = JSON.parse(fs.readFileSync(path.join(dir, 'metrics.json'), 'utf8'));
    for (const mode of ['bank', 'head', 'combined'])
      assert.ok(metrics.head[mode].imageAuroc >= 0 && metrics.head[mode].imageAuroc <= 1, mode);
    // The report's own score is the combined one.
    assert.equal(metrics.imageAuroc, metrics.head.combined.imageAuroc);
    assert.equal(metrics.head.training.epochs.length, 1);
    // Which mix the synthetic validation chose, with its table.
    const c = metrics.head.combination;
    assert.deepEqual(
      c.table.map((r: { headWeight: number }) => r.headWeight),
      HEAD_WEIGHTS,
    );
    assert.ok(HEAD_WEIGHTS.includes(c.headWeight));
  });

  it('spi fit --head glass trains and stores a head; an unknown head is refused; --add carries it', async () => {
    const bank = path.join(out, 'cli-bank');
    const code = await run(['fit', '--data', data.root, '--out', bank, ...ONE_EPOCH]);
    assert.equal(code, 0);
    const { meta } = loadBank(bank);
    assert.equal(meta.head?.training.epochs.length, 1);
    assert.equal(meta.head?.mode, 'combined');
    assert.equal(meta.head?.fused, undefined, 'beside a single bank');
    assert.notEqual(
      await run(['fit', '--data', data.root, '--out', path.join(out, 'y'), '--head', 'simplenet']),
      0,
    );
    // Stages the backbone lacks are refused before the bank is fitted: nothing is written.
    const noStage = path.join(out, 'no-stage');
    assert.notEqual(
      await run(['fit', '--data', data.root, '--out', noStage, ...ONE_EPOCH, '--head-stages', 'nope']),
      0,
    );
    assert.equal(fs.existsSync(noStage), false);
    // spi fit --add carries the head along (recalibrated on the threshold folder's 2 prints) and its models.
    const grown = path.join(out, 'cli-grown');
    const good = path.dirname(data.testGood[0]);
    assert.equal(
      await run(['fit', '--add', good, '--bank', bank, '--out', grown, '--threshold-dir', good]),
      0,
    );
    const head = loadBank(grown).meta.head!;
    assert.deepEqual(head.carried, [{ version: 2, heldOut: 2, fromScratch: true }]);
    assert.equal(head.thresholds.combined.nominal?.count, 2);
    assert.ok(
      fs.existsSync(path.join(grown, 'head.onnx')) && fs.existsSync(path.join(grown, 'head.int8.onnx')),
    );
    assert.equal(await run(['inspect', '--bank', grown, data.testDefective[0]]), 0);
  });

  it('a gateway builds a bank with a head and judges by it; the shards give the k-NN part; add_to_active keeps it', async () => {
    const dataDir = fs.mkdtempSync(path.join(TEST_TMP, 'head-embedded-'));
    const proc = spawnNodeService('services/gateway/main.ts', {
      name: 'embedded-head',
      args: ['--embedded', '--port', '0', '--data-dir', dataDir, '--shards', '2', '--metrics-port', '0'],
    });
    try {
      const ready = await proc.waitForLine('gateway ready', 60_000);
      const client = new InspectionClient(`127.0.0.1:${Number(ready.fields.port)}`, { deadlineMs: 120_000 });
      const spec = { bank: 'headed', partitions: 2, replicas: 1, auto: 'off', holdoutFraction: 0.2 };
      const info = await client.createBank({ ...spec, head: 'glass', headEpochs: 1 }, upload(data.train));
      const version = info.versions.find((v) => v.version === info.activeVersion)!;
      assert.match(version.thresholdMethod, /\(combined, glass head\)$/);
      const files = [data.testGood[0], data.testDefective[0]];
      const answers = [];
      for (const f of files)
        answers.push(await client.inspect({ bank: 'headed', image: fs.readFileSync(f) }));
      for (const a of answers) assert.equal(a.threshold, version.threshold);
      // add_to_active keeps the head (not retrained; 2 new prints: nothing held back to recalibrate).
      const grown = await client.rotateBank({ bank: 'headed', addToActive: true }, upload(data.testGood));
      const v2 = grown.versions.find((v) => v.version === grown.activeVersion)!;
      assert.equal(v2.version, 2);
      assert.match(v2.thresholdMethod, /\(combined, glass head\)$/);
      const again = await client.inspect({ bank: 'headed', image: fs.readFileSync(files[1]) });
      assert.equal(again.version, 2);
      assert.equal(again.threshold, v2.threshold);
      // The same images through a bank without a head answer at the bank's own threshold, another scale.
      await client.createBank({ ...spec, bank: 'plain' }, upload(data.train)).then(async (plain) => {
        const v = plain.versions.find((x) => x.version === plain.activeVersion)!;
        assert.doesNotMatch(v.thresholdMethod, /head/);
        const a = await client.inspect({ bank: plain.name, image: fs.readFileSync(files[1]) });
        assert.notEqual(a.threshold, version.threshold);
      }, assert.fail);
      await assert.rejects(
        client.createBank({ ...spec, bank: 'bad-head', head: 'simplenet' }, upload(data.train)),
        /head must be one of glass/,
      );
      // head_stages: the gateway makes the head's own (wide) embedding beside the bank's.
      const wide = await client.createBank(
        { ...spec, bank: 'wide-head', head: 'glass', headEpochs: 1, headStages: 'block_6_expand_relu' },
        upload(data.train),
      );
      const wv = wide.versions.find((v) => v.version === wide.activeVersion)!;
      const w = await client.inspect({ bank: 'wide-head', image: fs.readFileSync(files[1]) });
      assert.equal(w.threshold, wv.threshold);
      assert.ok(Number.isFinite(w.score));
      await assert.rejects(
        client.createBank(
          { ...spec, bank: 'bad-stages', head: 'glass', headStages: 'block_99_add' },
          upload(data.train),
        ),
        /no stage "block_99_add"/,
      );
      client.close();
    } finally {
      await proc.stop();
    }
  });
});
