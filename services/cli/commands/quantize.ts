/**
 * `spi quantize` and `spi prune`: derive a faster backbone from a built one. The result is a model
 * folder like `make models` writes (model.onnx, spec.json with a new id and sha256, card.json/md),
 * usable anywhere a model id or folder is accepted (--model).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ParseArgsConfig, parseArgs } from 'node:util';
import { intFlag, numberFlag } from '../../common/numeric-flags';
import { invalid } from '../../../lib/errors';
import { DerivedModel, writeDerived } from '../../../models/derived';
import { measureLatency } from '../../../models/latency';
import { readModel } from '../../../models/onnx/io';
import { ModelProto } from '../../../models/onnx/proto';
import { buildPruned } from '../../../models/prune/build';
import { Int8Options, buildInt8 } from '../../../models/quantize/build';
import { CalibrationView } from '../../../models/quantize/calibration-data';
import { buildFastInt8, fastRecipe, fastRecipeIds } from '../../../models/quantize/fast-recipe';
import { ReduceRange } from '../../../models/quantize/qdq';
import { resolveModel } from '../../../models/registry';
import { ModelSpec } from '../../../models/spec';
import { Progress } from '../progress';

export const QUANTIZE_FLAGS = {
  model: { type: 'string' },
  out: { type: 'string' },
  calibration: { type: 'string', default: 'randn' },
  'calibration-view': { type: 'string', default: 'resize' },
  method: { type: 'string', default: 'minmax' },
  percentile: { type: 'string' },
  count: { type: 'string' },
  seed: { type: 'string' },
  prune: { type: 'string' },
  'reduce-range': { type: 'string', default: 'gemm' },
  weights: { type: 'string', default: 'int8' },
  'keep-float': { type: 'string' },
  recipe: { type: 'string' },
  id: { type: 'string' },
} satisfies ParseArgsConfig['options'];

export const QUANTIZE_USAGE = `usage: spi quantize --model <id|dir|spec.json> --out <dir> [options]
  --model M                      the float backbone: a model id, a model folder or its spec.json
  --out DIR                      the new model folder (model.onnx, spec.json, card.json/md)
  --calibration randn|<folder>   seeded random-normal inputs, or good images of the job (default randn)
  --calibration-view resize|tile how folder images become inputs: resized whole, or crops of the
                                 input size at full resolution, for tiled jobs (default resize)
  --method minmax|percentile     activation ranges (default minmax)
  --percentile <p>               percent of values kept by percentile (default 99.99)
  --count <n>                    calibration inputs (default 32)
  --seed <n>                     sampling / noise seed (default 1234)
  --prune <ratio>                prune that fraction of channels first (see spi prune)
  --reduce-range gemm|all|none   7-bit weights for GEMM-lowered convs (default gemm: exact on AVX2)
  --weights int8|uint8           weight storage (uint8 selects u8u8 kernels; default int8)
  --keep-float a,b,...           nodes (names or output tensors) left in float (e.g. a stem conv whose
                                 integer kernel is slower; default none)
  --recipe fast                  thin the early layers by the backbone's recipe first (bias-compensated
                                 from --calibration; best with the job's good images), stem kept float:
                                 ~3x the dense full-depth float model for MobileNetV2 (README)
  --id <id>                      model id (default: the --out folder name)`;

export const PRUNE_FLAGS = {
  model: { type: 'string' },
  out: { type: 'string' },
  ratio: { type: 'string' },
  convs: { type: 'string' },
  align: { type: 'string' },
  'keep-output-widths': { type: 'boolean', default: false },
  compensate: { type: 'string' },
  'compensate-view': { type: 'string', default: 'resize' },
  count: { type: 'string' },
  id: { type: 'string' },
} satisfies ParseArgsConfig['options'];

export const PRUNE_USAGE = `usage: spi prune --model <id|dir|spec.json> --out <dir> --ratio <r> [options]
  --model M                      the backbone to prune: a model id, a model folder or its spec.json
  --out DIR                      the new model folder (model.onnx, spec.json, card.json/md)
  --ratio R                      fraction of each pruned conv's channels removed (lowest L1 norm first), in [0, 1)
  --convs a,b:0.33,...           convs to prune (node names; default every prunable one); name:R sets
                                 that conv's own ratio
  --align N                      round kept channel counts to a multiple of N (16 suits onnxruntime's
                                 integer kernels; default 1)
  --keep-output-widths           skip convs whose channels reach a stage output
  --compensate randn|<folder>    fold removed channels' means (over --count inputs) into reader biases
  --compensate-view resize|tile  how --compensate folder images become inputs: resized whole, or
                                 input-size crops at full resolution for tiled jobs (default resize)
  --count <n>                    inputs for --compensate (default 16)
  --id <id>                      model id (default: the --out folder name)`;

function modelId(out: string, id: string | undefined): string {
  const chosen = id ?? path.basename(path.resolve(out));
  if (!/^[A-Za-z0-9._-]+$/.test(chosen))
    throw invalid(`model id "${chosen}" must match [A-Za-z0-9._-]+ (use --id)`);
  return chosen;
}

function mb(bytes: number): string {
  return `${(bytes / 1e6).toFixed(2)} MB`;
}

async function speedLine(parent: string, derived: DerivedModel): Promise<string> {
  const opts = { inputName: derived.spec.inputName, inputSize: derived.spec.inputSize, runs: 15, warmup: 3 };
  const before = await measureLatency(parent, opts);
  const after = await measureLatency(derived.onnx, opts);
  return `p50 ${before.p50.toFixed(1)} ms -> ${after.p50.toFixed(1)} ms (${(before.p50 / after.p50).toFixed(2)}x, 15 runs, batch 1)`;
}

function summary(parent: ModelSpec, parentBytes: number, derived: DerivedModel, out: string): string[] {
  return [
    `wrote ${out}: ${derived.spec.id} (sha256 ${derived.spec.sha256?.slice(0, 12)}…)`,
    `  size ${mb(parentBytes)} -> ${mb(derived.onnx.length)}, FLOPs ${(derived.card.cost.flops / 1e9).toFixed(3)} G`,
    `  stages: ${derived.spec.stages
      .map((s) => {
        const was = parent.stages.find((p) => p.name === s.name)?.channels;
        return was === s.channels ? `${s.name} ${s.channels}` : `${s.name} ${was}->${s.channels}`;
      })
      .join(', ')}`,
  ];
}

export async function quantizeCommand(argv: string[]): Promise<void> {
  const { values } = parseArgs({ args: argv, options: QUANTIZE_FLAGS });
  if (!values.model || !values.out)
    throw invalid("--model and --out are required (see 'spi quantize --help')");
  const method = values.method as 'minmax' | 'percentile';
  if (!['minmax', 'percentile'].includes(method)) throw invalid('--method must be minmax or percentile');
  const reduceRange = values['reduce-range'] as ReduceRange;
  if (!['gemm', 'all', 'none'].includes(reduceRange))
    throw invalid('--reduce-range must be gemm, all or none');
  const weightType = values.weights as 'int8' | 'uint8';
  if (!['int8', 'uint8'].includes(weightType)) throw invalid('--weights must be int8 or uint8');
  if (values.calibration !== 'randn' && !fs.existsSync(values.calibration))
    throw invalid(`--calibration ${values.calibration}: no such folder (or use randn)`);
  const view = calibrationView('calibration-view', values['calibration-view']);
  if (values.recipe !== undefined && values.recipe !== 'fast') throw invalid('--recipe must be fast');
  if (values.recipe && (values.prune !== undefined || values['keep-float'] !== undefined))
    throw invalid('--recipe fast sets the pruning and the float nodes itself: drop --prune and --keep-float');
  const id = modelId(values.out, values.id);
  const { spec, onnxPath } = resolveModel(values.model);
  if (values.recipe && !fastRecipe(spec))
    throw invalid(`--recipe fast: no recipe for ${spec.id} (there is one for ${fastRecipeIds().join(', ')})`);
  let parentSpec = spec;
  let model: ModelProto = readModel(onnxPath);
  let prior: { transforms: string[]; details: Record<string, unknown> } | undefined;
  const log = (m: string) => console.log(`[quantize] ${m}`);
  log(`${spec.id} (${onnxPath}) -> ${id}`);
  if (values.prune !== undefined) {
    const ratio = numberFlag('prune', values.prune, 0);
    const pruned = await buildPruned(spec, model, { id: `${id}-float`, ratio });
    log(
      `pruned ${ratio}: ${pruned.result.pruned.length} convs, FLOPs ${(pruned.derived.card.cost.flops / 1e9).toFixed(3)} G`,
    );
    model = pruned.model;
    // Same id/sha256 as the parent (the card's derivedFrom), narrower stages.
    parentSpec = { ...spec, stages: pruned.derived.spec.stages };
    prior = { transforms: pruned.derived.card.transforms, details: pruned.derived.card.details };
  }
  const progress = new Progress();
  let built;
  try {
    const options: Int8Options = {
      id,
      calibration: values.calibration,
      calibrationView: view,
      method,
      percentile: numberFlag('percentile', values.percentile, 99.99),
      count: numberFlag('count', values.count, 32),
      seed: numberFlag('seed', values.seed, 1234),
      reduceRange,
      weightType,
      keepFloat: values['keep-float']?.split(',').map((s) => s.trim()),
      prior,
      log,
      onProgress: (stage, done, total) => progress.update(stage, done, total),
    };
    built = values.recipe
      ? await buildFastInt8(spec, model, options)
      : await buildInt8(parentSpec, model, options);
  } finally {
    progress.stop();
  }
  writeDerived(values.out, built.derived);
  const f = built.fusion;
  for (const line of summary(spec, fs.statSync(onnxPath).size, built.derived, values.out)) console.log(line);
  console.log(
    `  onnxruntime (level all): ${f.integerOps} integer kernels, ${f.floatComputeOps} float convs/GEMMs left, ${f.qdqLeft} Q/DQ left`,
  );
  console.log(
    `  stage error vs float (rel. RMS): ${built.errors.map((e) => `${e.tensor} ${(100 * e.relRms).toFixed(1)}%`).join(', ')}`,
  );
  console.log(`  speed: ${await speedLine(onnxPath, built.derived)}`);
}

function calibrationView(flag: string, raw: string): CalibrationView {
  if (raw !== 'resize' && raw !== 'tile') throw invalid(`--${flag} must be resize or tile, got "${raw}"`);
  return raw;
}

/** `--convs a,b:0.33`: the convs chosen, and the ratios some of them set for themselves. */
function convSelection(raw: string | undefined): { convs?: string[]; ratios?: Map<string, number> } {
  if (raw === undefined) return {};
  const convs: string[] = [];
  const ratios = new Map<string, number>();
  for (const item of raw
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)) {
    const [name, ratio] = item.split(':');
    if (ratio === undefined) convs.push(name);
    else {
      const r = numberFlag(`convs ${name}`, ratio);
      if (!(r >= 0 && r < 1)) throw invalid(`--convs ${item}: the ratio must be in [0, 1)`);
      ratios.set(name, r);
    }
  }
  return { convs: convs.length > 0 ? convs : undefined, ratios: ratios.size > 0 ? ratios : undefined };
}

export async function pruneCommand(argv: string[]): Promise<void> {
  const { values } = parseArgs({ args: argv, options: PRUNE_FLAGS });
  if (!values.model || !values.out || values.ratio === undefined)
    throw invalid("--model, --out and --ratio are required (see 'spi prune --help')");
  const ratio = numberFlag('ratio', values.ratio, 0);
  if (!(ratio >= 0 && ratio < 1)) throw invalid('--ratio must be in [0, 1)');
  if (values.compensate && values.compensate !== 'randn' && !fs.existsSync(values.compensate))
    throw invalid(`--compensate ${values.compensate}: no such folder (or use randn)`);
  const id = modelId(values.out, values.id);
  const { spec, onnxPath } = resolveModel(values.model);
  console.log(`[prune] ${spec.id} (${onnxPath}) -> ${id}, ratio ${ratio}`);
  const built = await buildPruned(spec, readModel(onnxPath), {
    id,
    ratio,
    ...convSelection(values.convs),
    align: intFlag('align', values.align, 1),
    keepOutputWidths: values['keep-output-widths'],
    compensate: values.compensate,
    compensateView: calibrationView('compensate-view', values['compensate-view']),
    compensateCount: numberFlag('count', values.count, 16),
  });
  writeDerived(values.out, built.derived);
  const r = built.result;
  console.log(
    `[prune] ${r.pruned.length} convs pruned, ${r.skipped.length} left (residual Add/Concat or not selected)`,
  );
  for (const line of summary(spec, fs.statSync(onnxPath).size, built.derived, values.out)) console.log(line);
  console.log(`  speed: ${await speedLine(onnxPath, built.derived)}`);
}
