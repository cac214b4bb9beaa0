/** The discriminator head's flags (issue #20), shared by `spi fit` and `spi eval`. */
import { ParseArgsConfig } from 'node:util';
import {
  DEFAULT_HEAD_FIT,
  HEAD_KINDS,
  HEAD_MODES,
  HeadFitOptions,
  HeadMode,
  HeadPrecision,
} from '../../lib/head/head-bank';
import { invalid } from '../../lib/errors';
import { parseHeadStages } from '../../lib/head/head-embedding';
import { intFlag } from '../common/numeric-flags';

export const HEAD_FLAGS = {
  head: { type: 'string' },
  'head-epochs': { type: 'string', default: String(DEFAULT_HEAD_FIT.train.epochs) },
  'head-precision': { type: 'string', default: DEFAULT_HEAD_FIT.precision },
  'head-mode': { type: 'string', default: 'combined' },
  'head-stages': { type: 'string' },
} satisfies ParseArgsConfig['options'];

export const HEAD_USAGE = `discriminator head (a GLASS/SimpleNet-style MLP beside the bank, docs/glass-head.md):
  --head KIND         train a head of this kind beside the bank: ${HEAD_KINDS.join(', ')} (default: none)
  --head-epochs N     most training epochs; early stopping on the synthetic validation set (default ${HEAD_FLAGS['head-epochs'].default})
  --head-precision P  the model inspection runs: float or int8 (default ${HEAD_FLAGS['head-precision'].default})
  --head-mode M       the verdict by default: combined, head or bank (default ${HEAD_FLAGS['head-mode'].default})
  --head-stages A,B   stages of the backbone for the head to score instead of the bank's embedding
                      (e.g. layer2,layer3 of your ResNet beside a projected bank; default: the bank's)`;

export type HeadFlagValues = { [K in keyof typeof HEAD_FLAGS]?: string };

/** The head's fit options, or undefined without --head. */
export function headFitFrom(v: HeadFlagValues): (HeadFitOptions & { mode: HeadMode }) | undefined {
  if (v.head === undefined) return undefined;
  if (!(HEAD_KINDS as readonly string[]).includes(v.head))
    throw invalid(`--head must be one of ${HEAD_KINDS.join(', ')}, got "${v.head}"`);
  return {
    ...DEFAULT_HEAD_FIT,
    train: { ...DEFAULT_HEAD_FIT.train, epochs: headEpochs(v['head-epochs']) },
    precision: headPrecision(v['head-precision']),
    mode: headMode(v['head-mode']),
    ...parseHeadStages(v['head-stages']),
  };
}

export function headMode(value: string | undefined): HeadMode {
  const mode = value ?? 'combined';
  if (!(HEAD_MODES as readonly string[]).includes(mode))
    throw invalid(`--head-mode must be one of ${HEAD_MODES.join(', ')}, got "${mode}"`);
  return mode as HeadMode;
}

export function headPrecision(value: string | undefined): HeadPrecision {
  const p = value ?? 'float';
  if (p !== 'float' && p !== 'int8') throw invalid(`--head-precision must be float or int8, got "${p}"`);
  return p;
}

function headEpochs(raw: string | undefined): number {
  const n = intFlag('head-epochs', raw, DEFAULT_HEAD_FIT.train.epochs);
  if (n < 1) throw invalid('--head-epochs must be at least 1');
  return n;
}
