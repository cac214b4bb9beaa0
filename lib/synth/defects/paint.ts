/** Applying a rasterised defect support to ink planes. */
import { combine, type InkPlanes, type PaintMode, type Rect } from '../raster';

/** An ink mix: coverage 0..255 per plane index. */
export type InkRecipe = Partial<Record<0 | 1 | 2 | 3, number>>;

/** Paints `recipe` through `support` (0..255 opacity over `rect`) onto `ink`. */
export function paintSupport(
  ink: InkPlanes,
  rect: Rect,
  support: Uint8Array,
  recipe: InkRecipe,
  mode: PaintMode,
  strength = 1,
): void {
  const w = rect.x1 - rect.x0;
  for (const [p, v] of Object.entries(recipe)) {
    const data = ink.planes[Number(p)].data;
    for (let y = rect.y0; y < rect.y1; y++) {
      for (let x = rect.x0; x < rect.x1; x++) {
        const s = support[(y - rect.y0) * w + (x - rect.x0)];
        if (s === 0) continue;
        const i = y * ink.width + x;
        data[i] = combine(data[i], v, (s / 255) * strength, mode);
      }
    }
  }
}

/** Removes ink through `support`: every plane keeps (1 - opacity * strength) of its coverage. */
export function eraseSupport(ink: InkPlanes, rect: Rect, support: Uint8Array, strength: number): void {
  const w = rect.x1 - rect.x0;
  for (const plane of ink.planes) {
    const data = plane.data;
    for (let y = rect.y0; y < rect.y1; y++) {
      for (let x = rect.x0; x < rect.x1; x++) {
        const s = support[(y - rect.y0) * w + (x - rect.x0)];
        if (s === 0) continue;
        const i = y * ink.width + x;
        data[i] = data[i] * (1 - (s / 255) * strength);
      }
    }
  }
}

/** Ink recipes a stray drop or streak may carry, with weights. */
export const STRAY_INKS: ReadonlyArray<readonly [{ name: string; recipe: InkRecipe }, number]> = [
  [{ name: 'black', recipe: { 3: 255 } }, 4],
  [{ name: 'cyan', recipe: { 0: 255 } }, 1],
  [{ name: 'magenta', recipe: { 1: 255 } }, 1],
  [{ name: 'yellow', recipe: { 2: 255 } }, 0.6],
  [{ name: 'red', recipe: { 1: 240, 2: 230 } }, 0.8],
  [{ name: 'blue', recipe: { 0: 240, 1: 200 } }, 0.8],
  [{ name: 'brown', recipe: { 0: 120, 1: 200, 2: 230, 3: 60 } }, 0.8],
];
