/**
 * Inline SVG charts for the report, drawn by hand so the page needs no script library and no
 * network. Sizes are in SVG user units; the viewBox makes them scale with the page.
 */
import { esc, fmtMetric, fmtScore, niceTicks } from './html';
import type { RocCurve } from './metrics';

const GOOD = '#2b7bba';
const BAD = '#d7301f';
const AXIS = '#555';

const r1 = (v: number): string => (Math.round(v * 10) / 10).toString();

interface Frame {
  w: number;
  h: number;
  left: number;
  right: number;
  top: number;
  bottom: number;
}

function axes(
  f: Frame,
  xTicks: number[],
  sx: (v: number) => number,
  yTicks: number[],
  sy: (v: number) => number,
  fmt: (v: number) => string,
): string {
  const parts: string[] = [];
  const x0 = f.left;
  const x1 = f.w - f.right;
  const y0 = f.h - f.bottom;
  const y1 = f.top;
  for (const t of yTicks) {
    const y = r1(sy(t));
    parts.push(`<line x1="${x0}" x2="${x1}" y1="${y}" y2="${y}" stroke="#e4e4e4"/>`);
    parts.push(
      `<text x="${x0 - 6}" y="${y}" text-anchor="end" dominant-baseline="middle">${esc(fmt(t))}</text>`,
    );
  }
  for (const t of xTicks) {
    const x = r1(sx(t));
    parts.push(`<line x1="${x}" x2="${x}" y1="${y0}" y2="${y0 + 4}" stroke="${AXIS}"/>`);
    parts.push(`<text x="${x}" y="${y0 + 16}" text-anchor="middle">${esc(fmtScore(t))}</text>`);
  }
  parts.push(`<line x1="${x0}" x2="${x1}" y1="${y0}" y2="${y0}" stroke="${AXIS}"/>`);
  parts.push(`<line x1="${x0}" x2="${x0}" y1="${y0}" y2="${y1}" stroke="${AXIS}"/>`);
  return parts.join('');
}

/** Overlaid histograms of good and defective image scores with the threshold as a dashed line. */
export function histogramSvg(
  good: readonly number[],
  defective: readonly number[],
  threshold: number,
  bins = 30,
): string {
  const f: Frame = { w: 640, h: 300, left: 48, right: 16, top: 44, bottom: 40 };
  const all = [...good, ...defective, threshold].filter(Number.isFinite);
  let lo = Math.min(...all);
  let hi = Math.max(...all);
  if (!(hi > lo)) {
    lo -= 0.5;
    hi += 0.5;
  }
  const pad = (hi - lo) * 0.02;
  lo -= pad;
  hi += pad;
  const width = (hi - lo) / bins;
  const count = (scores: readonly number[]): number[] => {
    const c = new Array<number>(bins).fill(0);
    for (const s of scores) if (Number.isFinite(s)) c[Math.min(bins - 1, Math.floor((s - lo) / width))]++;
    return c;
  };
  const cg = count(good);
  const cd = count(defective);
  const maxC = Math.max(1, ...cg, ...cd);
  const yTicks = niceTicks(0, maxC, 4).filter((t) => Number.isInteger(t));
  const yMax = Math.max(maxC, yTicks[yTicks.length - 1]);
  const pw = f.w - f.left - f.right;
  const ph = f.h - f.top - f.bottom;
  const sx = (v: number): number => f.left + ((v - lo) / (hi - lo)) * pw;
  const sy = (c: number): number => f.top + ph - (c / yMax) * ph;
  const bars = (c: number[], colour: string, label: string): string =>
    c
      .map((n, b) => {
        if (n === 0) return '';
        const x = sx(lo + b * width);
        const y = sy(n);
        return `<rect x="${r1(x + 0.5)}" y="${r1(y)}" width="${r1(pw / bins - 1)}" height="${r1(f.top + ph - y)}" fill="${colour}" fill-opacity="0.55"><title>${esc(label)}: ${n} in [${esc(fmtScore(lo + b * width))}, ${esc(fmtScore(lo + (b + 1) * width))})</title></rect>`;
      })
      .join('');
  const tx = r1(sx(threshold));
  return [
    `<svg class="chart" viewBox="0 0 ${f.w} ${f.h}" role="img" aria-label="Score histogram">`,
    axes(f, niceTicks(lo, hi, 6), sx, yTicks, sy, (t) => String(t)),
    bars(cg, GOOD, 'good'),
    bars(cd, BAD, 'defective'),
    `<line x1="${tx}" x2="${tx}" y1="${f.top - 6}" y2="${f.h - f.bottom}" stroke="#111" stroke-width="2" stroke-dasharray="6 4"/>`,
    `<text x="${r1(Math.min(f.w - f.right - 50, Math.max(f.left + 50, sx(threshold))))}" y="${f.top - 10}" text-anchor="middle" font-weight="600">threshold ${esc(fmtScore(threshold))}</text>`,
    // Legend in the top margin, left; the threshold label sits just above the plot.
    `<rect x="${f.left}" y="4" width="12" height="12" fill="${GOOD}" fill-opacity="0.55"/>`,
    `<text x="${f.left + 16}" y="14">good (${good.length})</text>`,
    `<rect x="${f.left + 90}" y="4" width="12" height="12" fill="${BAD}" fill-opacity="0.55"/>`,
    `<text x="${f.left + 106}" y="14">defective (${defective.length})</text>`,
    `<text x="${f.left + pw / 2}" y="${f.h - 6}" text-anchor="middle" class="axis-title">image anomaly score</text>`,
    `<text transform="translate(12 ${f.top + ph / 2}) rotate(-90)" text-anchor="middle" class="axis-title">images</text>`,
    '</svg>',
  ].join('');
}

/** ROC curve with the chance diagonal and the operating point at the threshold. */
export function rocSvg(curve: RocCurve, auroc: number, operating?: { fpr: number; tpr: number }): string {
  const f: Frame = { w: 340, h: 300, left: 48, right: 16, top: 16, bottom: 40 };
  const pw = f.w - f.left - f.right;
  const ph = f.h - f.top - f.bottom;
  const sx = (v: number): number => f.left + v * pw;
  const sy = (v: number): number => f.top + ph - v * ph;
  const ticks = [0, 0.2, 0.4, 0.6, 0.8, 1];
  const pts = curve.fpr.map((x, i) => `${r1(sx(x))},${r1(sy(curve.tpr[i]))}`).join(' ');
  const op = operating
    ? `<circle cx="${r1(sx(operating.fpr))}" cy="${r1(sy(operating.tpr))}" r="5" fill="#111"><title>at threshold: FPR ${esc(fmtMetric(operating.fpr))}, TPR ${esc(fmtMetric(operating.tpr))}</title></circle>`
    : '';
  return [
    `<svg class="chart" viewBox="0 0 ${f.w} ${f.h}" role="img" aria-label="ROC curve">`,
    axes(f, ticks, sx, ticks, sy, (t) => String(t)),
    `<line x1="${sx(0)}" y1="${sy(0)}" x2="${sx(1)}" y2="${sy(1)}" stroke="#999" stroke-dasharray="4 4"/>`,
    `<polyline points="${pts}" fill="none" stroke="${BAD}" stroke-width="2"/>`,
    op,
    `<text x="${sx(0.95)}" y="${sy(0.08)}" text-anchor="end" font-weight="600">AUROC ${esc(fmtMetric(auroc))}</text>`,
    `<text x="${f.left + pw / 2}" y="${f.h - 6}" text-anchor="middle" class="axis-title">false positive rate</text>`,
    `<text transform="translate(12 ${f.top + ph / 2}) rotate(-90)" text-anchor="middle" class="axis-title">true positive rate</text>`,
    '</svg>',
  ].join('');
}
