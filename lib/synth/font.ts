/**
 * A built-in 5x7 bitmap font, so rendered text is byte-identical on every machine (no system fonts).
 * Glyph rows are 5-bit masks, most significant bit on the left.
 */
import { type Plane, paintCoverage } from './raster';

export const GLYPH_W = 5;
export const GLYPH_H = 7;

/** 5x7 glyphs: each string is 7 rows of '#' (ink) and '.' (paper). */
const GLYPH_ROWS: Record<string, string> = {
  A: '.###. #...# #...# ##### #...# #...# #...#',
  B: '####. #...# #...# ####. #...# #...# ####.',
  C: '.###. #...# #.... #.... #.... #...# .###.',
  D: '###.. #..#. #...# #...# #...# #..#. ###..',
  E: '##### #.... #.... ####. #.... #.... #####',
  F: '##### #.... #.... ####. #.... #.... #....',
  G: '.###. #...# #.... #.### #...# #...# .####',
  H: '#...# #...# #...# ##### #...# #...# #...#',
  I: '.###. ..#.. ..#.. ..#.. ..#.. ..#.. .###.',
  J: '..### ...#. ...#. ...#. ...#. #..#. .##..',
  K: '#...# #..#. #.#.. ##... #.#.. #..#. #...#',
  L: '#.... #.... #.... #.... #.... #.... #####',
  M: '#...# ##.## #.#.# #.#.# #...# #...# #...#',
  N: '#...# #...# ##..# #.#.# #..## #...# #...#',
  O: '.###. #...# #...# #...# #...# #...# .###.',
  P: '####. #...# #...# ####. #.... #.... #....',
  Q: '.###. #...# #...# #...# #.#.# #..#. .##.#',
  R: '####. #...# #...# ####. #.#.. #..#. #...#',
  S: '.#### #.... #.... .###. ....# ....# ####.',
  T: '##### ..#.. ..#.. ..#.. ..#.. ..#.. ..#..',
  U: '#...# #...# #...# #...# #...# #...# .###.',
  V: '#...# #...# #...# #...# #...# .#.#. ..#..',
  W: '#...# #...# #...# #.#.# #.#.# #.#.# .#.#.',
  X: '#...# #...# .#.#. ..#.. .#.#. #...# #...#',
  Y: '#...# #...# .#.#. ..#.. ..#.. ..#.. ..#..',
  Z: '##### ....# ...#. ..#.. .#... #.... #####',
  '0': '.###. #...# #..## #.#.# ##..# #...# .###.',
  '1': '..#.. .##.. ..#.. ..#.. ..#.. ..#.. .###.',
  '2': '.###. #...# ....# ...#. ..#.. .#... #####',
  '3': '##### ...#. ..#.. ...#. ....# #...# .###.',
  '4': '...#. ..##. .#.#. #..#. ##### ...#. ...#.',
  '5': '##### #.... ####. ....# ....# #...# .###.',
  '6': '..##. .#... #.... ####. #...# #...# .###.',
  '7': '##### ....# ...#. ..#.. .#... .#... .#...',
  '8': '.###. #...# #...# .###. #...# #...# .###.',
  '9': '.###. #...# #...# .#### ....# ...#. .##..',
  ' ': '..... ..... ..... ..... ..... ..... .....',
  '.': '..... ..... ..... ..... ..... .##.. .##..',
  ',': '..... ..... ..... ..... .##.. ..#.. .#...',
  '-': '..... ..... ..... ##### ..... ..... .....',
  ':': '..... .##.. .##.. ..... .##.. .##.. .....',
  '/': '....# ....# ...#. ..#.. .#... #.... #....',
  '%': '##..# ##..# ...#. ..#.. .#... #..## #..##',
  '+': '..... ..#.. ..#.. ##### ..#.. ..#.. .....',
  '#': '.#.#. .#.#. ##### .#.#. ##### .#.#. .#.#.',
  '(': '...#. ..#.. .#... .#... .#... ..#.. ...#.',
  ')': '.#... ..#.. ...#. ...#. ...#. ..#.. .#...',
  '!': '..#.. ..#.. ..#.. ..#.. ..#.. ..... ..#..',
  '?': '.###. #...# ....# ...#. ..#.. ..... ..#..',
  "'": '..#.. ..#.. .#... ..... ..... ..... .....',
  '&': '.##.. #..#. #.#.. .#... #.#.# #..#. .##.#',
  '*': '..... ..#.. #.#.# .###. #.#.# ..#.. .....',
};

/** Glyph masks, row-major: GLYPHS.get(ch)[row] bit 4 = leftmost column. */
const GLYPHS = new Map<string, Uint8Array>(
  Object.entries(GLYPH_ROWS).map(([ch, rows]) => {
    const bits = rows
      .split(' ')
      .map((row) => [...row].reduce((acc, c) => (acc << 1) | (c === '#' ? 1 : 0), 0));
    if (bits.length !== GLYPH_H) throw new Error(`glyph ${ch} has ${bits.length} rows`);
    return [ch, Uint8Array.from(bits)];
  }),
);

export const FONT_CHARS = [...GLYPHS.keys()].join('');

/** Width in pixels of `text` at an integer scale (one column of spacing between glyphs). */
export function textWidth(text: string, scale = 1): number {
  return text.length === 0 ? 0 : (text.length * (GLYPH_W + 1) - 1) * scale;
}

export interface TextStyle {
  /** Integer pixel scale of each glyph cell. */
  scale?: number;
  /** Ink coverage 0..255. */
  coverage?: number;
  /** Extra horizontal thickening (faux bold), pixels. */
  bold?: number;
  /** Knock out (set coverage) instead of overprinting (max). */
  knockout?: boolean;
}

/** Draws `text` with its top-left corner at (x, y); unknown characters draw as blanks. */
export function drawText(plane: Plane, x: number, y: number, text: string, style: TextStyle = {}): void {
  const scale = Math.max(1, Math.round(style.scale ?? 1));
  const coverage = style.coverage ?? 255;
  const bold = style.bold ?? 0;
  const mode = style.knockout ? 'set' : 'max';
  let cx = Math.round(x);
  const top = Math.round(y);
  for (const ch of text.toUpperCase()) {
    const glyph = GLYPHS.get(ch);
    if (glyph) {
      for (let row = 0; row < GLYPH_H; row++) {
        const bits = glyph[row];
        if (bits === 0) continue;
        for (let col = 0; col < GLYPH_W; col++) {
          if (bits & (1 << (GLYPH_W - 1 - col))) {
            const px = cx + col * scale;
            const py = top + row * scale;
            paintCoverage(plane, px, py, px + scale + bold, py + scale, coverage, mode);
          }
        }
      }
    }
    cx += (GLYPH_W + 1) * scale;
  }
}
