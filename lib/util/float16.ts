/**
 * IEEE 754 binary16 ("half") conversions over whole arrays, for the shard hop (Node 20 has no
 * Float16Array). Halves are carried as their bit patterns in a Uint16Array.
 *
 * float32 -> float16 rounds to nearest, ties to even, as a hardware conversion does: exact for
 * every half value, subnormals (below 2^-14) kept down to 2^-24 and flushed to signed zero under
 * half of that, NaN stays NaN (quiet), and magnitudes of 65520 and more (past the largest half,
 * 65504, by half a unit or more) become infinity, not clamped: a clamped value would be silently
 * wrong. The gateway packs natively (`toHalves()` of our faiss-node patch, the same rounding; this
 * file is its reference in the tests) and keeps float32 when a half is not finite.
 * float16 -> float32 is exact (every half is a float32) through a 65536-entry table.
 */

// Reinterpreting one float's bits without allocating (the table build and the scalar helpers).
const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** The half nearest to a float32 given by its bits (round to nearest, ties to even). */
function halfOfBits(bits: number): number {
  const sign = (bits >>> 16) & 0x8000;
  const abs = bits & 0x7fffffff;
  if (abs >= 0x7f800000) return sign | (abs > 0x7f800000 ? 0x7e00 : 0x7c00); // NaN, infinity
  if (abs >= 0x477ff000) return sign | 0x7c00; // >= 65520: rounds past 65504
  if (abs >= 0x38800000) {
    // Normal: rebias the exponent (127 -> 15), keep 10 of 23 mantissa bits; a carry out of the
    // mantissa correctly moves into the exponent.
    let h = (abs - 0x38000000) >>> 13;
    const rest = abs & 0x1fff;
    if (rest > 0x1000 || (rest === 0x1000 && h & 1)) h++;
    return sign | h;
  }
  if (abs <= 0x33000000) return sign; // <= 2^-25: zero (2^-25 itself ties to the even 0)
  // Subnormal half: m x 2^-24 with the implicit bit made explicit.
  const shift = 126 - (abs >>> 23);
  const m = (abs & 0x7fffff) | 0x800000;
  let h = m >>> shift;
  const rest = m & ((1 << shift) - 1);
  const halfway = 1 << (shift - 1);
  if (rest > halfway || (rest === halfway && h & 1)) h++; // may round up to the smallest normal
  return sign | h;
}

/** The float32 bits of a half (exact). */
function bitsOfHalf(h: number): number {
  const sign = (h & 0x8000) << 16;
  const exp = (h >>> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0x1f) return sign | 0x7f800000 | (mant << 13); // infinity, NaN
  if (exp !== 0) return sign | ((exp + 112) << 23) | (mant << 13);
  f32[0] = mant * 2 ** -24; // subnormal (or zero): exact in float32
  return sign | u32[0];
}

let table: Float32Array | undefined;

/** Every half's float32 value, built on first use (256 KiB). */
function halfTable(): Float32Array {
  if (!table) {
    const bits = new Uint32Array(65536);
    for (let h = 0; h < 65536; h++) bits[h] = bitsOfHalf(h);
    table = new Float32Array(bits.buffer);
  }
  return table;
}

/** One float32 value rounded to the nearest half (bit pattern). */
export function toHalf(x: number): number {
  f32[0] = x;
  return halfOfBits(u32[0]);
}

/** The value of one half given by its bit pattern. */
export function fromHalf(h: number): number {
  return halfTable()[h & 0xffff];
}

/** float32 values -> halves (into `out` when given, which must be as long). */
export function toFloat16(src: Float32Array, out: Uint16Array = new Uint16Array(src.length)): Uint16Array {
  if (out.length !== src.length) throw new RangeError(`out has ${out.length} slots for ${src.length} values`);
  const bits = new Uint32Array(src.buffer, src.byteOffset, src.length);
  for (let i = 0; i < bits.length; i++) out[i] = halfOfBits(bits[i]);
  return out;
}

/** Halves -> float32 values (into `out` when given, which must be as long). */
export function fromFloat16(
  src: Uint16Array,
  out: Float32Array = new Float32Array(src.length),
): Float32Array {
  if (out.length !== src.length) throw new RangeError(`out has ${out.length} slots for ${src.length} values`);
  const t = halfTable();
  for (let i = 0; i < src.length; i++) out[i] = t[src[i]];
  return out;
}
