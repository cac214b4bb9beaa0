/** `spi fit --data <folder> --out <bank-dir>`: build a bank from good images. */
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { saveBank } from '../../../lib/bank/bank-store';
import { fileSources, listImages, readCategory } from '../../../lib/data/mvtec';
import { BackbonePool, createExtractor } from '../../../lib/patchcore/engine';
import { fitBank, FittedBank } from '../../../lib/patchcore/fit';
import { ENGINE_FLAGS, EngineFlagValues, extractorFrom, fitFrom } from '../options';
import { Progress } from '../progress';
import { invalid } from '../../../lib/errors';

export const FIT_USAGE = `spi fit --data <good-images or MVTec category folder> --out <bank dir> [options]
  --threshold-dir <folder>   good images for the threshold (default: hold back --holdout of the data)
  model/view/coreset/index flags: see 'spi help'`;

export async function fitCommand(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      ...ENGINE_FLAGS,
      data: { type: 'string' },
      out: { type: 'string' },
      'threshold-dir': { type: 'string' },
    },
  });
  if (!values.data || !values.out) throw invalid(`--data and --out are required\n${FIT_USAGE}`);
  const category = readCategory(values.data);
  const pool = new BackbonePool();
  const progress = new Progress();
  try {
    const fitted = await fitFromFolder(
      pool,
      category.train,
      category.root,
      values,
      progress,
      values['threshold-dir'],
    );
    const written = saveBank(values.out, fitted.meta, fitted.vectors, fitted.dim);
    progress.stop();
    console.log(
      `bank ${written.name} v${written.version}: ${written.vectors.rows} patches x ${written.vectors.dim} ` +
        `(from ${written.coreset.inputPatches}), threshold ${written.threshold.value.toFixed(4)} (${written.threshold.method}) -> ${values.out}`,
    );
  } finally {
    progress.stop();
    await pool.close();
  }
}

export async function fitFromFolder(
  pool: BackbonePool,
  files: string[],
  root: string,
  values: EngineFlagValues,
  progress: Progress,
  thresholdDir?: string,
): Promise<FittedBank> {
  const extractor = await createExtractor(pool, extractorFrom(values));
  const settings = fitFrom(values, path.basename(path.resolve(root)), [path.basename(path.resolve(root))]);
  return fitBank(extractor, fileSources(files, root), settings, {
    thresholdImages: thresholdDir ? fileSources(listImages(thresholdDir), thresholdDir) : undefined,
    onProgress: (stage, done, total) => progress.update(stage, done, total),
  });
}
