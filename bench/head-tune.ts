/**
 * Tuning the discriminator head on synthetic defects only (issue #20): the training images of a
 * category (train/good; the test images are never read) are split as the bank's fit splits them,
 * the head's training data and the synthetic validation set are made once, and each variant of the
 * training settings is trained with early stopping; its best validation score (the selector's:
 * mean of image and pixel AUROC on the synthetic validation set) is what the variants are ranked by.
 *
 *   node --import tsx bench/head-tune.ts --data ../shared/data/mvtec_ad/bottle --out eval-results/head-tune-bottle.json
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import { parseArgs } from 'node:util';
import { fileSources, readCategory } from '../lib/data/mvtec';
import { decodeImage } from '../lib/image/decode';
import { BackbonePool, createExtractor } from '../lib/patchcore/engine';
import { splitHoldout } from '../lib/patchcore/fit';
import { DEFAULT_HEAD_FIT } from '../lib/head/head-bank';
import { embedValidation, headTrainingData, validationMaps, validationScore } from '../lib/head/data';
import { HeadTrainConfig, trainHead } from '../lib/head/train';
import { spread } from '../lib/autoconfig/select';
import { ENGINE_FLAGS, extractorFrom, fitFrom } from '../services/cli/options';

const { values } = parseArgs({
  options: { ...ENGINE_FLAGS, data: { type: 'string' }, out: { type: 'string' } },
});

const VARIANTS: { name: string; change: Partial<HeadTrainConfig> }[] = [
  { name: 'default', change: {} },
  { name: 'noise 0.25', change: { noiseStd: 0.25 } },
  { name: 'noise 1.0', change: { noiseStd: 1 } },
  { name: 'hidden 256', change: { hidden: 256 } },
  { name: 'no gradient ascent', change: { gasSteps: 0 } },
  { name: 'no local', change: { localShare: 0 } },
];

async function main(): Promise<void> {
  if (!values.data || !values.out) throw new Error('--data and --out are required');
  const category = readCategory(values.data);
  const pool = new BackbonePool();
  try {
    const extractor = await createExtractor(pool, extractorFrom(values));
    const settings = fitFrom(values, category.name, [category.name]);
    const split = splitHoldout(fileSources(category.train, category.root), settings);
    const t0 = performance.now();
    const data = await headTrainingData(extractor, split.train, {
      seed: DEFAULT_HEAD_FIT.seed,
      localImages: DEFAULT_HEAD_FIT.localImages,
    });
    const held = [];
    for (const s of split.holdout) held.push(await decodeImage(await s.read()));
    const goods = spread(held, DEFAULT_HEAD_FIT.validationGoods).map((image, i) => ({
      name: `g${i}`,
      image,
    }));
    const validation = await embedValidation(extractor, goods, DEFAULT_HEAD_FIT.seed);
    const prepMs = performance.now() - t0;
    const rows = [];
    for (const v of VARIANTS) {
      const config = { ...DEFAULT_HEAD_FIT.train, ...v.change };
      const trained = await trainHead(
        {
          real: data.real,
          local: v.change.localShare === 0 ? new Float32Array(0) : data.local,
          dim: data.dim,
        },
        config,
        {
          validate: (score) => validationScore(validation, validationMaps(validation, settings, score)).score,
        },
      );
      const best = trained.history[trained.bestEpoch - 1];
      rows.push({
        variant: v.name,
        change: v.change,
        bestValidation: best.validation,
        bestEpoch: trained.bestEpoch,
        epochs: trained.history.length,
        trainMs: Math.round(trained.trainMs),
      });
      console.log(
        `${v.name.padEnd(20)} validation ${best.validation.toFixed(4)} at epoch ${trained.bestEpoch}/${trained.history.length}, ${(trained.trainMs / 1000).toFixed(0)} s`,
      );
    }
    const result = {
      measuredAt: new Date().toISOString(),
      command: `node --import tsx bench/head-tune.ts ${process.argv.slice(2).join(' ')}`,
      machine: { cpus: os.cpus().length, loadAverage: os.loadavg() },
      trainImages: split.train.length,
      validation: { goods: goods.length, defects: validation.items.filter((i) => i.label === 1).length },
      prepMs: Math.round(prepMs),
      rows,
    };
    fs.writeFileSync(values.out, JSON.stringify(result, null, 2) + '\n');
  } finally {
    await pool.close();
  }
}

void main();
