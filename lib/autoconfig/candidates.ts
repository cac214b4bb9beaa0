/**
 * The candidate space of the automatic fit, read off the image size and the installed backbones.
 *
 * A *base* is what needs its own embeddings and bank: a backbone, a stage set and a view (canvas,
 * tiles, mirror). A *configuration* is what the selector ranks: one base, or two bases of the same
 * backbone and view fused, with the nominal reference on or off. Configurations of the same bases
 * share their embeddings and searches; only the map arithmetic differs (see trial.ts).
 */
import { CoresetConfig, DEFAULT_CORESET } from '../coreset/coreset';
import { ViewConfig } from '../image/views';

export interface BackboneInfo {
  id: string;
  /** Square input side the network was trained at (224 for MobileNetV2, 299 for InceptionV3). */
  inputSize: number;
  defaultStages: string[];
  stages: { name: string; stride: number; channels: number }[];
}

export interface BaseCandidate {
  /** Unique and readable, e.g. "mobilenet_v2-imagenet/default/whole224". */
  key: string;
  model: string;
  stageSet: 'default' | 'fine';
  stages: string[];
  view: ViewConfig;
  viewLabel: string;
  coreset: CoresetConfig;
  /** Patch positions per image at the finest stage (what the coreset and search scale with). */
  patchesPerImage: number;
  /** A smaller-bank variant: the key of the base whose embeddings it shares (same model, view, stages). */
  sharesEmbeddingsOf?: string;
}

export interface Configuration {
  id: string;
  /** One member, or two fused (same backbone and view). */
  members: BaseCandidate[];
  reference: boolean;
  /** A cheaper variant of a finalist: a smaller bank ("bank50%") or an INT8 backbone ("int8"). */
  variant?: string;
  /** The finalist a variant approximates. */
  variantOf?: string;
}

/** Tiles overlap by this many pixels; the canvas is mirrored by TILE_PAD before the backbone. */
export const TILE_OVERLAP = 32;
export const TILE_PAD = 16;
/**
 * Views whose finest stage gives more patch positions per image than this are not offered: their
 * coreset and search cost (quadratic and linear in it) cannot fit an inspection budget on a
 * press-side server, and the fit would take hours (a 900 px frame in stride-4 tiles gives ~78k).
 */
export const MAX_PATCHES_PER_IMAGE = 64_000;
/** Bank size for views with many patches per image (tiles, large canvases). */
export const LARGE_VIEW_BANK = 8000;
const LARGE_VIEW_PATCHES = 4000;

export interface SpaceOptions {
  width: number;
  height: number;
  /** The product's default backbone first: it alone is tried at every view. */
  backbones: BackboneInfo[];
}

/** The views worth trying for images of this size, for a backbone trained at `input` px. */
export function viewsFor(
  width: number,
  height: number,
  input: number,
): { label: string; view: ViewConfig }[] {
  const side = Math.min(width, height);
  // A whole view squeezes the long side most, so its detail is the long side's: R / long.
  const long = Math.max(width, height);
  const whole = (size: number) => ({
    label: `whole${size}`,
    view: { resize: size, crop: 0, scale: 1, tile: 0, overlap: 0, pad: 0 },
  });
  const tiles = (scale: number) => ({
    label: `tiles${input}@${scale}`,
    view: { resize: 0, crop: 0, scale, tile: input, overlap: TILE_OVERLAP, pad: TILE_PAD },
  });
  const views = [whole(input)];
  // A larger canvas only when the image has the pixels for it (never upsample to find detail).
  if (side >= 2 * input) views.push(whole(2 * input));
  // Tiles only where they show more than a whole canvas does: tiling a canvas the size of a whole
  // view (a 900 px frame at half scale against the 448 px whole frame) adds seams and cost, no detail.
  // Measured along the long side: a 640 x 480 board in a 448 px whole view is shown at 0.7x, not
  // at the 0.93x of its short side, so its full-resolution tiles do show more.
  const distinct = (scale: number) =>
    views.every((v) => Math.abs(long * scale - v.view.resize) > 0.25 * long * scale);
  if (side >= 1.5 * input && distinct(1)) views.push(tiles(1));
  if (side * 0.5 >= 1.5 * input && distinct(0.5)) views.push(tiles(0.5));
  return views;
}

/** The stride-8 default pair, and the stride-4 pair where the backbone has a finer stage. */
export function stageSetsFor(b: BackboneInfo): { set: BaseCandidate['stageSet']; stages: string[] }[] {
  const sets: { set: BaseCandidate['stageSet']; stages: string[] }[] = [
    { set: 'default', stages: b.defaultStages },
  ];
  const strideOf = (name: string) => b.stages.find((s) => s.name === name)?.stride ?? 0;
  const first = b.defaultStages[0];
  const finest = [...b.stages].sort((x, y) => x.stride - y.stride)[0];
  if (finest && strideOf(first) > finest.stride) sets.push({ set: 'fine', stages: [finest.name, first] });
  return sets;
}

/** Patch positions per image at the finest of `stages` under `view`. */
export function patchesPerImage(
  b: BackboneInfo,
  stages: string[],
  view: ViewConfig,
  width: number,
  height: number,
): number {
  const stride = Math.min(...stages.map((n) => b.stages.find((s) => s.name === n)?.stride ?? 8));
  const pad = 2 * (view.pad ?? 0);
  if (view.resize > 0) return Math.ceil((view.resize + pad) / stride) ** 2;
  const w = Math.round(width * view.scale) + pad;
  const h = Math.round(height * view.scale) + pad;
  const step = view.tile - view.overlap;
  const across = (n: number) => Math.max(1, Math.ceil((n - view.overlap) / step));
  return across(w) * across(h) * Math.ceil(view.tile / stride) ** 2;
}

/** Whole-frame banks keep the product's default 10 %; many-patch views a fixed-size bank. */
export function coresetFor(patches: number): CoresetConfig {
  if (patches <= LARGE_VIEW_PATCHES) return { ...DEFAULT_CORESET };
  return { ...DEFAULT_CORESET, perImage: 0.05, size: LARGE_VIEW_BANK };
}

/**
 * The bases to score. The first backbone (the product's default) gets every view and stage set;
 * the others are screened at their own whole-frame view only: a backbone that loses there is not
 * worth its cost at larger views (InceptionV3 costs ~15x MobileNetV2 per pixel).
 */
export function baseCandidates(o: SpaceOptions): BaseCandidate[] {
  const out: BaseCandidate[] = [];
  for (const [i, b] of o.backbones.entries()) {
    const views = viewsFor(o.width, o.height, b.inputSize).filter((_, j) => i === 0 || j === 0);
    for (const { set, stages } of stageSetsFor(b)) {
      for (const { label, view } of views) {
        const patches = patchesPerImage(b, stages, view, o.width, o.height);
        if (patches > MAX_PATCHES_PER_IMAGE) continue;
        out.push({
          key: `${b.id}/${set}/${label}`,
          model: b.id,
          stageSet: set,
          stages,
          view,
          viewLabel: label,
          coreset: coresetFor(patches),
          patchesPerImage: patches,
        });
      }
    }
  }
  return out;
}

/**
 * Every configuration of the given bases: each alone, each default+fine pair of one backbone and
 * view fused (unless `fusion` is off), and all of them with the
 * nominal reference when the images are registered.
 */
export function configurationsOf(
  bases: BaseCandidate[],
  registered: boolean,
  fusion = true,
): Configuration[] {
  const singles = bases.map((b) => [b]);
  const pairs: BaseCandidate[][] = [];
  for (const a of fusion ? bases : []) {
    if (a.stageSet !== 'default') continue;
    const fine = bases.find(
      (b) => b.stageSet === 'fine' && b.model === a.model && b.viewLabel === a.viewLabel,
    );
    if (fine) pairs.push([a, fine]);
  }
  const out: Configuration[] = [];
  for (const members of [...singles, ...pairs]) {
    for (const reference of registered ? [false, true] : [false]) {
      out.push({ id: configurationId(members, reference), members, reference });
    }
  }
  return out;
}

export function configurationId(members: BaseCandidate[], reference: boolean, variant?: string): string {
  const first = members[0];
  const stages = members.length > 1 ? 'fused' : first.stageSet;
  return `${first.model}/${stages}/${first.viewLabel}${reference ? '+ref' : ''}${variant ? `~${variant}` : ''}`;
}

/**
 * Banks tried for the finalists, as fractions of their bank: the search costs in proportion to the
 * bank, and many jobs lose nothing at half of the default 10 %.
 */
export const BANK_VARIANTS = [0.5, 0.25];

/** The base with its bank scaled by `factor` (a fixed size, or the ratio). */
export function withBankFraction(base: BaseCandidate, factor: number): BaseCandidate {
  const c = base.coreset;
  const coreset =
    c.size > 0 ? { ...c, size: Math.max(1, Math.round(c.size * factor)) } : { ...c, ratio: c.ratio * factor };
  return {
    ...base,
    key: `${base.key}~bank${Math.round(factor * 100)}%`,
    coreset,
    sharesEmbeddingsOf: base.sharesEmbeddingsOf ?? base.key,
  };
}

/** The base on another build of its backbone (same stages and view): an INT8 one. */
export function onModel(base: BaseCandidate, model: string): BaseCandidate {
  const { sharesEmbeddingsOf: _embeddedElsewhere, ...own } = base;
  return { ...own, key: `${model}/${base.stageSet}/${base.viewLabel}`, model };
}

/**
 * The cheaper variants of a configuration: each bank fraction, and each installed INT8 build of its
 * backbone (`int8Builds`: model ids) with the configuration's own bank.
 */
export function variantsOf(c: Configuration, int8Builds: string[]): Configuration[] {
  const out: Configuration[] = [];
  for (const factor of BANK_VARIANTS) {
    const members = c.members.map((m) => withBankFraction(m, factor));
    const variant = `bank${Math.round(factor * 100)}%`;
    out.push({
      id: configurationId(c.members, c.reference, variant),
      members,
      reference: c.reference,
      variant,
      variantOf: c.id,
    });
  }
  for (const model of int8Builds) {
    const members = c.members.map((m) => onModel(m, model));
    out.push({
      id: configurationId(members, c.reference),
      members,
      reference: c.reference,
      variant: 'int8',
      variantOf: c.id,
    });
  }
  return out;
}

/** Installed INT8 builds of `model` (make quantize writes "<model>-int8-<calibration>"). */
export function int8BuildsOf(model: string, installed: string[]): string[] {
  return installed.filter((id) => id.startsWith(`${model}-int8`));
}

/** A plain-language line for the table: "MobileNetV2 stride 8+4 fused, 224 px whole frame, reference". */
export function describe(c: Configuration): string {
  const m = c.members[0];
  const stages = c.members.map((b) => b.stages.join('+')).join(' fused with ');
  const v = m.view;
  const view =
    v.tile > 0
      ? `${v.tile} px tiles at scale ${v.scale} (mirror ${v.pad ?? 0} px)`
      : `whole frame at ${v.resize} px`;
  const bank = c.variant?.startsWith('bank') ? `, ${c.variant.slice(4)} of the usual bank` : '';
  return `${m.model} ${stages}, ${view}${c.reference ? ', nominal reference' : ''}${bank}`;
}
