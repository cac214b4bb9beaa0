/**
 * `spi fit --add` (#18) on the banks the automatic fit picks for registered products: a bank with a
 * nominal reference and a fused bank (here with a reference in each member, as `fused/...+ref`), on
 * the real backbone. The next version is valid, inspects, lists what was added, and tells defects
 * from good prints about as well as a full rebuild on the same images.
 */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { run } from '../../services/cli/spi';
import { loadBank } from '../../lib/bank/bank-store';
import { BackbonePool, openBank } from '../../lib/patchcore/engine';
import { isFusedBank, loadFused, openFused } from '../../lib/patchcore/fusion';
import { TEST_TMP } from '../helpers/processes';
import { printDataset, PrintDataset } from '../helpers/fixtures';

const FINE_STAGES = 'block_2_add,block_5_add';

describe('spi fit --add on banks with a nominal reference and on fused banks', function () {
  this.timeout(300_000);
  let data: PrintDataset;
  let out: string;
  let first: string;
  let later: string;
  let all: string;
  const pool = new BackbonePool();

  const folder = (name: string, files: string[]) => {
    const dir = path.join(out, name);
    fs.mkdirSync(dir, { recursive: true });
    for (const f of files) fs.copyFileSync(f, path.join(dir, path.basename(f)));
    return dir;
  };

  /** Defective test prints scoring above every good one, and the lowest defect over the highest good. */
  const separation = async (dir: string) => {
    const inspector = isFusedBank(dir) ? await openFused(pool, dir) : (await openBank(pool, dir)).inspector;
    const score = async (f: string) => (await inspector.inspectBytes(fs.readFileSync(f))).score;
    const good = Math.max(...(await Promise.all(data.testGood.map(score))));
    const bad = await Promise.all(data.testDefective.map(score));
    return { caught: bad.filter((s) => s > good).length, of: bad.length };
  };

  /** Fits the first 8 prints and, for comparison, all 20; then adds the other 12 to the first. */
  const grow = async (name: string, flags: string[]) => {
    const v1 = path.join(out, `${name}-v1`);
    const v2 = path.join(out, `${name}-v2`);
    const rebuilt = path.join(out, `${name}-rebuilt`);
    const fit = ['fit', '--auto', 'off', '--holdout', '0.25', ...flags];
    assert.equal(await run([...fit, '--data', first, '--out', v1]), 0);
    assert.equal(await run(['fit', '--add', later, '--bank', v1, '--out', v2, '--reason', 'new roll']), 0);
    assert.equal(await run([...fit, '--data', all, '--out', rebuilt]), 0);
    return { v1, v2, rebuilt };
  };

  /** The added version separates defects about as well as the rebuild (at most one fewer caught). */
  const assertCloseToRebuild = async (v2: string, rebuilt: string) => {
    const [added, full] = [await separation(v2), await separation(rebuilt)];
    assert.ok(added.caught >= 1, `added version caught none of ${added.of}`);
    assert.ok(
      added.caught >= full.caught - 1,
      `added ${added.caught}, rebuilt ${full.caught} of ${added.of}`,
    );
  };

  before(async () => {
    data = await printDataset('prints-plant', 20);
    fs.mkdirSync(TEST_TMP, { recursive: true });
    out = fs.mkdtempSync(path.join(TEST_TMP, 'add-kinds-'));
    first = folder('first', data.train.slice(0, 8));
    later = folder('later', data.train.slice(8, 20));
    all = folder('all', data.train);
  });
  after(async () => {
    await pool.close();
    fs.rmSync(out, { recursive: true, force: true });
  });

  it('recomputes the nominal reference against the grown bank and recalibrates the threshold', async () => {
    const { v1, v2, rebuilt } = await grow('ref', ['--reference', 'mean']);
    const a = loadBank(v1).meta;
    const b = loadBank(v2).meta;
    assert.equal(b.version, 2);
    const added = b.additions!.at(-1)!;
    assert.equal(added.reason, 'new roll');
    assert.equal(added.images.length + added.heldOut.length, 12);
    assert.equal(added.heldOut.length, 1);
    // The old reference (2 held-out prints) pooled with the new held-out print scored against v2.
    assert.equal(b.reference!.count, a.reference!.count + 1);
    assert.notDeepEqual(b.reference!.values, a.reference!.values);
    assert.equal(b.threshold.nominal!.count, a.threshold.nominal!.count + 1);
    await assertCloseToRebuild(v2, rebuilt);
  });

  it('grows every member of a fused bank by the same images, then its standardisation and threshold', async () => {
    const { v1, v2, rebuilt } = await grow('fused', ['--reference', 'mean', '--fuse', FINE_STAGES]);
    assert.ok(isFusedBank(v2));
    const a = loadFused(v1);
    const b = loadFused(v2);
    assert.equal(b.meta.version, 2);
    const added = b.meta.additions!.at(-1)!;
    assert.equal(added.images.length, 11);
    assert.deepEqual(added.heldOut.length, 1);
    b.members.forEach((m, i) => {
      assert.equal(m.meta.version, 2);
      assert.deepEqual(m.meta.additions!.at(-1)!.images, added.images);
      assert.ok(m.meta.vectors.rows > a.members[i].meta.vectors.rows, 'each member grew');
      assert.deepEqual(m.vectors.subarray(0, a.members[i].vectors.length), a.members[i].vectors);
      assert.equal(m.meta.reference!.count, a.members[i].meta.reference!.count + 1);
      assert.equal(b.meta.members[i].count, a.meta.members[i].count! + 1);
      assert.notEqual(b.meta.members[i].std, a.meta.members[i].std, 'standardisation recomputed');
    });
    assert.equal(b.meta.threshold.nominal!.count, a.meta.threshold.nominal!.count + 1);
    await assertCloseToRebuild(v2, rebuilt);
  });
});
