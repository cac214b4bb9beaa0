/**
 * Cell placement read off the ONNX graph, and its use: deeper stages sampled where the first stage's
 * cells are, and anomaly-map peaks drawn where their patch is.
 */
import { strict as assert } from 'node:assert';
import { cellPlacements } from '../../../lib/backbone/geometry';
import { Backbone, FeatureMap } from '../../../lib/backbone/backbone';
import { embedPatches } from '../../../lib/embed/patch-embed';
import { stitchTiles } from '../../../lib/score/anomaly-map';
import { BackbonePool, createExtractor, extractorForBank } from '../../../lib/patchcore/engine';
import { DEFAULT_VIEW } from '../../../lib/image/views';
import { intsAttr, stringAttr } from '../../../models/onnx/builder';
import { int64Tensor } from '../../../models/onnx/tensors';
import { GraphProto, NodeProto } from '../../../models/onnx/proto';

const node = (opType: string, input: string[], output: string, attribute = [] as NodeProto['attribute']) => ({
  opType,
  input,
  output: [output],
  attribute,
});

function graph(nodes: NodeProto[], initializer: GraphProto['initializer'] = []): GraphProto {
  return { name: 'g', node: nodes, initializer, input: [{ name: 'x' }], output: [], valueInfo: [] };
}

describe('cell placement', () => {
  it('follows pads, kernels and strides through the graph', () => {
    const g = graph(
      [
        // Keras style: pad bottom/right by 1, then a valid 3x3 stride-2 conv.
        node('Pad', ['x', 'pads'], 'p'),
        node('Conv', ['p', 'w1'], 'c1', [intsAttr('kernel_shape', [3, 3]), intsAttr('strides', [2, 2])]),
        node('Relu', ['c1'], 'r1'),
        node('Conv', ['r1', 'w2'], 'c2', [
          intsAttr('kernel_shape', [3, 3]),
          stringAttr('auto_pad', 'SAME_UPPER'),
        ]),
        // Torch style: pad 1 on every side, 3x3 stride 2.
        node('Conv', ['c2', 'w3'], 'c3', [
          intsAttr('kernel_shape', [3, 3]),
          intsAttr('strides', [2, 2]),
          intsAttr('pads', [1, 1, 1, 1]),
        ]),
        node('MaxPool', ['c3'], 'm', [intsAttr('kernel_shape', [2, 2]), intsAttr('strides', [2, 2])]),
        node('Resize', ['m'], 'up'),
        node('Add', ['up', 'm'], 'mixed'),
      ],
      [int64Tensor('pads', [8], [0, 0, 0, 0, 0, 0, 1, 1])],
    );
    const [c1, c2, c3, m, up] = cellPlacements(g, 'x', 32, 32, ['c1', 'c2', 'c3', 'm', 'up']);
    // c1: output i covers input pixels 2i..2i+2, centre 2i + 1.5.
    assert.deepEqual(c1, { x: { scale: 2, offset: 1.5 }, y: { scale: 2, offset: 1.5 } });
    assert.deepEqual(c2, c1); // stride 1, symmetric 'same': no move
    // c3: input cells 2i-1..2i+1 of c2, centre c2's cell 2i: 4i + 1.5.
    assert.deepEqual(c3!.x, { scale: 4, offset: 1.5 });
    // 2x2 pool: centre between c3's cells 2i and 2i+1: 8i + 3.5.
    assert.deepEqual(m!.x, { scale: 8, offset: 3.5 });
    assert.equal(up, undefined); // an op it does not model: no claim
    assert.deepEqual(cellPlacements(g, 'x', 32, 32, ['mixed']), [undefined]);
  });

  it('places the Keras MobileNetV2 stages at s * (i + 1) - 0.5', async function () {
    this.timeout(60_000);
    const b = await Backbone.load('mobilenet_v2-imagenet', ['block_2_add', 'block_5_add', 'block_9_add']);
    try {
      const offsets = b.stagePlacements(224, 224).map((p) => [p!.x.scale, p!.x.offset, p!.y.offset]);
      assert.deepEqual(offsets, [
        [4, 3.5, 3.5],
        [8, 7.5, 7.5],
        [16, 15.5, 15.5],
      ]);
      const [maps] = await b.run([{ width: 64, height: 64, data: Buffer.alloc(64 * 64 * 3, 128) }]);
      assert.deepEqual(maps[0].placement, { x: { scale: 4, offset: 3.5 }, y: { scale: 4, offset: 3.5 } });
    } finally {
      await b.close();
    }
  });

  it('runs regions of a canvas in place as it runs their crops, batch after batch with reused inputs', async function () {
    this.timeout(60_000);
    const b = await Backbone.load('mobilenet_v2-imagenet', ['block_5_add', 'block_9_add']);
    try {
      const canvas = {
        width: 96,
        height: 80,
        data: Buffer.from(Array.from({ length: 96 * 80 * 3 }, (_, i) => (i * 37 + (i >> 7)) % 251)),
      };
      const crop = (left: number, top: number) => {
        const data = Buffer.alloc(64 * 64 * 3);
        for (let y = 0; y < 64; y++)
          canvas.data.copy(data, y * 64 * 3, ((top + y) * 96 + left) * 3, ((top + y) * 96 + left + 64) * 3);
        return { width: 64, height: 64, data };
      };
      const at = [
        [0, 0],
        [32, 16],
        [17, 5],
      ];
      // Two rounds: the second batch of each size runs on the first's (reused) input buffer.
      for (let round = 0; round < 2; round++) {
        const order = round === 0 ? at : [...at].reverse();
        const regions = await b.runRegions(
          order.map(([left, top]) => ({ image: canvas, left, top, width: 64, height: 64 })),
        );
        const crops = await b.run(order.map(([left, top]) => crop(left, top)));
        for (let s = 0; s < 2; s++)
          for (let i = 0; i < order.length; i++)
            assert.deepEqual(
              Array.from(regions[s][i].data),
              Array.from(crops[s][i].data),
              `stage ${s}, tile ${i}`,
            );
        // A tile's embedding written into a caller's array equals a fresh one.
        const maps = regions.map((perStage) => perStage[1]);
        const into = new Float32Array(embedPatches(maps).vectors.length + 10).subarray(5, -5);
        embedPatches(maps, undefined, into);
        assert.deepEqual(Array.from(into), Array.from(embedPatches(maps).vectors));
      }
      await assert.rejects(
        b.runRegions([{ image: canvas, left: 40, top: 0, width: 64, height: 64 }]),
        /outside its 96x80 image/,
      );
    } finally {
      await b.close();
    }
  });

  it('samples a deeper stage where the first stage cells really are', () => {
    // Value = the pixel x of each cell's centre, so a correct resampling reproduces the first grid's x.
    const stage = (n: number, scale: number, offset: number): FeatureMap => {
      const data = new Float32Array(n * n);
      for (let y = 0; y < n; y++) for (let x = 0; x < n; x++) data[y * n + x] = scale * x + offset;
      const axis = { scale, offset };
      return { data, channels: 1, height: n, width: n, placement: { x: axis, y: axis } };
    };
    // avgPool3x3 of a ramp keeps interior values; look at interior cells only.
    const e = embedPatches([stage(16, 8, 7.5), stage(8, 16, 15.5)]);
    assert.deepEqual(e.placement, { x: { scale: 8, offset: 7.5 }, y: { scale: 8, offset: 7.5 } });
    for (let x = 4; x < 11; x++) {
      const row = 6 * 16 + x;
      assert.ok(Math.abs(e.vectors[row * 2] - (8 * x + 7.5)) < 1e-4);
      assert.ok(
        Math.abs(e.vectors[row * 2 + 1] - (8 * x + 7.5)) < 1e-4,
        `cell ${x}: ${e.vectors[row * 2 + 1]}`,
      );
    }
    // Without placements it is the even spread (align_corners = false), off by half a cell here.
    const plain = (m: FeatureMap): FeatureMap => ({ ...m, placement: undefined });
    const old = embedPatches([plain(stage(16, 8, 7.5)), plain(stage(8, 16, 15.5))]);
    assert.ok(Math.abs(old.vectors[(6 * 16 + 6) * 2 + 1] - (8 * 6 + 7.5)) > 3);
  });

  it('draws a patch score where its cell sits on the tile', () => {
    const grid = new Float32Array(28 * 28);
    grid[10 * 28 + 10] = 1;
    const tile = { left: 0, top: 0, width: 224, height: 224 };
    const peak = (m: Float32Array) => {
      let best = 0;
      for (let i = 1; i < m.length; i++) if (m[i] > m[best]) best = i;
      return { x: best % 224, y: Math.floor(best / 224) };
    };
    const axis = { scale: 8, offset: 7.5 };
    // Centre 8 * 10 + 7.5 = 87.5: pixel 87.
    assert.deepEqual(peak(stitchTiles([grid], 28, 28, [tile], 224, 224, { x: axis, y: axis })), {
      x: 87,
      y: 87,
    });
    // The even spread puts it at 84 (centre 84.0 between pixels 83 and 84).
    const even = peak(stitchTiles([grid], 28, 28, [tile], 224, 224));
    assert.ok(even.x === 83 || even.x === 84);
  });
});

describe('cell placement and banks', () => {
  it('new banks record it; banks without it keep the even spread', async function () {
    this.timeout(60_000);
    const pool = new BackbonePool();
    try {
      const settings = {
        model: 'mobilenet_v2-imagenet',
        view: DEFAULT_VIEW,
        projectionDim: 0,
        projectionSeed: 0,
      };
      const placed = await createExtractor(pool, settings);
      assert.equal(placed.options.cellPlacement, true);
      const image = { width: 224, height: 224, data: Buffer.alloc(224 * 224 * 3, 90) };
      for (let i = 0; i < image.data.length; i += 7) image.data[i] = (i * 13) % 256;
      const a = await placed.embed(image);
      assert.deepEqual(a.placement?.x, { scale: 8, offset: 7.5 });
      const meta = {
        model: { id: 'mobilenet_v2-imagenet', stages: ['block_5_add', 'block_9_add'] },
        view: DEFAULT_VIEW,
        embedding: { dim: 96, projection: null },
      } as unknown as Parameters<typeof extractorForBank>[1];
      const old = await extractorForBank(pool, meta);
      const b = await old.embed(image);
      assert.equal(b.placement, undefined);
      // Same block_5_add columns, different (resampled) block_9_add columns.
      let d5 = 0;
      let d9 = 0;
      for (let p = 0; p < a.vectors.length / 96; p++) {
        for (let c = 0; c < 32; c++)
          d5 = Math.max(d5, Math.abs(a.vectors[p * 96 + c] - b.vectors[p * 96 + c]));
        for (let c = 32; c < 96; c++)
          d9 = Math.max(d9, Math.abs(a.vectors[p * 96 + c] - b.vectors[p * 96 + c]));
      }
      assert.equal(d5, 0);
      assert.ok(d9 > 0);
      meta.embedding.cellPlacement = true;
      assert.deepEqual((await (await extractorForBank(pool, meta)).embed(image)).vectors, a.vectors);
    } finally {
      await pool.close();
    }
  });
});
