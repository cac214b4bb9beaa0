/** Serialises and parses ONNX models with protobufjs and the real onnx.proto schema. */
import * as fs from 'fs';
import { ModelProto, modelProtoType } from './proto';

export function encodeModel(model: ModelProto): Uint8Array {
  const type = modelProtoType();
  // fromObject validates field types and keeps Uint8Array payloads (raw_data) without copying.
  return type.encode(type.fromObject(model as unknown as Record<string, unknown>)).finish();
}

/**
 * Parses an ONNX model. The result is the decoded protobufjs message itself, not a converted copy,
 * so int64 values stay exact (Long) and re-encoding a model we only edited keeps every other field.
 */
export function decodeModel(bytes: Uint8Array): ModelProto {
  const model = modelProtoType().decode(bytes) as unknown as ModelProto;
  if (!model.graph) throw new Error('not an ONNX model: the ModelProto has no graph');
  return model;
}

export function readModel(file: string): ModelProto {
  return decodeModel(fs.readFileSync(file));
}

export function writeModel(file: string, model: ModelProto): Uint8Array {
  const bytes = encodeModel(model);
  fs.writeFileSync(file, bytes);
  return bytes;
}
