/**
 * The one place that loads proto/spi/v1/inspection.proto. Options: camelCase fields, 64-bit ints as
 * JS numbers (row counts stay far below 2^53), enums as strings, defaults filled in, and the name of
 * the set member of each oneof (`part: 'header' | 'chunk'`).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';

export const PROTO_FILE = 'proto/spi/v1/inspection.proto';

export const LOADER_OPTIONS: protoLoader.Options = {
  keepCase: false,
  longs: Number,
  enums: String,
  defaults: true,
  oneofs: true,
};

/** Walks up from here so the same code works under tsx (lib/rpc) and compiled (dist/...). */
function findProtoFile(): string {
  let dir = __dirname;
  for (;;) {
    const candidate = path.join(dir, PROTO_FILE);
    if (fs.existsSync(candidate)) return candidate;
    const parent = path.dirname(dir);
    if (parent === dir) throw new Error(`cannot find ${PROTO_FILE} above ${__dirname}`);
    dir = parent;
  }
}

let cached: { definition: protoLoader.PackageDefinition; grpcObject: grpc.GrpcObject } | undefined;

function load(): NonNullable<typeof cached> {
  if (!cached) {
    const definition = protoLoader.loadSync(findProtoFile(), LOADER_OPTIONS);
    cached = { definition, grpcObject: grpc.loadPackageDefinition(definition) };
  }
  return cached;
}

function constructor(name: string): grpc.ServiceClientConstructor {
  const pkg = (load().grpcObject.spi as grpc.GrpcObject).v1 as grpc.GrpcObject;
  return pkg[name] as grpc.ServiceClientConstructor;
}

export const serviceDefinition = (name: 'Inspector' | 'BankAdmin' | 'BankShard'): grpc.ServiceDefinition =>
  constructor(name).service;

export const clientConstructor = (
  name: 'Inspector' | 'BankAdmin' | 'BankShard',
): grpc.ServiceClientConstructor => constructor(name);

// ---------------------------------------------------------------------------------------------
// BankShard messages, as the loader options above deliver them.
// ---------------------------------------------------------------------------------------------

export interface PartitionRefMsg {
  bank: string;
  version: number;
  partition: number;
}

/** An enum value the loader does not know (from a newer peer) arrives as its number. */
export type VectorEncodingMsg = 'VECTOR_ENCODING_FLOAT32' | 'VECTOR_ENCODING_FLOAT16' | number;

export interface SearchRequestMsg {
  partition: PartitionRefMsg | null;
  queries: Buffer;
  dim: number;
  k: number;
  /** Absent when sending = float32 (proto3 default). */
  encoding?: VectorEncodingMsg;
}

export interface SearchResponseMsg {
  distances: Buffer;
  labels: Buffer;
  k: number;
}

export interface PartitionHeaderMsg {
  partition: PartitionRefMsg | null;
  dim: number;
  rows: number;
  rowOffset: number;
  index: string;
  nprobe: number;
  sha256: string;
}

export type LoadPartitionRequestMsg =
  | { part: 'header'; header: PartitionHeaderMsg }
  | { part: 'chunk'; chunk: Buffer }
  | { part?: undefined };

export interface PartitionInfoMsg {
  partition: PartitionRefMsg | null;
  rows: number;
  dim: number;
  index: string;
}

export interface DropPartitionResponseMsg {
  dropped: boolean;
}

export type ListPartitionsRequestMsg = Record<string, never>;

export interface PartitionChunkMsg {
  data: Buffer;
}

export interface ReadRowsRequestMsg {
  partition: PartitionRefMsg | null;
  rows: number[];
}

export interface ReadRowsResponseMsg {
  vectors: Buffer;
  dim: number;
}

export interface ListPartitionsResponseMsg {
  partitions: PartitionInfoMsg[];
}

/** What a server implements for BankShard. */
export interface BankShardHandlers extends grpc.UntypedServiceImplementation {
  search: grpc.handleUnaryCall<SearchRequestMsg, SearchResponseMsg>;
  loadPartition: grpc.handleClientStreamingCall<LoadPartitionRequestMsg, PartitionInfoMsg>;
  dropPartition: grpc.handleUnaryCall<PartitionRefMsg, DropPartitionResponseMsg>;
  listPartitions: grpc.handleUnaryCall<ListPartitionsRequestMsg, ListPartitionsResponseMsg>;
  readPartition: grpc.handleServerStreamingCall<PartitionRefMsg, PartitionChunkMsg>;
  readRows: grpc.handleUnaryCall<ReadRowsRequestMsg, ReadRowsResponseMsg>;
}

type Unary<Req, Res> = (
  request: Req,
  metadata: grpc.Metadata,
  options: Partial<grpc.CallOptions>,
  callback: (err: grpc.ServiceError | null, response?: Res) => void,
) => grpc.ClientUnaryCall;

type ClientStream<Req, Res> = (
  metadata: grpc.Metadata,
  options: Partial<grpc.CallOptions>,
  callback: (err: grpc.ServiceError | null, response?: Res) => void,
) => grpc.ClientWritableStream<Req>;

/** The generated client's methods for BankShard (the overloads we use). */
export interface BankShardGrpcClient extends grpc.Client {
  search: Unary<SearchRequestMsg, SearchResponseMsg>;
  loadPartition: ClientStream<LoadPartitionRequestMsg, PartitionInfoMsg>;
  dropPartition: Unary<PartitionRefMsg, DropPartitionResponseMsg>;
  listPartitions: Unary<ListPartitionsRequestMsg, ListPartitionsResponseMsg>;
  readPartition: (
    request: PartitionRefMsg,
    metadata: grpc.Metadata,
    options: Partial<grpc.CallOptions>,
  ) => grpc.ClientReadableStream<PartitionChunkMsg>;
  readRows: Unary<ReadRowsRequestMsg, ReadRowsResponseMsg>;
}

export function newBankShardClient(
  address: string,
  options: grpc.ChannelOptions = {},
  credentials: grpc.ChannelCredentials = grpc.credentials.createInsecure(),
): BankShardGrpcClient {
  const Ctor = clientConstructor('BankShard');
  return new Ctor(address, credentials, options) as unknown as BankShardGrpcClient;
}
