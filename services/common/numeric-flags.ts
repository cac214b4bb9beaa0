/**
 * Numbers from command-line flags and environment variables, checked where they are read: a typo
 * must stop the process with the flag's name, not run on as NaN (a NaN deadline or threshold fails
 * every request, or passes every part).
 */
import { invalid } from '../../lib/errors';

/** A non-negative integer (ports, milliseconds, counts); `fallback` when the flag is absent or empty. */
export function intFlag(name: string, raw: string | undefined, fallback: number): number {
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 0) throw invalid(`--${name} must be a non-negative integer, got "${raw}"`);
  return n;
}

/** A finite number; `fallback` when the flag is absent or empty (required when there is none). */
export function numberFlag(name: string, raw: string | undefined, fallback?: number): number {
  if ((raw === undefined || raw === '') && fallback !== undefined) return fallback;
  const n = Number(raw);
  if (raw === undefined || raw === '' || !Number.isFinite(n))
    throw invalid(`--${name} must be a number, got "${raw ?? ''}"`);
  return n;
}
