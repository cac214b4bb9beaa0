/**
 * A discriminator head carried into an incremental version (`spi fit --add`, RotateBank with
 * add_to_active; lib/patchcore/incremental.ts): the same model, not retrained on the new images,
 * with its head and combined thresholds recalibrated as the bank's threshold is. The new images'
 * held-out part is scored by the grown bank and the head and pooled with the old held-out scores:
 * the head's old scores are exact (the head has not changed), the combined ones upper bounds (the
 * bank's term can only fall as the bank grows; a fused bank's members are restandardised on the
 * same images); a threshold folder recalibrates from scratch. The standardisation and the head's
 * weight stay the first fit's. `HeadMeta.carried` lists the versions it was carried into.
 */
import { DecodeLimits, DEFAULT_DECODE_LIMITS, decodeImage } from '../image/decode';
import { BackbonePool } from '../patchcore/engine';
import { ImageSource } from '../patchcore/fit';
import { FusedInspector } from '../patchcore/fusion';
import { Inspector } from '../patchcore/inspector';
import { recalibrated } from '../patchcore/incremental';
import { HeadMeta, headInspectorFor } from './head-bank';

/**
 * Recalibrates the head a freshly grown bank's metadata `meta` carries over from the old bank (no
 * head: nothing to do). `grown` inspects with the grown bank; `dir` is the old bank folder holding
 * the models (undefined when they are inline); `images` are the addition's new images, among which
 * its record names the held-out ones, or `thresholdImages` the folder it was recalibrated on.
 */
export async function carryHeadInto(
  pool: BackbonePool,
  dir: string | undefined,
  grown: Inspector | FusedInspector,
  meta: { head?: HeadMeta; version: number; additions?: { heldOut: string[] }[] },
  images: ImageSource[],
  thresholdImages?: ImageSource[],
): Promise<void> {
  if (!meta.head) return;
  const heldOut = heldOutOf(meta.additions!.at(-1)!, images, thresholdImages);
  meta.head = await carryHead(pool, dir, grown, heldOut, meta.version);
}

/** The head's metadata for the grown bank `grown` (whose metadata still carries the old head). */
export async function carryHead(
  pool: BackbonePool,
  dir: string | undefined,
  grown: Inspector | FusedInspector,
  heldOut: { images: ImageSource[]; fromScratch: boolean },
  version: number,
  limits: DecodeLimits = DEFAULT_DECODE_LIMITS,
): Promise<HeadMeta> {
  const inspector = (await headInspectorFor(pool, dir, grown, { mode: 'combined' }))!;
  const head = inspector.base.meta.head!;
  const scores = { head: [] as number[], combined: [] as number[] };
  try {
    for (const source of heldOut.images) {
      const all = await inspector.inspectAll(await decodeImage(await source.read(), limits));
      scores.head.push(all.head.score);
      scores.combined.push(all.combined.score);
    }
  } finally {
    await inspector.close();
  }
  const { fromScratch } = heldOut;
  return {
    ...head,
    thresholds: {
      head: recalibrated(head.thresholds.head, scores.head, fromScratch),
      combined: recalibrated(head.thresholds.combined, scores.combined, fromScratch),
    },
    carried: [...(head.carried ?? []), { version, heldOut: heldOut.images.length, fromScratch }],
  };
}

/**
 * The images an addition held out, by the names its record gives, or the threshold folder it was
 * given instead (then `fromScratch`).
 */
export function heldOutOf(
  addition: { heldOut: string[] },
  images: ImageSource[],
  thresholdImages?: ImageSource[],
): { images: ImageSource[]; fromScratch: boolean } {
  if (thresholdImages && thresholdImages.length > 0) return { images: thresholdImages, fromScratch: true };
  const names = new Set(addition.heldOut);
  return { images: images.filter((s) => names.has(s.path)), fromScratch: false };
}
