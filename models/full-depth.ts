/**
 * Full-depth float32 baselines for speed comparisons: the whole nsfwjs network (all blocks plus its
 * classifier head) converted by models/keras, as the "dense" model that claims like "N x faster than
 * the dense network" refer to. TIMING ONLY: the layers after the frozen backbone were fine-tuned by
 * nsfwjs for its own classes, so the outputs mean nothing for inspection. No spec.json is written,
 * so the engine cannot load one by mistake; bench/backbones.ts reads full.json instead.
 *
 * `node --import tsx models/full-depth.ts --out build/models [--only mobilenet_v2-full]`
 */
import * as fs from 'fs';
import * as path from 'path';
import { sha256Hex } from './hash';
import { IR_VERSION, OPSET, convertKerasModel } from './keras/convert';
import { loadNsfwjsModel } from './keras/nsfwjs';
import { decodeWeights } from './keras/weights';
import { tensorValueInfo } from './onnx/builder';
import { encodeModel } from './onnx/io';
import { DataType } from './onnx/proto';
import { FLOP_COUNTING, measureModel } from './measure';
import { ModelSpec } from './spec';

export interface FullDepthDef {
  id: string;
  nsfwjsModel: string;
  architecture: string;
  /** The classifier's last layer. */
  output: string;
  inputSize: [number, number];
}

export const FULL_DEPTH: FullDepthDef[] = [
  {
    id: 'mobilenet_v2-full',
    nsfwjsModel: 'mobilenet_v2',
    architecture: 'MobileNetV2 (alpha 1.0), all 17 blocks + Conv_1 + nsfwjs classifier head (3 Dense)',
    output: 'dense_3',
    inputSize: [224, 224],
  },
  {
    id: 'inception_v3-full',
    nsfwjsModel: 'inception_v3',
    architecture: 'InceptionV3, mixed0..mixed10 + nsfwjs classifier head (3 Dense)',
    output: 'dense_3',
    inputSize: [299, 299],
  },
];

/** What bench/backbones.ts needs to run a full-depth model (the file beside it). */
export interface FullDepthInfo {
  id: string;
  file: string;
  inputName: string;
  inputSize: [number, number];
  normalize: ModelSpec['normalize'];
  output: string;
  sha256: string;
  timingOnly: true;
  flops: number;
  macs: number;
  params: number;
  nodes: number;
  bytes: number;
  source: string;
}

export const FULL_DEPTH_INFO = 'full.json';

export async function buildFullDepth(def: FullDepthDef): Promise<{ onnx: Uint8Array; info: FullDepthInfo }> {
  const artifacts = loadNsfwjsModel(def.nsfwjsModel);
  const weights = decodeWeights(artifacts.weightSpecs, artifacts.weightData);
  const converted = convertKerasModel(artifacts.modelTopology, weights, {
    stages: [def.output],
    inputName: 'input',
    description: `${def.id}: ${def.architecture}; TIMING ONLY (fine-tuned nsfwjs head, not inspection features)`,
  });
  const model = converted.model;
  // The converter declares stage outputs as NCHW maps; the classifier output is [N, classes].
  const classes = converted.stageChannels[def.output];
  model.graph.output = [tensorValueInfo(def.output, DataType.FLOAT, ['N', classes])];
  const onnx = encodeModel(model);
  const m = await measureModel(model, 'input', def.inputSize, [def.output]);
  const info: FullDepthInfo = {
    id: def.id,
    file: 'model.onnx',
    inputName: 'input',
    inputSize: def.inputSize,
    normalize: { mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5] },
    output: def.output,
    sha256: sha256Hex(onnx),
    timingOnly: true,
    flops: m.flops,
    macs: m.macs,
    params: m.params,
    nodes: model.graph.node.length,
    bytes: onnx.length,
    source: `${artifacts.packageName}@${artifacts.packageVersion} dist/models/${def.nsfwjsModel}, opset ${OPSET}, IR ${IR_VERSION}`,
  };
  return { onnx, info };
}

function cardMarkdown(info: FullDepthInfo, def: FullDepthDef): string {
  return [
    `# ${info.id} (timing baseline only)`,
    '',
    `${def.architecture}, converted whole (float32, no cut) by models/keras from ${info.source}.`,
    '',
    '**Not for inspection or accuracy.** The layers after the frozen ImageNet backbone were fine-tuned by',
    'nsfwjs for its own classes; this model exists only to time the full dense network that speed claims',
    'compare against. It has no spec.json, so the engine cannot load it.',
    '',
    `- Input \`${info.inputName}\`: float32 NCHW RGB ${info.inputSize.join('x')}, normalised (x - 0.5) / 0.5`,
    `- Output \`${info.output}\`: [N, classes] softmax`,
    `- FLOPs: ${(info.flops / 1e9).toFixed(3)} G (${(info.macs / 1e9).toFixed(3)} G MACs); parameters ${(info.params / 1e6).toFixed(3)} M`,
    `- Counting: ${FLOP_COUNTING}`,
    `- ONNX: ${info.file}, ${info.bytes} bytes, ${info.nodes} nodes, sha256 ${info.sha256}`,
    '',
  ].join('\n');
}

export function writeFullDepth(
  dir: string,
  def: FullDepthDef,
  built: { onnx: Uint8Array; info: FullDepthInfo },
): void {
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, built.info.file), built.onnx);
  fs.writeFileSync(path.join(dir, FULL_DEPTH_INFO), `${JSON.stringify(built.info, null, 2)}\n`);
  fs.writeFileSync(path.join(dir, 'card.md'), cardMarkdown(built.info, def));
}

/** Reads full.json of a built full-depth model, or undefined when it is not built yet. */
export function readFullDepth(dir: string): FullDepthInfo | undefined {
  const file = path.join(dir, FULL_DEPTH_INFO);
  if (!fs.existsSync(file)) return undefined;
  return JSON.parse(fs.readFileSync(file, 'utf8')) as FullDepthInfo;
}

async function main(argv: string[]): Promise<void> {
  let out: string | undefined;
  let only: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--out') out = argv[++i];
    else if (argv[i] === '--only') only = argv[++i];
    else
      throw new Error(`unknown argument ${argv[i]}; usage: models/full-depth.ts --out <dir> [--only <id>]`);
  }
  if (!out) throw new Error('missing --out <dir>');
  for (const def of FULL_DEPTH.filter((d) => !only || d.id === only)) {
    const built = await buildFullDepth(def);
    writeFullDepth(path.join(out, def.id), def, built);
    console.log(
      `[full-depth] wrote ${path.join(out, def.id)} (${(built.info.bytes / 1e6).toFixed(1)} MB, ${(built.info.flops / 1e9).toFixed(2)} GFLOPs)`,
    );
  }
}

if (require.main === module) {
  main(process.argv.slice(2)).catch((err: unknown) => {
    console.error(`[full-depth] FAILED: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(1);
  });
}
