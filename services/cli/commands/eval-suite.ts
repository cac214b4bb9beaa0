/**
 * `spi eval-suite` (make eval): the evaluation behind the README's figures, on ../shared/data.
 * Each run is one `spi eval` with its own settings; backbone embeddings are cached per image, so the
 * coreset comparison costs one backbone pass per image. Writes <out>/<run>/ (scores, metrics,
 * report) and <out>/results.json + results.md.
 */
import * as fs from 'node:fs';
import { invalid } from '../../../lib/errors';
import * as path from 'node:path';
import { ParseArgsConfig, parseArgs } from 'node:util';
import { Category, fileSources, readCategory } from '../../../lib/data/mvtec';
import { formatAutoRecord } from '../../../lib/autoconfig/plan';
import { planForCategory } from './eval';
import { EvalResult, evaluateCategory } from '../../../lib/eval/evaluate';
import { BackbonePool, createExtractor } from '../../../lib/patchcore/engine';
import { CachedExtractor } from '../../../lib/patchcore/feature-extractor';
import {
  ENGINE_FLAGS,
  EngineFlagValues,
  autoFrom,
  extractorFrom,
  fitFrom,
  fuseMembersFrom,
} from '../options';
import { Progress } from '../progress';
import { DEFAULT_HEAD_FIT } from '../../../lib/head/head-bank';

interface Run {
  name: string;
  data: string;
  /** Categories whose train/good images form one unified bank with this one's. */
  unifiedWith?: string[];
  flags: EngineFlagValues;
  /** Runs sharing a group share one embedding cache (same backbone and view). */
  group: string;
  /** No flags at all: the automatic fit chooses (what a new user gets). */
  auto?: boolean;
  /** A discriminator head beside the bank (lib/head/); the verdict is the combined score. */
  head?: boolean;
}

const DEFAULTS: EngineFlagValues = Object.fromEntries(
  Object.entries(ENGINE_FLAGS).flatMap(([k, v]) => ('default' in v ? [[k, v.default]] : [])),
);

export function suiteRuns(dataRoot: string, only?: string): Run[] {
  const bottle = path.join(dataRoot, 'mvtec_ad', 'bottle');
  const pcb = path.join(dataRoot, 'deeppcb', 'group12100');
  const runs: Run[] = [
    // What a new user gets with `spi eval --data X --out Y`: the automatic fit, no flag chosen here.
    { name: 'bottle-auto', data: bottle, flags: {}, group: 'auto', auto: true },
    { name: 'deeppcb-auto', data: pcb, flags: {}, group: 'auto', auto: true },
    // The same with a head (`spi eval --head glass`, nothing else): issue #20's combined score beside the bank a user gets.
    { name: 'bottle-auto-head', data: bottle, flags: {}, group: 'auto', auto: true, head: true },
    { name: 'bottle', data: bottle, flags: {}, group: 'bottle' },
    // The default bank with a GLASS-style head beside it (issue #20); metrics.json has all three scores.
    { name: 'bottle-head', data: bottle, flags: {}, group: 'bottle', head: true },
    ...['greedy', 'random'].flatMap((method) =>
      ['0.01', '0.1', '0.25'].map((ratio) => ({
        name: `bottle-coreset-${method}-${ratio}`,
        data: bottle,
        flags: { coreset: method, ratio },
        group: 'bottle',
      })),
    ),
    { name: 'bottle-coreset-none', data: bottle, flags: { coreset: 'none' }, group: 'bottle' },
    {
      // The recommended bottle configuration (the pixel and PRO targets): the default member fused
      // with a stride-4 one (block_2_add + block_5_add; 2.5 % coreset, 25 % per image first, the
      // same bank size), both less their nominal reference (a registered product).
      name: 'bottle-fused',
      data: bottle,
      flags: {
        reference: 'mean',
        fuse: 'block_2_add,block_5_add',
        'fuse-ratio': '0.025',
        'fuse-per-image': '0.25',
      },
      group: 'bottle',
    },
    {
      name: 'deeppcb-tiled',
      data: pcb,
      // 16 tiles per 640 px board at full resolution, stride-4 stages (block_2_add + block_5_add, a
      // 56x56 grid per tile: defects are a few pixels wide): 3.3M patches. A per-image greedy keeps
      // 5 % of each board's, the global greedy 0.25 % of all (8.3k, the bank size of the former
      // stride-8 run at 1 %), so fitting and the search stay affordable. The board is mirrored by
      // 16 px first (--pad): unpadded, every top-scoring good board peaked at its frame edge.
      flags: {
        resize: '0',
        tile: '224',
        overlap: '32',
        pad: '16',
        stages: 'block_2_add,block_5_add',
        ratio: '0.0025',
        'coreset-per-image': '0.05',
      },
      group: 'pcb-tiled',
    },
    { name: 'deeppcb-resized', data: pcb, flags: {}, group: 'pcb' },
    // One bank for both products against one bank per product (the runs 'bottle' and 'deeppcb-resized').
    { name: 'unified-bottle', data: bottle, unifiedWith: [pcb], flags: {}, group: 'unified' },
    { name: 'unified-deeppcb', data: pcb, unifiedWith: [bottle], flags: {}, group: 'unified' },
    {
      name: 'bottle-inception_v3',
      data: bottle,
      flags: { model: 'inception_v3-imagenet', resize: '299' },
      group: 'bottle-inc',
    },
  ];
  if (!only) return runs;
  const picked = runs.filter((r) => r.name.startsWith(only));
  // A typo must not look like a finished suite with an empty table.
  if (picked.length === 0)
    throw invalid(`--only ${only} matches no run; the runs are ${runs.map((r) => r.name).join(', ')}`);
  return picked;
}

export const EVAL_SUITE_FLAGS = {
  out: { type: 'string', default: 'eval-results' },
  data: { type: 'string', default: path.join('..', 'shared', 'data') },
  only: { type: 'string' },
} satisfies ParseArgsConfig['options'];

export const EVAL_SUITE_USAGE = `usage: spi eval-suite [options]
  --data DIR          data root holding mvtec_ad/bottle and deeppcb/group12100 (default ${EVAL_SUITE_FLAGS.data.default})
  --out DIR           <out>/<run>/ per run (scores, metrics, report), results.json and results.md
                      (default ${EVAL_SUITE_FLAGS.out.default})
  --only PREFIX       only the runs whose names start with PREFIX (e.g. bottle-coreset, deeppcb)`;

export async function evalSuiteCommand(argv: string[]): Promise<void> {
  const { values } = parseArgs({ args: argv, options: EVAL_SUITE_FLAGS });
  const out = values.out!;
  fs.mkdirSync(out, { recursive: true });
  const pool = new BackbonePool();
  const progress = new Progress();
  const extractors = new Map<string, CachedExtractor>();
  const results: Record<string, unknown>[] = [];
  try {
    for (const run of suiteRuns(values.data!, values.only)) {
      const flags = { ...DEFAULTS, ...run.flags };
      const category = readCategory(run.data);
      if (run.auto) {
        results.push(await autoRun(pool, run, category, out, values.data!, progress));
        writeResults(out, results);
        continue;
      }
      let extractor = extractors.get(run.group);
      if (!extractor) {
        const plain = await createExtractor(pool, extractorFrom(flags));
        extractor = new CachedExtractor(plain.backbone, plain.options);
        extractors.clear(); // one cache at a time keeps memory bounded
        extractors.set(run.group, extractor);
      }
      const started = Date.now();
      const others = (run.unifiedWith ?? []).map((dir) => readCategory(dir));
      const names = [category.name, ...others.map((c) => c.name)];
      // A unified bank: every category's good images, recorded with their category in the path.
      const train = others.length
        ? [category, ...others].flatMap((c) => fileSources(c.train, path.dirname(c.root)))
        : undefined;
      const fuseWith = [];
      for (const member of fuseMembersFrom(flags)) {
        fuseWith.push({
          extractor: await createExtractor(pool, extractorFrom(member)),
          settings: fitFrom(member, names.join('+'), names),
        });
      }
      const { metrics } = await evaluateCategory(
        extractor,
        category,
        fitFrom(flags, names.join('+'), names),
        {
          out: path.join(out, run.name),
          train,
          fuseWith,
          head: run.head ? DEFAULT_HEAD_FIT : undefined,
          gallery: 24,
          onProgress: (s, d, t) => progress.update(`${run.name} ${s}`, d, t),
        },
      );
      const row = {
        run: run.name,
        data: path.relative(values.data!, run.data),
        model: flags.model,
        stages:
          extractor.backbone.stages.map((st) => st.name).join('+') +
          (flags.fuse ? ` fused with ${flags.fuse.replace(',', '+')}` : '') +
          (flags.reference === 'mean' ? ', less reference' : '') +
          (run.head ? ' + glass head (combined)' : ''),
        view: `resize ${flags.resize} tile ${flags.tile}${Number(flags.pad) > 0 ? ` pad ${flags.pad}` : ''}`,
        coreset: `${flags.coreset} ${flags.ratio}${Number(flags['coreset-per-image']) > 0 ? ` (per image ${flags['coreset-per-image']})` : ''}`,
        bankFrom: names.join(' + '),
        ...metricColumns(metrics),
        fitSeconds: metrics.timings.fitMs / 1000,
        wallSeconds: (Date.now() - started) / 1000,
        ...(metrics.head ? { head: metrics.head } : {}),
      };
      results.push(row);
      progress.stop();
      console.log(formatRow(row));
      writeResults(out, results);
    }
    fs.writeFileSync(path.join(out, 'results.md'), markdownTable(results));
    console.log(`\n${markdownTable(results)}\nwritten to ${path.join(out, 'results.json')} and results.md`);
  } finally {
    progress.stop();
    await pool.close();
  }
}

/** A run with no flags: the automatic fit chooses on the train images, then the usual evaluation. */
async function autoRun(
  pool: BackbonePool,
  run: Run,
  category: Category,
  out: string,
  dataRoot: string,
  progress: Progress,
): Promise<Record<string, unknown>> {
  const started = Date.now();
  const onProgress = (s: string, d: number, t: number) => progress.update(`${run.name} ${s}`, d, t);
  const auto = autoFrom(DEFAULTS, new Set(), category.train.length)!;
  const plan = await planForCategory(pool, category, DEFAULTS, auto, onProgress);
  const members = [];
  for (const m of plan.members)
    members.push({ extractor: await createExtractor(pool, m.extractor), settings: m.settings });
  const { metrics } = await evaluateCategory(members[0].extractor, category, members[0].settings, {
    out: path.join(out, run.name),
    fuseWith: members.slice(1),
    gallery: 24,
    auto: plan.choice,
    head: run.head ? DEFAULT_HEAD_FIT : undefined,
    pool,
    onProgress,
  });
  progress.stop();
  const record = plan.choice.record;
  const row = {
    run: run.name,
    data: path.relative(dataRoot, run.data),
    model: plan.members[0].extractor.model,
    stages: `automatic: ${record.chosen}`,
    view: record.description,
    coreset: plan.members
      .map((m) => `greedy ${m.settings.coreset.size || m.settings.coreset.ratio}`)
      .join(' + '),
    bankFrom: category.name,
    ...metricColumns(metrics),
    // The whole automatic fit: the selection plus the final fit.
    fitSeconds: (metrics.timings.fitMs + record.selectionMs) / 1000,
    selectionSeconds: record.selectionMs / 1000,
    syntheticRecall: record.syntheticRecall,
    wallSeconds: (Date.now() - started) / 1000,
    ...(metrics.head ? { head: metrics.head } : {}),
  };
  console.log(formatAutoRecord(record));
  console.log(formatRow(row));
  return row;
}

function metricColumns(metrics: EvalResult['metrics']): Record<string, unknown> {
  return {
    imageAuroc: metrics.imageAuroc,
    pixelAuroc: metrics.pixelAuroc,
    pro: metrics.pro,
    f1AtThreshold: metrics.f1AtThreshold.f1,
    f1Max: metrics.f1Max.f1,
    bankPatches: metrics.bankPatches,
    inspectMsPerImage: metrics.timings.inspectPerImageMs,
  };
}

function writeResults(out: string, results: Record<string, unknown>[]): void {
  fs.writeFileSync(
    path.join(out, 'results.json'),
    JSON.stringify({ createdAt: new Date().toISOString(), results }, null, 2),
  );
}

const f4 = (v: unknown) => (typeof v === 'number' && Number.isFinite(v) ? v.toFixed(4) : 'n/a');

function formatRow(r: Record<string, unknown>): string {
  return `${String(r.run).padEnd(28)} image AUROC ${f4(r.imageAuroc)}  pixel ${f4(r.pixelAuroc)}  PRO ${f4(r.pro)}  F1@t ${f4(r.f1AtThreshold)}  F1max ${f4(r.f1Max)}  bank ${r.bankPatches}`;
}

function markdownTable(rows: Record<string, unknown>[]): string {
  const head =
    '| run | model | stages | view | coreset | image AUROC | pixel AUROC | PRO | F1@t | F1max | bank patches | ms/image | fit s |';
  const sep = '|---|---|---|---|---|---|---|---|---|---|---|---|---|';
  const body = rows.map(
    (r) =>
      `| ${r.run} | ${r.model} | ${r.stages} | ${r.view} | ${r.coreset} | ${f4(r.imageAuroc)} | ${f4(r.pixelAuroc)} | ${f4(r.pro)} | ${f4(r.f1AtThreshold)} | ${f4(r.f1Max)} | ${r.bankPatches} | ${Number(r.inspectMsPerImage).toFixed(0)} | ${Number(r.fitSeconds).toFixed(0)} |`,
  );
  return [head, sep, ...body].join('\n') + '\n';
}
