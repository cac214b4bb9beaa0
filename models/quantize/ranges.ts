/**
 * Activation ranges from calibration tensors. "minmax" keeps the extremes; "percentile" cuts the
 * rarest (100 - p)% of values (half on each side) from a histogram over the min-max range, so a few
 * outliers do not stretch the uint8 grid over values that almost never occur.
 */

export type CalibrationMethod = 'minmax' | 'percentile';

export interface Range {
  min: number;
  max: number;
}

export class MinMax {
  min = Infinity;
  max = -Infinity;

  add(data: ArrayLike<number>): void {
    let lo = this.min;
    let hi = this.max;
    for (let i = 0; i < data.length; i++) {
      const v = data[i];
      if (v < lo) lo = v;
      if (v > hi) hi = v;
    }
    this.min = lo;
    this.max = hi;
  }

  range(): Range {
    return Number.isFinite(this.min) ? { min: this.min, max: this.max } : { min: 0, max: 0 };
  }
}

/** Fixed-range histogram; the range comes from a first (min-max) pass over the same inputs. */
export class Histogram {
  readonly counts: Float64Array;
  total = 0;

  constructor(
    readonly min: number,
    readonly max: number,
    bins = 4096,
  ) {
    this.counts = new Float64Array(bins);
  }

  add(data: ArrayLike<number>): void {
    const bins = this.counts.length;
    const width = (this.max - this.min) / bins;
    if (!(width > 0)) {
      this.counts[0] += data.length;
      this.total += data.length;
      return;
    }
    const inv = 1 / width;
    for (let i = 0; i < data.length; i++) {
      let b = Math.floor((data[i] - this.min) * inv);
      if (b < 0) b = 0;
      else if (b >= bins) b = bins - 1;
      this.counts[b]++;
    }
    this.total += data.length;
  }

  /** Range keeping `percentile`% of the values: (100 - percentile) / 2 % cut from each tail. */
  percentileRange(percentile: number): Range {
    if (this.total === 0 || !(this.max > this.min)) return { min: this.min, max: this.max };
    const cut = ((100 - percentile) / 200) * this.total;
    const width = (this.max - this.min) / this.counts.length;
    let lo = 0;
    for (let acc = 0; lo < this.counts.length - 1; lo++) {
      acc += this.counts[lo];
      if (acc > cut) break;
    }
    let hi = this.counts.length - 1;
    for (let acc = 0; hi > 0; hi--) {
      acc += this.counts[hi];
      if (acc > cut) break;
    }
    // Bin edges: lower edge of the first kept bin, upper edge of the last kept bin.
    return { min: this.min + lo * width, max: this.min + (hi + 1) * width };
  }
}
