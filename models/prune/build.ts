/** A built float backbone -> a channel-pruned sibling with its own spec (narrower stages) and card. */
import { DerivedModel, describeDerived } from '../derived';
import { ModelProto } from '../onnx/proto';
import { opCounts } from '../quantize/tensors';
import { ModelSpec } from '../spec';
import { calibrationSet } from '../quantize/build';
import { CalibrationView } from '../quantize/calibration-data';
import { channelMeans } from './means';
import { PruneOptions, PruneResult, compensationTensors, pruneModel } from './prune';

export interface PrunedBuild {
  derived: DerivedModel;
  result: PruneResult;
  model: ModelProto;
}

export async function buildPruned(
  parent: ModelSpec,
  model: ModelProto,
  options: PruneOptions & {
    id: string;
    /** Bias compensation from channel means over "randn" or a folder of nominal images (default none). */
    compensate?: string;
    compensateCount?: number;
    compensateView?: CalibrationView;
  },
): Promise<PrunedBuild> {
  let means = options.means;
  if (options.compensate && !means) {
    const set = await calibrationSet(
      options.compensate,
      options.compensateCount ?? 16,
      parent,
      undefined,
      options.compensateView,
    );
    means = await channelMeans(model, parent.inputName, compensationTensors(model), set);
  }
  const result = pruneModel(model, { ...options, means });
  const stages = parent.stages.map((s) => ({
    ...s,
    channels: result.outputChannels.get(s.tensor) ?? s.channels,
  }));
  const removed = result.pruned.reduce((n, p) => n + p.channels - p.kept, 0);
  const total = result.pruned.reduce((n, p) => n + p.channels, 0);
  const derived = await describeDerived(result.model, parent, {
    id: options.id,
    stages,
    transforms: ['prune'],
    details: {
      prune: {
        method: 'structured: lowest-L1-norm output channels (BN folded) of each chosen conv, no fine-tuning',
        ratio: options.ratio,
        channelAlignment: options.align ?? 1,
        biasCompensation: options.compensate
          ? `removed channels' means over ${options.compensateCount ?? 16} ${options.compensate === 'randn' ? 'random-normal inputs' : `images of ${options.compensate}${options.compensateView === 'tile' ? ' (tile-sized crops)' : ''}`} folded into reader biases`
          : 'none',
        prunedConvs: result.pruned.length,
        channelsRemoved: `${removed} of ${total}`,
        convs: result.pruned.map((p) => `${p.conv} ${p.channels}->${p.kept}`),
        skippedConvs: result.skipped.map((s) => `${s.conv}: ${s.reason}`),
        narrowerStages: Object.fromEntries(result.outputChannels),
      },
    },
    opCounts: { graph: opCounts(result.model.graph) },
    notes: [
      'Pruned without fine-tuning: features drift from the parent; check AUROC on your data before use.',
      'Stages listed under narrowerStages have fewer channels than in the parent, so banks are not interchangeable.',
    ],
  });
  return { derived, result, model: result.model };
}
