/**
 * The cluster with real parts: etcd, three bank-shard processes and a gateway process on loopback,
 * onnxruntime on the real MobileNetV2 backbone, faiss in the shards. Compared against the
 * in-process engine on the same images.
 */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as grpc from '@grpc/grpc-js';
import { startLocalCluster, LocalCluster } from '../../services/local/cluster';
import { InspectionClient, InspectResponse } from '../../lib/client/inspection-client';
import { DEFAULT_ADMIN, toBuildRequest } from '../../services/gateway/admin-service';
import { BuildSpecMsg, buildSpec } from '../../lib/rpc/messages';
import { BackbonePool, createExtractor } from '../../lib/patchcore/engine';
import { fitBank, fittedInspector } from '../../lib/patchcore/fit';
import { Inspector } from '../../lib/patchcore/inspector';
import { fileSources } from '../../lib/data/mvtec';
import { Registry } from '../../lib/cluster/registry';
import { ShardClient } from '../../lib/cluster/shard-client';
import { SpiError } from '../../lib/errors';
import { kindOfStatus } from '../../lib/rpc/status';
import { PrintDataset, printDataset, pngHeader, upload } from '../helpers/fixtures';
import { waitUntil } from '../helpers/processes';
import { WireSearcher } from '../../bench/wire-encoding';

// The plain defaults, not the automatic choice: these tests compare the cluster with the engine.
const SPEC: Partial<BuildSpecMsg> = { coresetRatio: 0.1, auto: 'off' };

/**
 * The in-process engine on the same images and settings the gateway gets, its queries rounded to
 * float16 as the gateway sends them to shards of this release (so the maps stay comparable within
 * 1e-4, and a gateway that sent float32 here would stand out at ~2e-4).
 */
async function localInspector(
  pool: BackbonePool,
  bank: string,
  files: string[],
  root: string,
): Promise<Inspector> {
  const req = toBuildRequest('create', buildSpec({ ...SPEC, bank }), fileSources(files, root), DEFAULT_ADMIN);
  const extractor = await createExtractor(pool, {
    model: req.model,
    view: req.settings.view,
    projectionDim: 0,
    projectionSeed: 0,
  });
  const fitted = await fitBank(extractor, req.images, { ...req.settings, name: bank, version: 1 });
  return new Inspector(
    fittedInspector(fitted, extractor).meta,
    extractor,
    new WireSearcher(fitted.index, 'f16'),
  );
}

function mapOf(res: InspectResponse): Float32Array {
  const b = res.anomalyMap;
  return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
}

/** Inspects in `workers` parallel loops until stop() is called; collects every answer or error. */
function loadLoop(client: InspectionClient, bank: string, image: Buffer, workers = 2) {
  let running = true;
  const answers: InspectResponse[] = [];
  const errors: Error[] = [];
  const latencies: number[] = [];
  const loops = Array.from({ length: workers }, async () => {
    while (running) {
      const t0 = Date.now();
      try {
        answers.push(await client.inspect({ bank, image }, 8000));
        latencies.push(Date.now() - t0);
      } catch (err) {
        errors.push(err as Error);
      }
    }
  });
  return {
    answers,
    errors,
    latencies,
    async stop() {
      running = false;
      await Promise.all(loops);
    },
  };
}

async function expectCode(p: Promise<unknown>, code: grpc.status, message: RegExp): Promise<void> {
  await assert.rejects(p, (err: SpiError) => {
    assert.equal(err.kind, kindOfStatus(code), `${err.kind}: ${err.message}`);
    assert.match(err.message, message);
    return true;
  });
}

describe('cluster: gateway + shards + etcd on loopback', function () {
  this.timeout(180_000);
  let cluster: LocalCluster;
  let client: InspectionClient;
  let data: PrintDataset;
  const pool = new BackbonePool();

  before(async () => {
    data = await printDataset();
    cluster = await startLocalCluster({
      shards: 3,
      gatewayArgs: ['--drain-ms', '300', '--hedge-ms', '100', '--max-message-mb', '4'],
    });
    client = cluster.client({ deadlineMs: 20_000 });
  });

  after(async () => {
    await cluster?.stop();
    await pool.close();
  });

  it('gives the shards of one machine each its share of the cores for searching', async () => {
    const share = Number(
      process.env.SPI_SEARCH_THREADS ?? Math.max(1, Math.floor(os.availableParallelism() / 3)),
    );
    for (const shard of cluster.shards) {
      const ready = await shard.waitForLine('shard ready');
      assert.equal(ready.fields.searchThreads, share);
    }
  });

  it("gives the in-process engine's anomaly maps with the bank split over 1, 2 and 3 shards", async () => {
    const train = data.train.slice(0, 6);
    const local = await localInspector(pool, 'exact', train, data.root);
    const probes = [data.testDefective[0], data.testGood[0]];
    const expected = await Promise.all(probes.map(async (f) => local.inspectBytes(fs.readFileSync(f))));
    for (const partitions of [1, 2, 3]) {
      const bank = `exact-${partitions}`;
      const info = await client.createBank({ ...SPEC, bank, partitions, replicas: 1 }, upload(train));
      assert.equal(info.activeVersion, 1);
      assert.equal(info.versions[0].partitions, partitions);
      for (const [i, file] of probes.entries()) {
        const res = await client.inspect({ bank, image: fs.readFileSync(file), returnMap: true });
        assert.equal(res.version, 1);
        const got = mapOf(res);
        const want = expected[i].map;
        assert.equal(got.length, want.length);
        let worst = 0;
        for (let j = 0; j < got.length; j++)
          worst = Math.max(worst, Math.abs(got[j] - want[j]) / Math.max(1e-6, Math.abs(want[j])));
        assert.ok(worst < 1e-4, `${bank} ${file}: relative map difference ${worst}`);
        assert.ok(Math.abs(res.score - expected[i].score) < 1e-4 * expected[i].score);
        assert.equal(res.isDefective, expected[i].isDefective);
      }
    }
  });

  it('rotates a bank under load: no failed request, every answer from one whole version, old version dropped', async () => {
    const v1Files = data.train.slice(0, 5);
    const v2Files = data.train;
    await client.createBank({ ...SPEC, bank: 'rot', partitions: 2, replicas: 2 }, upload(v1Files));
    const probe = fs.readFileSync(data.testDefective[0]);
    const expected = {
      1: (await (await localInspector(pool, 'rot', v1Files, data.root)).inspectBytes(probe)).score,
      2: (await (await localInspector(pool, 'rot', v2Files, data.root)).inspectBytes(probe)).score,
    };
    assert.ok(Math.abs(expected[1] - expected[2]) > 1e-3, 'the two versions must be distinguishable');
    const load = loadLoop(client, 'rot', probe);
    const stages: string[] = [];
    const info = await client.rotateBank(
      { ...SPEC, bank: 'rot', partitions: 2, replicas: 2 },
      upload(v2Files),
      (p) => stages.push(p.stage),
    );
    await new Promise((r) => setTimeout(r, 500));
    await load.stop();
    assert.deepEqual(
      load.errors.map((e) => e.message),
      [],
    );
    assert.equal(info.activeVersion, 2);
    assert.deepEqual(
      info.versions.map((v) => v.version),
      [2],
      'old version retired',
    );
    assert.ok(stages.includes('load') && stages.includes('activate') && stages.includes('drop'));
    const versions = new Set(load.answers.map((a) => a.version));
    assert.ok(versions.has(1) && versions.has(2), `answers came from versions ${[...versions]}`);
    for (const a of load.answers) {
      const want = expected[a.version as 1 | 2];
      assert.ok(
        Math.abs(a.score - want) < 1e-4 * want,
        `v${a.version} answered ${a.score}, expected ${want}`,
      );
    }
    const registry = new Registry({ endpoints: [cluster.etcd.endpoint] });
    try {
      for (const shard of await registry.listShards()) {
        const sc = new ShardClient(shard.address);
        const held = (await sc.listPartitions())
          .filter((p) => p.partition?.bank === 'rot')
          .map((p) => p.partition?.version);
        sc.close();
        assert.ok(!held.includes(1), `${shard.id} still holds rot v1`);
      }
    } finally {
      await registry.close();
    }
  });

  it('keeps answering while etcd restarts', async () => {
    const load = loadLoop(client, 'rot', fs.readFileSync(data.testGood[0]));
    await new Promise((r) => setTimeout(r, 300));
    await cluster.etcd.restart({ downMs: 1500 });
    await new Promise((r) => setTimeout(r, 1000));
    await load.stop();
    assert.deepEqual(
      load.errors.map((e) => e.message),
      [],
    );
    assert.ok(load.answers.length > 3);
  });

  it('refuses bad input with the right status and a clear message, and keeps serving', async () => {
    const good = fs.readFileSync(data.testGood[0]);
    await expectCode(
      client.inspect({ bank: 'rot', image: Buffer.alloc(0) }),
      grpc.status.INVALID_ARGUMENT,
      /empty/,
    );
    await expectCode(
      client.inspect({ bank: 'rot', image: Buffer.from('this is not an image at all') }),
      grpc.status.INVALID_ARGUMENT,
      /format text is not accepted/,
    );
    await expectCode(
      client.inspect({ bank: 'rot', image: good.subarray(0, good.length >> 1) }),
      grpc.status.INVALID_ARGUMENT,
      /corrupt|truncated|could not be read/,
    );
    await expectCode(
      client.inspect({ bank: 'rot', image: pngHeader(30000, 30000) }),
      grpc.status.RESOURCE_EXHAUSTED,
      /30000x30000/,
    );
    await expectCode(client.inspect({ bank: 'nope', image: good }), grpc.status.NOT_FOUND, /bank "nope"/);
    await expectCode(
      client.inspect({ bank: 'rot', image: good, version: 99 }),
      grpc.status.NOT_FOUND,
      /no version 99/,
    );
    await expectCode(
      client.inspect({ bank: '../etc', image: good }),
      grpc.status.INVALID_ARGUMENT,
      /bank name/,
    );
    await expectCode(
      client.inspect({ bank: 'rot', image: Buffer.alloc(5 * 1024 * 1024, 1) }),
      grpc.status.RESOURCE_EXHAUSTED,
      /larger than max|message/i,
    );
    // Grey + alpha (two channels) is converted, not refused.
    const sharp = (await import('sharp')).default;
    const greyAlpha = await sharp(good).greyscale().ensureAlpha().png().toBuffer();
    const converted = await client.inspect({ bank: 'rot', image: greyAlpha });
    assert.equal(converted.imageWidth, 224);
    // Still serving.
    const res = await client.inspect({ bank: 'rot', image: good });
    assert.equal(res.version, 2);
  });

  it('streams frames in order, answering a bad frame with its error without ending the stream', async () => {
    const good = fs.readFileSync(data.testGood[0]);
    const bad = fs.readFileSync(data.testDefective[0]);
    const frames = [
      { bank: 'rot', image: good, requestId: 'a' },
      { bank: 'rot', image: Buffer.from('corrupt'), requestId: 'b' },
      { bank: 'rot', image: bad, requestId: 'c' },
      { bank: 'missing', image: good, requestId: 'd' },
    ];
    const answers: InspectResponse[] = [];
    for await (const a of client.inspectStream(frames)) answers.push(a);
    assert.deepEqual(
      answers.map((a) => a.requestId),
      ['a', 'b', 'c', 'd'],
    );
    assert.equal(answers[0].errorCode, 0);
    assert.equal(answers[1].errorCode, grpc.status.INVALID_ARGUMENT);
    assert.match(answers[1].error, /not accepted/);
    assert.ok(answers[2].score > answers[0].score);
    assert.equal(answers[3].errorCode, grpc.status.NOT_FOUND);
  });

  it('loses no request when a replica is killed, serves again from disk after a restart, finishes past a frozen replica, and says UNAVAILABLE with none left', async () => {
    // 3 partitions x 2 replicas on shards 0-2: p0 on {0,1}, p1 on {1,2}, p2 on {2,0}.
    await client.createBank(
      { ...SPEC, bank: 'rep', partitions: 3, replicas: 2 },
      upload(data.train.slice(0, 5)),
    );
    const image = fs.readFileSync(data.testDefective[1]);
    const load = loadLoop(client, 'rep', image);
    await new Promise((r) => setTimeout(r, 500));
    await cluster.shards[2].kill('SIGKILL');
    await new Promise((r) => setTimeout(r, 1500));
    await load.stop();
    assert.deepEqual(
      load.errors.map((e) => e.message),
      [],
    );
    assert.ok(load.answers.length > 0);

    // Restarted on its own disk, shard 2 serves its partitions again without a re-send.
    await cluster.startShard(2);
    const registry = new Registry({ endpoints: [cluster.etcd.endpoint] });
    try {
      const loaded = await waitUntil(async () => {
        const held = (await registry.listLoaded('rep', 1)).filter((e) => e.shardId === 'shard-2');
        return held.length === 2 ? held : null;
      }, 'shard-2 to announce its reloaded partitions');
      assert.deepEqual(loaded.map((e) => e.ref.partition).sort(), [1, 2]);
    } finally {
      await registry.close();
    }
    await waitUntil(
      async () => (await client.inspect({ bank: 'rep', image })).bank === 'rep',
      'rep to answer',
    );

    cluster.shards[1].pause(); // hangs, does not die
    try {
      const t0 = Date.now();
      const res = await client.inspect({ bank: 'rep', image }, 8000);
      assert.equal(res.bank, 'rep');
      assert.ok(Date.now() - t0 < 4000, `took ${Date.now() - t0} ms past a frozen replica`);
    } finally {
      cluster.shards[1].resume();
    }

    await cluster.shards[1].kill('SIGKILL');
    await cluster.shards[2].kill('SIGKILL'); // partition 1 lived on shards 1 and 2 only
    await expectCode(
      client.inspect({ bank: 'rep', image }, 8000),
      grpc.status.UNAVAILABLE,
      /no live replica|every replica failed/,
    );
  });
});
