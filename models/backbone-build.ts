/** Builds one backbone from its nsfwjs Keras model: ONNX bytes, spec and model card. */
import * as fs from 'fs';
import * as path from 'path';
import { BackboneDef } from './backbones';
import { ModelCard, buildCard, cardToMarkdown } from './card';
import { sha256Hex } from './hash';
import { IR_VERSION, OPSET, convertKerasModel } from './keras/convert';
import { loadNsfwjsModel } from './keras/nsfwjs';
import { decodeWeights } from './keras/weights';
import { measureModel, nominalStride } from './measure';
import { encodeModel } from './onnx/io';
import { ModelSpec } from './spec';
import { specToJson } from './spec-file';

export const ONNX_FILE = 'model.onnx';
export const INPUT_NAME = 'input';

export interface BuiltBackbone {
  onnx: Uint8Array;
  spec: ModelSpec;
  card: ModelCard;
}

export async function buildBackbone(
  def: BackboneDef,
  log: (message: string) => void = () => {},
): Promise<BuiltBackbone> {
  log(`reading nsfwjs/${def.nsfwjsModel}`);
  const artifacts = loadNsfwjsModel(def.nsfwjsModel);
  const weights = decodeWeights(artifacts.weightSpecs, artifacts.weightData);
  log(`converting ${def.stages.length} stages (frozen layers up to ${def.lastFrozenLayer})`);
  const converted = convertKerasModel(artifacts.modelTopology, weights, {
    stages: def.stages,
    inputName: INPUT_NAME,
    lastUsableLayer: def.lastFrozenLayer,
    requireFrozen: true,
    description: `${def.id}: ${def.architecture}; stages ${def.stages.join(', ')}`,
  });
  const onnx = encodeModel(converted.model);
  const sha256 = sha256Hex(onnx);
  log(`measuring with onnxruntime at ${def.inputSize.join('x')}`);
  const measurement = await measureModel(converted.model, INPUT_NAME, def.inputSize, def.stages);
  const spec: ModelSpec = {
    id: def.id,
    file: ONNX_FILE,
    inputName: INPUT_NAME,
    inputSize: def.inputSize,
    normalize: def.normalize,
    stages: def.stages.map((name) => {
      const [, channels, height] = measurement.shapes[name];
      if (channels !== converted.stageChannels[name])
        throw new Error(
          `stage ${name}: ${channels} channels measured, ${converted.stageChannels[name]} expected`,
        );
      return { name, tensor: name, stride: nominalStride(def.inputSize[0], height), channels };
    }),
    defaultStages: def.defaultStages,
    sha256,
  };
  const topology = artifacts.modelTopology as {
    keras_version?: string;
    model_config?: { config?: { name?: string } };
  };
  const card = buildCard({
    spec,
    architecture: def.architecture,
    source: {
      package: artifacts.packageName,
      version: artifacts.packageVersion,
      files: artifacts.files,
      kerasVersion: topology.keras_version ?? 'unknown',
      kerasModel: topology.model_config?.config?.name ?? 'unknown',
    },
    weights:
      `layers up to ${def.lastFrozenLayer} are frozen (trainable: false) ImageNet weights, uint8-quantised by ` +
      'the tfjs converter (dequantised as min + scale * q); the fine-tuned layers after it are not used',
    layers: converted.layers,
    measurement,
    onnx: {
      file: ONNX_FILE,
      opset: OPSET,
      irVersion: IR_VERSION,
      nodes: converted.model.graph.node.length,
      bytes: onnx.length,
      sha256,
    },
  });
  return { onnx, spec, card };
}

/** Writes model.onnx, spec.json, card.json and card.md; identical inputs give identical bytes. */
export function writeBackbone(dir: string, built: BuiltBackbone): void {
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, ONNX_FILE), built.onnx);
  fs.writeFileSync(path.join(dir, 'spec.json'), specToJson(built.spec));
  fs.writeFileSync(path.join(dir, 'card.json'), `${JSON.stringify(built.card, null, 2)}\n`);
  fs.writeFileSync(path.join(dir, 'card.md'), cardToMarkdown(built.card));
}
