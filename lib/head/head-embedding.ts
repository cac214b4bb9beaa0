/**
 * The head's own embedding (`spi fit --head-stages`): other stage outputs of the bank's backbone,
 * on the bank's view, without the bank's random projection. A bank's stages and projection are
 * chosen for a cheap search; a head scores a patch with a small MLP, so it can afford wider features,
 * as SimpleNet and GLASS train on a WideResNet's 1,536 (a user's ResNet bank projected to 96 dims,
 * its head on the full layer2 + layer3). The head's map is on the bank's canvas whatever its grid,
 * so the combination is unchanged. Not the default: on bottle MobileNetV2's wide expanded stages
 * made a weaker head than the bank's own embedding (docs/glass-head.md, "A head on its own stages").
 */
import { Backbone, sessionSettingsFromEnv } from '../backbone/backbone';
import { resolveModel } from '../../models/registry';
import { invalid } from '../errors';
import { BankMeta } from '../bank/bank-meta';
import { BackbonePool, extractorForBank } from '../patchcore/engine';
import { FeatureExtractor } from '../patchcore/feature-extractor';

/** The head's own stages, or undefined for the bank's embedding (none asked, or the bank's own). */
export function headStagesFor(primary: BankMeta, asked: string[] | undefined): string[] | undefined {
  return asked && asked.length > 0 && !sameStages(primary, asked) ? asked : undefined;
}

/** `--head-stages A,B` / BuildSpec.head_stages (checked against the model when its backbone loads). */
export function parseHeadStages(raw: string | undefined): { stages?: string[] } {
  const stages = (raw ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
  return stages.length > 0 ? { stages } : {};
}

/**
 * Refuses head stages that a backbone the fit may use lacks, before anything is fitted (the bank
 * would otherwise be fitted first and the head then fail). `models`: the one a manual fit uses, or
 * the automatic fit's candidates. A model that cannot be resolved is left to the fit's own error.
 */
export function checkHeadStages(models: string[], stages: string[] | undefined): void {
  if (!stages) return;
  for (const model of models) {
    let spec;
    try {
      spec = resolveModel(model).spec;
    } catch {
      continue;
    }
    const names = spec.stages.map((s) => s.name);
    const missing = stages.filter((s) => !names.includes(s));
    if (missing.length > 0)
      throw invalid(
        `head stages: model ${spec.id} has no stage ${missing.map((m) => `"${m}"`).join(', ')}; it has ${names.join(', ')}` +
          (models.length > 1 ? ' (the automatic fit may choose this model: name one, or turn auto off)' : ''),
      );
  }
}

/** The bank's metadata as the head's extractor sees it: the head's stages, no projection. */
function headView(primary: BankMeta, stages: string[]): BankMeta {
  return {
    ...primary,
    model: { ...primary.model, stages },
    embedding: { ...primary.embedding, projection: null },
  };
}

/** The head's extractor from a pool (inspection: the pool shares the onnxruntime session). */
export function headExtractorFor(
  pool: BackbonePool,
  primary: BankMeta,
  stages: string[],
): Promise<FeatureExtractor> {
  return extractorForBank(pool, headView(primary, stages));
}

/** An extractor of its own for a fit (no pool at hand): the caller closes it. */
export interface OwnedExtractor {
  extractor: FeatureExtractor;
  close(): Promise<void>;
}

/** The head's extractor beside the bank's `primary` extractor: same backbone file and view. */
export async function ownHeadExtractor(primary: FeatureExtractor, stages: string[]): Promise<OwnedExtractor> {
  const backbone = await Backbone.load(primary.backbone.spec.id, stages, sessionSettingsFromEnv());
  // All of its own backbone's stages (a shared run's member selects among the union's).
  const extractor = new FeatureExtractor(backbone, {
    ...primary.options,
    projectionDim: 0,
    stageSelection: undefined,
  });
  return { extractor, close: () => backbone.close() };
}

/** The same stages as the bank's primary (then the head scores the bank's own embedding). */
function sameStages(primary: BankMeta, stages: string[] | undefined): boolean {
  if (!stages || stages.length === 0) return true;
  const own = primary.model.stages;
  return (
    !primary.embedding.projection && own.length === stages.length && own.every((s, i) => s === stages[i])
  );
}
