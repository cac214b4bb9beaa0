import { strict as assert } from 'node:assert';
import { suiteRuns } from '../../services/cli/commands/eval-suite';

describe('make eval suite', () => {
  const runs = suiteRuns('/data');

  it('covers the figures the README reports', () => {
    const names = runs.map((r) => r.name);
    for (const method of ['greedy', 'random']) {
      for (const ratio of ['0.01', '0.1', '0.25'])
        assert.ok(names.includes(`bottle-coreset-${method}-${ratio}`));
    }
    for (const n of [
      'bottle',
      'bottle-coreset-none',
      'deeppcb-tiled',
      'deeppcb-resized',
      'unified-bottle',
      'unified-deeppcb',
      'bottle-auto-head',
    ]) {
      assert.ok(names.includes(n), n);
    }
    // The head beside the automatic fit's bank: no flags, a head.
    const autoHead = runs.find((r) => r.name === 'bottle-auto-head')!;
    assert.deepEqual([autoHead.auto, autoHead.head, autoHead.flags], [true, true, {}]);
  });

  it('builds unified banks from the other product too, and tiles DeepPCB at full resolution', () => {
    const unified = runs.find((r) => r.name === 'unified-bottle')!;
    assert.deepEqual(unified.unifiedWith, ['/data/deeppcb/group12100']);
    const tiled = runs.find((r) => r.name === 'deeppcb-tiled')!;
    assert.equal(tiled.flags.resize, '0');
    assert.equal(tiled.flags.tile, '224');
    assert.equal(tiled.flags.stages, 'block_2_add,block_5_add');
    assert.equal(tiled.flags.pad, '16');
  });

  it('runs the fused bottle configuration beside the default one', () => {
    const fused = runs.find((r) => r.name === 'bottle-fused')!;
    assert.equal(fused.flags.fuse, 'block_2_add,block_5_add');
    assert.equal(fused.flags.reference, 'mean');
    assert.equal(runs.find((r) => r.name === 'bottle')!.flags.fuse, undefined);
  });

  it('selects runs by name prefix', () => {
    assert.deepEqual(
      suiteRuns('/data', 'unified').map((r) => r.name),
      ['unified-bottle', 'unified-deeppcb'],
    );
    assert.throws(
      () => suiteRuns('/data', 'unified-bottle,unified-deeppcb'),
      /matches no run; the runs are bottle-auto,/,
    );
  });
});
