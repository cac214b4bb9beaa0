/**
 * RotateBank with add_to_active (#18) on a real cluster (etcd, two shards with data dirs, gateway):
 * the next version is the active one, read back from its shards, plus the new images, and answers
 * exactly as the in-process incremental bank (patchcore/incremental.ts) built the same way; a fused
 * version grows every member (incremental-fused.ts).
 */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { startLocalCluster, LocalCluster } from '../../services/local/cluster';
import { InspectionClient } from '../../lib/client/inspection-client';
import { DEFAULT_ADMIN, toBuildRequest } from '../../services/gateway/admin-service';
import { BuildSpecMsg, buildSpec } from '../../lib/rpc/messages';
import { BackbonePool, createExtractor, extractorForBank } from '../../lib/patchcore/engine';
import { fitJob } from '../../lib/patchcore/fit-worker';
import { fusedInspector } from '../../lib/patchcore/fusion';
import { KnnIndex } from '../../lib/knn/index';
import { completeMeta, fitBank, fittedInspector } from '../../lib/patchcore/fit';
import { addToBank } from '../../lib/patchcore/incremental';
import { Inspector } from '../../lib/patchcore/inspector';
import { fileSources } from '../../lib/data/mvtec';
import { SpiError } from '../../lib/errors';
import { PrintDataset, printDataset, upload } from '../helpers/fixtures';
import { WireSearcher } from '../../bench/wire-encoding';

const SPEC: Partial<BuildSpecMsg> = { coresetRatio: 0.1, auto: 'off' };
/** MobileNetV2's stride-4 pair: a fused bank's second member. */
const FINE_STAGES = 'block_2_add,block_5_add';

describe('cluster: RotateBank adding images to the active version', function () {
  this.timeout(180_000);
  let cluster: LocalCluster;
  let client: InspectionClient;
  let data: PrintDataset;
  const pool = new BackbonePool();

  before(async () => {
    data = await printDataset('prints-224', 10);
    cluster = await startLocalCluster({ shards: 2, gatewayArgs: ['--drain-ms', '200'] });
    client = cluster.client({ deadlineMs: 30_000 });
  });

  after(async () => {
    client?.close();
    await cluster?.stop();
    await pool.close();
  });

  it("builds the next version from the shards' rows plus the new images, as the engine does", async () => {
    const first = data.train.slice(0, 6);
    const later = data.train.slice(6, 10);
    const v1 = await client.createBank({ ...SPEC, bank: 'grow', partitions: 2, replicas: 2 }, upload(first));
    assert.equal(v1.activeVersion, 1);
    const stages: string[] = [];
    const v2 = await client.rotateBank(
      { bank: 'grow', addToActive: true, partitions: 2 },
      upload(later),
      (p) => stages.push(p.stage),
    );
    assert.equal(v2.activeVersion, 2);
    assert.ok(stages.includes('read'), `stages ${[...new Set(stages)].join(', ')}`);
    const info = v2.versions.find((v) => v.version === 2)!;
    const old = v1.versions[0];
    assert.ok(info.patches > old.patches, 'the new images added rows');
    assert.equal(info.sourceImages, old.sourceImages + later.length, 'a few new images all go in');

    // The same in process: v1 fitted as the cluster did, then grown by addToBank.
    const req = toBuildRequest(
      'create',
      buildSpec({ ...SPEC, bank: 'grow' }),
      fileSources(first, data.root),
      DEFAULT_ADMIN,
    );
    const extractor = await createExtractor(pool, {
      model: req.model,
      view: req.settings.view,
      projectionDim: 0,
      projectionSeed: 0,
    });
    const base = await fitBank(extractor, req.images, { ...req.settings, name: 'grow', version: 1 });
    const grown = await addToBank(
      extractor,
      { meta: completeMeta(base.meta, base.dim, base.index.size), vectors: base.vectors },
      fileSources(later, data.root),
    );
    assert.equal(grown.index.size, info.patches);
    const local = new Inspector(
      fittedInspector(grown, extractor).meta,
      extractor,
      new WireSearcher(grown.index, 'f16'),
    );
    assert.ok(Math.abs(grown.meta.threshold.value - info.threshold) < 1e-4 * info.threshold);
    for (const file of [data.testDefective[0], data.testGood[0]]) {
      const want = await local.inspectBytes(fs.readFileSync(file));
      const got = await client.inspect({ bank: 'grow', image: fs.readFileSync(file) });
      assert.equal(got.version, 2);
      assert.ok(
        Math.abs(got.score - want.score) < 1e-4 * want.score,
        `${file}: ${got.score} vs ${want.score}`,
      );
      assert.equal(got.isDefective, want.isDefective);
    }
  });

  it('refuses add_to_active on CreateBank; adds to a bank with a nominal reference', async () => {
    await assert.rejects(
      client.createBank({ ...SPEC, bank: 'fresh', addToActive: true }, upload(data.train.slice(0, 4))),
      (err: SpiError) => err.kind === 'INVALID_ARGUMENT' && /RotateBank only/.test(err.message),
    );
    const created = await client.createBank(
      { ...SPEC, bank: 'framed', reference: 'mean', holdoutFraction: 0.34, replicas: 1 },
      upload(data.train.slice(0, 6)),
    );
    const info = await client.rotateBank(
      { bank: 'framed', addToActive: true },
      upload(data.train.slice(6, 8)),
    );
    assert.equal(info.activeVersion, 2);
    // Two sheets all go in: the reference and the threshold stay (patchcore/incremental.ts).
    const v2 = info.versions.find((v) => v.version === 2)!;
    assert.equal(v2.threshold, created.versions[0].threshold);
    assert.equal(v2.sourceImages, created.versions[0].sourceImages + 2);
    const answer = await client.inspect({ bank: 'framed', image: fs.readFileSync(data.testDefective[0]) });
    assert.equal(answer.version, 2);
  });

  it('grows a fused bank with references, each member from its own partitions, as the engine does', async () => {
    const plant = await printDataset('prints-plant', 20);
    const [first, later] = [plant.train.slice(0, 8), plant.train.slice(8, 20)];
    const spec = { ...SPEC, bank: 'fused-grow', fuse: FINE_STAGES, reference: 'mean', holdoutFraction: 0.25 };
    const v1 = await client.createBank({ ...spec, partitions: 2, replicas: 1 }, upload(first));
    const info = await client.rotateBank({ bank: 'fused-grow', addToActive: true }, upload(later));
    assert.equal(info.activeVersion, 2);
    const v2 = info.versions.find((v) => v.version === 2)!;
    assert.equal(v2.members.length, 2);
    assert.equal(v2.partitions, 4, "each member's own 2 partitions");
    assert.ok(v2.patches > v1.versions[0].patches);
    assert.equal(v2.sourceImages, v1.versions[0].sourceImages + 11, 'one of the 12 held back');

    // The same in process: v1 as the gateway's fit worker fitted it, then grown by the same job.
    const req = toBuildRequest('create', buildSpec(spec), [], DEFAULT_ADMIN);
    const job = (version: number, files: string[]) => ({
      model: req.model,
      settings: { ...req.settings, name: 'fused-grow', version },
      images: upload(files).map((u) => ({ path: u.name, data: u.data })),
    });
    const base = await fitJob(pool, { ...job(1, first), fuse: req.fuse }, () => undefined);
    assert.equal(base.kind, 'fused');
    if (base.kind !== 'fused') return;
    const members = base.members.map((f) => ({
      meta: completeMeta(f.meta, f.dim, f.vectors.length / f.dim),
      vectors: f.vectors,
    }));
    const grown = await fitJob(
      pool,
      { ...job(2, later), add: { kind: 'fused', meta: base.meta, members } },
      () => undefined,
    );
    if (grown.kind !== 'fused') throw new Error('a fused bank grows into a fused bank');
    assert.ok(Math.abs(v2.threshold - grown.meta.threshold.value) <= 1e-5 * Math.abs(v2.threshold));
    const extractors = await Promise.all(members.map((m) => extractorForBank(pool, m.meta)));
    const local = fusedInspector(
      {
        meta: grown.meta,
        members: grown.members.map((f) => ({ ...f, index: KnnIndex.build(f.vectors, f.dim, f.meta.knn) })),
      },
      extractors,
    );
    const scores: number[] = [];
    for (const file of [plant.testGood[0], plant.testDefective[0]]) {
      const image = fs.readFileSync(file);
      const remote = await client.inspect({ bank: 'fused-grow', image });
      const here = await local.inspectBytes(image);
      assert.equal(remote.version, 2);
      // The gateway sends float16 embeddings to the shards: a reference map moves by up to ~1e-3.
      assert.ok(
        Math.abs(remote.score - here.score) <= 2e-3 * Math.max(1, Math.abs(here.score)),
        `${path.basename(file)}: gateway ${remote.score}, in-process ${here.score}`,
      );
      scores.push(remote.score);
    }
    assert.ok(scores[1] > scores[0], `defect ${scores[1]}, good ${scores[0]}`);
  });

  it('queues a false alarm sent back as good, and the next added version takes it in and off the queue', async () => {
    await client.createBank({ ...SPEC, bank: 'fb', replicas: 1 }, upload(data.train.slice(0, 6)));
    const sheet = fs.readFileSync(data.testGood[0]);
    const answer = await client.inspect({ bank: 'fb', image: sheet, requestId: 'sheet-17' });
    const ack = await client.reportFalseAlarm({
      bank: 'fb',
      version: answer.version,
      requestId: answer.requestId,
      image: sheet,
      note: 'operator: good sheet',
    });
    assert.equal(ack.queued, 1);
    assert.match(ack.id, /^[0-9a-z]+-[0-9a-f]{8}$/);
    await assert.rejects(
      client.reportFalseAlarm({ bank: 'nobank', image: sheet }),
      (err: SpiError) => err.kind === 'NOT_FOUND',
    );
    await assert.rejects(
      client.reportFalseAlarm({ bank: 'fb', image: Buffer.from('not an image at all') }),
      (err: SpiError) => err.kind === 'INVALID_ARGUMENT',
    );
    await assert.rejects(
      client.rotateBank({ bank: 'fb', includeFeedback: true }, []),
      (err: SpiError) => err.kind === 'INVALID_ARGUMENT' && /add_to_active/.test(err.message),
    );
    const before = (await client.getBank('fb')).versions[0];
    const info = await client.rotateBank({ bank: 'fb', addToActive: true, includeFeedback: true }, []);
    assert.equal(info.activeVersion, 2);
    const v2 = info.versions.find((v) => v.version === 2)!;
    assert.equal(v2.sourceImages, before.sourceImages + 1);
    assert.ok(v2.patches > before.patches);
    // The sheet is in the bank now: it scores lower than before.
    const again = await client.inspect({ bank: 'fb', image: sheet });
    assert.ok(again.score < answer.score, `${again.score} after, ${answer.score} before`);
    // And off the queue: a second build has nothing to add.
    await assert.rejects(
      client.rotateBank({ bank: 'fb', addToActive: true, includeFeedback: true }, []),
      (err: SpiError) => err.kind === 'INVALID_ARGUMENT' && /no false alarms queued/.test(err.message),
    );
  });

  it('scores a reweighted bank through the shards as the in-process engine does', async () => {
    const train = data.train.slice(0, 6);
    const spec = { ...SPEC, bank: 'rw', imageScore: 'reweighted' };
    await client.createBank({ ...spec, partitions: 2, replicas: 1 }, upload(train));
    const req = toBuildRequest('create', buildSpec(spec), fileSources(train, data.root), DEFAULT_ADMIN);
    assert.equal(req.settings.score.imageScore, 'reweighted');
    const extractor = await createExtractor(pool, {
      model: req.model,
      view: req.settings.view,
      projectionDim: 0,
      projectionSeed: 0,
    });
    const fitted = await fitBank(extractor, req.images, { ...req.settings, name: 'rw', version: 1 });
    const local = new Inspector(
      fittedInspector(fitted, extractor).meta,
      extractor,
      new WireSearcher(fitted.index, 'f16', fitted.vectors),
    );
    for (const file of [data.testDefective[0], data.testGood[0]]) {
      const want = await local.inspectBytes(fs.readFileSync(file));
      const got = await client.inspect({ bank: 'rw', image: fs.readFileSync(file) });
      assert.ok(want.score < want.maxPatchScore, 'weighted below the top patch score');
      assert.ok(
        Math.abs(got.score - want.score) < 1e-4 * want.score,
        `${file}: ${got.score} vs ${want.score}`,
      );
    }
  });
});
