/**
 * The ONNX protobuf schema, loaded at run time from the vendored onnx.proto (github.com/onnx/onnx,
 * onnx/onnx.proto at commit f7546912, ONNX 1.23.0, Apache-2.0), plus TypeScript shapes for the parts
 * of it this project reads and writes. Field names are protobufjs' camelCase forms.
 */
import * as fs from 'fs';
import * as path from 'path';
import * as protobuf from 'protobufjs';

/** int64 fields decode to Long objects (protobufjs keeps them exact); we write plain numbers. */
export type Int64 = number | { toNumber(): number };

export function int64ToNumber(value: Int64 | null | undefined): number {
  if (value === null || value === undefined) return 0;
  return typeof value === 'number' ? value : value.toNumber();
}

export const DataType = { FLOAT: 1, INT64: 7 } as const;

export const AttributeType = {
  FLOAT: 1,
  INT: 2,
  STRING: 3,
  GRAPH: 5,
  FLOATS: 6,
  INTS: 7,
  GRAPHS: 10,
} as const;

export interface TensorProto {
  name: string;
  dims: Int64[];
  dataType: number;
  rawData?: Uint8Array;
  floatData?: number[];
  int64Data?: Int64[];
  int32Data?: number[];
  doubleData?: number[];
  dataLocation?: number;
}

export interface AttributeProto {
  name: string;
  type: number;
  f?: number;
  i?: Int64;
  s?: Uint8Array;
  t?: TensorProto;
  g?: GraphProto;
  floats?: number[];
  ints?: Int64[];
  graphs?: GraphProto[];
}

export interface NodeProto {
  name?: string;
  opType: string;
  domain?: string;
  input: string[];
  output: string[];
  attribute: AttributeProto[];
}

export interface DimensionProto {
  dimValue?: Int64;
  dimParam?: string;
}

export interface TypeProto {
  tensorType?: { elemType: number; shape?: { dim: DimensionProto[] } };
}

export interface ValueInfoProto {
  name: string;
  type?: TypeProto;
}

export interface GraphProto {
  name: string;
  node: NodeProto[];
  initializer: TensorProto[];
  input: ValueInfoProto[];
  output: ValueInfoProto[];
  valueInfo: ValueInfoProto[];
  docString?: string;
}

export interface OperatorSetIdProto {
  domain?: string;
  version: Int64;
}

export interface ModelProto {
  irVersion: Int64;
  opsetImport: OperatorSetIdProto[];
  producerName?: string;
  producerVersion?: string;
  docString?: string;
  graph: GraphProto;
}

let cachedModelType: protobuf.Type | undefined;

/** Finds onnx.proto beside this file, or in the source tree when running the tsc output in dist/. */
function protoPath(): string {
  const candidates = [
    path.join(__dirname, 'onnx.proto'),
    path.join(__dirname, '..', '..', '..', 'models', 'onnx', 'onnx.proto'),
  ];
  const found = candidates.find((p) => fs.existsSync(p));
  if (!found) throw new Error(`onnx.proto not found (looked in ${candidates.join(', ')})`);
  return found;
}

/** The onnx.ModelProto message type (the schema is parsed once per process). */
export function modelProtoType(): protobuf.Type {
  if (!cachedModelType) cachedModelType = protobuf.loadSync(protoPath()).lookupType('onnx.ModelProto');
  return cachedModelType;
}
