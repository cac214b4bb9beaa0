/**
 * The automatic fit end to end: choose a configuration on the synthetic validation set, fit the
 * chosen bank (one member, or a fused pair) on all training images with the same held-out split,
 * and record the choice, its table and the synthetic recall in the bank's metadata. `spi fit` and
 * the cluster's bank builder call this; `spi eval` calls the two halves around its own fit.
 */
import { DecodeLimits } from '../image/decode';
import { BackbonePool, createExtractor } from '../patchcore/engine';
import { FeatureExtractor } from '../patchcore/feature-extractor';
import {
  FitProgress,
  FitSettings,
  FittedBank,
  ImageSource,
  fitBank,
  fittedInspector,
} from '../patchcore/fit';
import { FittedFusion, fitFused, fusedInspector } from '../patchcore/fusion';
import { MemberPlan, PlanOverrides, planMembers, syntheticRecall } from './plan';
import { AutoChoice, chooseConfiguration } from './select';

export interface AutoFitOptions {
  pool: BackbonePool;
  models: string[];
  budgetMs?: number;
  seed?: number;
  overrides?: PlanOverrides;
  /** Separate good images for the threshold (and the validation's good half). */
  thresholdImages?: ImageSource[];
  /** Offer fused banks (default true). */
  fusion?: boolean;
  /** Keep the held-out maps in the fitted bank (a discriminator head is combined by them). */
  keepHeldOutMaps?: boolean;
  limits?: DecodeLimits;
  onProgress?: (stage: string, done: number, total: number) => void;
}

/** `settings`: the first member's as planned (its held-out split is the one every member used). */
export type AutoFitted = (
  | { kind: 'single'; fitted: FittedBank; extractors: FeatureExtractor[] }
  | { kind: 'fused'; fitted: FittedFusion; extractors: FeatureExtractor[] }
) & { choice: AutoChoice; settings: FitSettings };

/** Chooses, then plans each member's settings on top of the caller's (name, categories, index...). */
export async function planAutoFit(
  sources: ImageSource[],
  base: FitSettings,
  o: AutoFitOptions,
): Promise<{ choice: AutoChoice; members: MemberPlan[] }> {
  const choice = await chooseConfiguration(sources, {
    pool: o.pool,
    models: o.models,
    budgetMs: o.budgetMs,
    seed: o.seed,
    holdoutFraction: base.holdoutFraction,
    heldOut: o.thresholdImages,
    fusion: o.fusion,
    index: base.knn.factory,
    limits: o.limits,
    onProgress: o.onProgress,
  });
  return { choice, members: planMembers(choice, base, o.overrides) };
}

/** Fits the planned members on all the images; a single member is a plain bank. */
export async function fitPlanned(
  pool: BackbonePool,
  sources: ImageSource[],
  members: MemberPlan[],
  options: {
    limits?: DecodeLimits;
    onProgress?: FitProgress;
    thresholdImages?: ImageSource[];
    keepHeldOutMaps?: boolean;
  } = {},
): Promise<
  | { kind: 'single'; fitted: FittedBank; extractors: FeatureExtractor[] }
  | { kind: 'fused'; fitted: FittedFusion; extractors: FeatureExtractor[] }
> {
  const extractors = await Promise.all(members.map((m) => createExtractor(pool, m.extractor)));
  if (members.length === 1) {
    const fitted = await fitBank(extractors[0], sources, members[0].settings, options);
    return { kind: 'single', fitted, extractors };
  }
  const fitted = await fitFused(
    sources,
    members.map((m, i) => ({ extractor: extractors[i], settings: m.settings })),
    members[0].settings,
    options,
  );
  return { kind: 'fused', fitted, extractors };
}

/** Choose, fit, measure the synthetic recall, and record it all in the bank's metadata. */
export async function autoFit(
  sources: ImageSource[],
  base: FitSettings,
  o: AutoFitOptions,
): Promise<AutoFitted> {
  const { choice, members } = await planAutoFit(sources, base, o);
  const onProgress: FitProgress = (stage, done, total) => o.onProgress?.(stage, done, total);
  const fitStarted = performance.now();
  const result = await fitPlanned(o.pool, sources, members, {
    limits: o.limits,
    onProgress,
    thresholdImages: o.thresholdImages,
    keepHeldOutMaps: o.keepHeldOutMaps,
  });
  const inspector =
    result.kind === 'single'
      ? fittedInspector(result.fitted, result.extractors[0])
      : fusedInspector(result.fitted, result.extractors);
  choice.record.fitMs = Math.round(performance.now() - fitStarted);
  choice.record.syntheticRecall = await syntheticRecall(inspector, choice, inspector.meta.threshold.value);
  result.fitted.meta.autoConfig = choice.record;
  return { ...result, choice, settings: members[0].settings } as AutoFitted;
}
