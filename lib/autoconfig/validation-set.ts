/**
 * The validation set the fit scores candidate configurations on (issue #15): held-out good images as
 * they are, plus defective copies of them with synthetic defects of every kind and their masks.
 */
import type { RgbImage } from '../image/decode';
import { Rng } from '../synth/prng';
import {
  defectSizeRange,
  injectSyntheticDefect,
  type SyntheticDefect,
  SYNTHETIC_DEFECT_KINDS,
  type SyntheticDefectKind,
} from './synthetic-defects';

export interface ValidationImage {
  name: string;
  image: RgbImage;
}

export interface ValidationItem {
  name: string;
  image: RgbImage;
  label: 0 | 1;
  /** 0/255, width * height; null for good images. */
  mask: Uint8Array | null;
  kind?: SyntheticDefectKind;
  size?: number;
  /** Index into the goods of the image this is (a copy of); -1 for an image from elsewhere. */
  source: number;
  /** Only gives the reference and the fusion's standardisation; not judged (a ranking study's held-out goods). */
  referenceOnly?: boolean;
}

export interface ValidationSetOptions {
  seed: number;
  /** Defective copies per good image; default: enough for at least 24 defects, at least 2. */
  copiesPerImage?: number;
  kinds?: readonly SyntheticDefectKind[];
  /** Largest defect as a fraction of the frame's area (default MAX_DEFECT_AREA_FRACTION). */
  maxDefectArea?: number;
}

const MIN_DEFECTS = 24;

/**
 * Every good image (label 0) followed by `copiesPerImage` defective copies of each (label 1). Kinds
 * are dealt in turn over all copies, so they are represented evenly and neighbouring images get
 * different ones. Deterministic in the seed.
 */
export function buildValidationSet(
  goods: ValidationImage[],
  options: ValidationSetOptions,
): ValidationItem[] {
  if (goods.length < 2) {
    throw new Error(`a validation set needs at least 2 good images, got ${goods.length}`);
  }
  const kinds = options.kinds ?? SYNTHETIC_DEFECT_KINDS;
  const unknown = kinds.filter((k) => !(SYNTHETIC_DEFECT_KINDS as readonly string[]).includes(k));
  if (kinds.length === 0 || unknown.length) {
    throw new Error(
      `validation defect kinds must be some of ${SYNTHETIC_DEFECT_KINDS.join(', ')}, got [${kinds}]`,
    );
  }
  const copies = options.copiesPerImage ?? Math.max(2, Math.ceil(MIN_DEFECTS / goods.length));
  if (!(Number.isInteger(copies) && copies >= 1)) {
    throw new Error(`copiesPerImage must be a positive integer, got ${copies}`);
  }
  const items: ValidationItem[] = goods.map(({ name, image }, source) => ({
    name,
    image,
    label: 0,
    mask: null,
    source,
  }));
  goods.forEach((good, g) => {
    const next = goods[(g + 1) % goods.length].image;
    const donor = next.width === good.image.width && next.height === good.image.height ? next : undefined;
    for (let copy = 0; copy < copies; copy++) {
      const rng = Rng.of(options.seed, 'validation', g, copy);
      const defect = injectAnyKind(good, kinds, g * copies + copy, rng, donor, options.maxDefectArea);
      items.push({
        name: `${good.name}#${defect.kind}-${copy}`,
        image: defect.image,
        label: 1,
        mask: defect.mask,
        kind: defect.kind,
        size: defect.size,
        source: g,
      });
    }
  });
  return items;
}

/**
 * A defect of kind `kinds[turn]`, or of the following kinds where that one cannot show on this image
 * (a blur on a flat picture, say).
 */
function injectAnyKind(
  good: ValidationImage,
  kinds: readonly SyntheticDefectKind[],
  turn: number,
  rng: Rng,
  donor: RgbImage | undefined,
  maxDefectArea: number | undefined,
): SyntheticDefect {
  const sizes = defectSizeRange(good.image.width, good.image.height, maxDefectArea);
  const failures: string[] = [];
  for (let k = 0; k < kinds.length; k++) {
    const kind = kinds[(turn + k) % kinds.length];
    try {
      return injectSyntheticDefect(good.image, kind, rng, { ...sizes, donor });
    } catch (err) {
      failures.push(`${kind}: ${(err as Error).message}`);
    }
  }
  throw new Error(`no synthetic defect could be placed on "${good.name}": ${failures.join('; ')}`);
}

/** Counts for the fit summary. */
export function validationSummary(items: readonly ValidationItem[]): {
  good: number;
  defective: number;
  byKind: Record<string, number>;
} {
  const byKind: Record<string, number> = {};
  for (const item of items) if (item.kind) byKind[item.kind] = (byKind[item.kind] ?? 0) + 1;
  const defective = items.filter((i) => i.label === 1).length;
  return { good: items.length - defective, defective, byKind };
}
