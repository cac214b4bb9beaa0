/** Shared types of the defect injectors. */
import type { Rng } from '../prng';
import type { InkPlanes, Rect } from '../raster';

export const DEFECT_TYPES = ['ink_spot', 'streak', 'void', 'smear', 'misregistration'] as const;
export type DefectType = (typeof DEFECT_TYPES)[number];

export function isDefectType(s: string): s is DefectType {
  return (DEFECT_TYPES as readonly string[]).includes(s);
}

export interface DefectOptions {
  /** Smallest characteristic defect size (blob diameter, smear width x2, region side) in px. */
  minSize: number;
  /** Largest characteristic defect size in px. */
  maxSize: number;
  /** Misregistration shift range in px. */
  misregShift: readonly [number, number];
  /** Max channel difference (0..255) for a pixel to count as changed in the mask. */
  maskThreshold: number;
}

export const DEFAULT_DEFECT_OPTIONS: DefectOptions = {
  minSize: 6,
  maxSize: 40,
  misregShift: [3, 6],
  maskThreshold: 24,
};

export interface DefectContext {
  /** The planes to damage (a private copy of `base`). */
  ink: InkPlanes;
  /** The undamaged planes (read-only). */
  base: InkPlanes;
  rng: Rng;
  /** Characteristic size drawn for this defect, px. */
  size: number;
  opts: DefectOptions;
}

/** Where a defect acted: a bounding box and the shape's opacity (0..255) over it, row-major. */
export interface Footprint {
  rect: Rect;
  support: Uint8Array;
  /** Parameters worth recording (ink, direction, shift...). */
  info: Record<string, string | number>;
}

export type DefectPainter = (ctx: DefectContext) => Footprint;
