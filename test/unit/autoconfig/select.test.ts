import assert from 'node:assert/strict';
import {
  BackboneInfo,
  baseCandidates,
  configurationsOf,
  int8BuildsOf,
  patchesPerImage,
  variantsOf,
  stageSetsFor,
  viewsFor,
  MAX_PATCHES_PER_IMAGE,
} from '../../../lib/autoconfig/candidates';
import { measureRegistration } from '../../../lib/autoconfig/registration';
import { AutoTableRow, halve, pick, rungs, spread, typicalImage } from '../../../lib/autoconfig/select';
import {
  calibrateSearch,
  maskToGrid,
  metricGrid,
  resampleBilinear,
  rungCoreset,
  searchCostMs,
  startClock,
} from '../../../lib/autoconfig/trial';
import { DEFAULT_CORESET } from '../../../lib/coreset/coreset';
import { RgbImage } from '../../../lib/image/decode';
import { tileGrid } from '../../../lib/image/views';
import { Rng } from '../../../lib/synth/prng';

const MOBILENET: BackboneInfo = {
  id: 'mobilenet_v2-imagenet',
  inputSize: 224,
  defaultStages: ['block_5_add', 'block_9_add'],
  stages: [
    { name: 'block_2_add', stride: 4, channels: 24 },
    { name: 'block_5_add', stride: 8, channels: 32 },
    { name: 'block_9_add', stride: 16, channels: 64 },
  ],
};
const INCEPTION: BackboneInfo = {
  id: 'inception_v3-imagenet',
  inputSize: 299,
  defaultStages: ['mixed2', 'mixed5'],
  stages: [
    { name: 'mixed1', stride: 8, channels: 288 },
    { name: 'mixed2', stride: 8, channels: 288 },
    { name: 'mixed5', stride: 16, channels: 768 },
  ],
};

function row(id: string, score: number, msPerImage: number): AutoTableRow {
  return {
    id,
    description: id,
    rung: 0,
    trainImages: 8,
    imageAuroc: score,
    pixelAuroc: score,
    score,
    msPerImage,
    status: 'finalist',
    firstRung: { imageAuroc: score, pixelAuroc: score, score },
  };
}

describe('autoconfig: candidate space', () => {
  it('looks at the image size first: no larger canvas or tiles for a small frame', () => {
    assert.deepEqual(
      viewsFor(256, 256, 224).map((v) => v.label),
      ['whole224'],
    );
    const big = viewsFor(900, 900, 224).map((v) => v.label);
    assert.deepEqual(big, ['whole224', 'whole448', 'tiles224@1']);
    // Half scale of a 1400 px frame (700 px) shows more than the 448 px whole frame: tiled too.
    assert.deepEqual(
      viewsFor(1400, 1400, 224).map((v) => v.label),
      ['whole224', 'whole448', 'tiles224@1', 'tiles224@0.5'],
    );
    const pcb = viewsFor(640, 640, 224).map((v) => v.label);
    assert.deepEqual(pcb, ['whole224', 'whole448', 'tiles224@1']);
    // Not square: the 448 px whole view shows a 640 x 480 board at 0.7x along its long side, so
    // its full-resolution tiles show more (their short side alone, 480 px, is near 448).
    assert.deepEqual(
      viewsFor(640, 480, 224).map((v) => v.label),
      ['whole224', 'whole448', 'tiles224@1'],
    );
    assert.deepEqual(
      viewsFor(480, 640, 224).map((v) => v.label),
      ['whole224', 'whole448', 'tiles224@1'],
    );
    // A 1500 x 1000 board: half scale (750 px along the long side) shows more than 448 px too.
    assert.deepEqual(
      viewsFor(1500, 1000, 224).map((v) => v.label),
      ['whole224', 'whole448', 'tiles224@1', 'tiles224@0.5'],
    );
  });

  it("sizes the views by the folder's typical frame, not its first image", () => {
    const frames = [
      { width: 300, height: 300, name: 'small' },
      { width: 640, height: 480, name: 'a' },
      { width: 640, height: 480, name: 'b' },
      { width: 2000, height: 2000, name: 'huge' },
      { width: 600, height: 450, name: 'c' },
    ];
    assert.equal(typicalImage(frames).name, 'a');
    assert.equal(typicalImage(frames.slice(1, 4)).name, 'a');
    assert.equal(typicalImage([frames[4], frames[0], frames[3]]).name, 'c');
    // One size: the first image, as before.
    const same = frames.slice(1, 3);
    assert.equal(typicalImage(same), same[0]);
    assert.equal(typicalImage([frames[3]]).name, 'huge');
  });

  it('offers the stride-4 pair only where the backbone has a finer stage than its default', () => {
    assert.deepEqual(stageSetsFor(MOBILENET), [
      { set: 'default', stages: ['block_5_add', 'block_9_add'] },
      { set: 'fine', stages: ['block_2_add', 'block_5_add'] },
    ]);
    assert.deepEqual(
      stageSetsFor(INCEPTION).map((s) => s.set),
      ['default'],
    );
  });

  it('counts patches as the tiler cuts them, and leaves out views too fine to search', () => {
    const view = { resize: 0, crop: 0, scale: 1, tile: 224, overlap: 32, pad: 16 };
    const tiles = tileGrid(672, 672, view).length;
    assert.equal(patchesPerImage(MOBILENET, ['block_2_add', 'block_5_add'], view, 640, 640), tiles * 56 * 56);
    const bases = baseCandidates({ width: 900, height: 900, backbones: [MOBILENET] });
    assert.ok(bases.every((b) => b.patchesPerImage <= MAX_PATCHES_PER_IMAGE));
    assert.ok(
      !bases.some((b) => b.key === 'mobilenet_v2-imagenet/fine/tiles224@1'),
      'a 900 px frame in stride-4 tiles',
    );
    assert.ok(bases.some((b) => b.key === 'mobilenet_v2-imagenet/default/tiles224@1'));
    // Many-patch views get a fixed-size bank with a per-image pre-reduction; whole frames the 10 %.
    const tile = bases.find((b) => b.view.tile > 0)!;
    assert.ok(tile.coreset.size > 0 && (tile.coreset.perImage ?? 0) > 0);
    assert.equal(bases.find((b) => b.key.endsWith('/default/whole224'))!.coreset.ratio, 0.1);
  });

  it('fuses default and fine of one backbone and view, and offers the reference only when registered', () => {
    const bases = baseCandidates({ width: 640, height: 640, backbones: [MOBILENET, INCEPTION] });
    const plain = configurationsOf(bases, false);
    assert.ok(plain.every((c) => !c.reference));
    const fused = plain.filter((c) => c.members.length === 2);
    assert.ok(fused.length > 0);
    for (const c of fused) {
      assert.equal(c.members[0].viewLabel, c.members[1].viewLabel);
      assert.deepEqual(
        c.members.map((m) => m.stageSet),
        ['default', 'fine'],
      );
    }
    const registered = configurationsOf(bases, true);
    assert.equal(registered.length, 2 * plain.length);
    assert.equal(new Set(registered.map((c) => c.id)).size, registered.length, 'ids are unique');
  });
});

describe('autoconfig: cheaper variants of the finalists', () => {
  it('offers smaller banks of the same bases and INT8 builds of the backbone, with ids of their own', () => {
    const bases = baseCandidates({ width: 640, height: 640, backbones: [MOBILENET] });
    const [fused] = configurationsOf(bases, true).filter((c) => c.members.length === 2 && c.reference);
    const tiles = configurationsOf(bases, false).find((c) => c.members[0].view.tile > 0)!;
    const installed = ['inception_v3-imagenet', 'mobilenet_v2-imagenet', 'mobilenet_v2-imagenet-int8-randn'];
    assert.deepEqual(int8BuildsOf('mobilenet_v2-imagenet', installed), ['mobilenet_v2-imagenet-int8-randn']);
    assert.deepEqual(int8BuildsOf('inception_v3-imagenet', installed), []);
    const variants = variantsOf(fused, int8BuildsOf(fused.members[0].model, installed));
    assert.deepEqual(
      variants.map((v) => v.variant),
      ['bank50%', 'bank25%', 'int8'],
    );
    assert.equal(new Set([fused.id, ...variants.map((v) => v.id)]).size, 4, 'ids are unique');
    const [half, quarter, int8] = variants;
    for (const [i, m] of half.members.entries()) {
      const original = fused.members[i];
      assert.equal(m.coreset.ratio, original.coreset.ratio / 2);
      assert.equal(quarter.members[i].coreset.ratio, original.coreset.ratio / 4);
      assert.deepEqual([m.model, m.stages, m.view], [original.model, original.stages, original.view]);
      assert.notEqual(m.key, original.key);
      // A smaller bank reuses its finalist's embeddings; an INT8 build embeds anew.
      assert.equal(m.sharesEmbeddingsOf, original.key);
      assert.equal(quarter.members[i].sharesEmbeddingsOf, original.key);
      assert.equal(int8.members[i].sharesEmbeddingsOf, undefined);
      assert.equal(int8.members[i].model, 'mobilenet_v2-imagenet-int8-randn');
      assert.deepEqual(int8.members[i].coreset, original.coreset);
    }
    assert.ok(half.reference && int8.reference, 'variants keep the reference');
    assert.match(half.id, /~bank50%$/);
    assert.match(variantsOf(fused, [])[0].members[0].key, /~bank50%$/);
    // A fixed-size bank (tiles) halves its size, not its ratio.
    const tileHalf = variantsOf(tiles, [])[0].members[0];
    assert.equal(tileHalf.coreset.size, tiles.members[0].coreset.size / 2);
    assert.equal(variantsOf(tiles, []).length, 2, 'no INT8 variant when none is installed');
  });
});

describe('autoconfig: registration', () => {
  const scene = (dx: number, seed: number, layout: number): RgbImage => {
    const rng = Rng.of('scene', seed);
    const lay = Rng.of('layout', layout);
    const blocks = Array.from({ length: 12 }, () => [lay.int(0, 90), lay.int(0, 90), lay.int(8, 30)]);
    const w = 128;
    const data = Buffer.alloc(w * w * 3, 230);
    for (const [bx, by, s] of blocks)
      for (let y = by; y < Math.min(w, by + s); y++)
        for (let x = bx + dx; x < Math.min(w, bx + dx + s); x++)
          data.fill(40, 3 * (y * w + x), 3 * (y * w + x) + 3);
    for (let i = 0; i < data.length; i++) data[i] = Math.max(0, Math.min(255, data[i] + rng.int(-10, 10)));
    return { data, width: w, height: w };
  };

  it('calls a product framed the same way registered, and different layouts or shifted frames not', () => {
    const same = measureRegistration(Array.from({ length: 6 }, (_, i) => scene(0, i, 1)));
    assert.equal(same.registered, true, JSON.stringify(same));
    const layouts = measureRegistration(Array.from({ length: 6 }, (_, i) => scene(0, i, 10 + i)));
    assert.equal(layouts.registered, false, JSON.stringify(layouts));
    const shifted = measureRegistration(Array.from({ length: 6 }, (_, i) => scene(i % 2 ? 6 : -6, i, 1)));
    assert.ok(shifted.shiftGain > same.shiftGain, JSON.stringify({ shifted, same }));
    assert.equal(measureRegistration([scene(0, 1, 1), scene(0, 2, 1)]).registered, false, 'too few to tell');
  });
});

describe('autoconfig: successive halving and the cost rule', () => {
  it('rungs double the training images up to what there is', () => {
    assert.deepEqual(rungs(200), [8, 16, 32]);
    assert.deepEqual(rungs(20), [8, 16, 20]);
    assert.deepEqual(rungs(6), [6]);
  });

  it('spreads every prefix over the list, so a rung holds the previous rung`s images', () => {
    const items = Array.from({ length: 50 }, (_, i) => i);
    const order = spread(items, 32);
    assert.equal(new Set(order).size, 32);
    const first8 = [...order.slice(0, 8)].sort((a, b) => a - b);
    assert.ok(first8[0] < 10 && first8[7] > 40, `spread over the list: ${first8.join(',')}`);
    assert.deepEqual(spread(items, 60), items);
  });

  it('picks the cheapest candidate within half a point of the best, inside the budget', () => {
    const rows = [row('slow-best', 0.9, 800), row('fast-near', 0.897, 90), row('faster-worse', 0.85, 20)];
    assert.equal(pick(rows, 1000).chosen.id, 'fast-near');
    assert.match(pick(rows, 1000).reason, /within 0.5 points/);
    // A candidate over budget is never chosen while one within it exists.
    assert.equal(pick([row('over', 0.99, 2000), row('within', 0.8, 100)], 1000).chosen.id, 'within');
    // Nothing within budget: the cheapest, and the reason says so.
    const none = pick([row('a', 0.9, 3000), row('b', 0.8, 2000)], 1000);
    assert.equal(none.chosen.id, 'b');
    assert.match(none.reason, /nothing within/);
    // Costs within a quarter of each other are equal: the better score decides, not timing noise.
    assert.equal(pick([row('x', 0.9, 100), row('y', 0.898, 95)], 1000).chosen.id, 'x');
  });

  it('credits a variant with no more than its finalist: a smaller bank makes a near-best one cheaper, no other', () => {
    const variant = (id: string, of: string, score: number, ms: number): AutoTableRow => ({
      ...row(id, score, ms),
      variant: 'bank50%',
      variantOf: of,
    });
    const fused = row('fused', 0.934, 2200);
    const fine = row('fine', 0.922, 547);
    // The half bank of a finalist 1.2 points down scored 0.93 by chance: not taken.
    const lucky = variant('fine~bank50%', 'fine', 0.9298, 286);
    assert.equal(pick([fused, fine, lucky], 3000).chosen.id, 'fused');
    // The half bank of the best, within half a point of it, is.
    const half = variant('fused~bank50%', 'fused', 0.931, 1100);
    const { chosen, reason } = pick([fused, fine, lucky, half], 3000);
    assert.equal(chosen, half, 'the row itself, its own score');
    assert.match(reason, /within 0.5 points of the best \(fused/);
    // A finalist over budget still bounds its variant, which competes at that score within budget.
    const big = row('big', 0.95, 5000);
    const bigQuarter = variant('big~bank25%', 'big', 0.97, 900);
    assert.equal(pick([big, bigQuarter, row('other', 0.952, 400)], 3000).chosen.id, 'other');
    assert.equal(pick([big, bigQuarter, fine], 3000).chosen.id, 'big~bank25%');
  });

  it('halving keeps the better half, never fewer than two, within-budget first', () => {
    const bases = baseCandidates({ width: 640, height: 640, backbones: [MOBILENET] });
    const configs = configurationsOf(bases, false);
    const rows = new Map(
      configs.map((c, i) => [c.id, { ...row(c.id, i / 100, 10), status: 'halved' as const }]),
    );
    rows.get(configs.at(-1)!.id)!.status = 'over budget' as never;
    const kept = halve(configs, rows);
    assert.equal(kept.length, Math.ceil(configs.length / 2));
    assert.ok(!kept.includes(configs.at(-1)!), 'the best score, but over budget');
    assert.equal(kept[0], configs.at(-2));
    assert.equal(halve(configs.slice(0, 2), rows).length, 2);
  });
});

describe('autoconfig: cost clock', () => {
  it('counts work, not the time the process spent waiting (for another process, say)', async () => {
    const idle = startClock();
    await new Promise((r) => setTimeout(r, 120));
    assert.ok(idle() < 60, `a 120 ms wait counted ${idle()} ms`);
    const busy = startClock();
    const t0 = performance.now();
    let x = 0;
    while (performance.now() - t0 < 80) x += Math.sqrt(x + 1);
    assert.ok(x > 0);
    const ms = busy();
    // Never more than the elapsed time; as much as the CPU gave it (all of it on an idle machine).
    assert.ok(ms > 0 && ms <= performance.now() - t0 + 1, `80 ms of work counted ${ms} ms`);
  });
});

describe('autoconfig: rung banks', () => {
  it('keep as many patches per image as the final bank will: a fixed size scales, a ratio stays', () => {
    const fixed = { ...DEFAULT_CORESET, size: 8000, perImage: 0.05 };
    assert.equal(rungCoreset(fixed, 8, 200).size, 320);
    assert.equal(rungCoreset(fixed, 200, 200).size, 8000);
    assert.equal(rungCoreset(fixed, 1, 1000).size, 64, 'never below a floor');
    assert.deepEqual(rungCoreset(DEFAULT_CORESET, 8, 200), DEFAULT_CORESET);
  });
});

describe('autoconfig: metric grid', () => {
  it('keeps a one-pixel defect on the grid and resamples maps to it', () => {
    const mask = new Uint8Array(900 * 900);
    mask[450 * 900 + 451] = 255;
    const g = maskToGrid(mask, 900, 900);
    const size = metricGrid(900, 900);
    assert.deepEqual(size, { width: 256, height: 256 });
    assert.equal(
      g.reduce((s, v) => s + v, 0),
      1,
    );
    const map = new Float32Array([0, 1, 2, 3]);
    const up = resampleBilinear(map, 2, 2, 4, 4);
    assert.equal(up[0], 0);
    assert.equal(up[15], 3);
    assert.ok(up[5] > 0 && up[5] < 3);
  });
});

describe('autoconfig: search cost', () => {
  const rates = { nsPerMac: 0.04, hnswNs: 12 };
  it('prices banks as --index auto builds them: Flat per multiply-add below 10,000 rows, the hnsw graph from there', () => {
    // Flat: linear in the bank.
    assert.equal(searchCostMs(784, 5000, 96, rates), (784 * 5000 * 96 * 0.04) / 1e6);
    // HNSW: the graph walk grows with the log of the bank, plus the exact re-rank of 2 % (20 at least).
    const at = (bank: number) => searchCostMs(784, bank, 96, rates);
    const graph = (bank: number) => (784 * 12 * 96 * Math.log2(bank)) / 1e6;
    assert.ok(Math.abs(at(60_000) - graph(60_000) - (20 * 60_000 * 96 * 0.04) / 1e6) < 1e-9);
    assert.ok(at(60_000) < searchCostMs(784, 60_000, 96, { ...rates, hnswNs: 0 }) / 3);
    assert.ok(at(120_000) < 1.5 * at(60_000), 'doubling the bank far less than doubles the cost');
    // The sheet case re-ranks 2 % of its queries.
    const sheet = searchCostMs(16_384, 20_000, 96, rates);
    assert.ok(Math.abs(sheet - graph(20_000) * (16_384 / 784) - (328 * 20_000 * 96 * 0.04) / 1e6) < 1e-6);
  });

  it('prices the index the user chose: Flat at any size, hnsw below 10,000 rows, a graph with no re-rank', () => {
    const flat = (bank: number) => (784 * bank * 96 * 0.04) / 1e6;
    const graph = (bank: number) => (784 * 12 * 96 * Math.log2(bank)) / 1e6;
    assert.equal(searchCostMs(784, 60_000, 96, { ...rates, index: 'Flat' }), flat(60_000));
    assert.ok(
      Math.abs(
        searchCostMs(784, 5000, 96, { ...rates, index: 'hnsw' }) -
          graph(5000) -
          (20 * 5000 * 96 * 0.04) / 1e6,
      ) < 1e-9,
    );
    assert.ok(
      Math.abs(searchCostMs(784, 5000, 96, { ...rates, index: 'HNSW32,Flat,efSearch=64' }) - graph(5000)) <
        1e-9,
    );
    assert.equal(searchCostMs(784, 60_000, 96, { ...rates, index: 'IVF256,Flat' }), flat(60_000));
  });

  it('calibrates both rates on this machine', async function () {
    this.timeout(30_000);
    const r = await calibrateSearch();
    assert.ok(r.nsPerMac > 0 && r.nsPerMac < 10, `Flat ${r.nsPerMac} ns per multiply-add`);
    assert.ok(r.hnswNs > 0 && r.hnswNs < 10_000, `hnsw ${r.hnswNs} ns`);
  });
});
