/** Validating, reading and writing spec.json files (the ModelSpec shape in models/spec.ts). */
import * as fs from 'fs';
import { ModelSpec, StageSpec } from './spec';

function fail(where: string, message: string): never {
  throw new Error(`invalid model spec ${where}: ${message}`);
}

function isNumberTuple(value: unknown, length: number): value is number[] {
  return (
    Array.isArray(value) &&
    value.length === length &&
    value.every((v) => typeof v === 'number' && Number.isFinite(v))
  );
}

function checkStage(stage: unknown, i: number, where: string): StageSpec {
  const s = stage as Partial<StageSpec>;
  if (typeof s?.name !== 'string' || s.name === '')
    fail(where, `stages[${i}].name must be a non-empty string`);
  if (typeof s.tensor !== 'string' || s.tensor === '')
    fail(where, `stage ${s.name}: tensor must be a non-empty string`);
  if (!Number.isInteger(s.stride) || (s.stride as number) < 1)
    fail(where, `stage ${s.name}: stride must be a positive integer`);
  if (!Number.isInteger(s.channels) || (s.channels as number) < 1)
    fail(where, `stage ${s.name}: channels must be a positive integer`);
  return { name: s.name, tensor: s.tensor, stride: s.stride as number, channels: s.channels as number };
}

/** Checks a parsed spec.json and returns it with keys in the canonical order. */
export function validateSpec(value: unknown, where = ''): ModelSpec {
  const v = value as Partial<ModelSpec>;
  if (typeof v !== 'object' || v === null) fail(where, 'not a JSON object');
  if (typeof v.id !== 'string' || !/^[A-Za-z0-9._-]+$/.test(v.id))
    fail(where, 'id must match [A-Za-z0-9._-]+');
  if (typeof v.file !== 'string' || v.file === '') fail(where, 'file must name the ONNX file');
  if (typeof v.inputName !== 'string' || v.inputName === '')
    fail(where, 'inputName must be a non-empty string');
  if (!isNumberTuple(v.inputSize, 2) || v.inputSize.some((n) => !Number.isInteger(n) || n < 1)) {
    fail(where, 'inputSize must be [height, width] in pixels');
  }
  if (
    !isNumberTuple(v.normalize?.mean, 3) ||
    !isNumberTuple(v.normalize?.std, 3) ||
    v.normalize.std.some((s) => s <= 0)
  ) {
    fail(where, 'normalize must be {mean: [r, g, b], std: [r, g, b]} with positive std');
  }
  if (!Array.isArray(v.stages) || v.stages.length === 0) fail(where, 'stages must be a non-empty list');
  const stages = v.stages.map((s, i) => checkStage(s, i, where));
  const names = new Set(stages.map((s) => s.name));
  if (names.size !== stages.length) fail(where, 'stage names must be unique');
  if (!Array.isArray(v.defaultStages) || v.defaultStages.length === 0)
    fail(where, 'defaultStages must be a non-empty list');
  for (const name of v.defaultStages)
    if (!names.has(name)) fail(where, `default stage ${name} is not among the stages`);
  if (v.sha256 !== undefined && (typeof v.sha256 !== 'string' || !/^[0-9a-f]{64}$/.test(v.sha256))) {
    fail(where, 'sha256 must be 64 lowercase hex digits');
  }
  const spec: ModelSpec = {
    id: v.id,
    file: v.file,
    inputName: v.inputName,
    inputSize: [v.inputSize[0], v.inputSize[1]],
    normalize: {
      mean: [v.normalize.mean[0], v.normalize.mean[1], v.normalize.mean[2]],
      std: [v.normalize.std[0], v.normalize.std[1], v.normalize.std[2]],
    },
    stages,
    defaultStages: [...v.defaultStages],
  };
  if (v.sha256 !== undefined) spec.sha256 = v.sha256;
  return spec;
}

export function readSpec(file: string): ModelSpec {
  let parsed: unknown;
  try {
    parsed = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (err) {
    throw new Error(`cannot read model spec ${file}: ${(err as Error).message}`);
  }
  return validateSpec(parsed, file);
}

export function specToJson(spec: ModelSpec): string {
  return `${JSON.stringify(validateSpec(spec), null, 2)}\n`;
}
