/**
 * Starts a grpc-js server on host:port (port 0 = a free port), plaintext or TLS (see tls.ts), with
 * extra interceptors (auth, request ids) outside the ones in channelOptions, and stops it gracefully:
 * in-flight calls get `graceMs` to finish, then the rest are cancelled.
 */
import * as grpc from '@grpc/grpc-js';
import { Logger, createLogger } from '../util/log';
import { ServerTlsSettings, isLoopback, serverCredentials } from './tls';

export const DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024 * 1024;

export interface ServiceBinding {
  definition: grpc.ServiceDefinition;
  implementation: grpc.UntypedServiceImplementation;
}

export interface GrpcServerOptions {
  host?: string;
  port?: number;
  services: ServiceBinding[];
  /** Largest message received or sent (default 64 MiB: a frame's patch embeddings fit easily). */
  maxMessageBytes?: number;
  channelOptions?: grpc.ChannelOptions;
  /** TLS (watched certificate files); none = plaintext (a warning unless on loopback). */
  tls?: ServerTlsSettings | null;
  /** Run outside channelOptions' interceptors (so e.g. the metrics interceptor counts refusals). */
  interceptors?: grpc.ServerInterceptor[];
  log?: Logger;
}

export interface RunningServer {
  server: grpc.Server;
  host: string;
  port: number;
  /** Refuses new calls, lets in-flight ones finish for up to graceMs, then cancels the rest. */
  shutdown(graceMs?: number): Promise<void>;
}

export function hostPort(host: string, port: number): string {
  return host.includes(':') && !host.startsWith('[') ? `[${host}]:${port}` : `${host}:${port}`;
}

export async function startGrpcServer(options: GrpcServerOptions): Promise<RunningServer> {
  const host = options.host ?? '0.0.0.0';
  const maxBytes = options.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
  const log = options.log ?? createLogger('grpc');
  const interceptors = [
    ...((options.channelOptions?.interceptors as grpc.ServerInterceptor[] | undefined) ?? []),
    ...(options.interceptors ?? []),
  ];
  const server = new grpc.Server({
    'grpc.max_receive_message_length': maxBytes,
    'grpc.max_send_message_length': maxBytes,
    ...options.channelOptions,
    interceptors,
  });
  for (const s of options.services) server.addService(s.definition, s.implementation);
  const credentials = await serverCredentials(options.tls);
  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync(hostPort(host, options.port ?? 0), credentials, (err, bound) =>
      err ? reject(err) : resolve(bound),
    );
  });
  if (!options.tls && !isLoopback(host))
    log.warn('serving gRPC in plaintext on a non-loopback address: set --tls-cert and --tls-key', {
      host,
      port,
    });
  let stopping: Promise<void> | undefined;
  const shutdown = (graceMs = 10_000): Promise<void> => {
    stopping ??= new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        server.forceShutdown();
        resolve();
      }, graceMs);
      timer.unref();
      server.tryShutdown(() => {
        clearTimeout(timer);
        resolve();
      });
    });
    return stopping;
  };
  return { server, host, port, shutdown };
}
