/** `spi eval --data <category-dir> --out <dir>`: fit on train/good, score test/, write the report. */
import * as path from 'node:path';
import { ParseArgsConfig, parseArgs } from 'node:util';
import { readCategory } from '../../../lib/data/mvtec';
import { evaluateCategory } from '../../../lib/eval/evaluate';
import { BackbonePool, createExtractor } from '../../../lib/patchcore/engine';
import { ENGINE_FLAGS, ENGINE_USAGE, extractorFrom, fitFrom, fuseMembersFrom, num } from '../options';
import { Progress } from '../progress';
import { invalid } from '../../../lib/errors';

export const EVAL_FLAGS = {
  ...ENGINE_FLAGS,
  data: { type: 'string' },
  out: { type: 'string' },
  gallery: { type: 'string', default: '48' },
} satisfies ParseArgsConfig['options'];

export const EVAL_USAGE = `usage: spi eval --data <MVTec-layout category> --out <dir> [options]
  --data DIR          a category in MVTec layout: fit on train/good, score test/ (ground_truth/ masks
                      give pixel AUROC and PRO)
  --out DIR           where scores.json, metrics.json and report.html go
  --gallery N         overlays in the report's gallery, defective first; 0 = none (default ${EVAL_FLAGS.gallery.default})
${ENGINE_USAGE}`;

export async function evalCommand(argv: string[]): Promise<void> {
  const { values } = parseArgs({ args: argv, options: EVAL_FLAGS });
  if (!values.data || !values.out) throw invalid("--data and --out are required (see 'spi eval --help')");
  const category = readCategory(values.data);
  if (category.test.length === 0) throw invalid(`${values.data} has no test/ images to evaluate`);
  const pool = new BackbonePool();
  const progress = new Progress();
  try {
    const extractor = await createExtractor(pool, extractorFrom(values));
    const settings = fitFrom(values, category.name, [category.name]);
    const fuseWith = [];
    for (const member of fuseMembersFrom(values)) {
      fuseWith.push({
        extractor: await createExtractor(pool, extractorFrom(member)),
        settings: fitFrom(member, category.name, [category.name]),
      });
    }
    const { metrics } = await evaluateCategory(extractor, category, settings, {
      out: values.out,
      fuseWith,
      gallery: num(values, 'gallery'),
      onProgress: (s, d, t) => progress.update(s, d, t),
    });
    progress.stop();
    const f = (v: number | undefined) => (v === undefined ? 'n/a' : v.toFixed(4));
    console.log(
      `${category.name}: image AUROC ${f(metrics.imageAuroc)}, pixel AUROC ${f(metrics.pixelAuroc)}, PRO ${f(metrics.pro)}, ` +
        `F1@t ${f(metrics.f1AtThreshold.f1)}, F1max ${f(metrics.f1Max.f1)}, bank ${metrics.bankPatches} patches, ` +
        `${metrics.timings.inspectPerImageMs.toFixed(1)} ms/image -> ${path.join(values.out, 'report.html')}`,
    );
  } finally {
    progress.stop();
    await pool.close();
  }
}
