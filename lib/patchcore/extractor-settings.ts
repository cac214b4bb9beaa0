/**
 * What an extractor is built from: the backbone, its stages, the view and the projection. Its own
 * module so that engine.ts (which builds extractors) and embed-pool.ts (which sends the settings to
 * its workers) both use it without importing each other.
 */
import { ViewConfig } from '../image/views';

export interface ExtractorSettings {
  model: string;
  stages?: string[];
  view: ViewConfig;
  projectionDim: number;
  projectionSeed: number;
  batchSize?: number;
  /** See ExtractorOptions.cellPlacement (default true). */
  cellPlacement?: boolean;
}
