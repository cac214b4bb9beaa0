/**
 * The soak's traffic: line controllers that send frames at a steady pace (unary Inspect and
 * InspectStream, each on its own channel, retrying as the typed client does), and overload bursts
 * of concurrent Inspects that do not retry. Every request becomes a Sample: when it was sent, how
 * long it took, and how it ended.
 */
import {
  ClientOptions,
  InspectRequest,
  InspectResponse,
  InspectionClient,
} from '../../lib/client/inspection-client';
import { SpiError } from '../../lib/errors';
import { status as grpcStatus } from '@grpc/grpc-js';

export interface Sample {
  /** epoch ms when sent */
  at: number;
  /** From sending to the end, retries included. */
  ms: number;
  /** The last attempt alone (the one the gateway accepted, for an answer), and how many there were. */
  attemptMs: number;
  attempts: number;
  source: 'unary' | 'stream' | 'burst';
  /** 'OK' or the status name it failed with. */
  code: string;
  /** Which probe image (for the version check) and what answered. */
  image: number;
  version?: number;
  score?: number;
  /** The gateway's own time for the answer: waiting for admission, then the inspection. */
  gatewayMs?: number;
  /** The same from the image being in: without the client's upload (timings.upload_ms). */
  serverMs?: number;
}

export interface Probe {
  bank: string;
  files: string[];
  images: Buffer[];
}

type ClientFactory = (options: ClientOptions) => InspectionClient;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function failure(err: unknown): string {
  return err instanceof SpiError ? err.kind : 'CLIENT_ERROR';
}

/**
 * A steady line controller on unary Inspect: one frame every `intervalMs`, until stopped; retries
 * as the typed client does (an overloaded gateway's hint honoured), each retry noted.
 */
export function unaryLine(
  makeClient: ClientFactory,
  probe: Probe,
  intervalMs: number,
  record: (s: Sample) => void,
  offset = 0,
) {
  let running = true;
  let attempts = 1;
  let attemptAt = 0;
  const client = makeClient({
    deadlineMs: 10_000,
    retries: 3,
    onRetry: (r) => {
      attempts++;
      attemptAt = Date.now() + r.delayMs;
    },
  });
  const done = (async () => {
    for (let n = offset; running; n++) {
      const image = n % probe.images.length;
      const at = Date.now();
      [attempts, attemptAt] = [1, at];
      const ended = (code: string, res?: InspectResponse): Sample => {
        const end = Date.now();
        return {
          at,
          ms: end - at,
          attemptMs: end - attemptAt,
          attempts,
          source: 'unary',
          code,
          image,
          ...answer(res),
        };
      };
      try {
        record(ended('OK', await client.inspect({ bank: probe.bank, image: probe.images[image] })));
      } catch (err) {
        record(ended(failure(err)));
      }
      await sleep(Math.max(0, intervalMs - (Date.now() - at)));
    }
  })();
  return {
    stop: async () => {
      running = false;
      await done;
    },
  };
}

/**
 * A line controller on InspectStream: frames every `intervalMs` on one stream; a stream that breaks
 * fails its outstanding frames and is opened again.
 */
export function streamLine(
  makeClient: ClientFactory,
  probe: Probe,
  intervalMs: number,
  record: (s: Sample) => void,
) {
  let running = true;
  let n = 0;
  const client = makeClient({});
  const done = (async () => {
    while (running) {
      const sent = new Map<string, { at: number; image: number }>();
      async function* frames(): AsyncGenerator<InspectRequest> {
        while (running) {
          const image = n % probe.images.length;
          const requestId = `stream-${n++}`;
          sent.set(requestId, { at: Date.now(), image });
          yield { bank: probe.bank, image: probe.images[image], requestId };
          await sleep(intervalMs);
        }
      }
      try {
        for await (const res of client.inspectStream(frames())) {
          const frame = sent.get(res.requestId);
          if (!frame) continue;
          sent.delete(res.requestId);
          const code = res.errorCode ? (grpcStatus[res.errorCode] ?? String(res.errorCode)) : 'OK';
          record(streamed(frame, code, code === 'OK' ? res : undefined));
        }
      } catch (err) {
        for (const frame of sent.values()) record(streamed(frame, failure(err)));
        await sleep(200);
      }
    }
  })();
  return {
    stop: async () => {
      running = false;
      await done;
    },
  };
}

/**
 * An overload burst: `waves` waves of `concurrency` Inspects sent at once, `gapMs` apart, on one
 * channel that never retries (so every refusal is seen).
 */
export async function burst(
  client: InspectionClient,
  probe: Probe,
  options: BurstSettings,
  record: (s: Sample) => void,
): Promise<void> {
  for (let w = 0; w < options.waves; w++) {
    const wave = Array.from({ length: options.concurrency }, async (_, i) => {
      const image = i % probe.images.length;
      const at = Date.now();
      const ended = (code: string, res?: InspectResponse): Sample => {
        const ms = Date.now() - at;
        return { at, ms, attemptMs: ms, attempts: 1, source: 'burst', code, image, ...answer(res) };
      };
      try {
        record(
          ended(
            'OK',
            await client.inspect({ bank: probe.bank, image: probe.images[image] }, options.deadlineMs),
          ),
        );
      } catch (err) {
        record(ended(failure(err)));
      }
    });
    await Promise.all([Promise.all(wave), sleep(options.gapMs)]);
  }
}

export interface BurstSettings {
  waves: number;
  concurrency: number;
  gapMs: number;
  deadlineMs: number;
}

/** A streamed frame's sample (a frame has one attempt: InspectStream does not retry). */
function streamed(frame: { at: number; image: number }, code: string, res?: InspectResponse): Sample {
  const ms = Date.now() - frame.at;
  return {
    at: frame.at,
    ms,
    attemptMs: ms,
    attempts: 1,
    source: 'stream',
    code,
    image: frame.image,
    ...answer(res),
  };
}

function answer(
  res: InspectResponse | undefined,
): Pick<Sample, 'version' | 'score' | 'gatewayMs' | 'serverMs'> {
  if (!res) return {};
  const t = res.timings;
  const onGateway = t && { gatewayMs: t.queueMs + t.totalMs, serverMs: t.queueMs - t.uploadMs + t.totalMs };
  return { version: res.version, score: res.score, ...onGateway };
}
