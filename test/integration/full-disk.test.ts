/**
 * A full disk, for real: a 256 KiB tmpfs as the shard's data dir, as a bank folder's parent and as
 * the gateway's upload folder. A partition, bank or upload that does not fit is refused
 * RESOURCE_EXHAUSTED saying so, what was there before stays whole, no temporary file is left, and
 * the shard or gateway goes on serving. Mounting needs root
 * (as `make setup` does); elsewhere the suite is skipped with the reason.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { loadBank, saveBank } from '../../lib/bank/bank-store';
import { InspectionClient } from '../../lib/client/inspection-client';
import { ShardClient } from '../../lib/cluster/shard-client';
import { PartitionRef } from '../../lib/cluster/types';
import { SpiError } from '../../lib/errors';
import { mulberry32 } from '../../lib/util/random';
import { testBankMeta } from '../helpers/bank-meta';
import { printDataset, upload } from '../helpers/fixtures';
import { UploadSpool } from '../../services/gateway/upload-spool';
import { ManagedProcess, TEST_TMP, spawnNodeService } from '../helpers/processes';

const DIM = 64;

function vectors(rows: number, seed: number): Float32Array {
  const rand = mulberry32(seed);
  return Float32Array.from({ length: rows * DIM }, () => rand());
}

/** RESOURCE_EXHAUSTED, naming what was being written (not the generic "disk full on the server"). */
function diskFull(what: RegExp): (err: unknown) => boolean {
  return (err) => {
    assert.ok(err instanceof SpiError, String(err));
    assert.equal(err.kind, 'RESOURCE_EXHAUSTED', err.message);
    assert.match(err.message, what);
    return true;
  };
}

/** Every file under dir, relative. */
function filesUnder(dir: string): string[] {
  return fs
    .readdirSync(dir, { recursive: true, encoding: 'utf8' })
    .filter((f) => fs.statSync(path.join(dir, f)).isFile());
}

describe('a full disk (real tmpfs)', function () {
  this.timeout(30_000);
  let mount: string;

  before(function () {
    fs.mkdirSync(TEST_TMP, { recursive: true });
    mount = fs.mkdtempSync(path.join(TEST_TMP, 'full-disk-'));
    try {
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=256k', 'tmpfs', mount], { stdio: 'pipe' });
    } catch (err) {
      fs.rmSync(mount, { recursive: true, force: true });
      mount = '';
      console.warn(`    skipped: cannot mount a tmpfs (${(err as Error).message.split('\n')[0]})`);
      this.skip();
    }
  });

  after(() => {
    if (!mount) return;
    execFileSync('umount', [mount]);
    fs.rmSync(mount, { recursive: true, force: true });
  });

  describe('bank shard', () => {
    let shard: ManagedProcess;
    let client: ShardClient;
    const small: PartitionRef = { bank: 'job', version: 1, partition: 0 };
    const big: PartitionRef = { bank: 'job', version: 1, partition: 1 };
    const smallVectors = vectors(100, 1); // 25 KiB
    const bigVectors = vectors(2000, 2); // 500 KiB: more than the disk

    before(async () => {
      const dataDir = path.join(mount, 'shard');
      fs.mkdirSync(dataDir);
      shard = spawnNodeService('services/shard/main.ts', {
        name: 'full-disk-shard',
        args: [
          '--host',
          '127.0.0.1',
          '--port',
          '0',
          '--id',
          'full',
          '--data-dir',
          dataDir,
          '--metrics-port',
          'off',
        ],
      });
      const ready = await shard.waitForLine('shard ready', 20_000);
      client = new ShardClient(`127.0.0.1:${Number(ready.fields.port)}`);
    });

    after(async () => {
      client?.close();
      await shard?.stop();
    });

    it('refuses a partition that does not fit, keeps what it had and goes on serving', async () => {
      await client.loadPartition({ ref: small, dim: DIM, rowOffset: 0 }, smallVectors);
      const before = filesUnder(path.join(mount, 'shard'));
      await assert.rejects(
        client.loadPartition({ ref: big, dim: DIM, rowOffset: 100 }, bigVectors),
        diskFull(/disk full while writing .*partitions.*previous copy was kept/),
      );
      assert.deepEqual(filesUnder(path.join(mount, 'shard')), before, 'no temporary file left, nothing lost');
      const loaded = await client.listPartitions();
      assert.deepEqual(
        loaded.map((p) => p.partition?.partition),
        [0],
      );
      // The stored partition still answers: each vector finds itself.
      const hits = await client.search(small, smallVectors.subarray(0, 5 * DIM), DIM, 1);
      assert.deepEqual(Array.from(hits.labels), [0, 1, 2, 3, 4]);
    });
  });

  describe('bank folder', () => {
    it('refuses a bank that does not fit and leaves the previous one whole', () => {
      const meta = testBankMeta(DIM);
      const dir = path.join(mount, 'banks', 'job-1');
      const first = vectors(50, 3);
      saveBank(dir, meta, first, DIM);
      assert.throws(
        () => saveBank(dir, { ...meta, version: 2 }, vectors(2000, 4), DIM),
        diskFull(/disk full while writing bank job-1/),
      );
      const kept = loadBank(dir);
      assert.equal(kept.meta.version, 1);
      assert.deepEqual(kept.vectors, first);
      assert.deepEqual(fs.readdirSync(path.dirname(dir)), ['job-1']);
    });
  });

  describe('gateway upload folder', () => {
    it('spools uploads to disk, refuses the build whose uploads do not fit and leaves nothing', async () => {
      const uploads = path.join(mount, 'uploads');
      const spool = new UploadSpool(uploads);
      const image = Buffer.alloc(96 * 1024, 7);
      const stored = await spool.add('../../etc/passwd', image);
      // Stored under a number in the build's own folder; the client's name is only recorded.
      assert.equal(stored.path, '../../etc/passwd');
      assert.equal(path.dirname(path.dirname(stored.file!)), uploads);
      assert.deepEqual(await stored.read(), image);
      await assert.rejects(
        (async () => {
          for (let i = 0; i < 4; i++) await spool.add(`sheet-${i}.png`, image);
        })(),
        diskFull(
          /build folder .*uploads is full after [1-3] images \(.*\).*larger --build-dir; nothing was built/,
        ),
      );
      await spool.remove();
      assert.deepEqual(fs.readdirSync(uploads), [], 'the build folder is gone');
    });

    it('a CreateBank whose uploads fill the disk fails RESOURCE_EXHAUSTED; the gateway goes on', async () => {
      const data = await printDataset();
      const uploads = path.join(mount, 'gateway-builds');
      const dataDir = fs.mkdtempSync(path.join(TEST_TMP, 'full-disk-gateway-'));
      const gateway = spawnNodeService('services/gateway/main.ts', {
        name: 'full-disk-gateway',
        args: ['--embedded', '--port', '0', '--data-dir', dataDir, '--shards', '1', '--metrics-port', 'off'],
        env: { SPI_BUILD_DIR: uploads },
      });
      let client: InspectionClient | undefined;
      try {
        const ready = await gateway.waitForLine('gateway ready', 60_000);
        client = new InspectionClient(`127.0.0.1:${Number(ready.fields.port)}`, { deadlineMs: 30_000 });
        // More bytes than the tmpfs holds, whatever the other cases left on it.
        const files = upload(data.train);
        while (files.reduce((n, f) => n + f.data.length, 0) < 320 * 1024) files.push(...upload(data.train));
        await assert.rejects(
          client.createBank({ bank: 'big', partitions: 1, replicas: 1 }, files),
          diskFull(/build folder .*gateway-builds is full after \d+ images/),
        );
        assert.deepEqual(filesUnder(uploads), [], 'no upload left behind');
        assert.deepEqual(await client.listBanks(), []);
      } finally {
        client?.close();
        await gateway.stop();
        fs.rmSync(dataDir, { recursive: true, force: true });
      }
    });
  });
});
