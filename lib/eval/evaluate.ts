/**
 * `spi eval` behind the CLI: fit on train/good of an MVTec-layout category, score every test
 * image, and write scores.json, metrics.json and a self-contained report.html.
 */
import * as fs from 'node:fs';
import { thresholdFor } from '../bank/bank-meta';
import * as path from 'node:path';
import { Category } from '../data/mvtec';
import { decodeImage, resizeRgb } from '../image/decode';
import { toCanvas } from '../image/views';
import { FeatureExtractor } from '../patchcore/feature-extractor';
import { completeMeta, fitBank, fittedInspector, FitSettings, ImageSource } from '../patchcore/fit';
import { fileSources } from '../data/mvtec';
import { inspectionOverlay } from '../patchcore/overlay';
import { FusedInspector, MemberFit, fitFused, fusedInspector } from '../patchcore/fusion';
import { extractorsForBanks } from '../patchcore/shared-run';
import { BackbonePool } from '../patchcore/engine';
import { imageMetrics } from './summary';
import { pixelAuroc, pro } from './metrics';
import { renderReport } from './report';
import type { ReportImage, ReportMetrics } from './types';
import { syntheticRecall } from '../autoconfig/plan';
import type { AutoChoice, AutoConfigRecord } from '../autoconfig/select';
import {
  HeadFitOptions,
  HeadInspector,
  HeadMeta,
  HeadMode,
  HeadModeMetrics,
  fitFusedHeadInspector,
  fitHeadInspector,
} from '../head/head-bank';

export interface EvalOptions {
  out: string;
  /** Bank images other than the category's own train/good (a unified multi-category bank). */
  train?: ImageSource[];
  /** Further members: fit a fused bank of `extractor`/`settings` and these (patchcore/fusion.ts). */
  fuseWith?: MemberFit[];
  /** Overlays in the report's gallery (defective first, plus every misclassified image); 0 = none. */
  gallery: number;
  /** The automatic fit's choice that set `settings` (its table goes into metrics.json and the report). */
  auto?: AutoChoice;
  /** Train a discriminator head beside the bank (or fused bank); the verdict uses `mode` (lib/head/). */
  head?: HeadFitOptions & { mode?: HeadMode };
  /**
   * Where a fused bank's inspection gets its extractors: its members then share one backbone run per
   * test image (patchcore/shared-run.ts). Absent: the fit's own extractors, one run per member.
   */
  pool?: BackbonePool;
  onProgress?: (stage: string, done: number, total: number) => void;
}

export interface EvalResult {
  metrics: ReportMetrics & {
    timings: Record<string, number>;
    bankPatches: number;
    threshold: number;
    autoConfig?: AutoConfigRecord;
    head?: ReturnType<HeadModeMetrics['summary']> & Pick<HeadMeta, 'combination' | 'stages' | 'training'>;
  };
  scores: { path: string; label: 0 | 1; score: number }[];
}

export async function evaluateCategory(
  extractor: FeatureExtractor,
  category: Category,
  settings: FitSettings,
  options: EvalOptions,
): Promise<EvalResult> {
  fs.mkdirSync(options.out, { recursive: true });
  const t0 = performance.now();
  const train = options.train ?? fileSources(category.train, category.root);
  const onProgress = options.onProgress;
  let inspector: Pick<FusedInspector, 'meta' | 'inspectImage'>;
  let headInspector: HeadInspector | undefined;
  let bankPatches: number;
  if (options.fuseWith?.length) {
    const members = [{ extractor, settings }, ...options.fuseWith];
    const fused = await fitFused(train, members, settings, { onProgress, keepHeldOutMaps: !!options.head });
    const extractors = members.map((m) => m.extractor);
    const inspectWith = options.pool
      ? await extractorsForBanks(
          options.pool,
          fused.members.map((f) => completeMeta(f.meta, f.dim, f.index.size)),
        )
      : extractors;
    inspector = fusedInspector(fused, inspectWith);
    if (options.head)
      inspector = headInspector = await fitFusedHeadInspector(
        fused,
        extractors,
        train,
        settings,
        { ...options.head, onProgress },
        inspectWith,
      );
    bankPatches = fused.members.reduce((n, f) => n + f.vectors.length / f.dim, 0);
  } else {
    const fitted = await fitBank(extractor, train, settings, { onProgress, keepHeldOutMaps: !!options.head });
    inspector = fittedInspector(fitted, extractor);
    if (options.head)
      inspector = headInspector = await fitHeadInspector(extractor, fitted, train, settings, {
        ...options.head,
        onProgress,
      });
    bankPatches = fitted.vectors.length / fitted.dim;
  }
  const fitMs = performance.now() - t0;
  const meta = inspector.meta;
  // In a unified bank the category is judged by its own threshold.
  const chosen = meta.categories.includes(category.name) ? thresholdFor(meta, category.name) : meta.threshold;
  const threshold = chosen.value;
  const auto = options.auto?.record;
  if (auto) {
    auto.fitMs = Math.round(fitMs);
    auto.syntheticRecall = await syntheticRecall(inspector, options.auto!, meta.threshold.value);
  }

  const maps: Float32Array[] = [];
  const masks: Uint8Array[] = [];
  const widths: number[] = [];
  const images: (ReportImage & { inspectMs: number })[] = [];
  const galleryPicks = pickGallery(category, options.gallery);
  const byMode = headInspector ? new HeadModeMetrics() : undefined;
  const withMasks = category.test.some((t) => t.maskPath);
  const t1 = performance.now();
  for (const [i, item] of category.test.entries()) {
    const rgb = await decodeImage(await fs.promises.readFile(item.absPath));
    const started = performance.now();
    const all = await headInspector?.inspectAll(rgb);
    const r = all ? all[headInspector!.mode] : await inspector.inspectImage(rgb);
    const inspectMs = performance.now() - started;
    const mask = item.maskPath
      ? await maskToCanvas(item.maskPath, settings, r.canvasWidth, r.canvasHeight)
      : new Uint8Array(r.map.length);
    // A defective image without a mask (where others have theirs) says nothing of its pixels: left
    // out of the pixel metrics rather than counted as all normal.
    const pixels = !(withMasks && item.label === 1 && !item.maskPath);
    if (all) byMode?.add(all, item.label, mask, pixels);
    if (pixels) {
      maps.push(r.map);
      masks.push(mask);
      widths.push(r.canvasWidth);
    }
    let overlayPng: Buffer | undefined;
    // Every misclassified image gets its overlay: those are the ones an engineer must see.
    const misclassified = r.score >= threshold !== (item.label === 1);
    if (galleryPicks.has(i) || (misclassified && options.gallery > 0)) {
      const imageMask = item.maskPath ? await maskAtImageSize(item.maskPath, rgb) : undefined;
      overlayPng = await inspectionOverlay(rgb, r, settings.view, imageMask, 256);
    }
    images.push({
      path: item.path,
      label: item.label,
      defectType: item.defectType,
      score: r.score,
      overlayPng,
      inspectMs,
    });
    options.onProgress?.('test', i + 1, category.test.length);
  }
  // Its onnxruntime sessions (the head's, and a head-stages backbone of its own) end with the run.
  await headInspector?.close();
  const testMs = performance.now() - t1;
  const base = imageMetrics(images, threshold);
  const hasMasks = masks.some((m) => m.some((v) => v > 0));
  const metrics = {
    ...base,
    pixelAuroc: hasMasks ? pixelAuroc(maps, masks) : undefined,
    pro: hasMasks ? pro(maps, masks, 0.3, { width: widths }) : undefined,
    threshold,
    bankPatches,
    timings: {
      fitMs,
      fitPerImageMs: fitMs / Math.max(1, category.train.length),
      inspectPerImageMs: images.reduce((s, im) => s + im.inspectMs, 0) / Math.max(1, images.length),
      testTotalMs: testMs,
      ...(auto ? { autoSelectMs: auto.selectionMs } : {}),
    },
    ...(auto ? { autoConfig: auto } : {}),
    ...(byMode
      ? {
          head: {
            ...byMode.summary(),
            // The head's weight in the combined map and each weight's synthetic validation scores.
            combination: meta.head!.combination,
            ...(meta.head!.stages ? { stages: meta.head!.stages } : {}),
            training: meta.head!.training,
          },
        }
      : {}),
    ...(meta.outliers ? { outliers: meta.outliers } : {}),
  };
  const scores = images.map((im) => ({ path: im.path, label: im.label, score: im.score }));
  fs.writeFileSync(
    path.join(options.out, 'scores.json'),
    JSON.stringify({ images: scores, threshold, thresholdFrom: meta.threshold }, null, 2),
  );
  fs.writeFileSync(path.join(options.out, 'metrics.json'), JSON.stringify(metrics, null, 2));
  const html = renderReport({
    title: `Inspection report: ${category.name}`,
    createdAt: new Date(),
    dataset: category.root,
    model: {
      backbone: meta.model.id,
      stages: meta.model.stages.join(', '),
      canvas: settings.view.resize > 0 ? `${settings.view.resize}px` : `scale ${settings.view.scale}`,
      tiling:
        settings.view.tile > 0 ? `${settings.view.tile}px tiles, ${settings.view.overlap}px overlap` : 'none',
      coreset: `${meta.coreset.method} ${meta.coreset.keptPatches}/${meta.coreset.inputPatches} patches`,
      index: meta.knn.factory,
      threshold: `${threshold.toFixed(4)} (${chosen.method}${meta.thresholdByCategory ? `, ${category.name}'s own` : ''})`,
    },
    threshold,
    images,
    metrics,
    timings: metrics.timings,
    autoConfig: auto,
    outliers: meta.outliers,
  });
  fs.writeFileSync(path.join(options.out, 'report.html'), html);
  return { metrics, scores };
}

/** Ground-truth mask brought onto the canvas exactly as the image was (resize, crop, scale). */
export async function maskToCanvas(
  file: string,
  settings: Pick<FitSettings, 'view'>,
  width: number,
  height: number,
): Promise<Uint8Array> {
  const rgb = await decodeImage(await fs.promises.readFile(file));
  let canvas = await toCanvas(rgb, settings.view);
  // A mask stored at another size than its image (some sets keep them at another resolution) is
  // taken to cover the same frame: resized to the image's canvas, not refused.
  if (canvas.width !== width || canvas.height !== height) canvas = await resizeRgb(canvas, width, height);
  // Defect where the mask is over half its own maximum: 0/255 masks as ever (> 127), and sets that
  // store 0/1 labels too (a fixed 127 found no defect pixel in them).
  let max = 0;
  for (let i = 0; i < rgb.data.length; i += 3) if (rgb.data[i] > max) max = rgb.data[i];
  const out = new Uint8Array(width * height);
  if (max === 0) return out;
  const cut = max / 2;
  for (let i = 0; i < out.length; i++) out[i] = canvas.data[i * 3] > cut ? 1 : 0;
  return out;
}

/** A mask for the overlay's outline, at its image's size (nonzero = defect), whatever size it was stored at. */
async function maskAtImageSize(file: string, image: { width: number; height: number }): Promise<Uint8Array> {
  let mask = await decodeImage(await fs.promises.readFile(file));
  if (mask.width !== image.width || mask.height !== image.height)
    mask = await resizeRgb(mask, image.width, image.height);
  return Uint8Array.from(mask.data.filter((_, j) => j % 3 === 0));
}

/** Defective images first, then good ones, up to `count`, spread over the types. */
function pickGallery(category: Category, count: number): Set<number> {
  const defective = category.test.map((t, i) => ({ t, i })).filter(({ t }) => t.label === 1);
  const good = category.test.map((t, i) => ({ t, i })).filter(({ t }) => t.label === 0);
  const picks = new Set<number>();
  const take = (list: { i: number }[], n: number) => {
    const step = Math.max(1, list.length / Math.max(1, n));
    for (let j = 0; j < list.length && picks.size < count && j / step < n; j += step)
      picks.add(list[Math.floor(j)].i);
  };
  take(defective, Math.ceil(count * 0.75));
  take(good, count - picks.size);
  return picks;
}
