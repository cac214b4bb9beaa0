/**
 * The one place onnxruntime sessions live. A Backbone runs a feature extractor (ModelSpec) on a
 * batch of RGB tiles and returns the stage feature maps the engine asked for.
 */
import * as ort from 'onnxruntime-node';
import { ModelSpec, StageSpec } from '../../models/spec';
import { ModelNotFoundError, resolveModel } from '../../models/registry';
import { cutAtStages } from '../../models/surgery';
import { decodeModel, encodeModel } from '../../models/onnx/io';
import * as fs from 'node:fs';
import { RgbImage } from '../image/decode';
import { SpiError } from '../errors';
import { CellPlacement, cellPlacements } from './geometry';
import { GraphProto, ModelProto } from '../../models/onnx/proto';

export interface FeatureMap {
  /** NCHW float32 for one image: channels x height x width. */
  data: Float32Array;
  channels: number;
  height: number;
  width: number;
  /** Where the map's cells sit on the input (see geometry.ts); absent when the graph does not tell. */
  placement?: CellPlacement;
}

/** A rectangle of an image, read in place. */
export interface ImageRegion {
  image: RgbImage;
  left: number;
  top: number;
  width: number;
  height: number;
}

/** Input tensors kept for reuse per backbone (concurrent inspections each take their own). */
const MAX_FREE_INPUTS = 2;

export interface SessionSettings {
  /** Threads inside one inference (0 = onnxruntime's default: one per core). */
  intraOpThreads: number;
  graphOptimization: 'disabled' | 'basic' | 'extended' | 'all';
  /**
   * Let idle intra-op threads spin between operators. Off by default: spinning threads take the
   * cores from faiss and from the other processes of a node (gateway, shards) for no gain here.
   */
  spinning: boolean;
}

export const DEFAULT_SESSION: SessionSettings = {
  intraOpThreads: 0,
  graphOptimization: 'all',
  spinning: false,
};

/**
 * The session settings of this process: SPI_INTRA_OP_THREADS caps onnxruntime's threads per
 * inference. Set it in containers: onnxruntime sizes its pool by the host's cores, not the pod's CPU
 * limit, and a 2-CPU pod on a 64-core node would otherwise run 64 threads.
 */
export function sessionSettingsFromEnv(env: NodeJS.ProcessEnv = process.env): SessionSettings {
  const raw = env.SPI_INTRA_OP_THREADS;
  if (raw === undefined || raw === '') return DEFAULT_SESSION;
  const threads = Number(raw);
  if (!Number.isInteger(threads) || threads < 0)
    throw new SpiError('INVALID_ARGUMENT', `SPI_INTRA_OP_THREADS must be an integer >= 0, got "${raw}"`);
  return { ...DEFAULT_SESSION, intraOpThreads: threads };
}

export class Backbone {
  private readonly placements = new Map<string, (CellPlacement | undefined)[]>();
  private readonly freeInputs: Float32Array[] = [];

  private constructor(
    readonly spec: ModelSpec,
    readonly stages: StageSpec[],
    private readonly session: ort.InferenceSession,
    /** The graph's nodes and small constants, enough to place the stage cells (no weights). */
    private readonly layout?: GraphProto,
  ) {}

  /** Loads a model by id, directory or spec path (see models/registry.ts) and picks its stages. */
  static async load(
    model: string,
    stageNames?: string[],
    settings: SessionSettings = DEFAULT_SESSION,
  ): Promise<Backbone> {
    const { spec, onnxPath } = resolveOrNotFound(model);
    const names = stageNames && stageNames.length > 0 ? stageNames : spec.defaultStages;
    const stages = names.map((name) => {
      const stage = spec.stages.find((s) => s.name === name);
      if (!stage) {
        throw new SpiError(
          'INVALID_ARGUMENT',
          `model ${spec.id} has no stage "${name}"; it has ${spec.stages.map((s) => s.name).join(', ')}`,
        );
      }
      return stage;
    });
    const options = ortSessionOptions(settings);
    const graph = stageGraph(spec, onnxPath, stages);
    const session = await ort.InferenceSession.create(graph.onnx, options);
    return new Backbone(spec, stages, session, layoutOf(graph.model.graph));
  }

  /** Cell placement of each stage for an input of this size (cached per size). */
  stagePlacements(height: number, width: number): (CellPlacement | undefined)[] {
    const key = `${height}x${width}`;
    let p = this.placements.get(key);
    if (!p) {
      p = this.layout
        ? cellPlacements(
            this.layout,
            this.spec.inputName,
            height,
            width,
            this.stages.map((s) => s.tensor),
          )
        : this.stages.map(() => undefined);
      this.placements.set(key, p);
    }
    return p;
  }

  get id(): string {
    return this.spec.id;
  }

  /** Runs a batch of equally sized tiles; returns, per stage, one FeatureMap per tile. */
  run(tiles: RgbImage[]): Promise<FeatureMap[][]> {
    return this.runRegions(
      tiles.map((image) => ({ image, left: 0, top: 0, width: image.width, height: image.height })),
    );
  }

  /**
   * Runs a batch of equally sized regions of images (a sheet's tiles, read where they lie in the
   * canvas: no copy per tile). The batch's input tensor comes from a small free list, so a sheet's
   * batches do not each fault in megabytes of fresh memory (the services map every allocation over
   * 128 KiB afresh).
   */
  async runRegions(regions: ImageRegion[]): Promise<FeatureMap[][]> {
    if (regions.length === 0) return this.stages.map(() => []);
    const { width, height } = regions[0];
    const length = regions.length * 3 * width * height;
    const input = this.takeInput(length);
    try {
      regions.forEach((region, i) => {
        if (region.width !== width || region.height !== height)
          throw new Error('a backbone batch needs equal tile sizes');
        const { image, left, top } = region;
        if (left < 0 || top < 0 || left + width > image.width || top + height > image.height)
          throw new Error(
            `tile ${width}x${height} at (${left}, ${top}) is outside its ${image.width}x${image.height} image`,
          );
        this.normalizeInto(region, input, i * 3 * width * height);
      });
      const feeds = {
        [this.spec.inputName]: new ort.Tensor('float32', input, [regions.length, 3, height, width]),
      };
      const outputs = await this.session.run(feeds);
      const placements = this.stagePlacements(height, width);
      return this.stages.map((stage, s) => {
        const tensor = outputs[stage.tensor];
        const [n, c, h, w] = tensor.dims as number[];
        const all = tensor.data as Float32Array;
        const per = c * h * w;
        return Array.from({ length: n }, (_, i) => {
          const map: FeatureMap = {
            data: all.subarray(i * per, (i + 1) * per),
            channels: c,
            height: h,
            width: w,
          };
          if (placements[s]) map.placement = placements[s];
          return map;
        });
      });
    } finally {
      // onnxruntime reads the input during the run only; the buffer can serve the next batch.
      if (this.freeInputs.length < MAX_FREE_INPUTS) this.freeInputs.push(input);
    }
  }

  private takeInput(length: number): Float32Array {
    const at = this.freeInputs.findIndex((b) => b.length === length);
    return at >= 0 ? this.freeInputs.splice(at, 1)[0] : new Float32Array(length);
  }

  async close(): Promise<void> {
    await this.session.release();
  }

  /** HWC bytes of a region -> normalised CHW floats, written straight into the batch buffer. */
  private normalizeInto(region: ImageRegion, out: Float32Array, offset: number): void {
    const { image, left, top, width, height } = region;
    const plane = width * height;
    const { mean, std } = this.spec.normalize;
    for (let c = 0; c < 3; c++) {
      const scale = 1 / (255 * std[c]);
      const shift = mean[c] / std[c];
      const base = offset + c * plane;
      for (let y = 0; y < height; y++) {
        const row = base + y * width;
        const src = ((top + y) * image.width + left) * 3 + c;
        for (let x = 0, q = src; x < width; x++, q += 3) out[row + x] = image.data[q] * scale - shift;
      }
    }
  }
}

/** onnxruntime's options for these settings (the benchmark times models with them too). */
export function ortSessionOptions(
  settings: SessionSettings = DEFAULT_SESSION,
): ort.InferenceSession.SessionOptions {
  const options: ort.InferenceSession.SessionOptions = {
    graphOptimizationLevel: settings.graphOptimization,
    executionMode: 'sequential',
    extra: { session: { intra_op: { allow_spinning: settings.spinning ? '1' : '0' } } },
  };
  if (settings.intraOpThreads > 0) options.intraOpNumThreads = settings.intraOpThreads;
  return options;
}

/**
 * The graph the engine runs for these stages: only they stay outputs, so nothing after the deepest
 * one runs. onnxruntime runs every node of a graph whatever the fetches (measured: the MobileNetV2
 * cut asked for block_2_add alone takes 8.1 ms, cut at block_2_add 4.1 ms), and onnxruntime-node's
 * fetch mapping for a subset of outputs is unreliable in 1.23. The benchmark times this same graph.
 * `onnx` is the file's own bytes when nothing is cut.
 */
export function stageGraph(
  spec: ModelSpec,
  onnxPath: string,
  stages: StageSpec[],
): { onnx: Uint8Array; model: ModelProto } {
  const all = spec.stages.map((s) => s.tensor);
  const wanted = stages.map((s) => s.tensor);
  const bytes = fs.readFileSync(onnxPath);
  const model = decodeModel(bytes);
  if (wanted.length === all.length && wanted.every((t, i) => t === all[i])) return { onnx: bytes, model };
  return { onnx: encodeModel(cutAtStages(model, wanted)), model };
}

function resolveOrNotFound(model: string): ReturnType<typeof resolveModel> {
  try {
    return resolveModel(model);
  } catch (err) {
    if (err instanceof ModelNotFoundError) throw new SpiError('NOT_FOUND', err.message);
    throw err;
  }
}

/** The graph without its weights: nodes, and only the small constants (pads, shapes). */
function layoutOf(graph: GraphProto): GraphProto {
  return {
    ...graph,
    initializer: (graph.initializer ?? []).map((t) =>
      (t.rawData?.length ?? 0) <= 64 ? t : { name: t.name, dims: t.dims, dataType: t.dataType },
    ),
  };
}
