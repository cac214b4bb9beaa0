/**
 * Side effect only (see faiss.ts): OpenMP settings, before libgomp loads. SPI_SEARCH_THREADS caps
 * faiss' threads per search (OMP_NUM_THREADS); in a container OpenMP counts the host's cores, not the
 * pod's CPU limit.
 */
const env = process.env;
env.OMP_WAIT_POLICY ??= 'PASSIVE';
if (env.SPI_SEARCH_THREADS) {
  const threads = Number(env.SPI_SEARCH_THREADS);
  if (!Number.isInteger(threads) || threads < 1)
    throw new Error(`SPI_SEARCH_THREADS must be an integer >= 1, got "${env.SPI_SEARCH_THREADS}"`);
  env.OMP_NUM_THREADS = String(threads);
}
