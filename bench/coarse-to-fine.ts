/**
 * Coarse-to-fine on print sheets: what scoring a sheet at reduced scale first, and at full
 * resolution only the tiles whose coarse score is near or over the coarse threshold, costs in
 * recall and saves in time (lib/patchcore/coarse-to-fine.ts chooses the tiles).
 *
 * node --import tsx bench/coarse-to-fine.ts [--data <mvtec-category>] [--fine <view json>]
 *   [--coarse <view json>] [--index F] [--ratio R] [--per-image R] [--max-test N] [--out file.json]
 *
 * Two banks are fitted on the same good images, one per scale, each with its threshold from its
 * held-out good images (as `spi fit` sets it). Every test image is inspected both ways in full; the
 * coarse-to-fine verdict is then read off for several margins (fine tiles are re-scored where the
 * coarse map reaches margin x coarse threshold): its score is the fine map's maximum over those tiles.
 * Its time is estimated as the coarse inspection plus the chosen share of the fine embedding and
 * search (both linear in tiles) plus the fine map: the engine has no partial-sheet path yet.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import { parseArgs } from 'node:util';
import { fileSources } from '../lib/data/mvtec';
import { decodeImage } from '../lib/image/decode';
import { ViewConfig, tileGrid } from '../lib/image/views';
import { rocAuc } from '../lib/eval/metrics';
import { BackbonePool, createExtractor } from '../lib/patchcore/engine';
import { DEFAULT_FIT, fitBank, fittedInspector } from '../lib/patchcore/fit';
import { Inspection } from '../lib/patchcore/inspector';
import { scoreOfTiles, tilesToRescore } from '../lib/patchcore/coarse-to-fine';
import { resolveKnn } from '../lib/knn/index';
import { DEFAULT_CORESET } from '../lib/coreset/coreset';
import { FULL_OPTIONS, SHEET_VIEW, categoryOf, spread } from './search-options';
import { mean, round } from './stats';
import { runScript } from './lib/script';

export interface CoarseToFineOptions {
  data: string | null;
  synth: typeof FULL_OPTIONS.synth;
  fine: ViewConfig;
  coarse: ViewConfig;
  margins: number[];
  holdoutFraction: number;
  maxTest: number;
  /** Index of both banks (a factory string or preset, e.g. hnsw). */
  index: string;
  /** Coreset of both banks (DEFAULT_CORESET's ratio; per-image pre-reduction for many patches). */
  coreset: { ratio: number; perImage: number };
  log: (message: string) => void;
}

export const FULL_C2F: Omit<CoarseToFineOptions, 'log'> = {
  data: null,
  // The search-options print job's test sheets, with more good sheets for the two thresholds.
  synth: { ...FULL_OPTIONS.synth, trainGood: 10 },
  fine: SHEET_VIEW,
  coarse: { ...SHEET_VIEW, scale: SHEET_VIEW.scale / 2 },
  margins: [0.5, 0.7, 0.8, 0.9, 1],
  holdoutFraction: 0.2,
  maxTest: 0,
  index: 'Flat',
  coreset: { ratio: DEFAULT_CORESET.ratio, perImage: 0 },
};

export interface MarginRow {
  margin: number;
  /** Mean share of the fine tiles re-scored per image (good and defective). */
  tilesRescored: number;
  /** Defective images flagged, of all defective images, at the fine threshold. */
  recall: number;
  /** Good images flagged, of all good images. */
  falseAlarms: number;
  imageAuroc: number;
  /** Defective images the full fine pass flags and coarse-to-fine misses. */
  lostVsFine: number;
  estimatedMs: number;
}

export interface CoarseToFineResult {
  data: string;
  index: string;
  fine: ViewConfig;
  coarse: ViewConfig;
  thresholds: { fine: number; coarse: number };
  images: { good: number; defective: number };
  tilesPerImage: { fine: number; coarse: number };
  /** Mean in-process ms per image: the full fine pass, the coarse pass, and the fine pass's parts. */
  ms: { fine: number; coarse: number; fineEmbed: number; fineSearch: number; fineMap: number };
  /** The full fine pass and the coarse pass alone, at their own thresholds. */
  fineOnly: { recall: number; falseAlarms: number; imageAuroc: number };
  coarseOnly: { recall: number; falseAlarms: number; imageAuroc: number };
  rows: MarginRow[];
  machine: { cores: number; loadBefore: number; loadAfter: number };
}

interface Pair {
  label: 0 | 1;
  fine: Inspection;
  coarse: Inspection;
  fineMs: number;
  coarseMs: number;
}

export async function benchCoarseToFine(
  opts: Partial<CoarseToFineOptions> = {},
): Promise<CoarseToFineResult> {
  const o: CoarseToFineOptions = { ...FULL_C2F, log: () => undefined, ...opts };
  const loadBefore = os.loadavg()[0];
  const category = await categoryOf({ data: o.data, synth: o.synth, log: o.log });
  const pool = new BackbonePool();
  try {
    const train = fileSources(category.train, category.root);
    const fit = async (view: ViewConfig) => {
      const extractor = await createExtractor(pool, {
        model: 'mobilenet_v2-imagenet',
        view,
        projectionDim: 0,
        projectionSeed: 7,
      });
      o.log(`coarse-to-fine: fitting at scale ${view.scale} on ${train.length} good images`);
      const settings = {
        ...DEFAULT_FIT,
        name: 'c2f',
        view,
        holdoutFraction: o.holdoutFraction,
        knn: resolveKnn({ factory: o.index }),
        coreset: { ...DEFAULT_CORESET, ...o.coreset },
      };
      return fittedInspector(await fitBank(extractor, train, settings), extractor);
    };
    const fine = await fit(o.fine);
    const coarse = await fit(o.coarse);
    const tests = spread(category.test, o.maxTest);
    o.log(`coarse-to-fine: inspecting ${tests.length} test images at both scales`);
    const pairs: Pair[] = [];
    for (const item of tests) {
      const rgb = await decodeImage(fs.readFileSync(item.absPath));
      const t0 = performance.now();
      const f = await fine.inspectImage(rgb);
      const t1 = performance.now();
      const c = await coarse.inspectImage(rgb);
      pairs.push({
        label: item.label,
        fine: f,
        coarse: c,
        fineMs: t1 - t0,
        coarseMs: performance.now() - t1,
      });
    }
    const tf = fine.meta.threshold.value;
    const tc = coarse.meta.threshold.value;
    const labels = pairs.map((p) => p.label);
    const verdicts = (scores: number[], t: number) => ({
      recall: round(share(scores, labels, 1, t), 4),
      falseAlarms: round(share(scores, labels, 0, t), 4),
      imageAuroc: round(rocAuc(scores.map(finite), labels), 4),
    });
    const fineScores = pairs.map((p) => p.fine.score);
    const p0 = pairs[0].fine;
    const fineTiles = tileGrid(p0.canvasWidth, p0.canvasHeight, o.fine);
    const ms = {
      fine: round(mean(pairs.map((p) => p.fineMs)), 1),
      coarse: round(mean(pairs.map((p) => p.coarseMs)), 1),
      fineEmbed: round(mean(pairs.map((p) => p.fine.timingsMs.embed)), 1),
      fineSearch: round(mean(pairs.map((p) => p.fine.timingsMs.search)), 1),
      fineMap: round(mean(pairs.map((p) => p.fine.timingsMs.score)), 1),
    };
    const rows = o.margins.map((margin): MarginRow => {
      const chosen = pairs.map((p) =>
        tilesToRescore(
          { map: p.coarse.map, width: p.coarse.canvasWidth, height: p.coarse.canvasHeight },
          fineTiles,
          { width: p.fine.canvasWidth, height: p.fine.canvasHeight },
          margin * tc,
        ),
      );
      const scores = pairs.map((p, i) =>
        scoreOfTiles(
          { map: p.fine.map, width: p.fine.canvasWidth, height: p.fine.canvasHeight },
          fineTiles,
          chosen[i],
        ),
      );
      const tilesRescored = mean(chosen.map((c) => c.length / fineTiles.length));
      const lost = pairs.filter((p, i) => p.label === 1 && fineScores[i] >= tf && scores[i] < tf).length;
      return {
        margin,
        tilesRescored: round(tilesRescored, 3),
        ...verdicts(scores, tf),
        lostVsFine: lost,
        estimatedMs: round(ms.coarse + tilesRescored * (ms.fineEmbed + ms.fineSearch) + ms.fineMap, 1),
      };
    });
    return {
      data: o.data ?? `synthetic print job: ${JSON.stringify(o.synth)}`,
      index: fine.meta.knn.factory,
      fine: o.fine,
      coarse: o.coarse,
      thresholds: { fine: round(tf, 4), coarse: round(tc, 4) },
      images: { good: labels.filter((l) => l === 0).length, defective: labels.filter((l) => l === 1).length },
      tilesPerImage: {
        fine: fineTiles.length,
        coarse: tileGrid(pairs[0].coarse.canvasWidth, pairs[0].coarse.canvasHeight, o.coarse).length,
      },
      ms,
      fineOnly: verdicts(fineScores, tf),
      coarseOnly: verdicts(
        pairs.map((p) => p.coarse.score),
        tc,
      ),
      rows,
      machine: { cores: os.cpus().length, loadBefore: round(loadBefore), loadAfter: round(os.loadavg()[0]) },
    };
  } finally {
    await pool.close();
  }
}

/** Share of the images with this label whose score reaches t. */
function share(scores: number[], labels: number[], label: number, t: number): number {
  const of = scores.filter((_, i) => labels[i] === label);
  return of.length === 0 ? NaN : of.filter((s) => s >= t).length / of.length;
}

/** A sheet the coarse pass cleared entirely scores below every other. */
function finite(s: number): number {
  return Number.isFinite(s) ? s : -1e9;
}

export function coarseToFineMarkdown(r: CoarseToFineResult): string[] {
  const pct = (x: number) => `${round(100 * x, 1)} %`;
  return [
    `Data: ${r.data}; fine scale ${r.fine.scale} (${r.tilesPerImage.fine} tiles), coarse scale ${r.coarse.scale} (${r.tilesPerImage.coarse} tiles); index ${r.index};`,
    `${r.images.good} good and ${r.images.defective} defective test images; thresholds fine ${r.thresholds.fine}, coarse ${r.thresholds.coarse}`,
    `(each from its bank's held-out good images); load average ${r.machine.loadBefore} -> ${r.machine.loadAfter} on ${r.machine.cores} cores.`,
    '',
    `Full fine pass: ${r.ms.fine} ms per image (embed ${r.ms.fineEmbed}, search ${r.ms.fineSearch}, map ${r.ms.fineMap}); coarse pass: ${r.ms.coarse} ms.`,
    `Fine alone: recall ${pct(r.fineOnly.recall)}, false alarms ${pct(r.fineOnly.falseAlarms)}, image AUROC ${r.fineOnly.imageAuroc}.`,
    `Coarse alone: recall ${pct(r.coarseOnly.recall)}, false alarms ${pct(r.coarseOnly.falseAlarms)}, image AUROC ${r.coarseOnly.imageAuroc}.`,
    '',
    '| margin | fine tiles re-scored | recall | false alarms | image AUROC | defects lost vs fine | est. ms per image |',
    '|---|---|---|---|---|---|---|',
    ...r.rows.map(
      (x) =>
        `| ${x.margin} | ${pct(x.tilesRescored)} | ${pct(x.recall)} | ${pct(x.falseAlarms)} | ${x.imageAuroc} | ${x.lostVsFine} | ${x.estimatedMs} |`,
    ),
  ];
}

async function main(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      data: { type: 'string' },
      out: { type: 'string' },
      fine: { type: 'string' },
      coarse: { type: 'string' },
      'max-test': { type: 'string' },
      index: { type: 'string', default: 'Flat' },
      ratio: { type: 'string' },
      'per-image': { type: 'string' },
    },
    strict: true,
  });
  const view = (json: string | undefined, base: ViewConfig) =>
    json ? { ...base, ...(JSON.parse(json) as Partial<ViewConfig>) } : base;
  const result = await benchCoarseToFine({
    data: values.data ?? null,
    fine: view(values.fine, FULL_C2F.fine),
    coarse: view(values.coarse, FULL_C2F.coarse),
    maxTest: Number(values['max-test'] ?? 0),
    index: values.index!,
    coreset: {
      ratio: Number(values.ratio ?? FULL_C2F.coreset.ratio),
      perImage: Number(values['per-image'] ?? 0),
    },
    log: (m) => console.log(`[bench] ${m}`),
  });
  if (values.out) fs.writeFileSync(values.out, `${JSON.stringify(result, null, 2)}\n`);
  console.log(coarseToFineMarkdown(result).join('\n'));
  return 0;
}

if (require.main === module) runScript(() => main(process.argv.slice(2)));
