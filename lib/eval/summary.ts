/** Image-level metrics for a report, computed from per-image scores and ground truth. */
import { f1AtThreshold, f1Max, rocAuc } from './metrics';
import type { PerTypeMetrics, ReportImage, ReportMetrics } from './types';

type Scored = Pick<ReportImage, 'label' | 'defectType' | 'score'>;

/** Per defect type (good first, then alphabetical): count, AUROC vs good, detection rate, mean score. */
export function perTypeMetrics(images: readonly Scored[], threshold: number): PerTypeMetrics[] {
  const goodScores = images.filter((im) => im.label === 0).map((im) => im.score);
  const byType = new Map<string, Scored[]>();
  for (const im of images) {
    const list = byType.get(im.defectType) ?? [];
    list.push(im);
    byType.set(im.defectType, list);
  }
  const types = [...byType.keys()].sort((a, b) =>
    a === 'good' ? -1 : b === 'good' ? 1 : a < b ? -1 : a > b ? 1 : 0,
  );
  return types.map((defectType) => {
    const list = byType.get(defectType) as Scored[];
    const scores = list.map((im) => im.score);
    const defective = list.filter((im) => im.label === 1).map((im) => im.score);
    // AUROC only for defective types; a good-only group has nothing to separate.
    const auroc =
      defective.length > 0
        ? rocAuc([...defective, ...goodScores], [...defective.map(() => 1), ...goodScores.map(() => 0)])
        : NaN;
    return {
      defectType,
      count: list.length,
      auroc,
      detectionRate: scores.filter((s) => s >= threshold).length / list.length,
      meanScore: scores.reduce((a, b) => a + b, 0) / list.length,
    };
  });
}

/** All image-level fields of ReportMetrics; add pixelAuroc and pro from the maps when available. */
export function imageMetrics(images: readonly Scored[], threshold: number): ReportMetrics {
  const scores = images.map((im) => im.score);
  const labels = images.map((im) => im.label);
  return {
    imageAuroc: rocAuc(scores, labels),
    f1AtThreshold: f1AtThreshold(scores, labels, threshold),
    f1Max: f1Max(scores, labels),
    perType: perTypeMetrics(images, threshold),
  };
}
