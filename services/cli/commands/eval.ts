/** `spi eval --data <category-dir> --out <dir>`: fit on train/good, score test/, write the report. */
import * as path from 'node:path';
import { ParseArgsConfig, parseArgs } from 'node:util';
import { Category, fileSources, readCategory } from '../../../lib/data/mvtec';
import { planAutoFit } from '../../../lib/autoconfig/auto-fit';
import { MemberPlan, formatAutoRecord } from '../../../lib/autoconfig/plan';
import type { AutoChoice } from '../../../lib/autoconfig/select';
import { evaluateCategory } from '../../../lib/eval/evaluate';
import { BackbonePool, createExtractor } from '../../../lib/patchcore/engine';
import {
  AutoRequest,
  ENGINE_FLAGS,
  ENGINE_USAGE,
  EngineFlagValues,
  MEMORY_FLAGS,
  MEMORY_USAGE,
  autoFrom,
  extractorFrom,
  fitFrom,
  fuseMembersFrom,
  givenFlags,
  memoryFrom,
  num,
} from '../options';
import { Progress } from '../progress';
import { invalid } from '../../../lib/errors';
import { HEAD_FLAGS, HEAD_USAGE, headFitFrom } from '../head-options';
import { checkHeadStages } from '../../../lib/head/head-embedding';

export const EVAL_FLAGS = {
  ...ENGINE_FLAGS,
  ...HEAD_FLAGS,
  ...MEMORY_FLAGS,
  data: { type: 'string' },
  out: { type: 'string' },
  gallery: { type: 'string', default: '48' },
} satisfies ParseArgsConfig['options'];

export const EVAL_USAGE = `usage: spi eval --data <MVTec-layout category> --out <dir> [options]
  --data DIR          a category in MVTec layout: fit on train/good, score test/ (ground_truth/ masks
                      give pixel AUROC and PRO)
  --out DIR           where scores.json, metrics.json and report.html go
  --gallery N         overlays in the report's gallery, defective first; 0 = none (default ${EVAL_FLAGS.gallery.default})
${MEMORY_USAGE}
${ENGINE_USAGE}
${HEAD_USAGE}`;

export async function evalCommand(argv: string[]): Promise<void> {
  const { values } = parseArgs({ args: argv, options: EVAL_FLAGS });
  if (!values.data || !values.out) throw invalid("--data and --out are required (see 'spi eval --help')");
  const category = readCategory(values.data);
  if (category.test.length === 0) throw invalid(`${values.data} has no test/ images to evaluate`);
  const pool = new BackbonePool();
  const progress = new Progress();
  try {
    const auto = autoFrom(values, givenFlags(argv, EVAL_FLAGS), category.train.length);
    const head = headFitFrom(values);
    checkHeadStages(auto ? auto.models : [extractorFrom(values).model], head?.stages);
    const onProgress = (s: string, d: number, t: number) => progress.update(s, d, t);
    const plan: { choice?: AutoChoice; members: MemberPlan[] } = auto
      ? await planForCategory(pool, category, values, auto, onProgress)
      : {
          members: [values, ...fuseMembersFrom(values)].map((v) => ({
            extractor: extractorFrom(v),
            settings: evalFitSettings(v, values, category.name),
          })),
        };
    const members = [];
    for (const m of plan.members)
      members.push({ extractor: await createExtractor(pool, m.extractor), settings: m.settings });
    const { metrics } = await evaluateCategory(members[0].extractor, category, members[0].settings, {
      out: values.out,
      fuseWith: members.slice(1),
      gallery: num(values, 'gallery'),
      auto: plan.choice,
      head,
      pool,
      onProgress,
    });
    progress.stop();
    if (plan.choice) console.log(formatAutoRecord(plan.choice.record));
    const f = (v: number | undefined) => (v === undefined ? 'n/a' : v.toFixed(4));
    console.log(
      `${category.name}: image AUROC ${f(metrics.imageAuroc)}, pixel AUROC ${f(metrics.pixelAuroc)}, PRO ${f(metrics.pro)}, ` +
        `F1@t ${f(metrics.f1AtThreshold.f1)}, F1max ${f(metrics.f1Max.f1)}, bank ${metrics.bankPatches} patches, ` +
        `${metrics.timings.inspectPerImageMs.toFixed(1)} ms/image -> ${path.join(values.out, 'report.html')}`,
    );
    if (metrics.head)
      for (const mode of ['bank', 'head', 'combined'] as const) {
        const m = metrics.head[mode];
        console.log(
          `  ${mode.padEnd(8)} image AUROC ${f(m.imageAuroc)}, pixel AUROC ${f(m.pixelAuroc)}, PRO ${f(m.pro)}` +
            (mode === 'combined' ? `, head weight ${metrics.head.combination.headWeight}` : '') +
            (mode === head?.mode ? ' (the verdict above)' : ''),
        );
      }
  } finally {
    progress.stop();
    await pool.close();
  }
}

/**
 * The automatic choice for an evaluation: it is handed the category's train/good images and
 * nothing else (the test images and masks are for scoring the result only).
 */
export async function planForCategory(
  pool: BackbonePool,
  category: Category,
  values: EngineFlagValues & { 'max-memory'?: string },
  auto: AutoRequest,
  onProgress?: (stage: string, done: number, total: number) => void,
): Promise<{ choice: AutoChoice; members: MemberPlan[] }> {
  const train = fileSources(category.train, category.root);
  return planAutoFit(train, evalFitSettings(values, values, category.name), { pool, ...auto, onProgress });
}

/** The fit's settings for a member's flags, under the evaluation's memory budget (as `spi fit`'s). */
function evalFitSettings(member: EngineFlagValues, values: { 'max-memory'?: string }, name: string) {
  return { ...fitFrom(member, name, [name]), memory: memoryFrom(values) };
}
