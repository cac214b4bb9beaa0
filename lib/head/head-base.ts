/**
 * What a discriminator head goes beside: a single bank, or a fused bank (lib/patchcore/fusion.ts).
 *
 * The head scores one embedding per patch. Beside a fused bank that is the first member's (the
 * primary stages the automatic fit and `--stages` name; docs/glass-head.md says why), and the
 * head's map joins the members' standardised maps as one more term of the fused average. A single
 * bank's map is standardised by its held-out good maps; a fused map already is (each member's term
 * was), so it enters the combination as it is.
 */
import { BankMeta } from '../bank/bank-meta';
import { DecodeLimits, RgbImage } from '../image/decode';
import { FeatureExtractor, ImageEmbedding } from '../patchcore/feature-extractor';
import { FittedBank, LocalSearcher, completeMeta } from '../patchcore/fit';
import { EmbeddedInspection, inspectEmbedded } from '../patchcore/embedded-inspection';
import { FittedFusion, FusedInspector, fusedInspector } from '../patchcore/fusion';
import { Inspector, scoreEmbedding, searchCells } from '../patchcore/inspector';

/** The bank side of an inspection with a head. */
export interface HeadBase {
  /** The bank's metadata as callers see it (with `head`; `threshold` the bank's own). */
  readonly meta: BankMeta;
  /** The bank whose embeddings the head scores: the head's map geometry (view, smoothing). */
  readonly primary: BankMeta;
  readonly limits: DecodeLimits;
  /** The bank's own inspection at `threshold`, and the primary embedding it was made from. */
  inspectEmbedded(image: RgbImage, threshold: number, deadline?: number): Promise<EmbeddedInspection>;
}

/** A single bank's Inspector as a head's base; a FusedInspector is one already. */
export function headBaseOf(bank: Inspector | FusedInspector): HeadBase {
  if (bank instanceof FusedInspector) return bank;
  return {
    meta: bank.meta,
    primary: bank.meta,
    limits: bank.limits,
    inspectEmbedded: (image, threshold, deadline) => inspectEmbedded(bank, image, threshold, deadline),
  };
}

/** What fitting a head needs of the freshly fitted bank beside it. */
export interface HeadFitBase {
  /** The bank whose embeddings the head scores (completed metadata). */
  primary: BankMeta;
  /** The held-out good images' maps as the bank's threshold saw them (absent: fitHead makes them). */
  heldOutMaps?: Float32Array[];
  /** The maps are already on the standardised scale (a fused bank's): no standardisation of their own. */
  standardised: boolean;
  /** The members' terms beside the head's (1 for a single bank): the even mix gives each 1/(terms+1). */
  terms: number;
  /** An image's map on the base's scale; `embedding` is the primary's, already made. */
  mapOf(image: RgbImage, embedding: ImageEmbedding): Promise<Float32Array>;
  /** Recorded in HeadMeta.fused: the member the head was trained on, beside a fused bank. */
  fused?: { member: number; stages: string[] };
}

export function bankFitBase(bank: FittedBank): HeadFitBase {
  const primary = completeMeta(bank.meta, bank.dim, bank.index.size);
  return {
    primary,
    heldOutMaps: bank.heldOutMaps,
    standardised: false,
    terms: 1,
    mapOf: async (image, embedding) =>
      scoreEmbedding(
        primary,
        embedding,
        await searchCells(new LocalSearcher(bank.index), embedding, primary.score),
        image,
        Infinity,
      ).map,
  };
}

/** A fused bank fitted with keepHeldOutMaps; its maps need every member's embedding, so made here. */
export function fusedFitBase(fitted: FittedFusion, extractors: FeatureExtractor[]): HeadFitBase {
  const inspector = fusedInspector(fitted, extractors);
  return {
    primary: inspector.primary,
    heldOutMaps: fitted.heldOutMaps,
    standardised: true,
    terms: fitted.members.length,
    mapOf: async (image) => (await inspector.inspectEmbedded(image, Infinity)).inspection.map,
    fused: { member: 0, stages: inspector.primary.model.stages },
  };
}
