/** Markdown tables for the backbone benchmark. */
import { AccuracyRow } from './accuracy';
import { BackboneBenchRow, SettingsRow } from './speed';

function table(head: string[], rows: (string | number)[][]): string {
  return [
    `| ${head.join(' | ')} |`,
    `| ${head.map(() => '---').join(' | ')} |`,
    ...rows.map((r) => `| ${r.join(' | ')} |`),
  ].join('\n');
}

const f = (n: number | undefined, d = 2) => (n === undefined || Number.isNaN(n) ? 'n/a' : n.toFixed(d));

export function speedTable(rows: BackboneBenchRow[]): string {
  return table(
    [
      'model',
      'variant',
      'input',
      'ms p50',
      'ms p99',
      'img/s c1',
      'img/s c4',
      'GFLOPs',
      'MB',
      'emb. ch',
      'x full',
      'x cut',
    ],
    rows.map((r) => [
      r.modelId,
      r.variant,
      r.inputSize.join('x'),
      f(r.p50Ms),
      f(r.p99Ms),
      f(r.imagesPerSecondC1, 1),
      f(r.imagesPerSecondC4, 1),
      f(r.flops / 1e9, 3),
      f(r.bytes / 1e6),
      r.embeddingChannels ?? '-',
      f(r.speedupVsFull),
      f(r.speedupVsCut),
    ]),
  );
}

export function settingsTable(rows: SettingsRow[]): string {
  return table(
    ['model', 'optimisation', 'intra-op threads', 'mem arena', 'ms p50', 'ms p99'],
    rows.map((r) => [
      r.modelId,
      r.graphOptimizationLevel,
      r.intraOpNumThreads,
      r.enableCpuMemArena ? 'on' : 'off',
      f(r.p50Ms),
      f(r.p99Ms),
    ]),
  );
}

export function accuracyTable(rows: AccuracyRow[]): string {
  return table(
    ['category', 'flags', 'variant', 'model', 'image AUROC', 'pixel AUROC', 'inspect ms/img', 'minutes'],
    rows.map((r) => [
      r.category,
      r.flags || '-',
      r.variant,
      r.model,
      f(r.imageAuroc, 4),
      f(r.pixelAuroc, 4),
      f(r.inspectMsPerImage, 1),
      f(r.minutes, 1),
    ]),
  );
}
