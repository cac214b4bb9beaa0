/**
 * Starts a grpc-js server on host:port (port 0 = a free port), plaintext or TLS (see tls.ts), with
 * extra interceptors (auth, request ids) outside the ones in channelOptions, and stops it gracefully:
 * in-flight calls get `graceMs` to finish, then the rest are cancelled.
 */
import * as grpc from '@grpc/grpc-js';
import type * as http2 from 'node:http2';
import { Logger, createLogger } from '../util/log';
import { ServerTlsSettings, isLoopback, serverCredentials } from './tls';

export const DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024 * 1024;

/**
 * The HTTP/2 receive window, per stream and per connection, that servers grant and clients ask for
 * (`grpc-node.flow_control_window`). Node's default of 64 KiB makes a sheet's 3 MB of queries on
 * the shard hop, or a 12 MB camera frame to the gateway, cross in dozens of round trips through
 * both event loops: on loopback a bare 3.1 MB call took 14 ms p50 with it, 8-10 with 4-16 MiB; a
 * 12.6 MB one 54 against 31-35 (ad hoc, session 15). It bounds only what a peer may send before it
 * is read, and a message is buffered whole anyway.
 */
export const FLOW_CONTROL_WINDOW_BYTES = 8 * 1024 * 1024;

/** Client channel options every client of ours sets: message limits and the receive window. */
export const CLIENT_CHANNEL_OPTIONS: grpc.ChannelOptions = {
  'grpc.max_receive_message_length': DEFAULT_MAX_MESSAGE_BYTES,
  'grpc.max_send_message_length': DEFAULT_MAX_MESSAGE_BYTES,
  'grpc-node.flow_control_window': FLOW_CONTROL_WINDOW_BYTES,
};

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
  if (!widenReceiveWindow(server, FLOW_CONTROL_WINDOW_BYTES))
    log.warn('this grpc-js cannot widen the server receive window: large messages will cross slowly', {
      windowBytes: FLOW_CONTROL_WINDOW_BYTES,
    });
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

/** The grpc-js 1.14 internals widenReceiveWindow reaches into. */
interface ServerInternals {
  commonServerOptions?: http2.ServerOptions;
  _setupHandlers?: (h2: http2.Http2Server, ...rest: unknown[]) => unknown;
}

/**
 * grpc-js 1.14 reads `grpc-node.flow_control_window` for clients only (grpc-node PR #3058 would
 * add it for servers), so a server's window is set here, before it binds: the SETTINGS it sends
 * grant `bytes` per stream, and each new session widens its connection window to match. False
 * (and nothing changed) when grpc-js no longer has these internals; a unit test then fails.
 */
export function widenReceiveWindow(server: grpc.Server, bytes: number): boolean {
  const internals = server as unknown as ServerInternals;
  const setup = internals._setupHandlers;
  const common = internals.commonServerOptions;
  if (typeof setup !== 'function' || typeof common !== 'object' || common === null) return false;
  common.settings = { ...common.settings, initialWindowSize: bytes };
  internals._setupHandlers = (h2, ...rest) => {
    h2.on('session', (session: http2.ServerHttp2Session) => {
      try {
        session.setLocalWindowSize(bytes);
      } catch {
        // A session closed before it started: nothing to widen.
      }
    });
    return setup.call(server, h2, ...rest);
  };
  return true;
}
