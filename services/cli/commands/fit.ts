/** `spi fit --data <folder> --out <bank-dir>`: build a bank from good images. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ParseArgsConfig, parseArgs } from 'node:util';
import { StoredBank, loadBank, saveBank } from '../../../lib/bank/bank-store';
import type { OutlierRecord } from '../../../lib/bank/bank-meta';
import { AddOptions, addToBank, checkAddition } from '../../../lib/patchcore/incremental';
import { FusedBase, addToFused } from '../../../lib/patchcore/incremental-fused';
import { fileSources, listImages, readCategory } from '../../../lib/data/mvtec';
import { BackbonePool, createExtractor, extractorForBank } from '../../../lib/patchcore/engine';
import {
  completeMeta,
  fitBank,
  FittedBank,
  fittedInspector,
  ImageSource,
  FitSettings,
} from '../../../lib/patchcore/fit';
import { Threshold, thresholdF1 } from '../../../lib/threshold/threshold';
import {
  AutoRequest,
  ENGINE_FLAGS,
  ENGINE_USAGE,
  EngineFlagValues,
  autoFrom,
  givenFlags,
  extractorFrom,
  fitFrom,
  fuseMembersFrom,
  MEMORY_FLAGS,
  MEMORY_USAGE,
  memoryFrom,
} from '../options';
import { describeFitMemory } from '../../../lib/patchcore/memory-budget';
import type { FitMemoryRecord } from '../../../lib/bank/bank-meta';
import {
  FittedFusion,
  FusedInspector,
  fitFused,
  fusedInspector,
  isFusedBank,
  loadFused,
  saveFused,
} from '../../../lib/patchcore/fusion';
import { Progress } from '../progress';
import { invalid, notFound } from '../../../lib/errors';
import { autoFit } from '../../../lib/autoconfig/auto-fit';
import { formatAutoRecord } from '../../../lib/autoconfig/plan';
import type { AutoConfigRecord } from '../../../lib/autoconfig/select';
import { Category } from '../../../lib/data/mvtec';
import { HeadMeta, fitFusedHead, fitHead, headFiles, storedHeadFiles } from '../../../lib/head/head-bank';
import { carryHeadInto } from '../../../lib/head/head-growth';
import type { Inspector } from '../../../lib/patchcore/inspector';
import type { FeatureExtractor } from '../../../lib/patchcore/feature-extractor';
import { epochNote, formatHead } from '../../../lib/head/report';
import { HEAD_FLAGS, HEAD_USAGE, headFitFrom } from '../head-options';
import { checkHeadStages } from '../../../lib/head/head-embedding';

export const FIT_FLAGS = {
  ...ENGINE_FLAGS,
  ...HEAD_FLAGS,
  data: { type: 'string' },
  out: { type: 'string' },
  'threshold-dir': { type: 'string' },
  'f1-from': { type: 'string' },
  explain: { type: 'boolean', default: false },
  add: { type: 'string' },
  bank: { type: 'string' },
  reason: { type: 'string' },
  ...MEMORY_FLAGS,
} satisfies ParseArgsConfig['options'];

export const FIT_USAGE = `usage: spi fit --data <good-images or MVTec category folder> --out <bank dir> [options]
       spi fit --explain --out <bank dir>   how an existing bank was configured (its candidate table)
       spi fit --add <good-images> --bank <bank dir> [--out <bank dir>]   the next version of a bank
  --add DIR           new good images for an existing bank (--bank): only they are embedded, the
                      coreset grows by a streaming greedy update, the threshold (and a nominal
                      reference, a fused bank's standardisation: every member grows) is recalibrated
                      on part of them pooled with the bank's record, or on --threshold-dir alone, and
                      the version's metadata lists them; a discriminator head is kept, not retrained,
                      its thresholds recalibrated alike; written to --out (default: --bank itself)
  --bank DIR          the bank that --add grows
  --reason TEXT       recorded with the added images (e.g. "false alarms marked good")
  --data DIR          good images, or an MVTec-layout category (its train/good is used)
  --out DIR           the bank folder to write
  --threshold-dir DIR good images for the threshold (default: hold back --holdout of the data)
  --f1-from DIR       labelled images in MVTec layout (test/good, test/<defect>): use the
                      F1-optimal threshold on them instead of the automatic one
${MEMORY_USAGE}
${ENGINE_USAGE}
${HEAD_USAGE}`;

export async function fitCommand(argv: string[]): Promise<void> {
  const { values } = parseArgs({ args: argv, options: FIT_FLAGS });
  if (values.explain) {
    if (!values.out) throw invalid('--explain needs --out <bank dir>');
    console.log(explainBank(values.out));
    return;
  }
  if (values.add !== undefined) {
    await addCommand(values.add, values.bank, values.out ?? values.bank, values);
    return;
  }
  if (!values.data || !values.out) throw invalid("--data and --out are required (see 'spi fit --help')");
  const category = readCategory(values.data);
  const auto = autoFrom(values, givenFlags(argv, FIT_FLAGS), category.train.length);
  const head = headFitFrom(values);
  checkHeadStages(auto ? auto.models : [extractorFrom(values).model], head?.stages);
  const pool = new BackbonePool();
  const progress = new Progress();
  const started = performance.now();
  const took = () => `fit took ${((performance.now() - started) / 1000).toFixed(1)} s`;
  try {
    if (auto) {
      if (values['f1-from'])
        throw invalid(
          '--f1-from is not available with the automatic fit (pass --auto off and the view flags)',
        );
      await autoFitFolder(pool, category, values, auto, progress, head);
      return;
    }
    if (values.fuse) {
      if (values['f1-from']) throw invalid('--f1-from is not available with --fuse');
      await fitFusedFromFolder(
        pool,
        category.train,
        category.root,
        values,
        progress,
        values['threshold-dir'],
        head,
      );
      console.log(took());
      return;
    }
    const fitted = await fitFromFolder(
      pool,
      category.train,
      category.root,
      values,
      progress,
      values['threshold-dir'],
      head !== undefined,
    );
    if (values['f1-from'])
      fitted.meta.threshold = await f1Threshold(pool, fitted, values['f1-from'], progress);
    const settings = fitSettings(values, path.basename(path.resolve(category.root)));
    const files = head
      ? await headBeside(pool, fitted, category, settings, head, progress, values['threshold-dir'])
      : {};
    const written = saveBank(values.out, fitted.meta, fitted.vectors, fitted.dim, files);
    progress.stop();
    console.log(
      `bank ${written.name} v${written.version}: ${written.vectors.rows} patches x ${written.vectors.dim} ` +
        `(from ${written.coreset.inputPatches}), threshold ${written.threshold.value.toFixed(4)} (${written.threshold.method}) -> ${values.out}`,
    );
    if (written.head) console.log(formatHead(written.head));
    printOutliers(written.outliers);
    printMemory(written.memory);
    console.log(took());
  } finally {
    progress.stop();
    await pool.close();
  }
}

type FitValues = EngineFlagValues & { 'max-memory'?: string };

/** A bank's fit settings from the flags, with the memory budget (`--max-memory`). */
function fitSettings(values: FitValues, name: string) {
  return { ...fitFrom(values, name, [name]), memory: memoryFrom(values) };
}

export async function fitFromFolder(
  pool: BackbonePool,
  files: string[],
  root: string,
  values: FitValues,
  progress: Progress,
  thresholdDir?: string,
  keepHeldOutMaps = false,
): Promise<FittedBank> {
  const extractor = await createExtractor(pool, extractorFrom(values));
  const settings = fitSettings(values, path.basename(path.resolve(root)));
  return fitBank(extractor, fileSources(files, root), settings, {
    thresholdImages: thresholdDir ? fileSources(listImages(thresholdDir), thresholdDir) : undefined,
    onProgress: (stage, done, total) => progress.update(stage, done, total),
    keepHeldOutMaps,
  });
}

type HeadFlags = NonNullable<ReturnType<typeof headFitFrom>>;

/**
 * `--head`: trains the head beside a fitted single bank and records it in the bank's metadata.
 * `settings`: the bank's own (its held-out split is the head's).
 */
async function headBeside(
  pool: BackbonePool,
  fitted: FittedBank,
  category: Category,
  settings: FitSettings,
  head: HeadFlags,
  progress: Progress,
  thresholdDir?: string,
): Promise<Record<string, Uint8Array>> {
  const meta = completeMeta(fitted.meta, fitted.dim, fitted.index.size);
  const h = await fitHead(
    await extractorForBank(pool, meta),
    fitted,
    fileSources(category.train, category.root),
    settings,
    headProgress(head, progress),
    thresholdDir ? fileSources(listImages(thresholdDir), thresholdDir) : undefined,
  );
  fitted.meta.head = { ...h.meta, mode: head.mode };
  return headFiles(h);
}

/** `--head` beside a fused bank (fitted with keepHeldOutMaps): on its first member's embeddings. */
async function headBesideFused(
  fitted: FittedFusion,
  extractors: FeatureExtractor[],
  images: ImageSource[],
  settings: FitSettings,
  head: HeadFlags,
  progress: Progress,
  thresholdImages?: ImageSource[],
): Promise<Record<string, Uint8Array>> {
  const h = await fitFusedHead(
    fitted,
    extractors,
    images,
    settings,
    headProgress(head, progress),
    thresholdImages,
  );
  fitted.meta.head = { ...h.meta, mode: head.mode };
  return headFiles(h);
}

/** The head's fit options with the fit's progress bars (`head data`, `head train`). */
function headProgress(head: HeadFlags, progress: Progress): HeadFlags {
  return {
    ...head,
    onProgress: (stage, done, total) => progress.update(stage, done, total),
    onEpoch: (r) => progress.update('head train', r.epoch, r.epochs, epochNote(r)),
  };
}

/** The automatic fit (lib/autoconfig): choose on synthetic defects, fit, save, print the table. */
async function autoFitFolder(
  pool: BackbonePool,
  category: Category,
  values: EngineFlagValues & { out?: string; 'threshold-dir'?: string; 'max-memory'?: string },
  auto: AutoRequest,
  progress: Progress,
  head?: ReturnType<typeof headFitFrom>,
): Promise<void> {
  const name = path.basename(path.resolve(category.root));
  const dir = values['threshold-dir'];
  const images = fileSources(category.train, category.root);
  const thresholdImages = dir ? fileSources(listImages(dir), dir) : undefined;
  const result = await autoFit(images, fitSettings(values, name), {
    pool,
    ...auto,
    thresholdImages,
    onProgress: (stage, done, total) => progress.update(stage, done, total),
    keepHeldOutMaps: head !== undefined,
  });
  if (result.kind === 'single') {
    const files = head
      ? await headBeside(pool, result.fitted, category, result.settings, head, progress, dir)
      : {};
    saveBank(values.out!, result.fitted.meta, result.fitted.vectors, result.fitted.dim, files);
  } else {
    const files = head
      ? await headBesideFused(
          result.fitted,
          result.extractors,
          images,
          result.settings,
          head,
          progress,
          thresholdImages,
        )
      : {};
    saveFused(values.out!, result.fitted, files);
  }
  progress.stop();
  console.log(formatAutoRecord(result.choice.record));
  const m = result.fitted.meta;
  console.log(
    `bank ${m.name} v${m.version}: threshold ${m.threshold.value.toFixed(4)} (${m.threshold.method}) -> ${values.out}`,
  );
  if (result.fitted.meta.head) console.log(formatHead(result.fitted.meta.head));
  if (result.kind === 'single') printOutliers(result.fitted.meta.outliers);
  if (result.kind === 'single') printMemory(result.fitted.meta.memory);
}

/**
 * `spi fit --add <folder> --bank <bank>`: the next version from the bank plus the new images; a
 * fused bank grows every member (patchcore/incremental-fused.ts).
 */
async function addCommand(
  folder: string,
  bankDir: string | undefined,
  out: string | undefined,
  values: { reason?: string; 'threshold-dir'?: string; 'max-memory'?: string },
): Promise<void> {
  if (!bankDir || !out) throw invalid('--add needs --bank <bank dir> (and optionally --out)');
  const memory = memoryFrom(values);
  const base = isFusedBank(bankDir) ? loadFused(bankDir) : loadBank(bankDir);
  const images = addedImages(folder, base.meta.categories);
  // Refused before the backbone loads.
  checkAddition('members' in base ? [base.meta, ...base.members.map((m) => m.meta)] : [base.meta], images);
  const pool = new BackbonePool();
  const progress = new Progress();
  try {
    const dir = values['threshold-dir'];
    const options: AddOptions = {
      reason: values.reason,
      thresholdImages: dir ? fileSources(listImages(dir), dir) : undefined,
      memory,
      onProgress: (stage, done, total) => progress.update(stage, done, total),
    };
    const to = { bank: bankDir, out };
    if ('members' in base) await addToFusedFolder(pool, base, images, options, to, progress);
    else await addToBankFolder(pool, base, images, options, to, progress);
  } finally {
    progress.stop();
    await pool.close();
  }
}

/**
 * The images `--add` names: a folder of good images (or an MVTec-layout category); for a unified bank
 * one sub-folder per product, named after it ("<folder>/labels/0001.png" joins labels).
 */
function addedImages(folder: string, categories: string[]): ImageSource[] {
  if (categories.length < 2) {
    const category = readCategory(folder);
    return fileSources(category.train, category.root);
  }
  const files = categories.flatMap((c) => listImages(path.join(folder, c)));
  if (files.length === 0)
    throw invalid(
      `no good images under ${folder}/<category>/ for the unified bank's ${categories.join(', ')}`,
    );
  return fileSources(files, folder);
}

/** `--add` to a single bank: writes the next version (with the bank's head, if any) and its summary. */
async function addToBankFolder(
  pool: BackbonePool,
  base: StoredBank,
  images: ImageSource[],
  options: AddOptions,
  { bank, out }: { bank: string; out: string },
  progress: Progress,
): Promise<void> {
  const extractor = await extractorForBank(pool, base.meta);
  const fitted = await addToBank(extractor, base, images, options);
  const grown = fittedInspector(fitted, extractor);
  const files = await carriedHead(pool, bank, grown, fitted.meta, images, options);
  const written = saveBank(out, fitted.meta, fitted.vectors, fitted.dim, files);
  progress.stop();
  const added = written.additions!.at(-1)!;
  console.log(
    addedLine(base.meta, written, added, `+${added.keptPatches} patches -> ${written.vectors.rows}`, out),
  );
  printOutliers(added.outliers);
  printMemory(added.memory);
  printCarriedHead(base.meta.head, written.head);
}

/** `--add` to a fused bank: every member grows by the same images. */
async function addToFusedFolder(
  pool: BackbonePool,
  base: FusedBase,
  images: ImageSource[],
  options: AddOptions,
  { bank, out }: { bank: string; out: string },
  progress: Progress,
): Promise<void> {
  const extractors = [];
  for (const m of base.members) extractors.push(await extractorForBank(pool, m.meta));
  const fitted = await addToFused(extractors, base, images, options);
  const grown = fusedInspector(fitted, extractors);
  saveFused(out, fitted, await carriedHead(pool, bank, grown, fitted.meta, images, options));
  const patches = fitted.members.map(
    (f) =>
      `${f.meta.model.stages.join('+')} +${f.meta.additions!.at(-1)!.keptPatches} -> ${f.vectors.length / f.dim}`,
  );
  progress.stop();
  console.log(
    addedLine(base.meta, fitted.meta, fitted.meta.additions!.at(-1)!, `patches ${patches.join(', ')}`, out),
  );
  for (const f of fitted.members) {
    const m = f.meta.additions!.at(-1)!.memory;
    if (m) console.log(`memory (${f.meta.model.stages.join('+')}): ${describeFitMemory(m)}`);
  }
  printCarriedHead(base.meta.head, fitted.meta.head);
}

/**
 * The head of a grown bank's metadata, carried over from the old bank (lib/head/head-growth.ts):
 * its thresholds recalibrated, its model files (from the old bank folder) for the new one.
 */
async function carriedHead(
  pool: BackbonePool,
  bank: string,
  grown: Inspector | FusedInspector,
  meta: Parameters<typeof carryHeadInto>[3],
  images: ImageSource[],
  options: AddOptions,
): Promise<Record<string, Uint8Array>> {
  if (!meta.head) return {};
  const files = storedHeadFiles(bank, meta.head);
  await carryHeadInto(pool, bank, grown, meta, images, options.thresholdImages);
  return files;
}

function printCarriedHead(before: HeadMeta | undefined, after: HeadMeta | undefined): void {
  if (!before || !after) return;
  const t = (h: HeadMeta, m: 'head' | 'combined') => h.thresholds[m].value.toFixed(4);
  console.log(
    `head ${after.kind} carried over, not retrained: thresholds head ${t(before, 'head')} -> ${t(after, 'head')}, ` +
      `combined ${t(before, 'combined')} -> ${t(after, 'combined')}`,
  );
}

/** The summary line of `spi fit --add`. */
function addedLine(
  before: { threshold: Threshold },
  after: { name: string; version: number; threshold: Threshold },
  added: { images: string[]; heldOut: string[] },
  patches: string,
  out: string,
): string {
  return (
    `bank ${after.name} v${after.version}: +${added.images.length} images (${added.heldOut.length} held out), ` +
    `${patches}, threshold ${before.threshold.value.toFixed(4)} -> ${after.threshold.value.toFixed(4)} ` +
    `(${after.threshold.method}) -> ${out}`
  );
}

/** The outlier filter's line of the fit summary, and the suspect good images. */
export function printOutliers(o: OutlierRecord | undefined): void {
  if (!o) return;
  console.log(
    `outlier filter: dropped ${o.dropped} of ${o.considered} candidate patches (${(100 * o.droppedFraction).toFixed(2)} %)`,
  );
  if (o.suspects.length === 0) return;
  console.log('suspect good images (most of their patches dropped; check them):');
  for (const s of o.suspects)
    console.log(`  ${s.path}: ${s.dropped}/${s.candidates} patches (${(100 * s.share).toFixed(1)} %)`);
}

/** The memory line of the fit summary: the budget, and what went to disk. */
export function printMemory(m: FitMemoryRecord | undefined): void {
  if (m) console.log(`memory: ${describeFitMemory(m)}`);
}

/** `spi fit --explain`: the automatic fit's record of a bank, or the flags it was built with. */
export function explainBank(dir: string): string {
  const file = path.join(dir, 'bank.json');
  if (!fs.existsSync(file)) throw notFound(`no bank at ${dir} (bank.json missing)`);
  const meta = JSON.parse(fs.readFileSync(file, 'utf8')) as { autoConfig?: AutoConfigRecord; name: string };
  if (meta.autoConfig) return formatAutoRecord(meta.autoConfig);
  return `bank ${meta.name} was configured by hand (flags or --auto off): no candidate table recorded`;
}

/** `--fuse`: a fused bank of the --stages member and the --fuse member (patchcore/fusion.ts). */
async function fitFusedFromFolder(
  pool: BackbonePool,
  files: string[],
  root: string,
  values: EngineFlagValues & { out?: string; 'max-memory'?: string },
  progress: Progress,
  thresholdDir?: string,
  head?: HeadFlags,
): Promise<void> {
  const name = path.basename(path.resolve(root));
  const members = [];
  for (const v of [values, ...fuseMembersFrom(values)]) {
    members.push({
      extractor: await createExtractor(pool, extractorFrom(v)),
      settings: fitSettings({ ...v, 'max-memory': values['max-memory'] }, name),
    });
  }
  const images = fileSources(files, root);
  const thresholdImages = thresholdDir ? fileSources(listImages(thresholdDir), thresholdDir) : undefined;
  const fitted = await fitFused(images, members, members[0].settings, {
    thresholdImages,
    onProgress: (stage, done, total) => progress.update(stage, done, total),
    keepHeldOutMaps: head !== undefined,
  });
  const extractors = members.map((m) => m.extractor);
  const headModels = head
    ? await headBesideFused(fitted, extractors, images, members[0].settings, head, progress, thresholdImages)
    : {};
  saveFused(values.out!, fitted, headModels);
  progress.stop();
  const patches = fitted.members.map((f) => `${f.meta.model.stages.join('+')} ${f.vectors.length / f.dim}`);
  console.log(
    `fused bank ${fitted.meta.name}: ${patches.join(', ')} patches, threshold ${fitted.meta.threshold.value.toFixed(4)} -> ${values.out}`,
  );
  if (fitted.meta.head) console.log(formatHead(fitted.meta.head));
}

/** Scores labelled images with the new bank and takes the threshold with the best F1 on them. */
async function f1Threshold(
  pool: BackbonePool,
  fitted: FittedBank,
  dir: string,
  progress: Progress,
): Promise<Threshold> {
  const labelled = readCategory(dir).test;
  if (!labelled.some((t) => t.label === 1) || !labelled.some((t) => t.label === 0)) {
    throw invalid(`${dir}/test needs both good and defective images for an F1 threshold`);
  }
  const meta = completeMeta(fitted.meta, fitted.dim, fitted.index.size);
  const inspector = fittedInspector(fitted, await extractorForBank(pool, meta));
  const scores: number[] = [];
  for (const [i, item] of labelled.entries()) {
    scores.push((await inspector.inspectBytes(await fs.promises.readFile(item.absPath))).score);
    progress.update('f1', i + 1, labelled.length);
  }
  return thresholdF1(
    scores,
    labelled.map((t) => t.label),
  );
}
