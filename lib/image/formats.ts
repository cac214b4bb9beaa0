/**
 * Which image formats get in, decided from the first bytes before any decoder sees them: PNG, JPEG,
 * TIFF, WebP (decoded by sharp) and BMP (lib/image/bmp.ts). Anything else is refused with the format
 * it looks like, so an SVG, a PDF or a GIF never reaches a parser. `blockUnlistedLoaders()` also
 * turns off libvips' other loaders process-wide, so even a call that bypasses the sniffing cannot
 * parse them.
 */
import sharp from 'sharp';
import { invalid } from '../errors';

export type AcceptedFormat = 'png' | 'jpeg' | 'tiff' | 'webp' | 'bmp';

export interface SniffedFormat {
  /** Our id for an accepted format, null for anything else. */
  accepted: AcceptedFormat | null;
  /** What it looks like, for the error message ("SVG", "PDF", "unknown (starts 00 11 22 33)"). */
  name: string;
}

export const ACCEPTED_FORMAT_NAMES = 'PNG, JPEG, TIFF, WebP or BMP';

const ascii = (bytes: Uint8Array, start: number, end: number): string =>
  Buffer.from(
    bytes.buffer,
    bytes.byteOffset + start,
    Math.max(0, Math.min(end, bytes.length) - start),
  ).toString('latin1');

const startsWith = (bytes: Uint8Array, prefix: number[], at = 0): boolean =>
  bytes.length >= at + prefix.length && prefix.every((b, i) => bytes[at + i] === b);

/** Accepted formats by magic bytes. */
const ACCEPTED: [AcceptedFormat, string, (b: Uint8Array) => boolean][] = [
  ['png', 'PNG', (b) => startsWith(b, [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])],
  ['jpeg', 'JPEG', (b) => startsWith(b, [0xff, 0xd8, 0xff])],
  // Classic TIFF and BigTIFF, both byte orders.
  [
    'tiff',
    'TIFF',
    (b) =>
      startsWith(b, [0x49, 0x49, 0x2a, 0x00]) ||
      startsWith(b, [0x4d, 0x4d, 0x00, 0x2a]) ||
      startsWith(b, [0x49, 0x49, 0x2b, 0x00]) ||
      startsWith(b, [0x4d, 0x4d, 0x00, 0x2b]),
  ],
  ['webp', 'WebP', (b) => ascii(b, 0, 4) === 'RIFF' && ascii(b, 8, 12) === 'WEBP'],
  ['bmp', 'BMP', (b) => ascii(b, 0, 2) === 'BM'],
];

/** Formats we refuse, named so the caller knows what they sent. */
const REFUSED: [string, (b: Uint8Array) => boolean][] = [
  ['GIF', (b) => ascii(b, 0, 6) === 'GIF87a' || ascii(b, 0, 6) === 'GIF89a'],
  ['PDF', (b) => ascii(b, 0, 5) === '%PDF-'],
  ['PostScript', (b) => ascii(b, 0, 4) === '%!PS'],
  [
    'HEIF/AVIF',
    (b) => ascii(b, 4, 8) === 'ftyp' && /^(heic|heix|hevc|mif1|msf1|avif|avis)$/.test(ascii(b, 8, 12)),
  ],
  [
    'JPEG 2000',
    (b) => startsWith(b, [0, 0, 0, 0x0c, 0x6a, 0x50, 0x20, 0x20]) || startsWith(b, [0xff, 0x4f, 0xff, 0x51]),
  ],
  ['JPEG XL', (b) => startsWith(b, [0xff, 0x0a]) || startsWith(b, [0, 0, 0, 0x0c, 0x4a, 0x58, 0x4c, 0x20])],
  ['PSD', (b) => ascii(b, 0, 4) === '8BPS'],
  ['ICO', (b) => startsWith(b, [0, 0, 1, 0])],
  ['OpenEXR', (b) => startsWith(b, [0x76, 0x2f, 0x31, 0x01])],
  ['Radiance HDR', (b) => ascii(b, 0, 10) === '#?RADIANCE' || ascii(b, 0, 6) === '#?RGBE'],
  ['FITS', (b) => ascii(b, 0, 9) === 'SIMPLE  ='],
  ['VIPS', (b) => startsWith(b, [0x08, 0xf2, 0xa6, 0xb6]) || startsWith(b, [0xb6, 0xa6, 0xf2, 0x08])],
  ['PNM', (b) => b.length > 2 && b[0] === 0x50 && b[1] >= 0x31 && b[1] <= 0x37 && /\s/.test(ascii(b, 2, 3))],
  ['gzip', (b) => startsWith(b, [0x1f, 0x8b])],
  ['ZIP', (b) => ascii(b, 0, 4) === 'PK\u0003\u0004'],
  ['SVG', (b) => /<svg[\s>]/i.test(textHead(b))],
  ['HTML', (b) => /^<(!doctype html|html)/i.test(textHead(b).trimStart())],
  ['XML', (b) => textHead(b).trimStart().startsWith('<?xml')],
];

/** The first 1 KiB as text, a UTF-8 byte-order mark dropped (SVG and XML sniffing). */
function textHead(b: Uint8Array): string {
  const head = ascii(b, 0, 1024);
  return head.startsWith('\u00ef\u00bb\u00bf') ? head.slice(3) : head;
}

export function sniffFormat(bytes: Uint8Array): SniffedFormat {
  for (const [id, name, test] of ACCEPTED) if (test(bytes)) return { accepted: id, name };
  for (const [name, test] of REFUSED) if (test(bytes)) return { accepted: null, name };
  const head = ascii(bytes, 0, 64);
  if (/^[\t\n\r\x20-\x7e]+$/.test(head)) return { accepted: null, name: 'text' };
  const hex = Buffer.from(bytes.subarray(0, 4))
    .toString('hex')
    .replace(/(..)(?!$)/g, '$1 ');
  return { accepted: null, name: `unknown (starts ${hex})` };
}

/** The accepted format of `bytes`, or INVALID_ARGUMENT naming what it is. */
export function acceptedFormat(bytes: Uint8Array): AcceptedFormat {
  const { accepted, name } = sniffFormat(bytes);
  if (!accepted) throw invalid(`image format ${name} is not accepted: send ${ACCEPTED_FORMAT_NAMES}`);
  return accepted;
}

/**
 * A PNG ends at its IEND chunk. Bytes after it are refused: a second image glued on (which frame
 * would we score?) or garbage from a broken transfer. libpng would ignore them silently.
 */
export function checkPngEnd(bytes: Uint8Array): void {
  const view = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let pos = 8;
  while (pos + 8 <= view.length) {
    const length = view.readUInt32BE(pos);
    const type = view.toString('latin1', pos + 4, pos + 8);
    const end = pos + 12 + length;
    if (end > view.length) return; // truncated: the decoder reports it
    if (type === 'IEND') {
      if (end < view.length)
        throw invalid(
          `PNG has ${view.length - end} bytes after its end (IEND chunk): a second image or trailing garbage`,
        );
      return;
    }
    pos = end;
  }
}

/** libvips loaders of the accepted formats (BMP is ours, not libvips'). */
const SHARP_LOADERS = ['Png', 'Jpeg', 'Tiff', 'Webp'].flatMap((f) =>
  ['Buffer', 'File', 'Source'].map((from) => `VipsForeignLoad${f}${from}`),
);

let blocked = false;

/**
 * Blocks every libvips loader but PNG, JPEG, TIFF and WebP, for this process (and its worker
 * threads). Processes that decode untrusted images call it at start (gateway, `spi`); it stays off
 * in test processes that render SVG fixtures.
 */
export function blockUnlistedLoaders(): void {
  if (blocked) return;
  sharp.block({ operation: ['VipsForeignLoad'] });
  sharp.unblock({ operation: SHARP_LOADERS });
  blocked = true;
}
