/**
 * Seeded randomness: mulberry32 streams keyed by hashed (seed, label, index) tuples, so every part of
 * a sample (artwork, nominal variation, each defect) draws from its own reproducible stream and adding
 * a draw in one part never shifts the numbers of another.
 */

/** 32-bit FNV-1a over the parts' text, finished with a murmur3 avalanche. */
export function hashSeed(...parts: ReadonlyArray<number | string>): number {
  let h = 0x811c9dc5;
  const text = parts.map((p) => (typeof p === 'number' ? `n${p}` : `s${p}`)).join('|');
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

export class Rng {
  private state: number;

  constructor(seed: number) {
    this.state = seed >>> 0;
  }

  /** A stream keyed by any tuple, e.g. `Rng.of(seed, 'defect', index)`. */
  static of(...parts: ReadonlyArray<number | string>): Rng {
    return new Rng(hashSeed(...parts));
  }

  /** Uniform in [0, 1) (mulberry32). */
  float(): number {
    this.state = (this.state + 0x6d2b79f5) | 0;
    let t = Math.imul(this.state ^ (this.state >>> 15), 1 | this.state);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** A raw unsigned 32-bit draw. */
  uint32(): number {
    return Math.floor(this.float() * 4294967296) >>> 0;
  }

  /** Uniform in [lo, hi). */
  range(lo: number, hi: number): number {
    return lo + (hi - lo) * this.float();
  }

  /** Integer in [lo, hi], both ends included. */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.float() * (hi - lo + 1));
  }

  /** Log-uniform in [lo, hi): small values as likely per octave as large ones. */
  logRange(lo: number, hi: number): number {
    return Math.exp(this.range(Math.log(lo), Math.log(hi)));
  }

  chance(p: number): boolean {
    return this.float() < p;
  }

  /** -1 or +1. */
  sign(): number {
    return this.float() < 0.5 ? -1 : 1;
  }

  /** Standard normal (Box-Muller). */
  normal(): number {
    const u = 1 - this.float();
    const v = this.float();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  }

  pick<T>(items: ReadonlyArray<T>): T {
    if (items.length === 0) throw new Error('pick from an empty list');
    return items[Math.floor(this.float() * items.length)];
  }

  /** Picks by non-negative weights. */
  weighted<T>(items: ReadonlyArray<readonly [T, number]>): T {
    const total = items.reduce((s, [, w]) => s + w, 0);
    let r = this.float() * total;
    for (const [item, w] of items) {
      r -= w;
      if (r < 0) return item;
    }
    return items[items.length - 1][0];
  }

  /** A child stream; the parent advances by one draw. */
  fork(label: string | number): Rng {
    return Rng.of(this.uint32(), label);
  }
}
