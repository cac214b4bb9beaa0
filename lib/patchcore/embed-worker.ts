/**
 * One embedding worker of EmbedPool: its own backbone sessions and extractors, one message at a time.
 */
import { isMainThread, parentPort, workerData } from 'node:worker_threads';
import { SessionSettings } from '../backbone/backbone';
import { SpiError } from '../errors';
import { RgbImage } from '../image/decode';
import type { FromWorker, ToWorker } from './embed-pool';
import { BackbonePool, createExtractor } from './engine';
import { ExtractorSettings } from './extractor-settings';
import { FeatureExtractor, ImageEmbedding } from './feature-extractor';

function serve(session: SessionSettings): void {
  const pool = new BackbonePool(session);
  const extractors = new Map<string, Promise<FeatureExtractor>>();
  const extractorFor = (s: ExtractorSettings): Promise<FeatureExtractor> => {
    const key = JSON.stringify(s);
    let e = extractors.get(key);
    if (!e) {
      e = createExtractor(pool, s);
      e.catch(() => extractors.delete(key));
      extractors.set(key, e);
    }
    return e;
  };
  const post = (msg: FromWorker, transfer: ArrayBuffer[] = []) => parentPort!.postMessage(msg, transfer);
  parentPort!.on('message', (msg: ToWorker) => {
    void (async () => {
      try {
        const extractor = await extractorFor(msg.settings);
        if (msg.type === 'warm') return post({ type: 'done', id: msg.id, embeddings: [] });
        const embeddings = (await extractor.embedMany(msg.images.map(asBuffer))).map(ownBuffer);
        post(
          { type: 'done', id: msg.id, embeddings },
          embeddings.map((e) => e.vectors.buffer as ArrayBuffer),
        );
      } catch (err) {
        post({
          type: 'error',
          id: msg.id,
          kind: err instanceof SpiError ? err.kind : null,
          message: err instanceof Error ? err.message : String(err),
        });
      }
    })();
  });
}

/** Structured cloning delivers Uint8Arrays; the image code expects Buffers (same memory, no copy). */
function asBuffer(im: RgbImage): RgbImage {
  return { ...im, data: Buffer.from(im.data.buffer, im.data.byteOffset, im.data.byteLength) };
}

/** Transfers move whole ArrayBuffers: give each embedding a buffer of its own. */
function ownBuffer(e: ImageEmbedding): ImageEmbedding {
  const v = e.vectors;
  const whole = v.byteOffset === 0 && v.byteLength === v.buffer.byteLength;
  return whole ? e : { ...e, vectors: v.slice() };
}

if (!isMainThread && parentPort) {
  serve((workerData as { session: SessionSettings }).session);
}
