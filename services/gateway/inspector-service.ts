/**
 * Inspector RPCs: a thin adapter from messages to the engine. Inspect answers one frame;
 * InspectStream answers frames in order, one at a time, reading the next frame only after the
 * previous answer was written (gRPC flow control then holds back a client that sends too fast).
 * Every frame, unary or streamed, passes admission control first (./admission.ts): a refused
 * unary call ends RESOURCE_EXHAUSTED with `retry-after-ms` metadata, a refused streamed frame gets
 * an answer with that error code and the stream goes on.
 */
import * as grpc from '@grpc/grpc-js';
import { checkBankName } from '../../lib/cluster/types';
import { BankMeta, checkCategory, thresholdFor } from '../../lib/bank/bank-meta';
import { Inspection } from '../../lib/patchcore/inspector';
import { invalid, notFound } from '../../lib/errors';
import { FeedbackEntry, FeedbackQueue, checkFeedbackImage, newFeedbackId } from '../../lib/cluster/feedback';
import { ClusterRegistry } from '../../lib/cluster/cluster-registry';
import { acceptedFormat } from '../../lib/image/formats';
import { sha256 } from '../../lib/bank/bank-store';
import { Logger } from '../../lib/util/log';
import { incoming } from '../../lib/rpc/streams';
import { toServiceError, wrapUnary } from '../../lib/rpc/status';
import { newRequestId, requestIdOf, withRequestId } from '../../lib/rpc/request-id';
import { BankCatalog } from './bank-catalog';
import { Admission } from './admission';
import { arrivalOf } from './arrival';
import {
  FalseAlarmRequestMsg,
  FalseAlarmResponseMsg,
  InspectRequestMsg,
  InspectResponseMsg,
} from '../../lib/rpc/messages';

/**
 * The product a false alarm shows: required in a unified bank (its sheets join that product's
 * images), ignored when empty in a one-product bank; one the bank does not cover is refused.
 */
function productOf(meta: Partial<BankMeta>, bank: string, category: string): string | undefined {
  const categories = meta.categories ?? [];
  if (!category) {
    if (categories.length > 1)
      throw invalid(
        `bank ${bank} is a unified bank of ${categories.join(', ')}: name the product the sheet shows (category)`,
      );
    return undefined;
  }
  checkCategory({ categories, name: bank }, category);
  return categories.length > 1 ? category : undefined;
}

export function inspectorHandlers(
  catalog: BankCatalog,
  admission: Admission,
  log: Logger,
  /** Where ReportFalseAlarm queues the sheets (the cluster registry). */
  feedback: FeedbackQueue & Pick<ClusterRegistry, 'getActive' | 'getVersion'>,
): grpc.UntypedServiceImplementation {
  /**
   * One frame, under `requestId` (logged here, sent to every shard Search by the fan-out), once
   * admitted. A frame's own request_id, when it differs, is logged as `frame`.
   */
  const inspect = (
    requestId: string,
    req: InspectRequestMsg,
    deadline: number | undefined,
    cancelled: AbortSignal,
    /** The connection it came on, for admission's fair share between clients. */
    client: string,
    /** When the request reached the gateway (performance.now()): its metadata, or a streamed frame. */
    arrived = performance.now(),
  ): Promise<InspectResponseMsg> => {
    const uploadMs = performance.now() - arrived;
    // The caller's cancellation leaves the queue, and cancels the request's shard searches.
    return withRequestId(
      requestId,
      () =>
        admission.run(
          deadline,
          () => inspectAdmitted(requestId, req, { queueMs: performance.now() - arrived, uploadMs }, deadline),
          cancelled,
          client,
        ),
      cancelled,
    );
  };

  const inspectAdmitted = async (
    requestId: string,
    req: InspectRequestMsg,
    { queueMs, uploadMs }: { queueMs: number; uploadMs: number },
    deadline?: number,
  ): Promise<InspectResponseMsg> => {
    const started = performance.now();
    checkBankName(req.bank);
    if (!req.image || req.image.length === 0) throw invalid('InspectRequest.image is empty');
    const { record, inspector } = await catalog.resolve(req.bank, req.version);
    // An explicit threshold wins; else the named product's own (unified bank), else the bank's.
    const threshold =
      typeof req.threshold === 'number' ? req.threshold : thresholdFor(inspector.meta, req.category).value;
    const r = await inspector.inspectBytes(req.image, threshold, deadline);
    const ms = performance.now() - started;
    log.debug('inspect', {
      requestId,
      ...(req.requestId && req.requestId !== requestId ? { frame: req.requestId } : {}),
      bank: record.bank,
      version: record.version,
      score: r.score,
      defective: r.isDefective,
      ms: Math.round(ms * 10) / 10,
      queueMs: Math.round(queueMs * 10) / 10,
    });
    return toResponse(req, record.bank, record.version, r, { totalMs: ms, queueMs, uploadMs });
  };

  return {
    reportFalseAlarm: wrapUnary<FalseAlarmRequestMsg, FalseAlarmResponseMsg>(async (call) => {
      const req = call.request;
      checkBankName(req.bank);
      checkFeedbackImage(req.image);
      acceptedFormat(req.image);
      const active = await feedback.getActive(req.bank);
      const record = active === null ? null : await feedback.getVersion(req.bank, active);
      if (!record) throw notFound(`bank "${req.bank}" does not exist`);
      const category = productOf(record.meta as Partial<BankMeta>, req.bank, req.category);
      const entry: FeedbackEntry = {
        id: newFeedbackId(),
        bank: req.bank,
        version: req.version,
        requestId: req.requestId,
        note: req.note,
        ...(category ? { category } : {}),
        receivedAt: new Date().toISOString(),
        sha256: sha256(req.image),
        image: Buffer.from(req.image).toString('base64'),
      };
      const queued = await feedback.queueFeedback(entry);
      log.info('false alarm queued', { bank: req.bank, id: entry.id, version: req.version, queued });
      return { id: entry.id, queued };
    }, log),
    inspect: (
      call: grpc.ServerUnaryCall<InspectRequestMsg, InspectResponseMsg>,
      callback: grpc.sendUnaryData<InspectResponseMsg>,
    ) => {
      // The request-id interceptor put the caller's id (or a new one) in the metadata.
      const requestId = requestIdOf(call.metadata) ?? newRequestId();
      const req = call.request;
      inspect(
        requestId,
        req,
        deadlineOf(call),
        cancelSignal(call),
        call.getPeer(),
        arrivalOf(call.metadata),
      ).then(
        (res) => callback(null, { ...res, requestId: req.requestId || requestId }),
        (err: unknown) => {
          const status = toServiceError(err, log.child({ requestId }));
          log.debug('inspect failed', { requestId, code: status.code, error: status.details });
          callback(status);
        },
      );
    },
    inspectStream: (call: grpc.ServerDuplexStream<InspectRequestMsg, InspectResponseMsg>) => {
      const streamId = requestIdOf(call.metadata) ?? newRequestId();
      const cancelled = cancelSignal(call);
      void (async () => {
        try {
          for await (const req of incoming<InspectRequestMsg>(call)) {
            let res: InspectResponseMsg;
            try {
              res = await inspect(streamId, req, deadlineOf(call), cancelled, call.getPeer());
            } catch (err) {
              const status = toServiceError(err, log.child({ requestId: streamId }));
              res = {
                ...emptyResponse(req),
                errorCode: status.code ?? grpc.status.INTERNAL,
                error: status.details ?? 'failed',
              };
            }
            if (!call.write(res)) await new Promise((resolve) => call.once('drain', resolve));
          }
          call.end();
        } catch (err) {
          log.warn('inspect stream ended with an error', { requestId: streamId, err });
          call.destroy(err as Error);
        }
      })();
    },
  };
}

/** Aborted when the caller cancels the call (or it ends), so it leaves the admission queue. */
function cancelSignal(call: { once(event: 'cancelled', listener: () => void): unknown }): AbortSignal {
  const controller = new AbortController();
  call.once('cancelled', () => controller.abort());
  return controller.signal;
}

/** The caller's deadline as epoch ms, when it set a finite one. */
export function deadlineOf(call: { getDeadline(): grpc.Deadline }): number | undefined {
  const d = call.getDeadline();
  const ms = d instanceof Date ? d.getTime() : d;
  return Number.isFinite(ms) ? ms : undefined;
}

function toResponse(
  req: InspectRequestMsg,
  bank: string,
  version: number,
  r: Inspection,
  { totalMs, queueMs, uploadMs }: { totalMs: number; queueMs: number; uploadMs: number },
): InspectResponseMsg {
  return {
    ...emptyResponse(req),
    bank,
    version,
    score: r.score,
    threshold: r.threshold,
    isDefective: r.isDefective,
    regions: r.regions.map((g) => ({
      x: g.x,
      y: g.y,
      width: g.width,
      height: g.height,
      area: g.area,
      peakScore: g.peakScore,
    })),
    anomalyMap: req.returnMap
      ? Buffer.from(r.map.buffer, r.map.byteOffset, r.map.byteLength)
      : Buffer.alloc(0),
    mapWidth: r.canvasWidth,
    mapHeight: r.canvasHeight,
    imageWidth: r.imageWidth,
    imageHeight: r.imageHeight,
    timings: {
      decodeMs: r.timingsMs.decode,
      embedMs: r.timingsMs.embed,
      searchMs: r.timingsMs.search,
      scoreMs: r.timingsMs.score,
      totalMs,
      queueMs,
      uploadMs,
    },
  };
}

function emptyResponse(req: InspectRequestMsg): InspectResponseMsg {
  return {
    requestId: req.requestId ?? '',
    bank: req.bank ?? '',
    version: 0,
    score: 0,
    threshold: 0,
    isDefective: false,
    regions: [],
    anomalyMap: Buffer.alloc(0),
    mapWidth: 0,
    mapHeight: 0,
    imageWidth: 0,
    imageHeight: 0,
    timings: null,
    errorCode: 0,
    error: '',
  };
}
