/**
 * The discriminator head's cost in `make bench` (#20): on our own synthetic prints (`lib/synth`),
 * a default bank and a GLASS head are fitted by bench/head-eval.ts (a process of its own, as
 * `make eval` runs it), which times, per test image on the same embeddings, the head in float and
 * INT8 against the bank's k-NN search (best of 5 each). The accuracy on these prints is reported
 * beside it for context only; the head's figures on the shared categories come from `make eval`.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { generateDataset } from '../lib/synth/dataset';
import { spawnNodeService } from '../services/local/processes';

export interface HeadCostOptions {
  trainGood: number;
  testGood: number;
  perDefect: number;
  size: number;
  epochs: number;
  log: (message: string) => void;
}

export const FULL_HEAD: Omit<HeadCostOptions, 'log'> = {
  trainGood: 40,
  testGood: 10,
  perDefect: 3,
  size: 224,
  epochs: 12,
};
export const QUICK_HEAD: Omit<HeadCostOptions, 'log'> = {
  trainGood: 16,
  testGood: 4,
  perDefect: 1,
  size: 224,
  epochs: 3,
};

export interface HeadCostResult {
  data: string;
  trainImages: number;
  testImages: number;
  bankPatches: number;
  headFitSeconds: number;
  msPerImage: { headFloat: number; headInt8: number; knnSearch: number; embed: number; samples: number };
  rows: { mode: string; imageAuroc: number; pixelAuroc: number; pro: number }[];
}

export async function benchHeadCost(o: HeadCostOptions): Promise<HeadCostResult> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'spi-bench-head-'));
  try {
    const data = path.join(dir, 'prints');
    o.log(`head: ${o.trainGood} synthetic ${o.size} px prints to train on`);
    await generateDataset(data, {
      seed: 21,
      size: o.size,
      trainGood: o.trainGood,
      testGood: o.testGood,
      perDefect: o.perDefect,
    });
    const out = path.join(dir, 'out');
    const proc = spawnNodeService('bench/head-eval.ts', {
      name: 'head-eval',
      args: ['--data', data, '--out', out, '--epochs', String(o.epochs), '--time-every', '1'],
    });
    const exit = await proc.waitForExit();
    if (exit.code !== 0)
      throw new Error(`bench/head-eval.ts failed (${JSON.stringify(exit)})\n${proc.tail()}`);
    const r = JSON.parse(fs.readFileSync(path.join(out, 'results.json'), 'utf8')) as {
      trainImages: number;
      testImages: number;
      bank: { patches: number };
      head: { fitMs: number };
      msPerImage: HeadCostResult['msPerImage'];
      rows: HeadCostResult['rows'];
    };
    return {
      data: `lib/synth seed 21: ${o.trainGood} good to train, ${o.testGood} good + ${o.perDefect} per defect type to test, ${o.size} px`,
      trainImages: r.trainImages,
      testImages: r.testImages,
      bankPatches: r.bank.patches,
      headFitSeconds: Math.round(r.head.fitMs / 100) / 10,
      msPerImage: r.msPerImage,
      rows: r.rows,
    };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

export function headCostMarkdown(r: HeadCostResult): string[] {
  const ms = r.msPerImage;
  const f = (v: number) => (Number.isFinite(v) ? v.toFixed(4) : 'n/a');
  return [
    `${r.data}; a default bank of ${r.bankPatches} patches, its head trained in ${r.headFitSeconds} s.`,
    '',
    '| per image, same embeddings (median of ' + ms.samples + ', best of 5 each) | ms | vs k-NN search |',
    '|---|---|---|',
    `| k-NN search (Flat) | ${ms.knnSearch.toFixed(2)} | 1x |`,
    `| head, float (onnxruntime) | ${ms.headFloat.toFixed(2)} | ${(ms.headFloat / ms.knnSearch).toFixed(3)}x |`,
    `| head, INT8 (our QDQ) | ${ms.headInt8.toFixed(2)} | ${(ms.headInt8 / ms.knnSearch).toFixed(3)}x |`,
    `| (backbone embedding, for scale) | ${ms.embed.toFixed(1)} | |`,
    '',
    '| score on these prints (context only) | image AUROC | pixel AUROC | PRO |',
    '|---|---|---|---|',
    ...r.rows.map((x) => `| ${x.mode} | ${f(x.imageAuroc)} | ${f(x.pixelAuroc)} | ${f(x.pro)} |`),
  ];
}
