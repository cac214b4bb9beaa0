/**
 * `spi serve --embedded`: one process, in-process shards, no etcd; banks survive a restart; it serves
 * /metrics and /readyz like a cluster gateway.
 */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { InspectionClient } from '../../lib/client/inspection-client';
import { ManagedProcess, TEST_TMP, spawnNodeService } from '../helpers/processes';
import { printDataset, upload } from '../helpers/fixtures';
import { generateDataset } from '../../lib/synth';
import { SpiError } from '../../lib/errors';
import { DEFAULT_ADMIN, toBuildRequest } from '../../services/gateway/admin-service';
import { buildSpec } from '../../lib/rpc/messages';
import { fileSources, listImages } from '../../lib/data/mvtec';
import { BackbonePool, createExtractor } from '../../lib/patchcore/engine';
import { fitBank, fittedInspector } from '../../lib/patchcore/fit';

async function startEmbedded(
  dataDir: string,
  extraArgs: string[] = [],
): Promise<{ proc: ManagedProcess; client: InspectionClient; metricsPort: number }> {
  // One embedding worker thread: this single-machine mode also exercises the pooled embedding path.
  const args = ['--embedded', '--port', '0', '--data-dir', dataDir, '--shards', '2', '--metrics-port', '0'];
  const proc = spawnNodeService('services/gateway/main.ts', {
    name: 'embedded',
    args: [...args, '--embed-workers', '1', ...extraArgs],
  });
  const ready = await proc.waitForLine('gateway ready', 60_000);
  return {
    proc,
    client: new InspectionClient(`127.0.0.1:${Number(ready.fields.port)}`, { deadlineMs: 20_000 }),
    metricsPort: Number(ready.fields.metricsPort),
  };
}

describe('embedded gateway (no etcd)', function () {
  this.timeout(120_000);

  it('builds, inspects, and serves the same bank after a restart from its own disk', async () => {
    const data = await printDataset();
    fs.mkdirSync(TEST_TMP, { recursive: true });
    const dataDir = fs.mkdtempSync(path.join(TEST_TMP, 'embedded-'));
    const builds = path.join(dataDir, 'builds');
    const first = await startEmbedded(dataDir, ['--build-dir', builds]);
    let { proc, client } = first;
    try {
      const info = await client.createBank(
        { bank: 'solo', partitions: 2, replicas: 1 },
        upload(data.train.slice(0, 4)),
      );
      assert.equal(info.activeVersion, 1);
      // The uploads waited in the build folder, and their folder went with the build.
      assert.deepEqual(fs.readdirSync(builds), []);
      // Built under the gateway's fit budget (the machine's default here), which the version reports.
      assert.match(
        info.versions[0].fitMemory,
        /^budget \d+(\.\d)? (GiB|MiB) \(.*\), \d+ candidate patches, nothing spilled$/,
      );
      const image = fs.readFileSync(data.testDefective[0]);
      const before = await client.inspect({ bank: 'solo', image });
      assert.equal((await fetch(`http://127.0.0.1:${first.metricsPort}/readyz`)).status, 200);
      const metrics = await (await fetch(`http://127.0.0.1:${first.metricsPort}/metrics`)).text();
      assert.match(
        metrics,
        /^grpc_server_handled_total\{[^}]*grpc_method="Inspect"[^}]*grpc_code="OK"[^}]*\} 1$/m,
      );
      client.close();
      assert.equal((await proc.stop()).code, 0);

      ({ proc, client } = await startEmbedded(dataDir));
      const after = await client.inspect({ bank: 'solo', image });
      assert.equal(after.version, 1);
      assert.equal(after.score, before.score);
      assert.deepEqual(
        (await client.listBanks()).map((b) => b.name),
        ['solo'],
      );
    } finally {
      client.close();
      await proc.stop();
      fs.rmSync(dataDir, { recursive: true, force: true });
    }
  });

  it('builds banks with edge mirroring and a nominal reference that answer like the in-process engine', async () => {
    const data = await printDataset();
    const train = data.train.slice(0, 6);
    const dataDir = fs.mkdtempSync(path.join(TEST_TMP, 'embedded-'));
    // Float32 on the shard hop, so the maps can be held to the in-process ones pixel by pixel: the
    // default float16 queries move a referenced map (near zero on good print) by up to ~6e-4 of its
    // peak (test/integration/wire-encoding.test.ts).
    const { proc, client } = await startEmbedded(dataDir, ['--wire-encoding', 'f32']);
    const pool = new BackbonePool();
    try {
      const spec = { partitions: 1, replicas: 1, holdoutFraction: 0.5, pad: 16, reference: 'mean' };
      await client.createBank({ ...spec, bank: 'framed' }, upload(train));
      await client.createBank({ ...spec, bank: 'plain', pad: 0, reference: '' }, upload(train));
      // The same settings and images through the in-process engine.
      const req = toBuildRequest(
        'create',
        buildSpec({ ...spec, bank: 'framed' }),
        fileSources(train, data.root),
        DEFAULT_ADMIN,
      );
      assert.equal(req.settings.view.pad, 16);
      assert.equal(req.settings.score.reference, 'mean');
      const extractor = await createExtractor(pool, {
        model: req.model,
        view: req.settings.view,
        projectionDim: 0,
        projectionSeed: 0,
      });
      const local = fittedInspector(
        await fitBank(extractor, req.images, { ...req.settings, name: 'framed', version: 1 }),
        extractor,
      );
      for (const file of [data.testDefective[0], data.testGood[0]]) {
        const image = fs.readFileSync(file);
        const res = await client.inspect({ bank: 'framed', image, returnMap: true });
        const want = await local.inspectBytes(image);
        // The map covers the image's canvas, not the mirrored border.
        assert.equal(res.mapWidth, want.canvasWidth);
        assert.equal(res.mapWidth, 224);
        const got = new Float32Array(
          res.anomalyMap.buffer.slice(
            res.anomalyMap.byteOffset,
            res.anomalyMap.byteOffset + res.anomalyMap.byteLength,
          ),
        );
        let worst = 0;
        for (let j = 0; j < got.length; j++)
          worst = Math.max(worst, Math.abs(got[j] - want.map[j]) / Math.max(1e-3, Math.abs(want.map[j])));
        assert.ok(worst < 1e-3, `${file}: relative map difference ${worst}`);
        assert.ok(Math.abs(res.score - want.score) < 1e-4 * Math.max(1, Math.abs(want.score)));
        assert.equal(res.threshold, local.meta.threshold.value);
        // The reference and mirroring change the scores: the options really reach the shards' bank.
        const plain = await client.inspect({ bank: 'plain', image });
        assert.notEqual(plain.score, res.score);
      }
      await assert.rejects(
        client.createBank({ ...spec, bank: 'bad', reference: 'median' }, upload(train)),
        (err: SpiError) =>
          err.kind === 'INVALID_ARGUMENT' && /reference must be "none" or "mean"/.test(err.message),
      );
    } finally {
      client.close();
      await proc.stop();
      await pool.close();
      fs.rmSync(dataDir, { recursive: true, force: true });
    }
  });

  it('fits under its --fit-max-memory: a build whose bank cannot fit is refused, naming the flag, and the gateway serves on', async () => {
    const data = await printDataset();
    const dataDir = fs.mkdtempSync(path.join(TEST_TMP, 'embedded-'));
    const { proc, client } = await startEmbedded(dataDir, ['--fit-max-memory', '1MiB']);
    try {
      await assert.rejects(
        client.createBank({ bank: 'tight', partitions: 1, replicas: 1 }, upload(data.train.slice(0, 4))),
        (err: SpiError) =>
          err.kind === 'INVALID_ARGUMENT' &&
          /memory budget \(the gateway's --fit-max-memory 1 MiB\) is too small/.test(err.message),
      );
      assert.deepEqual(await client.listBanks(), []);
    } finally {
      client.close();
      await proc.stop();
      fs.rmSync(dataDir, { recursive: true, force: true });
    }
    // A size that is not one stops the start with the flag's name.
    const bad = spawnNodeService('services/gateway/main.ts', {
      name: 'embedded-bad-budget',
      args: ['--embedded', '--port', '0', '--data-dir', dataDir, '--fit-max-memory', 'lots'],
    });
    await bad.waitForLine(/--fit-max-memory must be a size such as 2GiB or 800MiB, got \\"lots\\"/, 60_000);
    assert.notEqual((await bad.stop()).code, 0);
  });

  it('a unified bank judges each product by its own threshold; an unknown product is refused', async () => {
    const data = await printDataset();
    const otherRoot = path.join(TEST_TMP, 'prints-embedded-other');
    await generateDataset(otherRoot, { seed: 9, size: 224, trainGood: 4, testGood: 0, perDefect: 0 });
    const named = (category: string, files: string[]) =>
      files.map((f) => ({ name: `${category}/${path.basename(f)}`, data: fs.readFileSync(f) }));
    const images = [
      ...named('labels', data.train.slice(0, 4)),
      ...named('cartons', listImages(path.join(otherRoot, 'train', 'good'))),
    ];
    const dataDir = fs.mkdtempSync(path.join(TEST_TMP, 'embedded-'));
    const { proc, client } = await startEmbedded(dataDir);
    try {
      const spec = { bank: 'mixed', partitions: 1, replicas: 1, holdoutFraction: 0.25 };
      await assert.rejects(
        client.createBank({ ...spec, categories: ['labels', 'cartons'] }, [
          ...images,
          { name: 'stray.png', data: images[0].data },
        ]),
        (err: SpiError) => err.kind === 'INVALID_ARGUMENT' && /stray\.png.*category folder/.test(err.message),
      );
      const created = await client.createBank({ ...spec, categories: ['labels', 'cartons'] }, images);
      const image = fs.readFileSync(data.testDefective[0]);
      const overall = await client.inspect({ bank: 'mixed', image });
      const labels = await client.inspect({ bank: 'mixed', image, category: 'labels' });
      const cartons = await client.inspect({ bank: 'mixed', image, category: 'cartons' });
      // Same image, same score; the verdict's threshold is the named product's own.
      assert.equal(labels.score, overall.score);
      assert.notEqual(labels.threshold, cartons.threshold);
      assert.ok(overall.threshold >= Math.min(labels.threshold, cartons.threshold));
      await assert.rejects(
        client.inspect({ bank: 'mixed', image, category: 'bottles' }),
        (err: SpiError) => err.kind === 'INVALID_ARGUMENT' && /no category "bottles"/.test(err.message),
      );

      // It grows too (#18): a false alarm names its product, added images their product's folder.
      const sheet = fs.readFileSync(data.testGood[0]);
      await assert.rejects(
        client.reportFalseAlarm({ bank: 'mixed', image: sheet }),
        (err: SpiError) =>
          err.kind === 'INVALID_ARGUMENT' &&
          /unified bank of labels, cartons: name the product/.test(err.message),
      );
      await assert.rejects(
        client.reportFalseAlarm({ bank: 'mixed', image: sheet, category: 'bottles' }),
        (err: SpiError) => err.kind === 'INVALID_ARGUMENT' && /no category "bottles"/.test(err.message),
      );
      assert.equal(
        (await client.reportFalseAlarm({ bank: 'mixed', image: sheet, category: 'labels' })).queued,
        1,
      );
      await assert.rejects(
        client.rotateBank({ bank: 'mixed', addToActive: true }, upload(data.train.slice(4, 5))),
        (err: SpiError) => err.kind === 'INVALID_ARGUMENT' && /not under a category folder/.test(err.message),
      );
      const grown = await client.rotateBank(
        { bank: 'mixed', addToActive: true, includeFeedback: true },
        named('labels', data.train.slice(4, 6)),
      );
      const v2 = grown.versions.find((v) => v.version === grown.activeVersion)!;
      assert.equal(v2.sourceImages, images.length - 2 + 3, 'two images and the sheet joined the bank');
      // The addition's own memory line (its new patches, under the gateway's fit budget), not the first fit's.
      assert.notEqual(v2.fitMemory, created.versions.find((v) => v.version === 1)!.fitMemory);
      assert.match(v2.fitMemory, /^budget .*, \d+ candidate patches, nothing spilled$/);
      const after = await client.inspect({ bank: 'mixed', image, category: 'labels' });
      assert.equal(after.version, grown.activeVersion);
      assert.equal(
        (await client.inspect({ bank: 'mixed', image, category: 'cartons' })).threshold,
        cartons.threshold,
        'the cartons had no new held-out image: their threshold stays',
      );
    } finally {
      client.close();
      await proc.stop();
      fs.rmSync(dataDir, { recursive: true, force: true });
    }
  });

  it('sheds a burst past its bounds with RESOURCE_EXHAUSTED and a retry hint, answers the rest, and lives on', async () => {
    const data = await printDataset();
    const dataDir = fs.mkdtempSync(path.join(TEST_TMP, 'embedded-'));
    const { proc, client, metricsPort } = await startEmbedded(dataDir, [
      '--max-in-flight',
      '1',
      '--max-queue',
      '2',
    ]);
    const burst = new InspectionClient(client.address, { deadlineMs: 30_000, retries: 0 });
    try {
      await client.createBank({ bank: 'burst', partitions: 1, replicas: 1 }, upload(data.train.slice(0, 4)));
      const image = fs.readFileSync(data.testGood[0]);
      await client.inspect({ bank: 'burst', image }); // warm: a service time measured
      const frames = Array.from({ length: 3 }, (_, i) => ({ bank: 'burst', image, requestId: `frame-${i}` }));
      const [results, streamed] = await Promise.all([
        Promise.allSettled(Array.from({ length: 24 }, () => burst.inspect({ bank: 'burst', image }))),
        (async () => {
          const out = [];
          for await (const res of burst.inspectStream(frames)) out.push(res);
          return out;
        })(),
      ]);
      const refused = results.filter((r) => r.status === 'rejected').map((r) => r.reason as SpiError);
      const answered = results.filter((r) => r.status === 'fulfilled');
      assert.ok(refused.length >= 10, `${refused.length} of 24 refused`);
      assert.ok(answered.length >= 2, `${answered.length} of 24 answered`);
      for (const err of refused) {
        assert.equal(err.kind, 'RESOURCE_EXHAUSTED', err.message);
        assert.match(err.message, /overloaded.*--max-in-flight 1.*--max-queue 2/);
        assert.ok(err.retryAfterMs! > 0, `hint ${err.retryAfterMs}`);
      }
      // A streamed frame is answered or refused on its own; the stream goes on.
      assert.equal(streamed.length, 3);
      for (const res of streamed) assert.ok([0, 8].includes(res.errorCode), `${res.errorCode}: ${res.error}`);
      // Alive and answering; the shed requests counted.
      assert.equal((await client.inspect({ bank: 'burst', image })).version, 1);
      const metrics = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
      const shed = Number(/^spi_inspect_shed_total\{reason="queue_full"\} (\d+)$/m.exec(metrics)?.[1]);
      const streamShed = streamed.filter((r) => r.errorCode === 8).length;
      assert.equal(shed, refused.length + streamShed);
      assert.match(metrics, /^spi_inspect_in_flight 0$/m);
    } finally {
      burst.close();
      client.close();
      await proc.stop();
      fs.rmSync(dataDir, { recursive: true, force: true });
    }
  });

  it('keeps a line controller answered while another connection floods it (its share), and reports the queue wait', async () => {
    const data = await printDataset();
    const dataDir = fs.mkdtempSync(path.join(TEST_TMP, 'embedded-'));
    const { proc, client, metricsPort } = await startEmbedded(dataDir, [
      '--max-in-flight',
      '1',
      '--max-queue',
      '2',
    ]);
    // Each on its own connection, as a separate machine's would be.
    const own = { 'grpc.use_local_subchannel_pool': 1 };
    const flood = new InspectionClient(client.address, {
      deadlineMs: 30_000,
      retries: 0,
      channelOptions: own,
    });
    const line = new InspectionClient(client.address, {
      deadlineMs: 30_000,
      retries: 0,
      channelOptions: own,
    });
    try {
      await client.createBank({ bank: 'fair', partitions: 1, replicas: 1 }, upload(data.train.slice(0, 4)));
      const image = fs.readFileSync(data.testGood[0]);
      await client.inspect({ bank: 'fair', image });
      // The flood keeps 6 calls outstanding (more than the 3 places) until the line controller is done.
      let flooding = true;
      const floodCodes: string[] = [];
      const floodLoop = async () => {
        while (flooding)
          await flood.inspect({ bank: 'fair', image }).then(
            () => floodCodes.push('OK'),
            (err: SpiError) => floodCodes.push(err.kind),
          );
      };
      const loops = Array.from({ length: 6 }, floodLoop);
      await new Promise((r) => setTimeout(r, 300));
      const answers = [];
      try {
        for (let i = 0; i < 4; i++) answers.push(await line.inspect({ bank: 'fair', image }));
      } finally {
        flooding = false;
        await Promise.all(loops);
      }
      assert.equal(answers.length, 4, 'every frame of the line controller answered, none refused');
      for (const { timings: t } of answers) {
        assert.ok(t!.queueMs >= 0 && t!.totalMs > 0);
        // The image's upload is part of the wait on the gateway, and told apart.
        assert.ok(t!.uploadMs > 0 && t!.uploadMs <= t!.queueMs, `${t!.uploadMs} of ${t!.queueMs}`);
      }
      assert.ok(floodCodes.includes('RESOURCE_EXHAUSTED'), 'the flood was shed');
      assert.deepEqual([...new Set(floodCodes)].sort(), ['OK', 'RESOURCE_EXHAUSTED']);
      const metrics = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
      // Other clients active (the set-up's, the line controller), the flood holds its share of
      // the one slot (--max-client-share 0.5 of 1: one request) and is refused past it.
      const shed = (reason: string) =>
        Number(new RegExp(`^spi_inspect_shed_total\\{reason="${reason}"\\} (\\d+)$`, 'm').exec(metrics)?.[1]);
      assert.ok(shed('client_share') > 0, metrics);
      assert.ok(shed('fair_share') >= 0);
    } finally {
      flood.close();
      line.close();
      client.close();
      await proc.stop();
      fs.rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
