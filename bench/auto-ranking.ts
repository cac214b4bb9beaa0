/**
 * How well the synthetic validation ranks the automatic fit's candidates: for every configuration
 * the selector scored on a category, its synthetic score next to the same configuration's score on
 * the category's real labelled test images, and the rank correlation of the two (Spearman).
 *
 * node --import tsx bench/auto-ranking.ts --data ../shared/data/mvtec_ad/bottle --out eval-results/ranking-bottle.json
 *
 * Both sides use the same banks (the last rung's training images, so every configuration is judged
 * on equal terms) and the same map arithmetic (lib/autoconfig/trial.ts); the reference and the
 * fusion's standardisation come from the held-out train/good images on both sides. The test images
 * are read here, by the study, after the selection: the selector itself never sees them.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { Configuration, describe as describeConfiguration } from '../lib/autoconfig/candidates';
import { autoModels } from '../lib/autoconfig/plan';
import { chooseConfiguration } from '../lib/autoconfig/select';
import { defectSizeRange } from '../lib/autoconfig/synthetic-defects';
import { BaseRun, configurationMaps, maskToGrid, scoreConfiguration } from '../lib/autoconfig/trial';
import { rocAuc } from '../lib/eval/metrics';
import { ValidationItem } from '../lib/autoconfig/validation-set';
import { fileSources, readCategory } from '../lib/data/mvtec';
import { decodeImage } from '../lib/image/decode';
import { BackbonePool } from '../lib/patchcore/engine';

interface Row {
  id: string;
  description: string;
  synthetic: { imageAuroc: number; pixelAuroc: number; score: number };
  real: { imageAuroc: number; pixelAuroc: number; score: number };
  /**
   * The synthetic image AUROC of the good items against the finer and the coarser half of the
   * defects (split at the geometric middle of the size range), and the score with their mean in
   * place of the pooled image AUROC: a study of how the size mix of the defects sways the ranking.
   */
  bySize?: { fine: number; coarse: number; balancedScore: number };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { data: { type: 'string' }, out: { type: 'string' }, model: { type: 'string' } },
  });
  if (!values.data || !values.out)
    throw new Error('usage: auto-ranking.ts --data <category> --out <file.json>');
  const category = readCategory(values.data);
  const pool = new BackbonePool();
  const log = (m: string) => console.error(`[ranking] ${m}`);
  try {
    log(`${category.name}: selection`);
    const choice = await chooseConfiguration(fileSources(category.train, category.root), {
      pool,
      models: autoModels(values.model),
      keepTrials: true,
    });
    const study = choice.study!;
    log(`${category.name}: ${study.configurations.length} configurations; scoring the test images`);
    const reference: ValidationItem[] = study.heldOut.map((g, i) => ({
      name: g.name,
      image: g.image,
      label: 0,
      mask: null,
      source: i,
      referenceOnly: true,
    }));
    const test: ValidationItem[] = [];
    for (const item of category.test) {
      const image = await decodeImage(await fs.promises.readFile(item.absPath));
      const mask = item.maskPath ? await maskOf(item.maskPath) : null;
      test.push({ name: item.path, image, label: item.label, mask, source: -1 });
    }
    const synthetic = choice.validation;
    const sides = { synthetic, real: [...reference, ...test] };
    const bySizeOf = new Map<string, NonNullable<Row['bySize']>>();
    const scores: Record<keyof typeof sides, Map<string, Row['real']>> = {
      synthetic: new Map(),
      real: new Map(),
    };
    for (const [side, items] of Object.entries(sides) as [keyof typeof sides, ValidationItem[]][]) {
      const runs = new Map<string, BaseRun>();
      // The bases of the configurations compared (not the finalists' cheaper variants).
      const used = new Set(study.configurations.flatMap((c) => c.members.map((m) => m.key)));
      for (const [key, trial] of study.trials) {
        if (!used.has(key)) continue;
        log(`${side}: ${key}`);
        runs.set(key, await trial.run(study.trainPool, items, study.finalImages));
      }
      const masks = items.map((v) => maskToGrid(v.mask, v.image.width, v.image.height));
      for (const c of study.configurations) {
        const s = scoreConfiguration(c, runs, items, masks, () => 1, { nsPerMac: 0, hnswNs: 0 });
        scores[side].set(c.id, { imageAuroc: s.imageAuroc, pixelAuroc: s.pixelAuroc, score: s.score });
        if (side === 'synthetic') {
          const split = bySize(configurationMaps(c, runs, items).scores, items);
          bySizeOf.set(c.id, {
            ...split,
            balancedScore: ((split.fine + split.coarse) / 2 + s.pixelAuroc) / 2,
          });
        }
      }
    }
    const rows: Row[] = study.configurations.map((c: Configuration) => ({
      id: c.id,
      description: describeConfiguration(c),
      synthetic: scores.synthetic.get(c.id)!,
      real: scores.real.get(c.id)!,
      bySize: bySizeOf.get(c.id),
    }));
    rows.sort((a, b) => b.synthetic.score - a.synthetic.score);
    const correlation = {
      imageAuroc: spearman(rows.map((r) => [r.synthetic.imageAuroc, r.real.imageAuroc])),
      pixelAuroc: spearman(rows.map((r) => [r.synthetic.pixelAuroc, r.real.pixelAuroc])),
      score: spearman(rows.map((r) => [r.synthetic.score, r.real.score])),
      balancedScore: spearman(rows.map((r) => [r.bySize!.balancedScore, r.real.score])),
    };
    const top = (key: (r: Row) => number) => rows.reduce((a, b) => (key(b) > key(a) ? b : a)).id;
    const topByBalanced = top((r) => r.bySize!.balancedScore);
    const result = {
      category: category.name,
      trainImages: study.trainPool.length,
      chosen: choice.record.chosen,
      topByScore: top((r) => r.synthetic.score),
      topByBalanced,
      correlation,
      rows,
    };
    fs.mkdirSync(path.dirname(path.resolve(values.out)), { recursive: true });
    fs.writeFileSync(values.out, JSON.stringify(result, null, 2));
    console.log(markdown(result));
  } finally {
    await pool.close();
  }
}

/** Image AUROC of the good items against the finer and the coarser half of the defects. */
function bySize(imageScores: number[], items: ValidationItem[]): { fine: number; coarse: number } {
  const judged = items.map((_, i) => i).filter((i) => !items[i].referenceOnly);
  const goods = judged.filter((i) => items[i].label === 0);
  const middle = (i: number) => {
    const { minSize, maxSize } = defectSizeRange(items[i].image.width, items[i].image.height);
    return Math.sqrt(minSize * maxSize);
  };
  const defects = judged.filter((i) => items[i].label === 1);
  const auroc = (ds: number[]) =>
    rocAuc(
      [...goods, ...ds].map((i) => imageScores[i]),
      [...goods, ...ds].map((i) => items[i].label),
    );
  return {
    fine: auroc(defects.filter((i) => (items[i].size ?? 0) < middle(i))),
    coarse: auroc(defects.filter((i) => (items[i].size ?? 0) >= middle(i))),
  };
}

async function maskOf(file: string): Promise<Uint8Array> {
  const rgb = await decodeImage(await fs.promises.readFile(file));
  const out = new Uint8Array(rgb.width * rgb.height);
  for (let i = 0; i < out.length; i++) out[i] = rgb.data[3 * i] > 127 ? 255 : 0;
  return out;
}

/** Spearman's rank correlation (average ranks for ties). */
export function spearman(pairs: [number, number][]): number {
  const rank = (values: number[]) => {
    const order = values.map((v, i) => [v, i] as const).sort((a, b) => a[0] - b[0]);
    const ranks = new Array<number>(values.length);
    for (let i = 0; i < order.length; ) {
      let j = i;
      while (j + 1 < order.length && order[j + 1][0] === order[i][0]) j++;
      for (let k = i; k <= j; k++) ranks[order[k][1]] = (i + j) / 2;
      i = j + 1;
    }
    return ranks;
  };
  const a = rank(pairs.map((p) => p[0]));
  const b = rank(pairs.map((p) => p[1]));
  const mean = (x: number[]) => x.reduce((s, v) => s + v, 0) / x.length;
  const ma = mean(a);
  const mb = mean(b);
  let num = 0;
  let da = 0;
  let db = 0;
  for (let i = 0; i < a.length; i++) {
    num += (a[i] - ma) * (b[i] - mb);
    da += (a[i] - ma) ** 2;
    db += (b[i] - mb) ** 2;
  }
  return da > 0 && db > 0 ? num / Math.sqrt(da * db) : NaN;
}

function markdown(r: {
  category: string;
  trainImages: number;
  chosen: string;
  correlation: Record<string, number>;
  rows: Row[];
}): string {
  const f = (v: number) => v.toFixed(4);
  const lines = [
    `${r.category}: banks from ${r.trainImages} training images; chosen ${r.chosen}`,
    `Spearman (synthetic vs real): image AUROC ${f(r.correlation.imageAuroc)}, pixel AUROC ${f(r.correlation.pixelAuroc)}, score ${f(r.correlation.score)}, size-balanced score ${f(r.correlation.balancedScore)}`,
    '',
    '| configuration | synthetic image | synthetic image, finer / coarser half | synthetic pixel | real image | real pixel |',
    '|---|---|---|---|---|---|',
    ...r.rows.map(
      (x) =>
        `| ${x.id} | ${f(x.synthetic.imageAuroc)} | ${x.bySize ? `${f(x.bySize.fine)} / ${f(x.bySize.coarse)}` : '–'} | ${f(x.synthetic.pixelAuroc)} | ${f(x.real.imageAuroc)} | ${f(x.real.pixelAuroc)} |`,
    ),
  ];
  return lines.join('\n');
}

if (require.main === module) {
  main().catch((err) => {
    console.error(err instanceof Error ? err.message : err);
    process.exit(1);
  });
}
