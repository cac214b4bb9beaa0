/**
 * Synthetic print inspection data: seeded print-like artwork (text, halftone photo, barcode, colour
 * bars, logo), nominal print-to-print variation, injected defects with ground-truth masks, and an
 * MVTec-layout dataset writer.
 */
export {
  DEFAULT_SIZE,
  type Artwork,
  type ArtworkRegion,
  renderArtwork,
  resolveSize,
  type Size,
  type SizeSpec,
} from './artwork';
export {
  DEFECT_TYPES,
  DEFAULT_DEFECT_OPTIONS,
  type DefectOptions,
  type DefectType,
  injectDefect,
  isDefectType,
} from './defects';
export {
  DEFAULT_DATASET_OPTIONS,
  type DatasetOptions,
  type DatasetResult,
  generateDataset,
  type Manifest,
  type ManifestFile,
  MANIFEST_FILE,
  readManifest,
  type RunOptions,
} from './dataset';
export { compositeToRgb } from './inks';
export { decodePng, encodePng, sampleToPng } from './png';
export { renderPreview, type PreviewOptions } from './preview';
export { hashSeed, Rng } from './prng';
export { type DefectInfo, getArtwork, makeSample, type Sample, type SampleOptions } from './sample';
export { DEFAULT_VARIATION, NO_VARIATION, type VariationOptions } from './variation';
