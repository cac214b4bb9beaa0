/**
 * Accuracy cost of the faster variants: image AUROC of the engine (PatchCore, coreset ratio 0.1,
 * default view and stages of each model) on MVTec-layout categories, float vs INT8 vs pruned.
 */
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { readCategory } from '../../lib/data/mvtec';
import { evaluateCategory } from '../../lib/eval/evaluate';
import { BackbonePool, createExtractor } from '../../lib/patchcore/engine';
import { ENGINE_FLAGS, extractorFrom, fitFrom } from '../../services/cli/options';

export interface AccuracyRow {
  category: string;
  flags: string;
  variant: string;
  model: string;
  imageAuroc?: number;
  pixelAuroc?: number;
  inspectMsPerImage: number;
  minutes: number;
}

export async function imageAuroc(
  model: string,
  variant: string,
  categoryDir: string,
  outDir: string,
  resize: number,
  /** Extra engine flags for this category (e.g. tiling for high-resolution boards). */
  flags: string[] = [],
): Promise<AccuracyRow> {
  const started = performance.now();
  // The CLI's own defaults, so the numbers match `spi eval --model <model> --ratio 0.1`.
  const { values } = parseArgs({
    args: ['--model', model, '--ratio', '0.1', '--resize', String(resize), ...flags],
    options: ENGINE_FLAGS,
  });
  const category = readCategory(categoryDir);
  const pool = new BackbonePool();
  try {
    const extractor = await createExtractor(pool, extractorFrom(values));
    const settings = fitFrom(values, category.name, [category.name]);
    const { metrics } = await evaluateCategory(extractor, category, settings, {
      out: path.join(outDir, `${path.basename(categoryDir)}-${variant}`),
      gallery: 0,
    });
    return {
      category: path.relative(path.resolve(categoryDir, '../..'), categoryDir),
      flags: flags.join(' '),
      variant,
      model: path.basename(model),
      imageAuroc: metrics.imageAuroc,
      pixelAuroc: metrics.pixelAuroc,
      inspectMsPerImage: metrics.timings.inspectPerImageMs,
      minutes: (performance.now() - started) / 60000,
    };
  } finally {
    await pool.close();
  }
}
