/** Evaluation: metrics, per-type summary, overlays and the HTML report. */
export * from './metrics';
export * from './summary';
export * from './overlay';
export * from './report';
