/**
 * From a choice to a bank: the fit settings of each member of the chosen configuration, and the
 * recall the fitted bank gives on the synthetic defects at its own threshold. The CLI (spi fit,
 * spi eval) and the cluster's bank builder all go through here, so they build the same bank from
 * the same images.
 */
import { listModels } from '../../models/registry';
import { RgbImage } from '../image/decode';
import { ExtractorSettings } from '../patchcore/extractor-settings';
import { FitSettings } from '../patchcore/fit';
import { DEFAULT_MODEL } from '../patchcore/engine';
import { AutoChoice } from './select';

export interface MemberPlan {
  extractor: ExtractorSettings;
  settings: FitSettings;
}

/** Which user settings the choice leaves alone: an explicit coreset wins over the candidate's. */
export interface PlanOverrides {
  coreset?: boolean;
}

/**
 * Each member's extractor and fit settings: `base` gives the name, categories, index, threshold
 * and scoring; the choice gives backbone, stages, view, coreset, reference and the holdout that
 * holds back the validation images.
 */
export function planMembers(
  choice: AutoChoice,
  base: FitSettings,
  overrides: PlanOverrides = {},
): MemberPlan[] {
  const c = choice.configuration;
  return c.members.map((m) => ({
    extractor: {
      model: m.model,
      stages: m.stages,
      view: m.view,
      projectionDim: base.projectionDim,
      projectionSeed: base.projectionSeed,
    },
    settings: {
      ...base,
      view: m.view,
      coreset: overrides.coreset ? base.coreset : m.coreset,
      score: { ...base.score, reference: c.reference ? 'mean' : 'none' },
      holdoutFraction: choice.holdoutFraction,
    },
  }));
}

/** The backbones the automatic fit chooses among: the one named, else the default and every installed ImageNet one. */
export function autoModels(named?: string): string[] {
  if (named) return [named];
  const others = listModels().filter((id) => /-imagenet$/.test(id) && id !== DEFAULT_MODEL);
  // The default first: candidates.ts tries it at every view, the others at their own size only.
  return [DEFAULT_MODEL, ...others];
}

/** Share of the synthetic defects that score at or over the fitted bank's threshold. */
export async function syntheticRecall(
  inspector: { inspectImage(image: RgbImage, threshold?: number): Promise<{ score: number }> },
  choice: AutoChoice,
  threshold: number,
): Promise<number> {
  const defects = choice.validation.filter((v) => v.label === 1);
  let caught = 0;
  for (const d of defects)
    if ((await inspector.inspectImage(d.image, threshold)).score >= threshold) caught++;
  return defects.length > 0 ? Math.round((caught / defects.length) * 10000) / 10000 : NaN;
}

/** The table as text, for the fit's summary and `spi fit --explain`. */
export function formatAutoRecord(r: AutoChoice['record']): string {
  const lines = [
    `How this bank was configured (automatic fit, seed ${r.seed}, budget ${r.budgetMs} ms/image):`,
    `  chosen: ${r.chosen} — ${r.description}`,
    `  why: ${r.reason}`,
    `  validation: ${r.images.heldOut} held-out good images + ${r.images.syntheticDefects} synthetic defects ` +
      `(${Object.entries(r.images.byKind)
        .map(([k, n]) => `${k} ${n}`)
        .join(', ')}); bank from ${r.images.train} images`,
    `  registration: ${r.registration.registered ? 'registered' : 'not registered'} (median correlation ` +
      `${r.registration.correlation.toFixed(2)}, shift gain ${r.registration.shiftGain.toFixed(2)}): ` +
      `nominal reference ${r.registration.registered ? 'offered' : 'not offered'}`,
    `  successive halving: ${r.rungs.map((g) => `${g.configurations} configurations on ${g.trainImages} images`).join(' -> ')}; ` +
      `selection took ${(r.selectionMs / 1000).toFixed(1)} s`,
  ];
  if (r.fitMs !== undefined)
    lines.push(
      `  time: selection ${(r.selectionMs / 1000).toFixed(1)} s + fit of the chosen bank ${(r.fitMs / 1000).toFixed(1)} s` +
        ` = ${((r.selectionMs + r.fitMs) / 1000).toFixed(1)} s`,
    );
  if (r.syntheticRecall !== undefined)
    lines.push(
      `  recall on the synthetic defects at the bank's threshold: ${(r.syntheticRecall * 100).toFixed(1)} %`,
    );
  for (const s of r.skipped) lines.push(`  not tried: ${s.key} (embedding alone ${s.embedMs} ms > budget)`);
  lines.push(
    '  configuration                                     rung imgs  image AUROC  pixel AUROC  score    ms/image  status',
  );
  for (const t of r.table)
    lines.push(
      `  ${t.id.padEnd(50)}${String(t.rung).padStart(4)}${String(t.trainImages).padStart(5)}` +
        `${t.imageAuroc.toFixed(4).padStart(13)}${t.pixelAuroc.toFixed(4).padStart(13)}${t.score.toFixed(4).padStart(8)}` +
        `${t.msPerImage.toFixed(1).padStart(10)}  ${t.status}`,
    );
  return lines.join('\n');
}
