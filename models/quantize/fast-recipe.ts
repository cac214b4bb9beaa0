/**
 * The "fast" INT8 extractor: INT8 alone gives MobileNetV2 ~2.25x over the dense full-depth float
 * model on AVX2, because the early layers (112x112 and 56x56: the stem, block 1's expansion, blocks
 * 2-3's expansions and their depthwise convs) hold most of the time and gain little from 8-bit
 * kernels. The recipe thins exactly those layers (half their channels, counts kept at multiples of
 * 16 for the integer kernels), folds the removed channels' means over the job's good images into the
 * next convs' biases, calibrates INT8 on the same images, and leaves the 3-channel stem conv in
 * float (its integer kernel is slower than the float one). Later blocks and every stage width stay.
 */
import { DerivedModel } from '../derived';
import { ModelProto } from '../onnx/proto';
import { buildPruned } from '../prune/build';
import { ModelSpec } from '../spec';
import { Int8Build, Int8Options, buildInt8 } from './build';

export interface FastRecipe {
  /** Convs (node names) thinned, and the fraction of their channels removed. */
  convs: string[];
  ratio: number;
  /** Kept channel counts rounded to a multiple of this. */
  align: number;
  /** Nodes left in float. */
  keepFloat: string[];
}

const FAST_RECIPES: Record<string, FastRecipe> = {
  'mobilenet_v2-imagenet': {
    convs: ['bn_Conv1', 'block_1_expand_BN', 'block_2_expand_BN', 'block_3_expand_BN'],
    ratio: 0.5,
    align: 16,
    keepFloat: ['bn_Conv1'],
  },
};

/** The recipe for a backbone (by the id it or its parent was built as), if there is one. */
export function fastRecipe(spec: Pick<ModelSpec, 'id'>): FastRecipe | undefined {
  return FAST_RECIPES[spec.id];
}

export function fastRecipeIds(): string[] {
  return Object.keys(FAST_RECIPES);
}

/**
 * Prune (bias-compensated from `options.calibration`) and quantise a float backbone by its recipe.
 * The calibration source serves both: "randn" or a folder of the job's good images (better here).
 */
export async function buildFastInt8(
  parent: ModelSpec,
  model: ModelProto,
  options: Int8Options,
): Promise<Int8Build & { pruned: DerivedModel }> {
  const recipe = fastRecipe(parent);
  if (!recipe)
    throw new Error(
      `no fast recipe for ${parent.id} (recipes exist for ${fastRecipeIds().join(', ')}); use --prune and --keep-float`,
    );
  options.log?.(`fast recipe: ${recipe.convs.join(', ')} thinned by ${recipe.ratio} (align ${recipe.align})`);
  const pruned = await buildPruned(parent, model, {
    id: `${options.id}-float`,
    ratio: recipe.ratio,
    convs: recipe.convs,
    align: recipe.align,
    compensate: options.calibration,
    compensateCount: options.count,
    compensateView: options.calibrationView,
  });
  const card = pruned.derived.card;
  const built = await buildInt8({ ...parent, stages: pruned.derived.spec.stages }, pruned.model, {
    ...options,
    keepFloat: recipe.keepFloat,
    prior: { transforms: [...card.transforms, 'fast-recipe'], details: card.details },
  });
  return { ...built, pruned: pruned.derived };
}
