/**
 * Starts a grpc-js server on host:port (port 0 = a free port) and stops it gracefully: in-flight
 * calls get `graceMs` to finish, then the rest are cancelled.
 */
import * as grpc from '@grpc/grpc-js';

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
  const server = new grpc.Server({
    'grpc.max_receive_message_length': maxBytes,
    'grpc.max_send_message_length': maxBytes,
    ...options.channelOptions,
  });
  for (const s of options.services) server.addService(s.definition, s.implementation);
  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync(
      hostPort(host, options.port ?? 0),
      grpc.ServerCredentials.createInsecure(),
      (err, bound) => (err ? reject(err) : resolve(bound)),
    );
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
