/**
 * Turns any ONNX backbone into a feature extractor this project can load:
 *   node --import tsx models/surgery-cli.ts --in model.onnx --stages layer2=/layer2/layer2.3/relu_2/Relu_output_0,layer3=...
 *     --out dir --id myid [--input-size 224] [--normalize imagenet|keras] [--default-stages layer2,layer3]
 *   node --import tsx models/surgery-cli.ts --in model.onnx --list
 * A stage is `name=tensor` or just `tensor` (then the name is the tensor name). Writes
 * <out>/model.onnx and <out>/spec.json; channels and strides are measured by running the model.
 */
import * as fs from 'fs';
import * as path from 'path';
import { sha256Hex } from './hash';
import { measureModel, nominalStride } from './measure';
import { encodeModel, readModel } from './onnx/io';
import { ModelSpec } from './spec';
import { specToJson } from './spec-file';
import { cutAtStages, listTensors } from './surgery';

const NORMALIZE: Record<string, ModelSpec['normalize']> = {
  imagenet: { mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] },
  keras: { mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5] },
};

function parseArgs(argv: string[]): Record<string, string | true> {
  const args: Record<string, string | true> = {};
  for (let i = 0; i < argv.length; i++) {
    const key = argv[i];
    if (!key.startsWith('--')) throw new Error(`unexpected argument ${key}`);
    const next = argv[i + 1];
    if (next === undefined || next.startsWith('--')) args[key.slice(2)] = true;
    else args[key.slice(2)] = argv[++i];
  }
  return args;
}

function need(args: Record<string, string | true>, key: string): string {
  const value = args[key];
  if (typeof value !== 'string') throw new Error(`missing --${key} <value>`);
  return value;
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const model = readModel(need(args, 'in'));
  if (args.list) {
    for (const t of listTensors(model.graph)) console.log(`${t.opType}\t${t.name}`);
    return;
  }
  const stages = need(args, 'stages')
    .split(',')
    .filter((s) => s !== '')
    .map((s) => {
      const eq = s.indexOf('=');
      return eq < 0 ? { name: s, tensor: s } : { name: s.slice(0, eq), tensor: s.slice(eq + 1) };
    });
  const out = need(args, 'out');
  const id = need(args, 'id');
  const size = (typeof args['input-size'] === 'string' ? args['input-size'] : '224').split('x').map(Number);
  const inputSize: [number, number] = [size[0], size[1] ?? size[0]];
  if (inputSize.some((n) => !Number.isInteger(n) || n < 1)) throw new Error('--input-size must be N or HxW');
  const normalize = NORMALIZE[typeof args.normalize === 'string' ? args.normalize : 'imagenet'];
  if (!normalize) throw new Error(`--normalize must be one of ${Object.keys(NORMALIZE).join(', ')}`);
  const initializers = new Set(model.graph.initializer.map((t) => t.name));
  const inputs = model.graph.input.filter((v) => !initializers.has(v.name));
  if (inputs.length !== 1)
    throw new Error(`expected one image input, the graph has ${inputs.map((v) => v.name).join(', ')}`);
  const inputName = inputs[0].name;

  const cut = cutAtStages(
    model,
    stages.map((s) => s.tensor),
  );
  console.log(`[surgery] kept ${cut.graph.node.length} of ${model.graph.node.length} nodes`);
  const measured = await measureModel(
    cut,
    inputName,
    inputSize,
    stages.map((s) => s.tensor),
  );
  const bytes = encodeModel(cut);
  const defaults =
    typeof args['default-stages'] === 'string'
      ? args['default-stages'].split(',')
      : stages.map((s) => s.name);
  const spec: ModelSpec = {
    id,
    file: 'model.onnx',
    inputName,
    inputSize,
    normalize,
    stages: stages.map((s) => {
      const [, channels, height] = measured.shapes[s.tensor];
      if (measured.shapes[s.tensor].length !== 4)
        throw new Error(`stage ${s.name} is not an NCHW feature map`);
      return { name: s.name, tensor: s.tensor, stride: nominalStride(inputSize[0], height), channels };
    }),
    defaultStages: defaults,
    sha256: sha256Hex(bytes),
  };
  fs.mkdirSync(out, { recursive: true });
  fs.writeFileSync(path.join(out, 'model.onnx'), bytes);
  fs.writeFileSync(path.join(out, 'spec.json'), specToJson(spec));
  for (const s of spec.stages) {
    console.log(`[surgery] ${s.name}: ${measured.shapes[s.tensor].slice(1).join('x')} stride ${s.stride}`);
  }
  console.log(`[surgery] wrote ${path.join(out, 'model.onnx')} and spec.json`);
}

main().catch((err: unknown) => {
  console.error(`[surgery] FAILED: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
