/** EAN-13 encoding and rendering (a real, scannable symbology, so the barcode looks like one). */
import { drawText, GLYPH_H, GLYPH_W } from './font';
import { type Plane, paintCoverage } from './raster';

const L_CODES = [
  '0001101',
  '0011001',
  '0010011',
  '0111101',
  '0100011',
  '0110001',
  '0101111',
  '0111011',
  '0110111',
  '0001011',
];
const G_CODES = [
  '0100111',
  '0110011',
  '0011011',
  '0100001',
  '0011101',
  '0111001',
  '0000101',
  '0010001',
  '0001001',
  '0010111',
];
const R_CODES = [
  '1110010',
  '1100110',
  '1101100',
  '1000010',
  '1011100',
  '1001110',
  '1010000',
  '1000100',
  '1001000',
  '1110100',
];
const PARITY = [
  'LLLLLL',
  'LLGLGG',
  'LLGGLG',
  'LLGGGL',
  'LGLLGG',
  'LGGLLG',
  'LGGGLL',
  'LGLGLG',
  'LGLGGL',
  'LGGLGL',
];

/** EAN-13 check digit of 12 data digits. */
export function ean13CheckDigit(data12: string): number {
  if (!/^\d{12}$/.test(data12)) throw new Error(`EAN-13 needs 12 digits, got "${data12}"`);
  let sum = 0;
  for (let i = 0; i < 12; i++) sum += Number(data12[i]) * (i % 2 === 0 ? 1 : 3);
  return (10 - (sum % 10)) % 10;
}

/**
 * The 95 modules ('1' = bar) of an EAN-13 symbol for 12 data digits (check digit appended) and which
 * modules are guard bars (drawn longer).
 */
export function ean13Modules(data12: string): { digits: string; modules: string; guard: boolean[] } {
  const digits = data12 + String(ean13CheckDigit(data12));
  const parity = PARITY[Number(digits[0])];
  let modules = '101';
  for (let i = 1; i <= 6; i++) {
    const d = Number(digits[i]);
    modules += parity[i - 1] === 'L' ? L_CODES[d] : G_CODES[d];
  }
  modules += '01010';
  for (let i = 7; i <= 12; i++) modules += R_CODES[Number(digits[i])];
  modules += '101';
  const guard = [...modules].map((_, i) => i < 3 || (i >= 45 && i < 50) || i >= 92);
  return { digits, modules, guard };
}

/** Total width in pixels of a rendered EAN-13 (quiet digit on the left included). */
export function ean13Width(moduleWidth: number): number {
  return (95 + 9) * moduleWidth;
}

/**
 * Draws an EAN-13 with its top-left at (x, y): bars `barHeight` tall, digits underneath.
 * Returns the height used.
 */
export function drawEan13(
  plane: Plane,
  x: number,
  y: number,
  data12: string,
  moduleWidth: number,
  barHeight: number,
): number {
  const { digits, modules, guard } = ean13Modules(data12);
  const mw = moduleWidth;
  const left = x + 9 * mw;
  const scale = Math.max(1, Math.floor(mw / 2));
  const guardExtra = Math.round(GLYPH_H * scale * 0.7);
  for (let i = 0; i < modules.length; i++) {
    if (modules[i] !== '1') continue;
    const bx = left + i * mw;
    paintCoverage(plane, bx, y, bx + mw, y + barHeight + (guard[i] ? guardExtra : 0), 255, 'max');
  }
  const ty = y + barHeight + 2;
  drawText(plane, x + 2 * mw, ty, digits[0], { scale });
  const groupW = 42 * mw;
  for (const [start, module0] of [
    [1, 3],
    [7, 50],
  ] as const) {
    const group = digits.slice(start, start + 6);
    const w = (group.length * (GLYPH_W + 1) - 1) * scale;
    drawText(plane, left + module0 * mw + Math.round((groupW - w) / 2), ty, group, { scale });
  }
  return barHeight + 2 + GLYPH_H * scale;
}
