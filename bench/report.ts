/** The markdown report of `make bench` (bench/results.md), from the same object as results.json. */
import { HeadCostResult, headCostMarkdown } from './head-cost';
import { FlatSearchRow, flatSearchMarkdown } from './flat-search';
import type { ClusterBenchResult, Stages } from './cluster';
import type { SearchBenchResult } from './search';
import { SearchOptionsResult, searchOptionsMarkdown } from './search-options';
import { CoarseToFineResult, coarseToFineMarkdown } from './coarse-to-fine';

export interface Machine {
  cpu: string;
  cores: number;
  memoryGb: number;
  node: string;
  platform: string;
  ompEnv: Record<string, string>;
  /** The CPU kernels OpenBLAS runs (exact search, coreset): its own choice or OPENBLAS_CORETYPE's. */
  blasCore?: string;
}

export interface SectionRun<T> {
  seconds: number;
  /** 1-minute load average before and after: above the core count, the figures are noisy. */
  loadBefore: number;
  loadAfter: number;
  result?: T;
  error?: string;
  /** Why the section could not run here (not a failure). */
  notAvailable?: string;
}

export interface BenchResults {
  date: string;
  quick: boolean;
  machine: Machine;
  seconds: number;
  search?: SectionRun<SearchBenchResult>;
  /** Our blocked exact search against faiss' own (bench/flat-search.ts). */
  flatSearch?: SectionRun<FlatSearchRow[]>;
  cluster?: SectionRun<ClusterBenchResult>;
  backbones?: SectionRun<Record<string, unknown>[]>;
  /** Where a sheet's time goes, and faiss' search options on it (bench/search-options.ts). */
  sheetOptions?: SectionRun<SearchOptionsResult>;
  coarseToFine?: SectionRun<CoarseToFineResult>;
  /** The discriminator head's cost against the k-NN search (bench/head-cost.ts). */
  head?: SectionRun<HeadCostResult>;
}

type Cell = string | number | null | undefined;

function table(header: string[], rows: Cell[][]): string {
  const cell = (c: Cell) => (c === null || c === undefined ? '–' : String(c));
  return [
    `| ${header.join(' | ')} |`,
    `|${header.map(() => '---').join('|')}|`,
    ...rows.map((r) => `| ${r.map(cell).join(' | ')} |`),
  ].join('\n');
}

const x = (ratio: number) => `${ratio}x`;
const s = (ms: number) => (ms / 1000).toFixed(1);
const kRows = (n: number) => (n >= 1_000_000 ? `${n / 1_000_000}M` : `${n / 1000}k`);

function sectionHeader(title: string, run: SectionRun<unknown>, cores: number): string[] {
  const noisy = Math.max(run.loadBefore, run.loadAfter) > cores ? ' (noisy: CPU shared with other work)' : '';
  return [
    `## ${title}`,
    '',
    `${run.seconds.toFixed(0)} s; load average ${run.loadBefore} -> ${run.loadAfter} on ${cores} cores${noisy}.`,
    '',
    ...(run.error ? [`**Failed:** ${run.error}`, ''] : []),
    ...(run.notAvailable ? [`Not available: ${run.notAvailable.replace(/^not available: /, '')}`, ''] : []),
  ];
}

function searchSection(r: SearchBenchResult): string[] {
  const rows = r.rows.map((row) => [
    kRows(row.bank),
    row.factory,
    row.nprobe,
    row.asyncMs,
    row.syncMs,
    row.recallAt1,
    row.speedupAsync === null ? null : x(row.speedupAsync),
    x(row.speedupSync),
    row.runs === 0 ? 'once, sync (slower than Flat already)' : row.runs,
    row.best ? '**fastest at recall@1 >= 0.99**' : '',
  ]);
  const builds = r.builds.map((b) => [
    kRows(b.bank),
    b.factory,
    b.trainRows || '–',
    s(b.trainMs),
    s(b.addMs),
    x(b.vsFlat),
    b.rssMb,
    b.indexMb,
  ]);
  const t = r.targets;
  const drift = r.flatDrift.map((d) => `${kRows(d.bank)} ${d.beforeMs} -> ${d.afterMs} ms`).join(', ');
  return [
    `Bank: ${r.data.generator}; dim ${r.data.dim}, ${r.data.mixture.components} components, rank ` +
      `${r.data.mixture.rank}; ${r.data.queries} queries per image (one 224 px image), k = 1. ` +
      'Baseline: Flat (exact) on the same bank, same run.',
    '',
    table(
      [
        'bank',
        'index',
        'nprobe',
        'ms/image async',
        'ms/image sync',
        'recall@1',
        'speed-up async',
        'speed-up sync',
        'runs',
        '',
      ],
      rows,
    ),
    '',
    `Flat (async) timed before and after the IVF runs, baseline = their mean: ${drift}.`,
    '',
    `Target (IVF >= ${t.speedup}x Flat at recall@1 >= ${t.recall} on ${kRows(t.bank)}): ` +
      `${t.met === null ? 'not measured' : t.met ? 'met' : 'not met'} (${t.note}).`,
    '',
    '### Index build and memory',
    '',
    table(['bank', 'index', 'train rows', 'train s', 'add s', 'build vs Flat', 'RSS MB', 'index MB'], builds),
    '',
    ...(r.arrays.length > 0
      ? [
          '### Float32Array (addBuffer/searchBuffer) vs number[] (upstream add/search)',
          '',
          table(
            [
              'bank',
              'step',
              'Float32Array ms',
              'number[] ms',
              'of which Array.from ms',
              'number[] / Float32Array',
            ],
            r.arrays.map((a) => [kRows(a.bank), a.step, a.bufferMs, a.arrayMs, a.conversionMs, x(a.ratio)]),
          ),
          '',
        ]
      : []),
  ];
}

const stageCell = (st: Stages) => `${st.decode} / ${st.embed} / ${st.search} / ${st.score}`;

function clusterSection(r: ClusterBenchResult): string[] {
  const rows = r.rows.map((row) => [
    row.path,
    row.shards,
    row.embedWorkers ?? '–',
    row.buildS,
    row.m.p50Ms,
    row.m.p99Ms,
    row.path === 'cluster' ? x(row.p50VsInProcess) : '(baseline)',
    row.path === 'cluster' ? x(row.p99VsInProcess) : '',
    row.m.throughput,
    row.path === 'cluster' ? x(row.throughputVsInProcess) : '',
    stageCell(row.m.stages),
    row.m.errors,
  ]);
  const sheet = r.sheet.map((row) => [
    row.path,
    row.format ?? 'PNG',
    row.index ?? 'Flat',
    row.shards,
    row.view,
    row.tiles,
    row.bankPatches,
    row.buildS,
    row.msPerSheet,
    x(row.vsInProcess),
    stageCell(row.stages),
  ]);
  const overhead =
    r.overheadAt1Shard === null
      ? 'not measured'
      : `${(r.overheadAt1Shard * 100).toFixed(1)} % (target < 15 %: ${r.overheadAt1Shard < 0.15 ? 'met' : 'not met'})`;
  return [
    `${r.images.probes} probe images (${r.images.size} px synthetic prints, good and defective), bank from ` +
      `${r.images.train} good prints (coreset 10 %, Flat, replicas 1, partitions = shards). Each in-process ` +
      'row is the baseline measured interleaved with the cluster row under it (same seconds, same images).',
    '',
    table(
      [
        'path',
        'shards',
        'embed workers',
        'build s',
        'p50 ms',
        'p99 ms',
        'p50 vs in-process',
        'p99 vs in-process',
        'images/s at concurrency 4',
        'vs in-process',
        'stages ms: decode / embed / search / score',
        'errors',
      ],
      rows,
    ),
    '',
    `Cluster overhead at 1 shard (p50): ${overhead}.`,
    '',
    ...(r.hop
      ? [
          `One gRPC hop on this machine (p50 of ${r.hop.runs}): a trivial unary call ${r.hop.trivialCallMs} ms; ` +
            `one image's Search (${r.hop.queries} x ${r.hop.dim} = ${r.hop.queryKiB} KiB as float32, ${r.hop.bankRows} bank rows) ` +
            `${r.hop.searchRemoteMs} ms to a shard process vs ${r.hop.searchLocalMs} ms in-process: the hop adds ` +
            `${r.hop.hopMs} ms` +
            (r.hop.bareCallMs !== undefined
              ? `; a bare grpc-js call of the same bytes (${r.hop.requestBytes} B in float16, ${r.hop.replyBytes} B back) ` +
                `between the same two processes ${r.hop.bareCallMs} ms: the Search's hop is ${r.hop.hopVsBare}x it (target at most 1.3x)`
              : '') +
            '. Inspect through the cluster takes two hops (client -> gateway, gateway -> shard).',
          '',
        ]
      : []),
    ...(sheet.length > 0
      ? [
          '### Print sheet in tiles',
          '',
          table(
            [
              'path',
              'sheet sent as',
              'index',
              'shards',
              'view',
              'tiles',
              'bank patches',
              'build s',
              'ms/sheet (p50)',
              'vs in-process',
              'stages ms',
            ],
            sheet,
          ),
          '',
        ]
      : []),
    ...r.notes.map((n) => `- ${n}`),
    '',
  ];
}

function recordsSection(rows: Record<string, unknown>[]): string[] {
  if (rows.length === 0) return ['No rows.', ''];
  const keys = Object.keys(rows[0]).filter((k) =>
    rows.every((r) => typeof r[k] !== 'object' || r[k] === null),
  );
  const fmt = (v: unknown): Cell => (typeof v === 'number' ? Number(v.toPrecision(4)) : (v as Cell));
  return [
    table(
      keys,
      rows.map((r) => keys.map((k) => fmt(r[k]))),
    ),
    '',
  ];
}

export function markdown(b: BenchResults): string {
  const m = b.machine;
  const omp = Object.entries(m.ompEnv).map(([k, v]) => `${k}=${v}`);
  const out = [
    `# Speed on CPU${b.quick ? ' (quick run: smaller sizes, fewer runs)' : ''}`,
    '',
    `${b.date}; ${m.cpu}, ${m.cores} cores, ${m.memoryGb} GB, Node ${m.node}, ${m.platform}` +
      `${omp.length > 0 ? `; ${omp.join(' ')}` : ''}${m.blasCore ? `; OpenBLAS kernels ${m.blasCore}` : ''}; ` +
      `whole run ${b.seconds.toFixed(0)} s.`,
    '',
  ];
  if (b.search) {
    out.push(...sectionHeader('Nearest-neighbour search', b.search, m.cores));
    if (b.search.result) out.push(...searchSection(b.search.result));
  }
  if (b.flatSearch) {
    out.push(...sectionHeader("Exact search: blocked against faiss' own path", b.flatSearch, m.cores));
    if (b.flatSearch.result) out.push(...flatSearchMarkdown(b.flatSearch.result), '');
  }
  if (b.cluster) {
    out.push(...sectionHeader('End to end: Inspect through the cluster vs in-process', b.cluster, m.cores));
    if (b.cluster.result) out.push(...clusterSection(b.cluster.result));
  }
  if (b.backbones) {
    out.push(...sectionHeader('Backbones (bench/backbones.ts)', b.backbones, m.cores));
    if (b.backbones.result) out.push(...recordsSection(b.backbones.result));
  }
  if (b.sheetOptions) {
    out.push(...sectionHeader('Print sheet: where the time goes, search options', b.sheetOptions, m.cores));
    if (b.sheetOptions.result) out.push(...searchOptionsMarkdown(b.sheetOptions.result), '');
  }
  if (b.coarseToFine) {
    out.push(...sectionHeader('Print sheet: coarse-to-fine', b.coarseToFine, m.cores));
    if (b.coarseToFine.result) out.push(...coarseToFineMarkdown(b.coarseToFine.result), '');
  }
  if (b.head) {
    out.push(...sectionHeader('Discriminator head against the k-NN search', b.head, m.cores));
    if (b.head.result) out.push(...headCostMarkdown(b.head.result), '');
  }
  return out.join('\n');
}
