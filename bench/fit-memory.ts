/**
 * Bounded-memory fits (#18): the fit of 500 and of 5,000 synthetic 512 px prints (tiled) under one
 * memory budget, with the peak resident size and the fit time per image of each, written to
 * <out>/memory-results.json and .md. Nothing is asserted. Each fit runs in a process of its own, so
 * its peak is its own (getrusage's maxRSS, the backbone included); the time is fitBank's (embedding,
 * per-image greedy, spill, coreset, threshold), without the backbone's loading.
 *
 * node --import tsx bench/fit-memory.ts [--counts 500,5000] [--max-memory 640MiB] [--out bench]
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { fileSources, listImages } from '../lib/data/mvtec';
import { generateDataset } from '../lib/synth/dataset';
import { BackbonePool, createExtractor } from '../lib/patchcore/engine';
import { DEFAULT_FIT, FitSettings, fitBank } from '../lib/patchcore/fit';
import { DEFAULT_CORESET } from '../lib/coreset/coreset';
import { DEFAULT_VIEW } from '../lib/image/views';
import { MiB, formatBytes, parseBytes } from '../lib/patchcore/memory-budget';
import { runScript } from './lib/script';

const log = (m: string) => console.error(`[fit-memory] ${m}`);

const FLAGS = {
  counts: { type: 'string', default: '500,5000' },
  'max-memory': { type: 'string', default: '640MiB' },
  out: { type: 'string', default: 'bench' },
  data: { type: 'string', default: 'build/bench-memory/prints' },
  tile: { type: 'string', default: '224' },
  overlap: { type: 'string', default: '32' },
  'per-image': { type: 'string', default: '0.1' },
  'bank-size': { type: 'string', default: '20000' },
  holdout: { type: 'string', default: '0.02' },
  child: { type: 'string' },
} as const;

type Values = ReturnType<typeof parseArgs<{ options: typeof FLAGS }>>['values'];

interface FitFigure {
  images: number;
  seconds: number;
  secondsPerImage: number;
  peakRssBytes: number;
  memory: unknown;
  bankRows: number;
}

function settingsFrom(v: Values, maxBytes: number): FitSettings {
  return {
    ...DEFAULT_FIT,
    name: 'memory-bench',
    view: { ...DEFAULT_VIEW, resize: 0, tile: Number(v.tile), overlap: Number(v.overlap) },
    coreset: { ...DEFAULT_CORESET, size: Number(v['bank-size']), perImage: Number(v['per-image']) },
    holdoutFraction: Number(v.holdout),
    memory: { maxBytes },
  };
}

/** One fit of the first `count` prints, in this process; its figure as JSON on stdout. */
async function child(v: Values, count: number, maxBytes: number): Promise<number> {
  const settings = settingsFrom(v, maxBytes);
  const root = path.join(v.data!, 'train', 'good');
  const files = listImages(root).slice(0, count);
  if (files.length < count) throw new Error(`${root} has ${files.length} prints, not ${count}`);
  const pool = new BackbonePool();
  try {
    const extractor = await createExtractor(pool, {
      model: 'mobilenet_v2-imagenet',
      view: settings.view,
      projectionDim: 0,
      projectionSeed: settings.projectionSeed,
    });
    let last = 0;
    const t0 = performance.now();
    const fitted = await fitBank(extractor, fileSources(files, root), settings, {
      onProgress: (stage, done, total) => {
        if (performance.now() - last < 30_000 && done < total) return;
        last = performance.now();
        log(`${count}: ${stage} ${done}/${total}`);
      },
    });
    const seconds = (performance.now() - t0) / 1000;
    const figure: FitFigure = {
      images: count,
      seconds,
      secondsPerImage: seconds / count,
      peakRssBytes: process.resourceUsage().maxRSS * 1024,
      memory: fitted.meta.memory,
      bankRows: fitted.vectors.length / fitted.dim,
    };
    console.log(JSON.stringify(figure));
    return 0;
  } finally {
    await pool.close();
  }
}

async function main(): Promise<number> {
  const { values: v } = parseArgs({ options: FLAGS });
  const maxBytes = parseBytes(v['max-memory']!);
  if (!maxBytes) throw new Error(`--max-memory: not a size: ${v['max-memory']}`);
  if (v.child) return child(v, Number(v.child), maxBytes);
  const counts = v.counts!.split(',').map(Number);
  log(`making ${Math.max(...counts)} prints under ${v.data} (once; kept for the next run)`);
  await generateDataset(v.data!, {
    seed: 1,
    size: 512,
    trainGood: Math.max(...counts),
    testGood: 0,
    perDefect: 0,
  });
  const fits: FitFigure[] = [];
  for (const count of counts) {
    log(`fit of ${count} prints under ${formatBytes(maxBytes)}`);
    const args = process.argv.slice(2);
    const run = spawnSync(
      process.execPath,
      [...process.execArgv, __filename, ...args, '--child', String(count)],
      { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 16 * MiB },
    );
    if (run.status !== 0) throw new Error(`the fit of ${count} prints failed (exit ${run.status})`);
    const figure = JSON.parse(run.stdout.trim().split('\n').pop()!) as FitFigure;
    log(
      `${count}: ${figure.secondsPerImage.toFixed(3)} s/image, peak RSS ${formatBytes(figure.peakRssBytes)}`,
    );
    fits.push(figure);
  }
  const [small, large] = [fits[0], fits[fits.length - 1]];
  const results = {
    createdAt: new Date().toISOString(),
    machine: { cpus: os.cpus().length, totalMemoryBytes: os.totalmem(), loadAverage: os.loadavg() },
    settings: { ...settingsFrom(v, maxBytes), name: undefined },
    fits,
    peakRssRatio: large.peakRssBytes / small.peakRssBytes,
    timePerImageRatio: large.secondsPerImage / small.secondsPerImage,
    underBudget: fits.every((f) => f.peakRssBytes <= maxBytes),
  };
  fs.mkdirSync(v.out!, { recursive: true });
  fs.writeFileSync(path.join(v.out!, 'memory-results.json'), JSON.stringify(results, null, 2) + '\n');
  fs.writeFileSync(path.join(v.out!, 'memory-results.md'), markdown(results, maxBytes));
  log(`written to ${path.join(v.out!, 'memory-results.{json,md}')}`);
  return 0;
}

function markdown(
  r: { fits: FitFigure[]; peakRssRatio: number; timePerImageRatio: number; underBudget: boolean },
  maxBytes: number,
): string {
  const rows = r.fits.map((f) => {
    const m = f.memory as { spilled: boolean; spilledBytes: number; chunks: number } | undefined;
    const spill = m?.spilled ? `${formatBytes(m.spilledBytes)} in ${m.chunks} chunks` : 'none';
    return `| ${f.images} | ${formatBytes(f.peakRssBytes)} | ${f.secondsPerImage.toFixed(3)} | ${f.seconds.toFixed(0)} | ${spill} | ${f.bankRows} |`;
  });
  return [
    `# Bounded-memory fit (budget ${formatBytes(maxBytes)})`,
    '',
    '| prints | peak RSS | s / image | fit s | spilled | bank rows |',
    '|---|---|---|---|---|---|',
    ...rows,
    '',
    `Peak RSS ratio (largest / smallest): ${r.peakRssRatio.toFixed(2)} (target <= 1.2); ` +
      `time per image ratio: ${r.timePerImageRatio.toFixed(2)} (target <= 1.3); ` +
      `all under the budget: ${r.underBudget ? 'yes' : 'no'}.`,
    '',
  ].join('\n');
}

runScript(main);
