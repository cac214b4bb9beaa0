/** Lines for people: a training epoch for the progress bar, a fitted head for the fit summary. */
import type { HeadMeta } from './head-bank';
import type { EpochReport } from './train';

export function epochNote(r: EpochReport): string {
  const v = Number.isFinite(r.validation)
    ? ` val ${r.validation.toFixed(4)} (best ${r.best.toFixed(4)})`
    : '';
  return `loss ${r.loss.toFixed(4)}${v}, ~${Math.round(r.etaMs / 1000)} s left at most`;
}

export function formatHead(h: HeadMeta): string {
  const t = h.training;
  const kinds = Object.entries(t.localByKind)
    .map(([k, n]) => `${k} ${n}`)
    .join(', ');
  return [
    `head ${h.kind} (${h.dim} -> ${h.hidden} -> 1, ${h.precision}; verdict by default: ${h.mode}): ` +
      `${t.epochs.length} epochs in ${(t.trainMs / 1000).toFixed(1)} s (best ${t.bestEpoch}` +
      `${t.stoppedEarly ? ', stopped early' : ''}; embedding and synthetic defects ${(t.embedMs / 1000).toFixed(1)} s)`,
    `  trained on ${t.realPatches} good patches, ${t.localPatches} patches under synthetic defects` +
      `${kinds ? ` (${kinds})` : ''}, Gaussian and gradient-ascent fakes; validated on ${t.validation.goods} held-out goods + ${t.validation.defects} synthetic defects`,
    ...(h.stages
      ? [`  on stages of its own: ${h.stages.join('+')} (${h.dim} wide), made beside the bank's embedding`]
      : []),
    ...(h.fused
      ? [
          `  beside a fused bank: on member ${h.fused.member}'s embeddings (${h.fused.stages.join('+')}), ` +
            `its map one more standardised term of the members' average`,
        ]
      : []),
    `  combined map: head weight ${h.combination.headWeight} (synthetic validation score by head weight: ` +
      h.combination.table.map((r) => `${r.headWeight} ${r.score.toFixed(4)}`).join(', ') +
      ')',
    `  thresholds: head ${h.thresholds.head.value.toFixed(4)}, combined ${h.thresholds.combined.value.toFixed(4)} (bank alone: the bank's own)`,
  ].join('\n');
}
