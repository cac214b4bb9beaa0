/**
 * An inspection that hands back the embedding it was made from: a discriminator head (lib/head/)
 * scores the same patches the bank searched, so the image is embedded once for both.
 */
import { RgbImage } from '../image/decode';
import { ImageEmbedding } from './feature-extractor';
import { Inspection, Inspector, scoreEmbedding } from './inspector';

export interface EmbeddedInspection {
  inspection: Inspection;
  embedding: ImageEmbedding;
}

/**
 * Embeds, searches and scores like `Inspector.inspectImage`, keeping the embedding. The map is the
 * k-NN map (minus the reference): the reweighted image score is not applied here.
 */
export async function inspectEmbedded(
  inspector: Inspector,
  image: RgbImage,
  threshold: number,
  deadline?: number,
): Promise<EmbeddedInspection> {
  const { embedding, knn, embedMs, searchMs } = await inspector.search(image, deadline);
  const t0 = performance.now();
  const inspection = scoreEmbedding(inspector.meta, embedding, knn, image, threshold);
  inspection.timingsMs = { decode: 0, embed: embedMs, search: searchMs, score: performance.now() - t0 };
  return { inspection, embedding };
}
