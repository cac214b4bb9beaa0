/** A minimal bank's metadata for bank-store tests (a manual threshold, Flat, one category). */
import { BankMeta, DEFAULT_SCORE } from '../../lib/bank/bank-meta';
import { DEFAULT_CORESET } from '../../lib/coreset/coreset';
import { DEFAULT_VIEW } from '../../lib/image/views';

export function testBankMeta(
  dim: number,
  overrides: Partial<Omit<BankMeta, 'vectors' | 'format'>> = {},
): Omit<BankMeta, 'vectors' | 'format'> {
  return {
    name: 'job-1',
    version: 1,
    createdAt: new Date(0).toISOString(),
    model: { id: 'm', stages: ['a'] },
    view: DEFAULT_VIEW,
    embedding: { dim, projection: null },
    coreset: { ...DEFAULT_CORESET, inputPatches: 10, keptPatches: 3 },
    knn: { factory: 'Flat' },
    score: DEFAULT_SCORE,
    threshold: { value: 1.5, method: 'manual' },
    categories: ['x'],
    sources: [],
    ...overrides,
  };
}
