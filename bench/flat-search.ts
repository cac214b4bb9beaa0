/**
 * Exact search: our blocked flat search (scripts/faiss-node-0.5.1.patch, `exactSearch`) against
 * faiss 1.7.3's own path on the same index, in the same process, alternating, for the shapes this
 * product searches: one 224 px frame (784 queries) against a bank, a 2048 px sheet in tiles (28k
 * queries), and the outlier filter's k = 3 search of a fold against its reference.
 *
 * node --import tsx bench/flat-search.ts [--quick]
 */
import { IndexFlatL2, setBlockedFlatSearch } from '../lib/knn/faiss';
import { runScript } from './lib/script';
import { makeMixture, sampleMixture, DEFAULT_MIXTURE } from './mixture';
import { alternating, round } from './stats';

export interface FlatCase {
  name: string;
  bank: number;
  queries: number;
  k: number;
}

export interface FlatSearchOptions {
  dim: number;
  cases: FlatCase[];
  runs: number;
  log: (message: string) => void;
}

export interface FlatSearchRow extends FlatCase {
  dim: number;
  faissMs: number;
  blockedMs: number;
  /** faiss' time over ours: how many times faster the blocked search is. */
  speedup: number;
  /** Queries whose nearest label differs between the two (float rounding on near ties). */
  labelsDiffering: number;
  runs: number;
}

export const FULL_FLAT: Omit<FlatSearchOptions, 'log'> = {
  dim: 96,
  cases: [
    { name: '224 px frame', bank: 16_384, queries: 784, k: 1 },
    { name: '224 px frame, large bank', bank: 100_000, queries: 784, k: 1 },
    { name: '2048 px sheet, 36 tiles', bank: 8_467, queries: 28_224, k: 1 },
    { name: '2048 px sheet, 36 tiles', bank: 16_934, queries: 28_224, k: 1 },
    { name: '2048 px sheet, whole canvas', bank: 4_915, queries: 16_384, k: 1 },
    { name: 'outlier filter, one fold', bank: 20_000, queries: 20_000, k: 3 },
  ],
  runs: 7,
};

export const QUICK_FLAT: Omit<FlatSearchOptions, 'log'> = {
  ...FULL_FLAT,
  cases: [
    { name: '224 px frame', bank: 4_096, queries: 784, k: 1 },
    { name: 'sheet-like', bank: 4_096, queries: 8_192, k: 1 },
  ],
  runs: 3,
};

export async function benchFlatSearch(o: FlatSearchOptions): Promise<FlatSearchRow[]> {
  const mixture = makeMixture({ ...DEFAULT_MIXTURE, dim: o.dim });
  const rows: FlatSearchRow[] = [];
  try {
    for (const c of o.cases) {
      const index = new IndexFlatL2(o.dim);
      index.addBuffer(sampleMixture(mixture, c.bank, 1));
      const queries = sampleMixture(mixture, c.queries, 2);
      const search = (blocked: boolean) => async () => {
        setBlockedFlatSearch(blocked);
        return index.searchAsync(queries, c.k);
      };
      const theirs = await search(false)();
      const ours = await search(true)();
      let labelsDiffering = 0;
      for (let i = 0; i < c.queries; i++)
        if (theirs.labels[i * c.k] !== ours.labels[i * c.k]) labelsDiffering++;
      const { ms, runs } = await alternating([search(false), search(true)], o.runs);
      const row = {
        ...c,
        dim: o.dim,
        faissMs: round(ms[0], 1),
        blockedMs: round(ms[1], 1),
        speedup: round(ms[0] / ms[1], 2),
        labelsDiffering,
        runs,
      };
      o.log(`flat-search: ${c.name}, bank ${c.bank}: faiss ${row.faissMs} ms, blocked ${row.blockedMs} ms`);
      rows.push(row);
    }
  } finally {
    setBlockedFlatSearch(true);
  }
  return rows;
}

export function flatSearchMarkdown(rows: FlatSearchRow[]): string[] {
  return [
    '| search | bank | queries | k | faiss 1.7.3 ms | blocked ms | faster | nearest labels differing |',
    '|---|---|---|---|---|---|---|---|',
    ...rows.map(
      (r) =>
        `| ${r.name} | ${r.bank} x ${r.dim} | ${r.queries} | ${r.k} | ${r.faissMs} | ${r.blockedMs} | ` +
        `${r.speedup}x | ${r.labelsDiffering} |`,
    ),
    '',
    'Median of alternating runs in one process, same index and queries (clustered synthetic embeddings).',
  ];
}

if (require.main === module)
  runScript(async () => {
    const quick = process.argv.includes('--quick');
    const rows = await benchFlatSearch({ ...(quick ? QUICK_FLAT : FULL_FLAT), log: console.log });
    console.log(flatSearchMarkdown(rows).join('\n'));
    return 0;
  });
