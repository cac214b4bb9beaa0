/**
 * A study for the outlier filter (#18): in a "good" folder with defective prints in it, how well does
 * a patch's distance to other images separate the defects' patches from the rest, measured three ways:
 * - anywhere: the distance to its 3rd nearest of 20,000 patches sampled from the other images (the
 *   filter's kind of isolation, without its local-density ratio);
 * - at its place: the median, over 16 other images, of its distance to the nearest patch within one
 *   cell of the same grid place (a recurring defect type sits elsewhere on each print; the artwork's
 *   rare details sit at the same place on every one), for registered prints;
 * - at its place, over the place's median: the same divided by the median of all images' values
 *   at that place (places differ in how much they vary: edges against paper).
 * Half of the category's defective test images join its train/good folder; their masks label the
 * patches (a cell is a defect's when the mask covers a quarter of it). Whole canvas, no tiles.
 *
 * node --import tsx bench/placed-support.ts --data <category> [--stages block_2_add,block_5_add]
 *
 * Only for tuning grounds of our own making (`spi synth`): it reads test defects' masks.
 */
import * as fs from 'node:fs';
import { parseArgs } from 'node:util';
import { readCategory } from '../lib/data/mvtec';
import { rocAuc } from '../lib/eval/metrics';
import { decodeImage } from '../lib/image/decode';
import { IndexFlatL2 } from '../lib/knn/faiss';
import { BackbonePool, DEFAULT_MODEL, createExtractor } from '../lib/patchcore/engine';
import { mulberry32, sampleIndices } from '../lib/util/random';
import { gatherRows } from '../lib/util/rows';

const OTHERS = 16;
const REFERENCE = 20_000;
const DROP = 0.01;

interface Embedded {
  vectors: Float32Array;
  /** Per grid cell, 1 where a defect's mask covers a quarter of it; null for a good image. */
  defect: Uint8Array | null;
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { data: { type: 'string' }, stages: { type: 'string' } } });
  if (!values.data) throw new Error('usage: placed-support.ts --data <category> [--stages a,b]');
  const category = readCategory(values.data);
  const added = category.test.filter((t) => t.label === 1).filter((_, i) => i % 2 === 0);
  const pool = new BackbonePool();
  try {
    const extractor = await createExtractor(pool, {
      model: DEFAULT_MODEL,
      ...(values.stages ? { stages: values.stages.split(',') } : {}),
      view: { resize: 0, crop: 0, scale: 1, tile: 0, overlap: 0 },
      projectionDim: 0,
      projectionSeed: 0,
    });
    const images: Embedded[] = [];
    let grid = { gh: 0, gw: 0, dim: 0 };
    for (const item of [...category.train.map((absPath) => ({ absPath, maskPath: undefined })), ...added]) {
      const e = await extractor.embed(await decodeImage(fs.readFileSync(item.absPath)));
      grid = { gh: e.gridHeight, gw: e.gridWidth, dim: e.dim };
      const defect = item.maskPath ? await cellsOf(item.maskPath, grid.gh, grid.gw) : null;
      images.push({ vectors: e.vectors, defect });
    }
    const scores = {
      anywhere: anywhere(images, grid.dim),
      atPlace: atPlace(images, grid.gh, grid.gw, grid.dim),
    };
    const overPlace = overPlaceMedian(scores.atPlace, images.length, grid.gh * grid.gw);
    console.log(
      `${category.name}: ${images.length} images (${added.length} defective), grid ${grid.gh}x${grid.gw}, width ${grid.dim}`,
    );
    for (const [name, s] of [
      ['anywhere (3rd nearest of 20k sampled)', scores.anywhere],
      [`at its place (median of ${OTHERS} images, within one cell)`, scores.atPlace],
      ['at its place, over the place median', overPlace],
    ] as const)
      console.log(`${name}: ${separation(s, images, grid.gh * grid.gw)}`);
  } finally {
    await pool.close();
  }
}

async function cellsOf(maskPath: string, gh: number, gw: number): Promise<Uint8Array> {
  const m = await decodeImage(fs.readFileSync(maskPath));
  const out = new Uint8Array(gh * gw);
  const cy = m.height / gh;
  const cx = m.width / gw;
  for (let y = 0; y < gh; y++)
    for (let x = 0; x < gw; x++) {
      let on = 0;
      let n = 0;
      for (let py = Math.floor(y * cy); py < Math.floor((y + 1) * cy); py++)
        for (let px = Math.floor(x * cx); px < Math.floor((x + 1) * cx); px++) {
          n++;
          if (m.data[(py * m.width + px) * 3] > 127) on++;
        }
      out[y * gw + x] = on >= 0.25 * n ? 1 : 0;
    }
  return out;
}

function anywhere(images: Embedded[], dim: number): Float32Array {
  const per = images[0].vectors.length / dim;
  const all = new Float32Array(images.length * per * dim);
  images.forEach((im, i) => all.set(im.vectors, i * per * dim));
  const out = new Float32Array(images.length * per);
  images.forEach((im, i) => {
    const others = Int32Array.from({ length: (images.length - 1) * per }, (_, r) =>
      r < i * per ? r : r + per,
    );
    const picked = Array.from(sampleIndices(others.length, REFERENCE, 7 + i), (j) => others[j]);
    const index = new IndexFlatL2(dim);
    index.addBuffer(gatherRows(all, dim, picked));
    const { distances } = index.searchBuffer(im.vectors, 3);
    for (let p = 0; p < per; p++) out[i * per + p] = Math.sqrt(Math.max(0, distances[p * 3 + 2]));
  });
  return out;
}

function atPlace(images: Embedded[], gh: number, gw: number, dim: number): Float32Array {
  const n = images.length;
  const per = gh * gw;
  const out = new Float32Array(n * per);
  const rand = mulberry32(3);
  const best = new Float32Array(OTHERS);
  for (let i = 0; i < n; i++) {
    const others: number[] = [];
    while (others.length < Math.min(OTHERS, n - 1)) {
      const j = (i + 1 + Math.floor(rand() * (n - 1))) % n;
      if (!others.includes(j)) others.push(j);
    }
    const a = images[i].vectors;
    for (let y = 0; y < gh; y++)
      for (let x = 0; x < gw; x++) {
        const at = (y * gw + x) * dim;
        others.forEach((j, m) => {
          const b = images[j].vectors;
          let nearest = Infinity;
          for (let yy = Math.max(0, y - 1); yy <= Math.min(gh - 1, y + 1); yy++)
            for (let xx = Math.max(0, x - 1); xx <= Math.min(gw - 1, x + 1); xx++) {
              const bt = (yy * gw + xx) * dim;
              let s = 0;
              for (let d = 0; d < dim; d++) {
                const t = a[at + d] - b[bt + d];
                s += t * t;
              }
              if (s < nearest) nearest = s;
            }
          best[m] = Math.sqrt(nearest);
        });
        const sorted = Array.from(best.subarray(0, others.length)).sort((p, q) => p - q);
        out[i * per + y * gw + x] = sorted[Math.floor(sorted.length / 2)];
      }
  }
  return out;
}

function overPlaceMedian(scores: Float32Array, n: number, per: number): Float32Array {
  const out = new Float32Array(scores.length);
  const column = new Float32Array(n);
  for (let p = 0; p < per; p++) {
    for (let i = 0; i < n; i++) column[i] = scores[i * per + p];
    const median = Array.from(column).sort((a, b) => a - b)[Math.floor(n / 2)];
    for (let i = 0; i < n; i++) out[i * per + p] = scores[i * per + p] / Math.max(median, 1e-6);
  }
  return out;
}

/** AUROC of defect against other patches of the defective images; what dropping the top 1 % takes. */
function separation(s: Float32Array, images: Embedded[], per: number): string {
  const scores: number[] = [];
  const labels: number[] = [];
  images.forEach((im, i) => {
    if (im.defect)
      for (let p = 0; p < per; p++) {
        scores.push(s[i * per + p]);
        labels.push(im.defect[p]);
      }
  });
  const cut = Array.from(s).sort((a, b) => b - a)[Math.floor(DROP * s.length)];
  let defects = 0;
  let caught = 0;
  let clean = 0;
  let cleanDropped = 0;
  images.forEach((im, i) => {
    for (let p = 0; p < per; p++) {
      const dropped = s[i * per + p] >= cut;
      if (im.defect?.[p]) {
        defects++;
        if (dropped) caught++;
      } else if (!im.defect) {
        clean++;
        if (dropped) cleanDropped++;
      }
    }
  });
  return (
    `AUROC ${rocAuc(scores, labels).toFixed(4)}; dropping the top 1 % takes ${caught} of ${defects} ` +
    `defect patches and ${((100 * cleanDropped) / clean).toFixed(2)} % of the good images' patches`
  );
}

if (require.main === module) {
  main().catch((err) => {
    console.error(err instanceof Error ? err.message : err);
    process.exit(1);
  });
}
