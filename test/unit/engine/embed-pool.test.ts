/**
 * Embedding on worker threads (EmbedPool) gives the same patch embeddings as the in-thread
 * extractor, batches requests that queue up, and fails clearly.
 */
import { strict as assert } from 'node:assert';
import { DEFAULT_VIEW } from '../../../lib/image/views';
import { RgbImage } from '../../../lib/image/decode';
import {
  BackbonePool,
  ExtractorSettings,
  PooledExtractor,
  createExtractor,
} from '../../../lib/patchcore/engine';
import { EmbedPool, embedWorkersSetting } from '../../../lib/patchcore/embed-pool';
import { SpiError } from '../../../lib/errors';
import { sessionSettingsFromEnv } from '../../../lib/backbone/backbone';

function image(seed: number, size = 96): RgbImage {
  const data = Buffer.alloc(size * size * 3);
  for (let i = 0; i < data.length; i++) data[i] = (i * 31 + seed * 97 + ((i * seed) % 13) * 17) & 255;
  return { data, width: size, height: size };
}

const SETTINGS: ExtractorSettings = {
  model: 'mobilenet_v2-imagenet',
  view: { ...DEFAULT_VIEW, resize: 96 },
  projectionDim: 0,
  projectionSeed: 0,
};

function assertClose(a: Float32Array, b: Float32Array, what: string): void {
  assert.equal(a.length, b.length, what);
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]) / (1 + Math.abs(b[i])));
  assert.ok(worst < 1e-4, `${what}: relative difference ${worst}`);
}

describe('embedding worker pool', function () {
  this.timeout(60_000);
  const local = new BackbonePool();
  after(() => local.close());

  it('embeds like the in-thread extractor, also when concurrent requests share a batch', async () => {
    const pool = new EmbedPool({ workers: 1, maxBatch: 3 });
    try {
      const inThread = await createExtractor(local, SETTINGS);
      const images = [1, 2, 3, 4, 5].map((s) => image(s));
      await pool.warm(SETTINGS);
      // Five at once into one worker: the first runs alone, the next ones queue and go in batches.
      const pooled = await Promise.all(images.map((im) => pool.embed(SETTINGS, im)));
      for (let i = 0; i < images.length; i++) {
        const want = await inThread.embed(images[i]);
        assert.equal(pooled[i].dim, want.dim);
        assert.equal(pooled[i].gridWidth, want.gridWidth);
        assertClose(pooled[i].vectors, want.vectors, `image ${i}`);
      }
      // The images differ, so a mix-up between batch members would show.
      assert.notEqual(pooled[0].vectors[0], pooled[1].vectors[0]);
    } finally {
      await pool.close();
    }
  });

  it('hands out pooled extractors from a BackbonePool with workers, and the caller keeps its image', async () => {
    const pooledBackbones = new BackbonePool(undefined, { embedWorkers: 2 });
    try {
      const extractor = await createExtractor(pooledBackbones, SETTINGS);
      assert.ok(extractor instanceof PooledExtractor);
      const im = image(7);
      const before = Buffer.from(im.data);
      const got = await extractor.embed(im);
      assert.ok(im.data.equals(before), 'the image passed in is untouched (not transferred away)');
      assertClose(got.vectors, (await (await createExtractor(local, SETTINGS)).embed(im)).vectors, 'pooled');
    } finally {
      await pooledBackbones.close();
    }
  });

  it('warms every worker, also the ones busy when warm() is called, and each only once', async () => {
    const pool = new EmbedPool({ workers: 2 });
    try {
      const other: ExtractorSettings = { ...SETTINGS, view: { ...SETTINGS.view, resize: 64 } };
      // Both workers busy with another configuration: the warm-ups must wait for these very workers.
      const busy = [pool.embed(other, image(1)), pool.embed(other, image(2))];
      const warmed = pool.warm(SETTINGS);
      await Promise.all([...busy, warmed]);
      assert.equal(pool.warmWorkers(SETTINGS), 2);
      assert.equal(pool.warmWorkers(other), 2);
      await pool.warm(SETTINGS); // nothing left to load
    } finally {
      await pool.close();
    }
  });

  it('reports an unknown model as NOT_FOUND, and refuses work once closed', async () => {
    const pool = new EmbedPool({ workers: 1 });
    await assert.rejects(pool.embed({ ...SETTINGS, model: 'no-such-model' }, image(1)), (err: unknown) => {
      assert.ok(err instanceof SpiError, String(err));
      assert.equal(err.kind, 'NOT_FOUND');
      return true;
    });
    await pool.close();
    await assert.rejects(pool.embed(SETTINGS, image(1)), /shutting down/);
  });

  it('reads the workers and thread settings', () => {
    assert.equal(embedWorkersSetting('3'), 3);
    assert.equal(embedWorkersSetting('0'), 0);
    assert.ok(embedWorkersSetting('auto') >= 0);
    assert.throws(() => embedWorkersSetting('-1'), /integer >= 0/);
    assert.equal(sessionSettingsFromEnv({}).intraOpThreads, 0);
    assert.equal(sessionSettingsFromEnv({ SPI_INTRA_OP_THREADS: '2' }).intraOpThreads, 2);
    assert.throws(() => sessionSettingsFromEnv({ SPI_INTRA_OP_THREADS: 'many' }), /integer >= 0/);
  });
});
