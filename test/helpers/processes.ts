// Test processes come from the local-cluster launcher the demo uses too.
export * from '../../services/local/processes';
