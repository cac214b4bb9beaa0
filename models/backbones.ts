/**
 * The ImageNet backbones `make models` builds from the Keras models bundled in nsfwjs. nsfwjs
 * fine-tuned only the top of each network for its own classes; the layers up to `lastFrozenLayer`
 * kept `trainable: false` and so hold the original Keras Applications ImageNet weights. Stages are
 * picked only from that frozen part (the converter refuses anything later).
 */
import { ModelSpec } from './spec';

export interface BackboneDef {
  id: string;
  /** Folder under nsfwjs/dist/models. */
  nsfwjsModel: string;
  /** Upstream architecture the frozen weights come from. */
  architecture: string;
  lastFrozenLayer: string;
  inputSize: [number, number];
  /** Keras layer names exported as graph outputs, shallow to deep. */
  stages: string[];
  defaultStages: string[];
  normalize: ModelSpec['normalize'];
}

/** keras.applications "tf" preprocessing: x / 127.5 - 1 on RGB 0..255, i.e. (x01 - 0.5) / 0.5. */
const KERAS_TF_NORMALIZE: ModelSpec['normalize'] = { mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5] };

export const BACKBONES: BackboneDef[] = [
  {
    id: 'mobilenet_v2-imagenet',
    nsfwjsModel: 'mobilenet_v2',
    architecture: 'Keras Applications MobileNetV2 (alpha 1.0), ImageNet weights',
    lastFrozenLayer: 'block_10_project_BN',
    inputSize: [224, 224],
    stages: [
      'block_2_add',
      'block_5_add',
      'block_6_expand_relu',
      'block_9_add',
      'block_10_expand_relu',
      'block_10_project_BN',
    ],
    // Chosen by make eval on mvtec_ad/bottle at 224: the residual-stream outputs (32 + 64 channels)
    // beat the expanded activations (192 + 384) on image AUROC (0.997 vs 0.990) at a sixth of the
    // embedding width, which makes the k-NN search six times cheaper.
    defaultStages: ['block_5_add', 'block_9_add'],
    normalize: KERAS_TF_NORMALIZE,
  },
  {
    id: 'inception_v3-imagenet',
    nsfwjsModel: 'inception_v3',
    architecture: 'Keras Applications InceptionV3, ImageNet weights',
    lastFrozenLayer: 'mixed5',
    inputSize: [299, 299],
    stages: ['mixed1', 'mixed2', 'mixed3', 'mixed4', 'mixed5'],
    defaultStages: ['mixed2', 'mixed5'],
    normalize: KERAS_TF_NORMALIZE,
  },
];

export function backboneById(id: string): BackboneDef {
  const def = BACKBONES.find((b) => b.id === id);
  if (!def) throw new Error(`unknown backbone ${id}; known: ${BACKBONES.map((b) => b.id).join(', ')}`);
  return def;
}
