/**
 * Defect injection: damages a copy of a sample's ink planes with one defect type and derives its
 * ground-truth mask from the composited change. A placement that changes too few pixels (a black
 * drop on black text, say) is retried elsewhere.
 */
import { buildInkLuts, type CompositeParams } from '../inks';
import type { Rng } from '../prng';
import { cloneInkPlanes, type InkPlanes, type Rect } from '../raster';
import { defectMask, newMaskScratch } from './mask';
import { misregistration } from './misregistration';
import { smear } from './smear';
import { inkSpot } from './spot';
import { streak } from './streak';
import { DEFAULT_DEFECT_OPTIONS, type DefectOptions, type DefectPainter, type DefectType } from './types';
import { voidDefect } from './void';

export * from './types';

export const PAINTERS: Readonly<Record<DefectType, DefectPainter>> = {
  ink_spot: inkSpot,
  streak,
  void: voidDefect,
  smear,
  misregistration,
};

export interface InjectedDefect {
  type: DefectType;
  /** The damaged planes. */
  ink: InkPlanes;
  /** 0/255 mask in artwork coordinates. */
  mask: Uint8Array;
  area: number;
  bbox: Rect;
  info: Record<string, string | number>;
  attempts: number;
}

export function resolveDefectOptions(opts: Partial<DefectOptions> = {}): DefectOptions {
  const o = { ...DEFAULT_DEFECT_OPTIONS, ...opts };
  if (!(o.minSize >= 2 && o.maxSize >= o.minSize)) {
    throw new Error(`defect sizes need 2 <= minSize <= maxSize, got ${o.minSize}..${o.maxSize}`);
  }
  if (!(o.misregShift[0] >= 1 && o.misregShift[1] >= o.misregShift[0])) {
    throw new Error(`misregShift needs 1 <= min <= max, got ${o.misregShift.join('..')}`);
  }
  return o;
}

const MAX_ATTEMPTS = 12;

/** Injects one defect of `type` into `base` (left untouched), measured under `params`. */
export function injectDefect(
  base: InkPlanes,
  type: DefectType,
  rng: Rng,
  params: CompositeParams,
  options: Partial<DefectOptions> = {},
): InjectedDefect {
  const opts = resolveDefectOptions(options);
  const painter = PAINTERS[type];
  const luts = buildInkLuts(params);
  const scratch = newMaskScratch(base.width, base.height);
  let best: InjectedDefect | undefined;
  for (let attempt = 1; attempt <= MAX_ATTEMPTS; attempt++) {
    const size = opts.minSize === opts.maxSize ? opts.minSize : rng.logRange(opts.minSize, opts.maxSize);
    const ink = cloneInkPlanes(base);
    const fp = painter({ ink, base, rng: rng.fork(attempt), size, opts });
    const m = defectMask(base, ink, fp, params, luts, opts.maskThreshold, 3, scratch);
    const candidate: InjectedDefect = { type, ink, ...m, info: fp.info, attempts: attempt };
    if (!best || candidate.area > best.area) best = candidate;
    // Enough of the defect is visible: a third of a small blob's area.
    if (m.area >= Math.max(8, Math.min(0.25 * size * size, 80))) return candidate;
  }
  if (!best || best.area === 0) throw new Error(`could not place a visible ${type} defect`);
  return best;
}
