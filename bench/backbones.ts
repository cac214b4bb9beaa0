/**
 * Backbone speed benchmark: full-depth float network (the "dense" baseline) vs the cut backbone,
 * INT8 (random and nominal calibration), channel-pruned and pruned + INT8, on this machine's CPU.
 * Optionally (--accuracy) the image AUROC each variant costs, through the real engine.
 *
 * node --import tsx bench/backbones.ts --out bench/backbones.json
 *   [--backbones mobilenet_v2-imagenet,inception_v3-imagenet] [--variants a,b] [--runs 200]
 *   [--nominal <folder>] [--count 32] [--method minmax|percentile] [--rebuild] [--no-settings]
 *   [--accuracy [--categories dir,dir]]
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { DEFAULT_MODELS_DIR } from '../models/registry';
import { ortSessionOptions, sessionSettingsFromEnv } from '../lib/backbone/backbone';
import { CalibrationMethod } from '../models/quantize/ranges';
import { AccuracyRow, imageAuroc } from './lib/accuracy';
import { accuracyTable, settingsTable, speedTable } from './lib/format';
import { BackboneBenchRow, SettingsRow, timeSettings, timeVariants } from './lib/speed';
import {
  ALL_VARIANTS,
  VariantKind,
  VariantOptions,
  prepareForJob,
  preparePrunedCompensatedFor,
  prepareVariant,
  variantApplies,
} from './lib/variants';

export type { BackboneBenchRow } from './lib/speed';

const SHARED_DATA = path.resolve(__dirname, '../../shared/data');

export interface BenchBackbonesOptions {
  backbones: string[];
  variants: VariantKind[];
  /** Timed runs per variant at batch 1 (inception gets half: it is ~10x slower). */
  runs: number;
  warmup: number;
  concurrency: number;
  modelsDir: string;
  nominal: string;
  calibrationCount: number;
  method: CalibrationMethod;
  rebuild: boolean;
  settings: boolean;
  /** Accuracy variants to evaluate (default all). */
  accuracyVariants?: string[];
  log: (message: string) => void;
}

export const DEFAULT_BENCH: BenchBackbonesOptions = {
  backbones: ['mobilenet_v2-imagenet', 'inception_v3-imagenet'],
  variants: ALL_VARIANTS,
  runs: 200,
  warmup: 5,
  concurrency: 4,
  modelsDir: DEFAULT_MODELS_DIR,
  nominal: path.join(SHARED_DATA, 'mvtec_ad/bottle'),
  calibrationCount: 32,
  method: 'minmax',
  rebuild: false,
  settings: true,
  log: (m) => console.log(`[bench] ${m}`),
};

function variantOptions(o: BenchBackbonesOptions): VariantOptions {
  return {
    modelsDir: o.modelsDir,
    nominal: o.nominal,
    calibrationCount: o.calibrationCount,
    method: o.method,
    rebuild: o.rebuild,
    log: o.log,
  };
}

export async function benchBackbones(opts: Partial<BenchBackbonesOptions> = {}): Promise<BackboneBenchRow[]> {
  return (await benchBackbonesFull(opts)).rows;
}

export async function benchBackbonesFull(
  opts: Partial<BenchBackbonesOptions> = {},
): Promise<{ rows: BackboneBenchRow[]; settings: SettingsRow[] }> {
  const o = { ...DEFAULT_BENCH, ...opts };
  const rows: BackboneBenchRow[] = [];
  const settings: SettingsRow[] = [];
  for (const backbone of o.backbones) {
    const variants = [];
    for (const kind of o.variants.filter((k) => variantApplies(backbone, k)))
      variants.push(await prepareVariant(backbone, kind, variantOptions(o)));
    const runs = backbone.startsWith('inception') ? Math.max(10, Math.round(o.runs / 2)) : o.runs;
    o.log(`${backbone}: timing ${variants.length} variants, ${runs} runs each`);
    rows.push(
      ...(await timeVariants(
        backbone,
        variants,
        {
          runs,
          warmup: o.warmup,
          concurrency: o.concurrency,
          rounds: 10,
          // The engine's own session settings (optimisation level all, no spinning threads).
          session: ortSessionOptions(sessionSettingsFromEnv()),
        },
        o.log,
      )),
    );
    if (o.settings && !backbone.startsWith('inception')) {
      const picked = variants.filter((v) => v.kind === 'cut-f32' || v.kind === 'cut-int8-randn');
      o.log(`${backbone}: session settings on ${picked.map((v) => v.id).join(', ')}`);
      settings.push(...(await timeSettings(picked, Math.max(10, Math.round(o.runs / 2)))));
    }
  }
  return { rows, settings };
}

/**
 * DeepPCB boards are 640 px with defects a few pixels wide: resized to 224 the engine is at chance
 * for every model, so they are evaluated as `make eval` does (eval-suite's deeppcb-tiled: full
 * resolution in mirrored tiles, the stride-4 stages, a per-board coreset first). The stages are
 * MobileNetV2's; other backbones keep the tiling with their own stages.
 */
function categoryFlags(dir: string, backbone: string): string[] {
  if (!/deeppcb/.test(dir)) return [];
  const tiled = ['--resize', '0', '--tile', '224', '--overlap', '32', '--pad', '16'];
  const coreset = ['--ratio', '0.0025', '--coreset-per-image', '0.05'];
  return backbone.startsWith('mobilenet_v2')
    ? [...tiled, '--stages', 'block_2_add,block_5_add', ...coreset]
    : [...tiled, ...coreset];
}

/** Image AUROC of float vs INT8 (both calibrations) vs pruned, per category; --variants filters them. */
export async function benchAccuracy(
  backbone: string,
  categories: string[],
  o: BenchBackbonesOptions,
  outDir: string,
): Promise<AccuracyRow[]> {
  const rows: AccuracyRow[] = [];
  const resize = backbone.startsWith('inception') ? 299 : 224;
  const vo = variantOptions(o);
  for (const dir of categories) {
    const tag = path.basename(dir);
    // Nominal calibration sees the job's images as its tiles show them (tiled DeepPCB: crops).
    const nominal: VariantOptions = {
      ...vo,
      calibrationView: categoryFlags(dir, backbone).includes('--tile') ? 'tile' : 'resize',
    };
    const models: [string, string][] = [
      ['cut-f32', (await prepareVariant(backbone, 'cut-f32', vo)).onnxPath],
      ['cut-int8-randn', (await prepareVariant(backbone, 'cut-int8-randn', vo)).onnxPath],
      ['cut-int8-nominal', await prepareForJob('cut-int8-nominal', backbone, dir, tag, nominal)],
      ['cut-pruned25', (await prepareVariant(backbone, 'cut-pruned25', vo)).onnxPath],
      ['cut-pruned50', (await prepareVariant(backbone, 'cut-pruned50', vo)).onnxPath],
      ['cut-pruned50-comp-nominal', await preparePrunedCompensatedFor(backbone, dir, tag, vo)],
      ['cut-pruned50-int8-randn', (await prepareVariant(backbone, 'cut-pruned50-int8-randn', vo)).onnxPath],
    ];
    if (variantApplies(backbone, 'cut-fast-int8'))
      models.push([
        'cut-fast-int8-nominal',
        await prepareForJob('cut-fast-int8', backbone, dir, tag, nominal),
      ]);
    const wanted = o.accuracyVariants;
    for (const [variant, model] of models.filter(([v]) => !wanted || wanted.includes(v))) {
      const modelDir = model.endsWith('.onnx') ? path.dirname(model) : model;
      o.log(`accuracy ${tag} ${variant} (${path.basename(modelDir)})`);
      const row = await imageAuroc(modelDir, variant, dir, outDir, resize, categoryFlags(dir, backbone));
      o.log(`  image AUROC ${row.imageAuroc?.toFixed(4)} in ${row.minutes.toFixed(1)} min`);
      rows.push(row);
    }
  }
  return rows;
}

function environment() {
  const cpus = os.cpus();
  return {
    cpu: cpus[0]?.model ?? 'unknown',
    cores: cpus.length,
    loadAverage: os.loadavg().map((l) => Number(l.toFixed(2))),
    node: process.version,
    onnxruntime: (require('onnxruntime-node/package.json') as { version: string }).version,
    date: new Date().toISOString(),
  };
}

async function main(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      out: { type: 'string', default: 'bench/backbones.json' },
      backbones: { type: 'string' },
      variants: { type: 'string' },
      runs: { type: 'string' },
      nominal: { type: 'string' },
      count: { type: 'string' },
      method: { type: 'string' },
      rebuild: { type: 'boolean', default: false },
      'no-settings': { type: 'boolean', default: false },
      accuracy: { type: 'boolean', default: false },
      'accuracy-only': { type: 'boolean', default: false },
      categories: { type: 'string' },
      'accuracy-variants': { type: 'string' },
    },
  });
  const list = (s: string | undefined) => s?.split(',').map((x) => x.trim());
  const o: BenchBackbonesOptions = {
    ...DEFAULT_BENCH,
    backbones: list(values.backbones) ?? DEFAULT_BENCH.backbones,
    variants: (list(values.variants) as VariantKind[] | undefined) ?? DEFAULT_BENCH.variants,
    runs: values.runs ? Number(values.runs) : DEFAULT_BENCH.runs,
    nominal: values.nominal ?? DEFAULT_BENCH.nominal,
    calibrationCount: values.count ? Number(values.count) : DEFAULT_BENCH.calibrationCount,
    method: (values.method as CalibrationMethod | undefined) ?? DEFAULT_BENCH.method,
    rebuild: values.rebuild,
    settings: !values['no-settings'],
    accuracyVariants: list(values['accuracy-variants']),
  };
  const unknown = o.variants.filter((v) => !ALL_VARIANTS.includes(v));
  if (unknown.length > 0)
    throw new Error(`unknown variants ${unknown.join(', ')}; known: ${ALL_VARIANTS.join(', ')}`);
  const started = Date.now();
  const envBefore = environment();
  const { rows, settings } = values['accuracy-only']
    ? { rows: [], settings: [] }
    : await benchBackbonesFull(o);
  let accuracy: AccuracyRow[] = [];
  if (values.accuracy || values['accuracy-only']) {
    const categories = list(values.categories) ?? [
      path.join(SHARED_DATA, 'mvtec_ad/bottle'),
      path.join(SHARED_DATA, 'deeppcb/group12100'),
    ];
    const outDir = path.join(path.dirname(o.modelsDir), 'bench-accuracy');
    accuracy = await benchAccuracy(o.backbones[0], categories, o, outDir);
  }
  const result = {
    environment: { before: envBefore, after: environment() },
    seconds: (Date.now() - started) / 1000,
    options: { ...o, log: undefined },
    rows,
    settings,
    accuracy,
  };
  fs.mkdirSync(path.dirname(path.resolve(values.out)), { recursive: true });
  fs.writeFileSync(values.out, `${JSON.stringify(result, null, 2)}\n`);
  const md = [
    `# Backbone speed (${envBefore.cpu}, ${envBefore.cores} cores, onnxruntime-node ${envBefore.onnxruntime})`,
    '',
    `Load average before/after: ${envBefore.loadAverage.join(' ')} / ${result.environment.after.loadAverage.join(' ')}`,
    '',
    ...(rows.length > 0 ? [speedTable(rows), ''] : []),
    ...(settings.length > 0 ? ['## onnxruntime session settings', '', settingsTable(settings), ''] : []),
    ...(accuracy.length > 0
      ? ['## Accuracy (image AUROC, coreset 0.1)', '', accuracyTable(accuracy), '']
      : []),
  ].join('\n');
  fs.writeFileSync(values.out.replace(/\.json$/, '.md'), md);
  console.log(md);
  console.log(`[bench] wrote ${values.out} in ${result.seconds.toFixed(0)} s`);
}

if (require.main === module) {
  main(process.argv.slice(2)).catch((err: unknown) => {
    console.error(`[bench] FAILED: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    process.exit(1);
  });
}
