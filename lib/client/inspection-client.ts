/**
 * A typed Node client for line controllers and operators: Inspect with a deadline and retries
 * (UNAVAILABLE, or an overloaded gateway's RESOURCE_EXHAUSTED after its retry hint: ./retry.ts), InspectStream with backpressure, and the BankAdmin calls (builds stream images up and
 * report progress). Errors come back as SpiError with the server's message. TLS from PEM files
 * (re-read when they change) or buffers, an admin bearer token, and an `x-request-id` per call.
 */
import * as fs from 'node:fs';
import * as grpc from '@grpc/grpc-js';
import { REQUEST_ID_KEY, newRequestId } from '../rpc/request-id';
import { DEFAULT_TLS_RELOAD_MS, channelCredentials } from '../rpc/tls';
import { clientConstructor } from '../rpc/proto';
import { fromServiceError } from '../rpc/status';
import { CLIENT_CHANNEL_OPTIONS } from '../rpc/grpc-server';
import { incoming } from '../rpc/streams';
import { retryDelayMs } from './retry';
import type { SpiError } from '../errors';
import type {
  BankInfoMsg,
  BuildProgressMsg,
  BuildRequestMsg,
  BuildSpecMsg,
  FalseAlarmRequestMsg,
  FalseAlarmResponseMsg,
  InspectRequestMsg,
  InspectResponseMsg,
} from '../rpc/messages';

export type InspectRequest = Partial<InspectRequestMsg> & { bank: string; image: Buffer };
export type InspectResponse = InspectResponseMsg;
export type BuildSpec = Partial<BuildSpecMsg> & { bank: string };
export type BankInfo = BankInfoMsg;

export interface ClientOptions {
  /** Per-call deadline for Inspect (ms). */
  deadlineMs?: number;
  /**
   * Extra attempts of Inspect on UNAVAILABLE (a gateway restarting, a network blip) and on an
   * overloaded gateway's RESOURCE_EXHAUSTED (after its `retry-after-ms` hint), within the deadline.
   */
  retries?: number;
  /** Told before each retry of Inspect (logs, metrics: how often a line controller was shed). */
  onRetry?: (retry: { requestId: string; attempt: number; error: SpiError; delayMs: number }) => void;
  /** Full control over the channel's credentials (wins over `tls`). */
  credentials?: grpc.ChannelCredentials;
  /**
   * TLS: file paths (watched: rotated files are used for new connections) or PEM buffers. `ca`
   * omitted: the system's roots. `cert` + `key`: mutual TLS. `serverName`: the name to check the
   * server's certificate against when it differs from the dialled host.
   */
  tls?: {
    ca?: string | Buffer;
    cert?: string | Buffer;
    key?: string | Buffer;
    serverName?: string;
    reloadMs?: number;
  };
  /** Admin bearer token (sent as `authorization: Bearer <token>` on every call). */
  token?: string;
  channelOptions?: grpc.ChannelOptions;
}

/** Channel credentials for ClientOptions.tls. */
export function tlsCredentials(tls: NonNullable<ClientOptions['tls']>): grpc.ChannelCredentials {
  const { ca, cert, key } = tls;
  if (!cert !== !key) throw new Error('tls.cert and tls.key go together');
  if (typeof ca === 'string' && (cert === undefined || typeof cert === 'string') && typeof key !== 'object')
    return channelCredentials({
      caFile: ca,
      certFile: cert as string | undefined,
      keyFile: key,
      reloadMs: tls.reloadMs ?? DEFAULT_TLS_RELOAD_MS,
    });
  const pem = (v: string | Buffer | undefined) => (typeof v === 'string' ? fs.readFileSync(v) : v);
  return grpc.credentials.createSsl(pem(ca) ?? null, pem(key) ?? null, pem(cert) ?? null);
}

type AnyClient = grpc.Client & Record<string, (...args: unknown[]) => unknown>;

export class InspectionClient {
  private readonly inspector: AnyClient;
  private readonly admin: AnyClient;
  private readonly deadlineMs: number;
  private readonly retries: number;
  private readonly onRetry: ClientOptions['onRetry'];
  private readonly token: string | undefined;

  constructor(
    readonly address: string,
    options: ClientOptions = {},
  ) {
    const creds =
      options.credentials ?? (options.tls ? tlsCredentials(options.tls) : grpc.credentials.createInsecure());
    const channel = {
      ...CLIENT_CHANNEL_OPTIONS,
      ...(options.tls?.serverName ? { 'grpc.ssl_target_name_override': options.tls.serverName } : {}),
      ...options.channelOptions,
    };
    this.token = options.token;
    this.inspector = new (clientConstructor('Inspector'))(address, creds, channel) as unknown as AnyClient;
    this.admin = new (clientConstructor('BankAdmin'))(address, creds, channel) as unknown as AnyClient;
    this.deadlineMs = options.deadlineMs ?? 10_000;
    this.retries = options.retries ?? 2;
    this.onRetry = options.onRetry;
  }

  /** One frame; retried with a jittered back-off (./retry.ts), within the deadline. */
  async inspect(req: InspectRequest, deadlineMs = this.deadlineMs): Promise<InspectResponse> {
    const deadline = Date.now() + deadlineMs;
    // One id for every attempt, so the gateway's and shards' logs of the retries line up.
    const requestId = req.requestId || newRequestId();
    const sent = { ...req, requestId };
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.unary<InspectResponse>(this.inspector, 'inspect', sent, deadline, requestId);
      } catch (err) {
        const delay = attempt < this.retries ? retryDelayMs(err as grpc.ServiceError, attempt) : undefined;
        if (delay === undefined || Date.now() + delay >= deadline) throw fromServiceError(err);
        this.onRetry?.({ requestId, attempt: attempt + 1, error: fromServiceError(err), delayMs: delay });
        await sleep(delay);
      }
    }
  }

  /**
   * Frames in, answers out, in order. The generator pulls the next frame only when the stream can
   * take it (write() returned true or 'drain' fired), so a slow server slows the producer down.
   */
  async *inspectStream(
    frames: AsyncIterable<InspectRequest> | Iterable<InspectRequest>,
  ): AsyncGenerator<InspectResponse> {
    const call = (
      this.inspector.inspectStream as (
        m: grpc.Metadata,
      ) => grpc.ClientDuplexStream<InspectRequest, InspectResponse>
    ).call(this.inspector, this.metadata());
    const pump = (async () => {
      for await (const frame of frames) {
        if (!call.write(frame)) await new Promise((resolve) => call.once('drain', resolve));
      }
      call.end();
    })();
    pump.catch((err) => call.destroy(err as Error));
    try {
      for await (const res of incoming<InspectResponse>(call)) yield res;
    } catch (err) {
      throw fromServiceError(err);
    }
    await pump;
  }

  createBank(
    spec: BuildSpec,
    images: { name: string; data: Buffer }[],
    onProgress?: (p: BuildProgressMsg) => void,
  ) {
    return this.build('createBank', spec, images, onProgress);
  }

  rotateBank(
    spec: BuildSpec,
    images: { name: string; data: Buffer }[],
    onProgress?: (p: BuildProgressMsg) => void,
  ) {
    return this.build('rotateBank', spec, images, onProgress);
  }

  listBanks(): Promise<BankInfo[]> {
    return this.unary<{ banks: BankInfo[] }>(this.admin, 'listBanks', {}, Date.now() + this.deadlineMs).then(
      (r) => r.banks,
    );
  }

  /**
   * "This sheet is good": sends back a false alarm (the image as inspected, and the answer's version
   * and request id) to be added by the bank's next incremental version (rotateBank with addToActive
   * and includeFeedback). Resolves with the queued entry's id and how many the bank has queued.
   */
  reportFalseAlarm(
    report: Partial<FalseAlarmRequestMsg> & { bank: string; image: Buffer },
  ): Promise<FalseAlarmResponseMsg> {
    return this.unary(
      this.inspector,
      'reportFalseAlarm',
      { version: 0, requestId: '', note: '', category: '', ...report },
      Date.now() + this.deadlineMs,
    );
  }

  getBank(bank: string): Promise<BankInfo> {
    return this.unary(this.admin, 'getBank', { bank }, Date.now() + this.deadlineMs);
  }

  activateVersion(bank: string, version: number): Promise<BankInfo> {
    return this.unary(this.admin, 'activateVersion', { bank, version }, Date.now() + 60_000);
  }

  deleteBank(bank: string, version = 0): Promise<{ bank: string; deletedVersions: number[] }> {
    return this.unary(this.admin, 'deleteBank', { bank, version }, Date.now() + 60_000);
  }

  close(): void {
    this.inspector.close();
    this.admin.close();
  }

  private async build(
    method: 'createBank' | 'rotateBank',
    spec: BuildSpec,
    images: { name: string; data: Buffer }[],
    onProgress?: (p: BuildProgressMsg) => void,
  ): Promise<BankInfo> {
    const call = (
      this.admin[method] as (m: grpc.Metadata) => grpc.ClientDuplexStream<BuildRequestMsg, BuildProgressMsg>
    ).call(this.admin, this.metadata());
    const send = async () => {
      const write = async (msg: BuildRequestMsg) => {
        if (!call.write(msg)) await new Promise((resolve) => call.once('drain', resolve));
      };
      await write({ part: 'spec', spec: spec as BuildSpecMsg });
      for (const image of images) await write({ part: 'image', image });
      call.end();
    };
    const sending = send();
    let bank: BankInfo | undefined;
    try {
      for await (const p of incoming<BuildProgressMsg>(call)) {
        onProgress?.(p);
        if (p.bank) bank = p.bank;
      }
    } catch (err) {
      throw fromServiceError(err);
    }
    await sending;
    if (!bank) throw fromServiceError(new Error(`${method} ended without a result`));
    return bank;
  }

  /** Per-call metadata: a request id (the caller's or a new one) and the bearer token if set. */
  private metadata(requestId: string = newRequestId()): grpc.Metadata {
    const md = new grpc.Metadata();
    md.set(REQUEST_ID_KEY, requestId);
    if (this.token) md.set('authorization', `Bearer ${this.token}`);
    return md;
  }

  private unary<T>(
    client: AnyClient,
    method: string,
    req: unknown,
    deadline: number,
    requestId?: string,
  ): Promise<T> {
    return new Promise((resolve, reject) => {
      (
        client[method] as (
          r: unknown,
          m: grpc.Metadata,
          o: grpc.CallOptions,
          cb: (e: grpc.ServiceError | null, r: T) => void,
        ) => void
      ).call(client, req, this.metadata(requestId), { deadline }, (err, res) =>
        err ? reject(method === 'inspect' ? err : fromServiceError(err)) : resolve(res),
      );
    });
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
