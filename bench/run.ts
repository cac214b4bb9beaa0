/**
 * `make bench`: speed figures on this machine's CPU, each with a baseline from the same run.
 *
 * node --import tsx bench/run.ts --out bench [--only search|flat-search|cluster|backbones|sheet-options|coarse-to-fine|head[,...]] [--quick]
 *
 * Writes <out>/results.json and <out>/results.md and prints the markdown. A failed section is
 * recorded and the others still run; the exit code is then 1. Every process the cluster section
 * starts is stopped by it (and, on an interrupt, by services/local/processes' exit hook).
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { FULL_CLUSTER, QUICK_CLUSTER, benchCluster } from './cluster';
import { BenchResults, Machine, SectionRun, markdown } from './report';
import { FULL_SEARCH, QUICK_SEARCH, benchSearch } from './search';
import { FULL_OPTIONS, QUICK_OPTIONS, benchSearchOptions } from './search-options';
import { FULL_C2F, benchCoarseToFine } from './coarse-to-fine';
import { FULL_HEAD, QUICK_HEAD, benchHeadCost } from './head-cost';
import { FULL_FLAT, QUICK_FLAT, benchFlatSearch } from './flat-search';
import { runScript } from './lib/script';
import { blasCore } from '../lib/knn/faiss';

const SECTIONS = [
  'search',
  'flat-search',
  'cluster',
  'backbones',
  'sheet-options',
  'coarse-to-fine',
  'head',
] as const;
type Section = (typeof SECTIONS)[number];

const log = (message: string) => console.log(`[bench] ${message}`);

/** A section that cannot run here: recorded as such, not a failure of the bench. */
class NotAvailable extends Error {}

function machine(): Machine {
  const cpus = os.cpus();
  const ompEnv = Object.fromEntries(
    Object.entries(process.env).filter(([k]) => /^(OMP|GOMP|OPENBLAS)_/.test(k)) as [string, string][],
  );
  return {
    cpu: cpus[0]?.model ?? 'unknown',
    cores: cpus.length,
    memoryGb: Math.round(os.totalmem() / 2 ** 30),
    node: process.version,
    platform: `${os.platform()} ${os.release()}`,
    ompEnv,
    blasCore: blasCore(),
  };
}

const load = () => Number(os.loadavg()[0].toFixed(2));

async function section<T>(name: string, fn: () => Promise<T>): Promise<SectionRun<T>> {
  log(`${name}: start (load average ${load()})`);
  const loadBefore = load();
  const t0 = performance.now();
  const done = (extra: Partial<SectionRun<T>>): SectionRun<T> => ({
    seconds: Math.round((performance.now() - t0) / 1000),
    loadBefore,
    loadAfter: load(),
    ...extra,
  });
  try {
    const run = done({ result: await fn() });
    log(`${name}: done in ${run.seconds} s`);
    return run;
  } catch (err) {
    if (err instanceof NotAvailable) {
      log(`${name}: ${err.message}`);
      return done({ notAvailable: err.message });
    }
    const message = err instanceof Error ? (err.stack ?? err.message) : String(err);
    log(`${name}: FAILED: ${message}`);
    return done({ error: message.split('\n')[0] });
  }
}

/**
 * bench/backbones.ts belongs to another part of the work and may be missing or have another API:
 * loaded by a computed path so this file neither type-checks against it nor fails without it.
 */
async function backbones(quick: boolean): Promise<Record<string, unknown>[]> {
  const file = './backbones';
  let mod: { benchBackbones?: unknown };
  try {
    mod = (await import(file)) as { benchBackbones?: unknown };
  } catch (err) {
    throw new NotAvailable(
      `not available: bench/backbones.ts could not be loaded (${(err as Error).message})`,
    );
  }
  if (typeof mod.benchBackbones !== 'function') {
    throw new NotAvailable('not available: bench/backbones.ts does not export benchBackbones()');
  }
  const fast = quick ? { backbones: ['mobilenet_v2-imagenet'], runs: 5, settings: false } : {};
  const rows: unknown = await (mod.benchBackbones as (o: object) => Promise<unknown>)({
    quick,
    log,
    ...fast,
  });
  if (!Array.isArray(rows)) throw new Error('benchBackbones() did not return an array of rows');
  return rows as Record<string, unknown>[];
}

function parse(argv: string[]): { out: string; only: Section[]; quick: boolean } {
  const { values } = parseArgs({
    args: argv,
    options: {
      out: { type: 'string', default: 'bench' },
      only: { type: 'string' },
      quick: { type: 'boolean', default: false },
    },
    strict: true,
  });
  const only = (values.only?.split(',').map((x) => x.trim()) ?? [...SECTIONS]) as Section[];
  const unknown = only.filter((x) => !SECTIONS.includes(x));
  if (unknown.length > 0) throw new Error(`--only takes ${SECTIONS.join(', ')}; got ${unknown.join(', ')}`);
  return { out: values.out!, only, quick: values.quick! };
}

async function main(argv: string[]): Promise<number> {
  const { out, only, quick } = parse(argv);
  const t0 = performance.now();
  const results: BenchResults = {
    date: new Date().toISOString(),
    quick,
    machine: machine(),
    seconds: 0,
  };
  if (only.includes('search')) {
    results.search = await section('search', () =>
      benchSearch({ ...(quick ? QUICK_SEARCH : FULL_SEARCH), log }),
    );
  }
  if (only.includes('flat-search')) {
    results.flatSearch = await section('flat-search', () =>
      benchFlatSearch({ ...(quick ? QUICK_FLAT : FULL_FLAT), log }),
    );
  }
  if (only.includes('cluster')) {
    results.cluster = await section('cluster', () =>
      benchCluster({ ...(quick ? QUICK_CLUSTER : FULL_CLUSTER), log }),
    );
  }
  if (only.includes('backbones')) results.backbones = await section('backbones', () => backbones(quick));
  if (only.includes('sheet-options')) {
    results.sheetOptions = await section('sheet-options', () =>
      benchSearchOptions({ ...(quick ? QUICK_OPTIONS : FULL_OPTIONS), log }),
    );
  }
  if (only.includes('coarse-to-fine')) {
    results.coarseToFine = await section('coarse-to-fine', () =>
      benchCoarseToFine({ ...FULL_C2F, ...(quick ? { synth: QUICK_OPTIONS.synth } : {}), log }),
    );
  }
  if (only.includes('head')) {
    results.head = await section('head', () => benchHeadCost({ ...(quick ? QUICK_HEAD : FULL_HEAD), log }));
  }
  results.seconds = Math.round((performance.now() - t0) / 1000);
  fs.mkdirSync(out, { recursive: true });
  fs.writeFileSync(path.join(out, 'results.json'), `${JSON.stringify(results, null, 2)}\n`);
  const md = markdown(results);
  fs.writeFileSync(path.join(out, 'results.md'), `${md}\n`);
  console.log(md);
  log(`wrote ${path.join(out, 'results.json')} and results.md in ${results.seconds} s`);
  const failed = [
    results.search,
    results.flatSearch,
    results.cluster,
    results.backbones,
    results.sheetOptions,
    results.coarseToFine,
    results.head,
  ].some((r) => r?.error);
  return failed ? 1 : 0;
}

if (require.main === module) runScript(() => main(process.argv.slice(2)));
