/**
 * Seeded mutations of valid inputs for fuzzing: bit flips, boundary values written over bytes and
 * header words, truncation, insertion, deletion, duplication and splicing with another input. The
 * same seed gives the same inputs, so a failure names a case that can be replayed.
 */
import { mulberry32 } from '../../lib/util/random';

const BYTES = [0x00, 0x01, 0x7f, 0x80, 0xfe, 0xff];
const WORDS = [0, 1, 0x7f, 0xff, 0x100, 0xffff, 0x10000, 0x7fffffff, 0x80000000, 0xffffffff];

export interface Mutant {
  bytes: Buffer;
  /** What was done, for the failure message. */
  how: string;
}

export function mutator(seed: number) {
  const random = mulberry32(seed);
  const int = (n: number) => Math.floor(random() * n);
  const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)];
  /** A position, half the time in the first 64 bytes where headers live. */
  const pos = (b: Buffer) => (random() < 0.5 ? int(Math.min(64, b.length)) : int(b.length));

  const strategies: [string, (b: Buffer, other: Buffer) => Buffer][] = [
    [
      'bit flips',
      (b) => {
        const out = Buffer.from(b);
        for (let i = 1 + int(8); i > 0; i--) out[pos(out)] ^= 1 << int(8);
        return out;
      },
    ],
    [
      'boundary bytes',
      (b) => {
        const out = Buffer.from(b);
        for (let i = 1 + int(4); i > 0; i--) out[pos(out)] = pick(BYTES);
        return out;
      },
    ],
    [
      'boundary word',
      (b) => {
        const out = Buffer.from(b);
        const at = Math.min(pos(out), Math.max(0, out.length - 4));
        if (out.length >= 4)
          if (random() < 0.5) out.writeUInt32LE(pick(WORDS), at);
          else out.writeUInt32BE(pick(WORDS), at);
        return out;
      },
    ],
    ['truncation', (b) => b.subarray(0, int(b.length))],
    [
      'insertion',
      (b) => {
        const at = pos(b);
        const junk = Buffer.from(Array.from({ length: 1 + int(64) }, () => int(256)));
        return Buffer.concat([b.subarray(0, at), junk, b.subarray(at)]);
      },
    ],
    [
      'deletion',
      (b) => {
        const at = pos(b);
        return Buffer.concat([b.subarray(0, at), b.subarray(at + 1 + int(64))]);
      },
    ],
    [
      'duplication',
      (b) => {
        const at = pos(b);
        const piece = b.subarray(at, at + 1 + int(256));
        return Buffer.concat([b.subarray(0, at), piece, piece, b.subarray(at + piece.length)]);
      },
    ],
    [
      'splice',
      (b, other) => {
        const at = pos(b);
        return Buffer.concat([b.subarray(0, at), other.subarray(int(other.length))]);
      },
    ],
  ];

  return {
    random,
    /** One mutant of `base`; `other` feeds the splice. */
    mutate(base: Buffer, other: Buffer = base): Mutant {
      const [how, apply] = pick(strategies);
      return { bytes: apply(base, other), how };
    },
  };
}
