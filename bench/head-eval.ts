/**
 * The discriminator head's figures (issue #20): on an MVTec-layout category, a bank fitted with the
 * given engine flags (default: the engine defaults, --auto off) and a GLASS head beside it, trained
 * on train/good only; then test/ scored by the bank alone, the head alone (float and INT8) and the
 * two combined, with image AUROC, pixel AUROC and PRO, the training time, and per image the head's
 * cost (float, INT8) against the k-NN search's on the same embeddings.
 *
 *   node --import tsx bench/head-eval.ts --data ../shared/data/mvtec_ad/bottle --out eval-results/head-bottle
 *       [--limit-train N] [--epochs N] [--steps N] [engine flags as spi eval takes them]
 *
 * --noisy N plants N defective test images among the good training images (and out of the test
 * set); --noisy N --noisy-baseline only takes them out of the test set, for the clean comparison.
 * --head-stages A,B trains the head on those stages (spi fit's flag); --validation-only stops after
 * the fit and writes the synthetic validation's tables (validation.json), reading no test image.
 *
 * Writes <out>/results.json and <out>/results.md. Nothing here is asserted by a test; no setting of
 * the head was chosen on these test images (docs/glass-head.md says where each was chosen).
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { fileSources, readCategory } from '../lib/data/mvtec';
import { decodeImage } from '../lib/image/decode';
import { maskToCanvas } from '../lib/eval/evaluate';
import { pixelAuroc, pro, rocAuc } from '../lib/eval/metrics';
import { BackbonePool, createExtractor } from '../lib/patchcore/engine';
import { completeMeta, fitBank, LocalSearcher } from '../lib/patchcore/fit';
import { Inspector, scorePatches } from '../lib/patchcore/inspector';
import { DEFAULT_HEAD_FIT, HeadInspector, fitHead } from '../lib/head/head-bank';
import { HeadSession } from '../lib/head/onnx';
import { ownHeadExtractor, parseHeadStages } from '../lib/head/head-embedding';
import { ENGINE_FLAGS, extractorFrom, fitFrom } from '../services/cli/options';
import { Progress } from '../services/cli/progress';

const { values } = parseArgs({
  options: {
    ...ENGINE_FLAGS,
    data: { type: 'string' },
    out: { type: 'string' },
    'limit-train': { type: 'string', default: '0' },
    'limit-test': { type: 'string', default: '0' },
    epochs: { type: 'string' },
    steps: { type: 'string' },
    'local-images': { type: 'string' },
    noisy: { type: 'string', default: '0' },
    // With --noisy N: leave the N images out of the test set only (the clean baseline on the same test set).
    'noisy-baseline': { type: 'boolean', default: false },
    // Time the head and the search on every N-th test image (best of 5 each).
    'time-every': { type: 'string', default: '4' },
    // The head's own stages (--head-stages of spi fit); default: the bank's embedding.
    'head-stages': { type: 'string' },
    // Stop after the fit: write the synthetic validation's tables only (no test image is read).
    'validation-only': { type: 'boolean', default: false },
  },
});

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

async function main(): Promise<void> {
  if (!values.data || !values.out) throw new Error('--data and --out are required');
  const category = readCategory(values.data);
  const limitTrain = Number(values['limit-train']);
  const limitTest = Number(values['limit-test']);
  // --noisy N: N defective test images (spread over the defect types) join the good training images
  // and leave the test set (robustness to a contaminated good folder, as in the real-folders issue).
  const noisy = Number(values.noisy);
  const defective = category.test.filter((t) => t.label === 1);
  const planted = new Set(
    Array.from({ length: noisy }, (_, i) => defective[Math.floor(((i + 0.5) * defective.length) / noisy)]),
  );
  const trainFiles = [
    ...(limitTrain > 0 ? category.train.slice(0, limitTrain) : category.train),
    ...(values['noisy-baseline'] ? [] : [...planted].map((t) => t.absPath)),
  ];
  category.test = category.test.filter((t) => !planted.has(t));
  const test =
    limitTest > 0
      ? category.test.filter((_, i) => i % Math.ceil(category.test.length / limitTest) === 0)
      : category.test;
  const pool = new BackbonePool();
  const progress = new Progress();
  try {
    const extractor = await createExtractor(pool, extractorFrom(values));
    const settings = fitFrom(values, category.name, [category.name]);
    const images = fileSources(trainFiles, category.root);
    const onProgress = (s: string, d: number, t: number) => progress.update(s, d, t);
    const t0 = performance.now();
    const bank = await fitBank(extractor, images, settings, { keepHeldOutMaps: true, onProgress });
    const bankFitMs = performance.now() - t0;
    const train = {
      ...DEFAULT_HEAD_FIT.train,
      ...(values.epochs ? { epochs: Number(values.epochs) } : {}),
      ...(values.steps ? { stepsPerEpoch: Number(values.steps) } : {}),
    };
    const epochs: string[] = [];
    const t1 = performance.now();
    const head = await fitHead(extractor, bank, images, settings, {
      ...DEFAULT_HEAD_FIT,
      ...parseHeadStages(values['head-stages']),
      train,
      ...(values['local-images'] ? { localImages: Number(values['local-images']) } : {}),
      onProgress,
      onEpoch: (r) =>
        epochs.push(
          `epoch ${r.epoch}/${r.epochs} loss ${r.loss.toFixed(4)} validation ${r.validation.toFixed(4)} (best ${r.best.toFixed(4)}) ${(r.elapsedMs / 1000).toFixed(0)} s, ~${(r.etaMs / 1000).toFixed(0)} s left`,
        ),
    });
    const headFitMs = performance.now() - t1;
    progress.stop();
    console.log(epochs.join('\n'));
    const meta = completeMeta({ ...bank.meta, head: head.meta }, bank.dim, bank.index.size);
    const bankInspector = new Inspector(meta, extractor, new LocalSearcher(bank.index));
    if (values['validation-only']) {
      // The synthetic validation's verdict only (train/good; no test image read): variants are
      // judged on it before any test figure is made.
      const v = { bank: { patches: bank.index.size, dim: bank.dim }, head: head.meta };
      fs.mkdirSync(values.out, { recursive: true });
      fs.writeFileSync(path.join(values.out, 'validation.json'), JSON.stringify(v, null, 2));
      console.log(
        JSON.stringify({ combination: head.meta.combination, epochs: head.meta.training.epochs }, null, 1),
      );
      return;
    }
    const floatSession = await HeadSession.create(head.float, head.meta.dim);
    const int8Session = await HeadSession.create(head.int8, head.meta.dim);
    const own = head.meta.stages ? await ownHeadExtractor(extractor, head.meta.stages) : undefined;
    const inspector = new HeadInspector(bankInspector, extractor, floatSession, 'combined', undefined, own);
    const modes = ['bank', 'head', 'combined', 'head-int8'] as const;
    const maps: Record<string, Float32Array[]> = Object.fromEntries(modes.map((m) => [m, []]));
    const scores: Record<string, number[]> = Object.fromEntries(modes.map((m) => [m, []]));
    const masks: Uint8Array[] = [];
    const widths: number[] = [];
    const cost = {
      float: [] as number[],
      int8: [] as number[],
      search: [] as number[],
      embed: [] as number[],
    };
    for (const [i, item] of test.entries()) {
      const image = await decodeImage(await fs.promises.readFile(item.absPath));
      const all = await inspector.inspectAll(image);
      const embedding = all.headEmbedding;
      const int8Scores = await int8Session.score(embedding.vectors);
      const int8 = scorePatches(meta, embedding, int8Scores, image, Infinity);
      for (const [m, r] of [
        ['bank', all.bank],
        ['head', all.head],
        ['combined', all.combined],
        ['head-int8', int8],
      ] as const) {
        maps[m].push(r.map);
        scores[m].push(r.score);
      }
      widths.push(all.bank.canvasWidth);
      masks.push(
        item.maskPath
          ? await maskToCanvas(item.maskPath, settings, all.bank.canvasWidth, all.bank.canvasHeight)
          : new Uint8Array(all.bank.map.length),
      );
      // Per-image cost on the same embeddings, best of 5 each (the machine is shared).
      if (i % Number(values['time-every']) === 0) {
        const time = async (f: () => Promise<unknown>) => {
          let best = Infinity;
          for (let k = 0; k < 5; k++) {
            const s = performance.now();
            await f();
            best = Math.min(best, performance.now() - s);
          }
          return best;
        };
        cost.float.push(await time(() => floatSession.score(embedding.vectors)));
        cost.int8.push(await time(() => int8Session.score(embedding.vectors)));
        cost.search.push(await time(() => bank.index.search(all.embedding.vectors, meta.score.k)));
        cost.embed.push(all.timingsMs.embed);
      }
      progress.update('test', i + 1, test.length);
    }
    progress.stop();
    const labels = test.map((t) => t.label);
    const rows = modes.map((m) => ({
      mode: m,
      imageAuroc: rocAuc(scores[m], labels),
      pixelAuroc: pixelAuroc(maps[m], masks),
      pro: pro(maps[m], masks, 0.3, { width: widths }),
    }));
    const t = head.meta.training;
    const result = {
      measuredAt: new Date().toISOString(),
      command: `node --import tsx bench/head-eval.ts ${process.argv.slice(2).join(' ')}`,
      machine: { cpus: os.cpus().length, loadAverage: os.loadavg() },
      data: values.data,
      trainImages: trainFiles.length,
      plantedDefective: [...planted].map((t) => t.path),
      testImages: test.length,
      bank: {
        patches: bank.index.size,
        dim: bank.dim,
        fitMs: Math.round(bankFitMs),
        view: bank.meta.view,
        stages: bank.meta.model.stages,
      },
      head: {
        fitMs: Math.round(headFitMs),
        embedMs: Math.round(t.embedMs),
        trainMs: Math.round(t.trainMs),
        epochsRun: t.epochs.length,
        bestEpoch: t.bestEpoch,
        stoppedEarly: t.stoppedEarly,
        realPatches: t.realPatches,
        localPatches: t.localPatches,
        localByKind: t.localByKind,
        validation: t.validation,
        config: t.config,
        epochs: t.epochs,
        bytes: { float: head.float.length, int8: head.int8.length },
        thresholds: head.meta.thresholds,
        combination: head.meta.combination,
      },
      msPerImage: {
        headFloat: median(cost.float),
        headInt8: median(cost.int8),
        knnSearch: median(cost.search),
        embed: median(cost.embed),
        samples: cost.float.length,
      },
      rows,
    };
    fs.mkdirSync(values.out, { recursive: true });
    fs.writeFileSync(path.join(values.out, 'results.json'), JSON.stringify(result, null, 2) + '\n');
    const f = (v: number) => (Number.isFinite(v) ? v.toFixed(4) : 'n/a');
    const md = [
      `# Discriminator head: ${category.name} (${result.measuredAt})`,
      '',
      `\`${result.command}\`; ${trainFiles.length} training images, ${test.length} test images; load average ${os
        .loadavg()
        .map((x) => x.toFixed(1))
        .join(' ')} on ${os.cpus().length} cores.`,
      '',
      '| score | image AUROC | pixel AUROC | PRO |',
      '|---|---|---|---|',
      ...rows.map((r) => `| ${r.mode} | ${f(r.imageAuroc)} | ${f(r.pixelAuroc)} | ${f(r.pro)} |`),
      '',
      `Bank fit ${(bankFitMs / 1000).toFixed(1)} s (${bank.index.size} patches x ${bank.dim}); head ${(headFitMs / 1000).toFixed(1)} s in all: embedding and synthetic defects ${(t.embedMs / 1000).toFixed(1)} s, training ${(t.trainMs / 1000).toFixed(1)} s, ${t.epochs.length} epochs (best ${t.bestEpoch}${t.stoppedEarly ? ', stopped early' : ''}).`,
      '',
      `Combined map's head weight ${head.meta.combination.headWeight}, chosen on the synthetic validation set (score by head weight: ${head.meta.combination.table.map((r) => `${r.headWeight}: ${r.score.toFixed(4)} (image ${r.imageAuroc.toFixed(4)}, pixel ${r.pixelAuroc.toFixed(4)})`).join('; ')}).`,
      '',
      `Per image (median of ${cost.float.length}, best of 5 each): head float ${result.msPerImage.headFloat.toFixed(2)} ms, head INT8 ${result.msPerImage.headInt8.toFixed(2)} ms, k-NN search ${result.msPerImage.knnSearch.toFixed(2)} ms (backbone embedding ${result.msPerImage.embed.toFixed(1)} ms).`,
      '',
    ].join('\n');
    fs.writeFileSync(path.join(values.out, 'results.md'), md);
    console.log(md);
    await floatSession.close();
    await int8Session.close();
  } finally {
    progress.stop();
    await pool.close();
  }
}

void main();
