/**
 * The BankShard gRPC service over a PartitionStore, and `startShard`, which wires store, server and
 * etcd registration together (used by main.ts and by embedded clusters in one process).
 */
import * as os from 'node:os';
import * as grpc from '@grpc/grpc-js';
import { Registry as MetricsRegistry } from 'prom-client';
import { SpiError, invalid } from '../../lib/errors';
import { Registry } from '../../lib/cluster/registry';
import { ShardRegistration } from '../../lib/cluster/shard-registration';
import { bytesOf } from '../../lib/cluster/bytes';
import { SHARD_VECTOR_ENCODINGS, shardQueries } from '../../lib/cluster/vector-encoding';
import { PartitionRef, ShardInfo } from '../../lib/cluster/types';
import {
  BankShardHandlers,
  LoadPartitionRequestMsg,
  PartitionInfoMsg,
  PartitionRefMsg,
  serviceDefinition,
} from '../../lib/rpc/proto';
import { toServiceError, wrapClientStream, wrapUnary } from '../../lib/rpc/status';
import { startGrpcServer, hostPort } from '../../lib/rpc/grpc-server';
import { Logger, createLogger } from '../../lib/util/log';
import { SHARD_HEALTH_SERVICES, ServingHealth } from '../common/health';
import { GrpcServerMetrics, newMetricsRegistry, registerHealthMetrics, timedUnary } from '../common/metrics';
import { registerShardMetrics, shardSearchHistogram } from './metrics';
import { trackShardReadiness } from './readiness';
import { HEALTH_SERVICE, reflectionBindings } from '../common/reflection';
import { PartitionStore, PartitionSummary, PartitionUpload } from './partition-store';
import { ServerTlsSettings, peerVerifier } from '../../lib/rpc/tls';
import { authInterceptor } from '../common/auth';
import { requestIdOf } from '../../lib/rpc/request-id';
import { EtcdConnection } from '../../lib/cluster/etcd-client';
import { BARE_ECHO_SERVICE, bareEchoHandlers } from '../../lib/rpc/bare-echo';

function refOf(msg: PartitionRefMsg | null | undefined): PartitionRef {
  if (!msg) throw invalid('partition (bank, version, partition) is required');
  return { bank: msg.bank, version: msg.version, partition: msg.partition };
}

function infoOf(s: PartitionSummary): PartitionInfoMsg {
  return { partition: s.ref, rows: s.rows, dim: s.dim, index: s.index };
}

/** Reads a LoadPartition stream: one header, then chunks. Rejects if the client goes away. */
async function receivePartition(
  store: PartitionStore,
  call: grpc.ServerReadableStream<LoadPartitionRequestMsg, PartitionInfoMsg>,
): Promise<PartitionSummary> {
  let upload: PartitionUpload | null = null;
  const cancelled = new Promise<never>((_, reject) =>
    call.on('cancelled', () => reject(invalid('LoadPartition cancelled by the client'))),
  );
  cancelled.catch(() => undefined);
  const consume = async (): Promise<void> => {
    for await (const msg of call as AsyncIterable<LoadPartitionRequestMsg>) {
      if (msg.part === 'header') {
        if (upload) throw invalid('LoadPartition: a second header arrived; send one header, then chunks');
        const h = msg.header;
        upload = store.beginLoad({
          ref: refOf(h.partition),
          dim: h.dim,
          rows: h.rows,
          rowOffset: h.rowOffset,
          index: h.index,
          nprobe: h.nprobe,
          sha256: h.sha256,
        });
      } else if (msg.part === 'chunk') {
        if (!upload) throw invalid('LoadPartition: a chunk arrived before the header');
        upload.write(msg.chunk);
      }
    }
  };
  await Promise.race([consume(), cancelled]);
  if (!upload) throw invalid('LoadPartition: the stream ended without a header');
  return (upload as PartitionUpload).finish();
}

const READ_CHUNK_BYTES = 1024 * 1024;

export function bankShardHandlers(store: PartitionStore, log: Logger): BankShardHandlers {
  return {
    search: wrapUnary(async (call) => {
      const req = call.request;
      const started = performance.now();
      const ref = refOf(req.partition);
      const queries = shardQueries(req.queries, req.encoding);
      // Cancelled while queued behind others (a gateway took another replica's answer while this
      // process was paused): nobody reads the answer.
      if (call.cancelled) throw new SpiError('UNAVAILABLE', 'the search was cancelled by its caller');
      const res = await store.search(ref, queries, req.dim, req.k);
      log.debug('search', {
        requestId: requestIdOf(call.metadata),
        bank: ref.bank,
        version: ref.version,
        partition: ref.partition,
        queries: req.dim > 0 ? queries.length / req.dim : 0,
        encoding: req.encoding,
        ms: Math.round((performance.now() - started) * 10) / 10,
      });
      return { distances: bytesOf(res.distances), labels: bytesOf(res.labels), k: res.k };
    }, log),
    loadPartition: wrapClientStream(async (call) => infoOf(await receivePartition(store, call)), log),
    dropPartition: wrapUnary(async (call) => ({ dropped: await store.drop(refOf(call.request)) }), log),
    listPartitions: wrapUnary(async () => ({ partitions: store.list().map(infoOf) }), log),
    readRows: wrapUnary(async (call) => {
      const ref = refOf(call.request.partition);
      const v = store.readRows(ref, call.request.rows);
      return { vectors: bytesOf(v), dim: store.get(ref)?.dim ?? 0 };
    }, log),
    readPartition: (call) => {
      try {
        const v = store.readVectors(refOf(call.request));
        const bytes = Buffer.from(v.buffer, v.byteOffset, v.byteLength);
        // Chunks within the message limit; the stream's flow control paces them.
        let offset = 0;
        const pump = (): void => {
          while (offset < bytes.length) {
            const data = bytes.subarray(offset, offset + READ_CHUNK_BYTES);
            offset += data.length;
            if (!call.write({ data })) {
              call.once('drain', pump);
              return;
            }
          }
          call.end();
        };
        pump();
      } catch (err) {
        call.emit('error', toServiceError(err, log));
      }
    },
  };
}

export interface ShardOptions {
  host?: string;
  /** 0 = any free port. */
  port?: number;
  /** Where partitions persist; undefined = memory only. */
  dataDir?: string;
  /** etcd endpoints; none = run unregistered (embedded use). */
  etcd?: string[];
  etcdPrefix?: string;
  leaseTtlS?: number;
  /** Default: <hostname>-<port>. */
  id?: string;
  /** Address gateways dial; default host:port (the hostname when listening on all interfaces). */
  advertise?: string;
  maxMessageBytes?: number;
  /** TLS of the gRPC server (null = plaintext). */
  tls?: ServerTlsSettings | null;
  /** Client-certificate identities allowed to call BankShard (null = any caller TLS let in). */
  peerIdentities?: string[] | null;
  /** etcd TLS and user (see etcd-client.ts). */
  etcdConnection?: EtcdConnection;
  /** Also serve lib/rpc/bare-echo.ts (`make bench` times the hop against it). */
  benchEcho?: boolean;
  log?: Logger;
}

export interface RunningShard {
  id: string;
  port: number;
  address: string;
  /** Its registration record (embedded clusters announce it in their in-memory registry). */
  info: ShardInfo;
  store: PartitionStore;
  registry: Registry | null;
  /** Its presence in etcd (null when unregistered); `registration.registered` says if it is in etcd now. */
  registration: ShardRegistration | null;
  /** grpc.health.v1 statuses; SERVING once reloaded from disk and registered (main.ts: /readyz). */
  health: ServingHealth;
  /** Prometheus metrics of this shard (main.ts serves them on /metrics). */
  metrics: MetricsRegistry;
  /** Deregisters (so gateways stop routing here), then lets in-flight calls finish. */
  close(graceMs?: number): Promise<void>;
}

export async function startShard(options: ShardOptions = {}): Promise<RunningShard> {
  const host = options.host ?? '0.0.0.0';
  let log = options.log ?? createLogger('shard');
  const store = PartitionStore.open({ dataDir: options.dataDir, log });
  const health = new ServingHealth(SHARD_HEALTH_SERVICES);
  const grpcMetrics = new GrpcServerMetrics(newMetricsRegistry());
  const handlers = bankShardHandlers(store, log);
  handlers.search = timedUnary(handlers.search, shardSearchHistogram(grpcMetrics.registry));
  const server = await startGrpcServer({
    host,
    port: options.port ?? 0,
    maxMessageBytes: options.maxMessageBytes,
    channelOptions: grpcMetrics.serverOptions(),
    tls: options.tls,
    interceptors: [
      authInterceptor({ peerIdentities: options.peerIdentities, verifyPeer: peerVerifier(options.tls) }, log),
    ],
    log,
    services: [
      { definition: serviceDefinition('BankShard'), implementation: handlers },
      health.binding(),
      ...reflectionBindings(['spi.v1.BankShard', HEALTH_SERVICE]),
      ...(options.benchEcho ? [{ definition: BARE_ECHO_SERVICE, implementation: bareEchoHandlers() }] : []),
    ],
  });
  const id = options.id ?? `${os.hostname()}-${server.port}`;
  store.name = `shard ${id}`;
  const wildcard = host === '0.0.0.0' || host === '::' || host === '';
  const address = options.advertise ?? hostPort(wildcard ? os.hostname() : host, server.port);
  log = log.child({ shard: id });

  // What gateways read from the registration: where to dial, and which query encodings we decode.
  const info: ShardInfo = {
    id,
    address,
    startedAt: new Date().toISOString(),
    vectorEncodings: [...SHARD_VECTOR_ENCODINGS],
  };
  let registry: Registry | null = null;
  let registration: ShardRegistration | null = null;
  if (options.etcd && options.etcd.length > 0) {
    registry = new Registry({
      endpoints: options.etcd,
      prefix: options.etcdPrefix,
      leaseTtlS: options.leaseTtlS,
      log,
      ...options.etcdConnection,
    });
    // Resolves even while etcd is down: the registration keeps trying in the background.
    registration = await registry.registerShard(info);
    await store.setAnnouncer(registration);
  }
  const readiness = trackShardReadiness(health, registration, log);
  registerShardMetrics(grpcMetrics.registry, () => store.list(), registration);
  registerHealthMetrics(grpcMetrics.registry, health);

  let closing: Promise<void> | undefined;
  return {
    id,
    port: server.port,
    address,
    info,
    store,
    registry,
    registration,
    health,
    metrics: grpcMetrics.registry,
    close(graceMs = 10_000) {
      closing ??= (async () => {
        health.shutdown();
        readiness.stop();
        await registry
          ?.close()
          .catch((err: Error) => log.warn('etcd deregistration failed', { err: err.message }));
        await server.shutdown(graceMs);
      })();
      return closing;
    },
  };
}
