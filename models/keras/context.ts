/** State shared by the layer converters while one Keras model is turned into an ONNX graph. */
import { GraphBuilder } from '../onnx/builder';
import { FusionPlan } from './fusion';
import { KerasLayer, KerasModel } from './topology';
import { Weight, WeightMap } from './weights';

export interface TensorInfo {
  /** ONNX tensor name (a layer's final tensor is named after the layer). */
  tensor: string;
  channels: number;
}

export class ConvertContext {
  private readonly tensors = new Map<string, TensorInfo>();
  private readonly constants = new Map<number, string>();

  constructor(
    readonly builder: GraphBuilder,
    readonly model: KerasModel,
    readonly weights: WeightMap,
    readonly plan: FusionPlan,
    readonly inputName: string,
  ) {}

  define(layerName: string, info: TensorInfo): void {
    this.tensors.set(layerName, info);
  }

  isDefined(layerName: string): boolean {
    return this.tensors.has(layerName);
  }

  output(layerName: string): TensorInfo {
    const info = this.tensors.get(layerName);
    if (!info) throw new Error(`internal: layer ${layerName} was read before it was converted`);
    return info;
  }

  /** The tensor feeding input `i` of a layer. */
  input(layer: KerasLayer, i = 0): TensorInfo {
    const name = layer.inputs[i];
    if (name === undefined) throw new Error(`layer ${layer.name} (${layer.className}) has no input ${i}`);
    return this.output(name);
  }

  layer(name: string): KerasLayer {
    const layer = this.model.byName.get(name);
    if (!layer) throw new Error(`internal: unknown layer ${name}`);
    return layer;
  }

  /** Keras stores weights as "<layer>/<variable>", e.g. "Conv1/kernel" or "bn/moving_mean". */
  weight(layer: KerasLayer, variable: string): Weight {
    const name = `${layer.name}/${variable}`;
    const weight = this.weights.get(name);
    if (!weight) throw new Error(`missing weight "${name}" for layer ${layer.name} (${layer.className})`);
    return weight;
  }

  /** A shared float scalar initializer (Clip bounds and the like). */
  scalar(value: number): string {
    let name = this.constants.get(value);
    if (!name) {
      name = `const/${value}`;
      this.builder.addFloat(name, [], Float32Array.of(value));
      this.constants.set(value, name);
    }
    return name;
  }
}
