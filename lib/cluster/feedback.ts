/**
 * Operator feedback (#18): an Inspect answer that was a false alarm, sent back with its image as
 * "this sheet is good", queued per bank in the registry (etcd, or the embedded registry's memory)
 * until the next incremental version (RotateBank with add_to_active and include_feedback) adds the
 * queued sheets and takes them off the queue. The image travels in the registry, so any gateway can
 * build the version: hence the limits below (etcd refuses requests above 1.5 MiB by default).
 */
import { randomBytes } from 'node:crypto';
import { SpiError, invalid } from '../errors';

export const MAX_FEEDBACK_IMAGE_BYTES = 1024 * 1024;
export const MAX_FEEDBACK_PER_BANK = 64;

export interface FeedbackEntry {
  /** Time-ordered id: base-36 milliseconds, then random. */
  id: string;
  bank: string;
  /** The version that answered, and the Inspect's request id (the audit trail). */
  version: number;
  requestId: string;
  note: string;
  /** A unified bank's product the sheet shows (absent for a one-product bank). */
  category?: string;
  receivedAt: string;
  sha256: string;
  /** The image, base64. */
  image: string;
}

export interface FeedbackQueue {
  /** Queues an entry; returns how many the bank has queued now. RESOURCE_EXHAUSTED when full. */
  queueFeedback(entry: FeedbackEntry): Promise<number>;
  /** The bank's queued entries, oldest first. */
  listFeedback(bank: string): Promise<FeedbackEntry[]>;
  deleteFeedback(bank: string, ids: string[]): Promise<void>;
}

export function newFeedbackId(now = Date.now()): string {
  return `${now.toString(36).padStart(9, '0')}-${randomBytes(4).toString('hex')}`;
}

export function checkFeedbackImage(image: Uint8Array | undefined): void {
  if (!image || image.length === 0) throw invalid('ReportFalseAlarm: the image is empty');
  if (image.length > MAX_FEEDBACK_IMAGE_BYTES)
    throw invalid(
      `ReportFalseAlarm: the image has ${image.length} bytes, at most ${MAX_FEEDBACK_IMAGE_BYTES} are queued ` +
        '(send a JPEG, or add large sheets with RotateBank add_to_active)',
    );
}

export function queueFull(bank: string): SpiError {
  return new SpiError(
    'RESOURCE_EXHAUSTED',
    `bank ${bank} already has ${MAX_FEEDBACK_PER_BANK} false alarms queued: build the next version (RotateBank add_to_active, include_feedback) first`,
  );
}
