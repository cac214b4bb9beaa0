/**
 * Banks from plant folders (#18): the outlier filter on contaminated training sets, and incremental
 * banks against a full rebuild. Writes its figures to a results file; nothing here is asserted.
 *
 * node --import tsx bench/plant-folders.ts --data <MVTec-layout category> --out eval-results/plant-<name>.json
 *   [--fractions 0,0.05] [--per-image F] [--resize/--tile/--scale/--overlap/--pad/--stages] [--min-ratio R] [--k K]
 *
 * Contamination: the defective test images of each type are split in two alternating halves; the
 * first half goes into train/good ("contaminated"), the second half and test/good are the evaluation
 * set, for the clean and the contaminated train set alike. Each filter fraction is fitted on both.
 * Incremental: every 10th training image is left out of a first bank and added with `addToBank`;
 * the result is compared with a full rebuild on all images (image AUROC on the whole test set, and
 * the time to add against the time to rebuild). Embeddings are cached between fits for the
 * contamination table (CachedExtractor), never for the timed incremental comparison.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { Category, TestItem, fileSources, readCategory } from '../lib/data/mvtec';
import { rocAuc } from '../lib/eval/metrics';
import { BackbonePool, createExtractor } from '../lib/patchcore/engine';
import { CachedExtractor, FeatureExtractor } from '../lib/patchcore/feature-extractor';
import {
  DEFAULT_FIT,
  FitSettings,
  FittedBank,
  ImageSource,
  fitBank,
  fittedInspector,
} from '../lib/patchcore/fit';
import { completeMeta } from '../lib/patchcore/fit';
import { addToBank } from '../lib/patchcore/incremental';
import { DEFAULT_OUTLIER_FILTER } from '../lib/coreset/outliers';
import { DEFAULT_CORESET } from '../lib/coreset/coreset';
import { DEFAULT_VIEW, ViewConfig } from '../lib/image/views';

const log = (m: string) => console.error(`[plant] ${m}`);

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      data: { type: 'string' },
      out: { type: 'string' },
      fractions: { type: 'string', default: '0,0.01,0.02,0.05' },
      'per-image': { type: 'string', default: '0' },
      resize: { type: 'string', default: String(DEFAULT_VIEW.resize) },
      tile: { type: 'string', default: '0' },
      scale: { type: 'string', default: '1' },
      overlap: { type: 'string', default: String(DEFAULT_VIEW.overlap) },
      pad: { type: 'string', default: '0' },
      stages: { type: 'string' },
      ratio: { type: 'string', default: String(DEFAULT_CORESET.ratio) },
      skip: { type: 'string', default: '' },
      'min-ratio': { type: 'string', default: String(DEFAULT_OUTLIER_FILTER.minRatio) },
      k: { type: 'string', default: String(DEFAULT_OUTLIER_FILTER.k) },
    },
  });
  if (!values.data || !values.out)
    throw new Error('usage: plant-folders.ts --data <category> --out <file.json>');
  const category = readCategory(values.data);
  const view: ViewConfig = {
    ...DEFAULT_VIEW,
    resize: Number(values.resize),
    tile: Number(values.tile),
    scale: Number(values.scale),
    overlap: Number(values.overlap),
    pad: Number(values.pad),
  };
  const settings: FitSettings = {
    ...DEFAULT_FIT,
    name: category.name,
    categories: [category.name],
    view,
    coreset: { ...DEFAULT_CORESET, ratio: Number(values.ratio), perImage: Number(values['per-image']) },
  };
  const pool = new BackbonePool();
  const skip = new Set(values.skip!.split(',').filter(Boolean));
  const results: Record<string, unknown> = {
    data: values.data,
    createdAt: new Date().toISOString(),
    view,
    stages: values.stages ?? 'default',
    coreset: settings.coreset,
    note: 'timings on a shared 2-core machine (other sessions running): compare within one run only',
  };
  const write = () => {
    fs.mkdirSync(path.dirname(values.out!), { recursive: true });
    fs.writeFileSync(values.out!, JSON.stringify(results, null, 2));
  };
  try {
    const plain = await createExtractor(pool, {
      model: 'mobilenet_v2-imagenet',
      stages: values.stages ? values.stages.split(',') : undefined,
      view,
      projectionDim: 0,
      projectionSeed: 7,
    });
    if (!skip.has('contamination')) {
      const cached = new CachedExtractor(plain.backbone, plain.options);
      results.contamination = await contamination(
        cached,
        category,
        {
          ...settings,
          outliers: { ...DEFAULT_OUTLIER_FILTER, minRatio: Number(values['min-ratio']), k: Number(values.k) },
        },
        values.fractions!.split(',').map(Number),
      );
      write();
    }
    if (!skip.has('incremental')) {
      results.incremental = await incremental(plain, category, settings);
      write();
    }
  } finally {
    await pool.close();
  }
  log(`-> ${values.out}`);
}

async function contamination(
  extractor: FeatureExtractor,
  category: Category,
  settings: FitSettings,
  fractions: number[],
) {
  const byType = new Map<string, TestItem[]>();
  for (const t of category.test.filter((t) => t.label === 1))
    byType.set(t.defectType, [...(byType.get(t.defectType) ?? []), t]);
  const moved: TestItem[] = [];
  const kept: TestItem[] = [];
  for (const items of byType.values()) items.forEach((t, i) => (i % 2 === 0 ? moved : kept).push(t));
  const evalSet = [...category.test.filter((t) => t.label === 0), ...kept];
  const clean = fileSources(category.train, category.root);
  const dirty = [
    ...clean,
    ...moved.map((t) => ({ path: t.path, read: () => fs.promises.readFile(t.absPath) })),
  ];
  const movedPaths = new Set(moved.map((t) => t.path));
  const rows = [];
  for (const fraction of fractions) {
    for (const [name, train] of [
      ['clean', clean],
      ['contaminated', dirty],
    ] as const) {
      const s = { ...settings, outliers: { ...DEFAULT_OUTLIER_FILTER, ...settings.outliers, fraction } };
      const t0 = Date.now();
      const fitted = await fitBank(extractor, train, s);
      const fitMs = Date.now() - t0;
      const auroc = await aurocOn(fitted, extractor, evalSet);
      const suspects = fitted.meta.outliers?.suspects ?? [];
      const row = {
        train: name,
        fraction,
        images: train.length,
        imageAuroc: auroc,
        droppedFraction: fitted.meta.outliers?.droppedFraction ?? 0,
        suspects: suspects.length,
        suspectsThatAreDefective: suspects.filter((x) => movedPaths.has(x.path)).length,
        movedInTrain:
          name === 'contaminated'
            ? moved.filter((m) => fitted.meta.sources.some((x) => x.path === m.path)).length
            : 0,
        fitMs,
      };
      log(JSON.stringify(row));
      rows.push(row);
    }
  }
  return { moved: moved.length, evalImages: evalSet.length, evalDefective: kept.length, rows };
}

async function incremental(extractor: FeatureExtractor, category: Category, settings: FitSettings) {
  const all = fileSources(category.train, category.root);
  const later = all.filter((_, i) => i % 10 === 5);
  const first = all.filter((_, i) => i % 10 !== 5);
  // Threshold images held apart so all three banks use the same ones and the same training images.
  const base = await timed(() => fitBank(extractor, first, settings));
  const stored = {
    meta: completeMeta(base.value.meta, base.value.dim, base.value.index.size),
    vectors: base.value.vectors,
  };
  const added = await timed(() => addToBank(extractor, stored, later));
  const rebuilt = await timed(() => fitBank(extractor, all, settings));
  const row = {
    images: { first: first.length, added: later.length },
    base: {
      imageAuroc: await aurocOn(base.value, extractor, category.test),
      fitMs: base.ms,
      patches: base.value.index.size,
    },
    added: {
      imageAuroc: await aurocOn(added.value, extractor, category.test),
      addMs: added.ms,
      patches: added.value.index.size,
      threshold: added.value.meta.threshold.value,
    },
    rebuilt: {
      imageAuroc: await aurocOn(rebuilt.value, extractor, category.test),
      fitMs: rebuilt.ms,
      patches: rebuilt.value.index.size,
      threshold: rebuilt.value.meta.threshold.value,
    },
  };
  log(JSON.stringify(row));
  return row;
}

async function timed<T>(f: () => Promise<T>): Promise<{ value: T; ms: number }> {
  const t0 = Date.now();
  const value = await f();
  return { value, ms: Date.now() - t0 };
}

async function aurocOn(fitted: FittedBank, extractor: FeatureExtractor, items: TestItem[]): Promise<number> {
  const inspector = fittedInspector(fitted, extractor);
  const scores: number[] = [];
  for (const t of items)
    scores.push((await inspector.inspectBytes(await fs.promises.readFile(t.absPath))).score);
  return rocAuc(
    scores,
    items.map((t) => t.label),
  );
}

export type { ImageSource };

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
