/**
 * One backbone run for several stage sets on the same view: the members of a fused bank each took
 * their own run over the same canvas, though the deeper member's run computes the shallower
 * member's stages on the way (a head on stages of its own still makes its own run). Here one
 * backbone session has the union of their stages as outputs, and the first member's embed of an
 * image embeds every member; the others take theirs from that run (kept per image object, so only
 * while the caller holds the image: an inspection hands the same image to every member).
 *
 * For inspection only: a fit embeds each member in a pass of its own over freshly decoded images, so
 * nothing would be shared and every member would pay for the union's outputs.
 */
import { BankMeta } from '../bank/bank-meta';
import { resolveModel } from '../../models/registry';
import { RgbImage } from '../image/decode';
import {
  BackbonePool,
  bankExtractorSettings,
  checkModelFile,
  extractorForBank,
  extractorOptions,
} from './engine';
import { FeatureExtractor, ImageEmbedding, embedGroup } from './feature-extractor';

/** The members' embeddings of each image, computed once per image object. */
class SharedRun {
  private readonly memo = new WeakMap<RgbImage, Promise<ImageEmbedding[]>>();
  readonly members: SharedRunExtractor[] = [];

  embeddings(image: RgbImage): Promise<ImageEmbedding[]> {
    let hit = this.memo.get(image);
    if (!hit) {
      hit = embedGroup(this.members, [image]).then((perMember) => perMember.map((images) => images[0]));
      hit.catch(() => this.memo.delete(image));
      this.memo.set(image, hit);
    }
    return hit;
  }
}

/** A member's extractor: its stages taken from the shared run. */
export class SharedRunExtractor extends FeatureExtractor {
  constructor(
    backbone: FeatureExtractor['backbone'],
    options: FeatureExtractor['options'],
    private readonly run: SharedRun,
    private readonly member: number,
  ) {
    super(backbone, options);
  }

  override async embed(image: RgbImage): Promise<ImageEmbedding> {
    return (await this.run.embeddings(image))[this.member];
  }

  override embedMany(images: RgbImage[]): Promise<ImageEmbedding[]> {
    return Promise.all(images.map((image) => this.embed(image)));
  }
}

/**
 * The extractors of banks inspected together (a fused bank's members), sharing one backbone run
 * where they can: same model file, view and cell placement, and no embedding worker threads (those
 * embed per extractor settings). Otherwise, or for a single bank, each bank's own extractor.
 */
export async function extractorsForBanks(pool: BackbonePool, metas: BankMeta[]): Promise<FeatureExtractor[]> {
  if (metas.length < 2 || pool.embedPool || !shareable(metas))
    return Promise.all(metas.map((meta) => extractorForBank(pool, meta)));
  const model = metas[0].model.id;
  const { spec } = resolveModel(model);
  // The union in the model's own stage order (shallow to deep); each member picks its own stages.
  const union = spec.stages
    .map((s) => s.name)
    .filter((name) => metas.some((m) => m.model.stages.includes(name)));
  const backbone = await pool.get(model, union);
  const run = new SharedRun();
  // One view object for all (embedGroup checks they share it); the metas' views are equal.
  const view = metas[0].view;
  for (const [i, meta] of metas.entries()) {
    checkModelFile(meta, backbone);
    const options = extractorOptions({ ...bankExtractorSettings(meta), view });
    const stageSelection = meta.model.stages.map((name) => union.indexOf(name));
    run.members.push(new SharedRunExtractor(backbone, { ...options, stageSelection }, run, i));
  }
  return run.members;
}

function shareable(metas: BankMeta[]): boolean {
  const first = metas[0];
  const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);
  return metas.every(
    (m) =>
      m.model.id === first.model.id &&
      m.model.sha256 === first.model.sha256 &&
      same(m.view, first.view) &&
      (m.embedding.cellPlacement === true) === (first.embedding.cellPlacement === true),
  );
}
