/**
 * Writes an MVTec-AD-layout dataset of one synthetic print job:
 *   train/good/000.png, test/good/000.png, test/<defect>/000.png, ground_truth/<defect>/000_mask.png
 * plus dataset.json (seed, options, files). Re-running with the same options is a no-op.
 */
import { existsSync } from 'node:fs';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { resolveSize, type Size, type SizeSpec } from './artwork';
import {
  DEFECT_TYPES,
  type DefectOptions,
  type DefectType,
  isDefectType,
  resolveDefectOptions,
} from './defects';
import { sampleToPng } from './png';
import { type DefectInfo, makeSample, resolveVariation } from './sample';
import type { VariationOptions } from './variation';

export const MANIFEST_FILE = 'dataset.json';
export const MANIFEST_FORMAT = 'spi-synth-mvtec';
/** Bump when the generator's output changes for the same options, so old datasets are rebuilt. */
export const GENERATOR_VERSION = 1;

export interface DatasetOptions {
  seed: number;
  size: SizeSpec;
  trainGood: number;
  testGood: number;
  perDefect: number;
  defects: readonly DefectType[];
  defectOptions: Partial<DefectOptions>;
  variation: Partial<VariationOptions>;
}

export interface RunOptions {
  /** Regenerate even if the manifest matches. */
  force?: boolean;
  /** Samples in flight (generation overlaps PNG encoding); default 2. */
  concurrency?: number;
  /** PNG zlib level 0..9; default 6. */
  compressionLevel?: number;
  onProgress?: (p: { done: number; total: number; file: string }) => void;
}

/** The options as recorded in the manifest (everything that determines the output). */
export interface ResolvedDatasetOptions {
  seed: number;
  size: Size;
  trainGood: number;
  testGood: number;
  perDefect: number;
  defects: DefectType[];
  defectOptions: DefectOptions;
  variation: VariationOptions;
}

export interface ManifestFile {
  /** Relative to the dataset root, forward slashes. */
  path: string;
  split: 'train' | 'test';
  /** 'good' or the defect type. */
  label: 'good' | DefectType;
  /** Sample index passed to makeSample. */
  index: number;
  mask?: string;
  defect?: DefectInfo;
}

export interface Manifest {
  format: typeof MANIFEST_FORMAT;
  generatorVersion: number;
  seed: number;
  options: ResolvedDatasetOptions;
  counts: Record<string, number>;
  files: ManifestFile[];
}

export interface DatasetResult {
  dir: string;
  manifest: Manifest;
  /** True when an up-to-date manifest was found and nothing was written. */
  skipped: boolean;
  /** Images written (masks not counted). */
  written: number;
  elapsedMs: number;
}

export const DEFAULT_DATASET_OPTIONS: DatasetOptions = {
  seed: 1,
  size: 512,
  trainGood: 20,
  testGood: 6,
  perDefect: 3,
  defects: DEFECT_TYPES,
  defectOptions: {},
  variation: {},
};

/** Sample index ranges per split, so changing one count never changes another split's images. */
const TEST_GOOD_BASE = 1_000_000;
const DEFECT_BASE = 2_000_000;
const DEFECT_STRIDE = 100_000;

export function resolveDatasetOptions(opts: Partial<DatasetOptions> = {}): ResolvedDatasetOptions {
  const o = { ...DEFAULT_DATASET_OPTIONS, ...opts };
  const counts = { trainGood: o.trainGood, testGood: o.testGood, perDefect: o.perDefect };
  for (const [k, v] of Object.entries(counts)) {
    if (!Number.isInteger(v) || v < 0 || v >= DEFECT_STRIDE)
      throw new Error(`${k} must be an integer 0..${DEFECT_STRIDE - 1}, got ${v}`);
  }
  if (!Number.isInteger(o.seed)) throw new Error(`seed must be an integer, got ${o.seed}`);
  const bad = o.defects.filter((d) => !isDefectType(d));
  if (bad.length)
    throw new Error(`unknown defect type(s) ${bad.join(', ')}; known: ${DEFECT_TYPES.join(', ')}`);
  // Canonical order and no duplicates, so equal option sets compare equal.
  const defects = DEFECT_TYPES.filter((d) => o.defects.includes(d));
  return {
    seed: o.seed,
    size: resolveSize(o.size),
    ...counts,
    defects,
    defectOptions: resolveDefectOptions(o.defectOptions),
    variation: resolveVariation(o.variation),
  };
}

interface Job {
  file: ManifestFile;
  defect?: DefectType;
}

export function planDataset(o: ResolvedDatasetOptions): Job[] {
  const name = (i: number) => String(i).padStart(3, '0');
  const jobs: Job[] = [];
  for (let i = 0; i < o.trainGood; i++) {
    jobs.push({ file: { path: `train/good/${name(i)}.png`, split: 'train', label: 'good', index: i } });
  }
  for (let i = 0; i < o.testGood; i++) {
    jobs.push({
      file: { path: `test/good/${name(i)}.png`, split: 'test', label: 'good', index: TEST_GOOD_BASE + i },
    });
  }
  for (const d of o.defects) {
    const base = DEFECT_BASE + DEFECT_TYPES.indexOf(d) * DEFECT_STRIDE;
    for (let i = 0; i < o.perDefect; i++) {
      jobs.push({
        defect: d,
        file: {
          path: `test/${d}/${name(i)}.png`,
          split: 'test',
          label: d,
          index: base + i,
          mask: `ground_truth/${d}/${name(i)}_mask.png`,
        },
      });
    }
  }
  return jobs;
}

/** Stable JSON (sorted keys) for comparing option sets. */
function canonical(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
  if (v && typeof v === 'object') {
    return `{${Object.keys(v)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonical((v as Record<string, unknown>)[k])}`)
      .join(',')}}`;
  }
  return JSON.stringify(v);
}

export async function readManifest(dir: string): Promise<Manifest | undefined> {
  try {
    return JSON.parse(await readFile(path.join(dir, MANIFEST_FILE), 'utf8')) as Manifest;
  } catch {
    return undefined;
  }
}

function upToDate(m: Manifest | undefined, o: ResolvedDatasetOptions, dir: string): m is Manifest {
  return (
    !!m &&
    m.format === MANIFEST_FORMAT &&
    m.generatorVersion === GENERATOR_VERSION &&
    canonical(m.options) === canonical(o) &&
    Array.isArray(m.files) &&
    m.files.every(
      (f) => existsSync(path.join(dir, f.path)) && (!f.mask || existsSync(path.join(dir, f.mask))),
    )
  );
}

/** Runs `fn` over `items` with at most `limit` in flight, in order of start. */
async function pool<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await fn(items[next++]);
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, worker));
}

/** Writes the dataset under `dir` (created if needed). */
export async function generateDataset(
  dir: string,
  opts: Partial<DatasetOptions> = {},
  run: RunOptions = {},
): Promise<DatasetResult> {
  const t0 = performance.now();
  const o = resolveDatasetOptions(opts);
  const previous = await readManifest(dir);
  if (!run.force && upToDate(previous, o, dir)) {
    return { dir, manifest: previous, skipped: true, written: 0, elapsedMs: performance.now() - t0 };
  }
  await mkdir(dir, { recursive: true });
  // Drop the old manifest first, so an interrupted run is never mistaken for a finished one.
  await rm(path.join(dir, MANIFEST_FILE), { force: true });
  const jobs = planDataset(o);
  const wanted = new Set(jobs.flatMap((j) => [j.file.path, j.file.mask ?? '']));
  // Remove files of an earlier manifest that this one does not rewrite (only files it listed).
  for (const f of previous?.files ?? []) {
    for (const p of [f.path, f.mask]) {
      if (
        typeof p === 'string' &&
        !wanted.has(p) &&
        !path.isAbsolute(p) &&
        !p.split(/[\\/]/).includes('..')
      ) {
        await rm(path.join(dir, p), { force: true });
      }
    }
  }
  const dirs = new Set(
    jobs.flatMap((j) => [path.dirname(j.file.path), j.file.mask ? path.dirname(j.file.mask) : '']),
  );
  for (const d of dirs) if (d) await mkdir(path.join(dir, d), { recursive: true });

  let done = 0;
  await pool(jobs, run.concurrency ?? 2, async (job) => {
    const sample = makeSample(o.seed, job.file.index, {
      size: o.size,
      defect: job.defect,
      defectOptions: o.defectOptions,
      variation: o.variation,
    });
    if (sample.defectInfo) job.file.defect = sample.defectInfo;
    const png = await sampleToPng(sample, run.compressionLevel);
    await writeFile(path.join(dir, job.file.path), png.image);
    if (job.file.mask && png.mask) await writeFile(path.join(dir, job.file.mask), png.mask);
    run.onProgress?.({ done: ++done, total: jobs.length, file: job.file.path });
  });

  const counts: Record<string, number> = { 'train/good': o.trainGood, 'test/good': o.testGood };
  for (const d of o.defects) counts[`test/${d}`] = o.perDefect;
  const manifest: Manifest = {
    format: MANIFEST_FORMAT,
    generatorVersion: GENERATOR_VERSION,
    seed: o.seed,
    options: o,
    counts,
    files: jobs.map((j) => j.file),
  };
  const tmp = path.join(dir, `${MANIFEST_FILE}.tmp`);
  await writeFile(tmp, `${JSON.stringify(manifest, null, 2)}\n`);
  await rename(tmp, path.join(dir, MANIFEST_FILE));
  return { dir, manifest, skipped: false, written: jobs.length, elapsedMs: performance.now() - t0 };
}
