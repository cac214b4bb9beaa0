/**
 * A backbone model spec: everything the engine needs to run an ONNX feature extractor.
 * `make models` writes one `spec.json` of this shape beside each converted `model.onnx`; a user who
 * brings their own ONNX backbone writes one by hand (see models/specs/*.example.json).
 */
export interface StageSpec {
  /** Stage name used in configs and bank metadata, e.g. "block_6_expand_relu" or "layer2". */
  name: string;
  /** Name of the ONNX graph output that carries this stage's feature map (NCHW). */
  tensor: string;
  /** Input pixels per feature-map cell at this stage (8 for a 28x28 map from 224 input). */
  stride: number;
  /** Channels of the feature map. */
  channels: number;
}

export interface ModelSpec {
  /** Stable id stored in every bank, e.g. "mobilenet_v2-imagenet"; banks refuse other backbones. */
  id: string;
  /** ONNX file, relative to the spec file. */
  file: string;
  /** Name of the graph input (NCHW float32, RGB). */
  inputName: string;
  /** Default input size [height, width] (the graphs accept other sizes too). */
  inputSize: [number, number];
  /** Per-channel normalisation applied to RGB in [0,1]: (x - mean) / std. Keras' [-1,1] is mean=std=0.5. */
  normalize: { mean: [number, number, number]; std: [number, number, number] };
  /** Every stage exported as a graph output, shallow to deep. */
  stages: StageSpec[];
  /** The stages the engine uses unless a config says otherwise. */
  defaultStages: string[];
  /** sha256 of the ONNX file, hex; checked on load when present. */
  sha256?: string;
}
