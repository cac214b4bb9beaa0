import { strict as assert } from 'node:assert';
import { MemoryRegistry } from '../../../lib/cluster/memory-registry';
import {
  FeedbackEntry,
  MAX_FEEDBACK_IMAGE_BYTES,
  MAX_FEEDBACK_PER_BANK,
  checkFeedbackImage,
  newFeedbackId,
} from '../../../lib/cluster/feedback';
import { SpiError } from '../../../lib/errors';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

const entry = (bank: string, i: number): FeedbackEntry => ({
  id: newFeedbackId(1_700_000_000_000 + i),
  bank,
  version: 1,
  requestId: `r${i}`,
  note: '',
  receivedAt: new Date(0).toISOString(),
  sha256: '0'.repeat(64),
  image: Buffer.from([i]).toString('base64'),
});

describe('operator feedback queue (embedded registry)', () => {
  it('queues per bank in order, deletes what a version took in, and refuses beyond the limit', async () => {
    const registry = new MemoryRegistry();
    assert.equal(await registry.queueFeedback(entry('a', 2)), 1);
    assert.equal(await registry.queueFeedback(entry('a', 1)), 2);
    assert.equal(await registry.queueFeedback(entry('b', 3)), 1);
    const queued = await registry.listFeedback('a');
    assert.deepEqual(
      queued.map((e) => e.requestId),
      ['r2', 'r1'],
    );
    await registry.deleteFeedback('a', [queued[0].id]);
    assert.deepEqual(
      (await registry.listFeedback('a')).map((e) => e.requestId),
      ['r1'],
    );
    for (let i = 1; i < MAX_FEEDBACK_PER_BANK; i++) await registry.queueFeedback(entry('b', 10 + i));
    await assert.rejects(
      registry.queueFeedback(entry('b', 99)),
      (err: SpiError) => err.kind === 'RESOURCE_EXHAUSTED',
    );
    await registry.deleteBank('b');
    assert.deepEqual(await registry.listFeedback('b'), []);
  });

  it('keeps the queue across a restart of the embedded registry, in order, without what was taken in', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'spi-feedback-'));
    try {
      const file = path.join(dir, 'registry.json');
      const first = new MemoryRegistry(file);
      for (const i of [3, 1, 2]) await first.queueFeedback(entry('a', i));
      await first.queueFeedback(entry('gone', 9));
      await first.deleteFeedback('a', [(await first.listFeedback('a'))[1].id]);
      await first.deleteBank('gone');
      const again = new MemoryRegistry(file);
      assert.deepEqual(
        (await again.listFeedback('a')).map((e) => e.requestId),
        ['r3', 'r2'],
      );
      assert.deepEqual(await again.listFeedback('gone'), []);
      assert.deepEqual((await again.listFeedback('a'))[0], await first.listFeedback('a').then((q) => q[0]));
      // New entries go after the ones kept.
      assert.equal(await again.queueFeedback(entry('a', 4)), 3);
      assert.deepEqual(
        (await new MemoryRegistry(file).listFeedback('a')).map((e) => e.requestId),
        ['r3', 'r2', 'r4'],
      );
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('ids sort by time; images must be non-empty and at most 1 MiB', () => {
    assert.ok(newFeedbackId(1000) < newFeedbackId(2000));
    assert.throws(() => checkFeedbackImage(new Uint8Array(0)), /empty/);
    assert.throws(() => checkFeedbackImage(new Uint8Array(MAX_FEEDBACK_IMAGE_BYTES + 1)), /at most/);
    checkFeedbackImage(new Uint8Array(10));
  });
});
