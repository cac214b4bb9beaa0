/**
 * Side effect only (see faiss.ts): thread settings of faiss' two thread pools, before they load.
 * libgomp (faiss' own loops) reads OMP_*, OpenBLAS (the GEMM of exact search) reads OPENBLAS_* once,
 * when it loads. SPI_SEARCH_THREADS caps both; in a container they count the host's cores, not the
 * pod's CPU limit.
 */
const env = process.env;
// Idle workers sleep instead of spinning. OpenBLAS' pthreads otherwise busy-wait ~0.1 s of CPU
// after every GEMM (measured: 110 ms of a core per search), taking a core from onnxruntime and from
// the other processes on the node; 2^4 cycles of timeout = sleep at once (searches got no slower).
env.OMP_WAIT_POLICY ??= 'PASSIVE';
env.OPENBLAS_THREAD_TIMEOUT ??= '4';
if (env.SPI_SEARCH_THREADS) {
  const threads = Number(env.SPI_SEARCH_THREADS);
  if (!Number.isInteger(threads) || threads < 1)
    throw new Error(`SPI_SEARCH_THREADS must be an integer >= 1, got "${env.SPI_SEARCH_THREADS}"`);
  env.OMP_NUM_THREADS = String(threads);
  env.OPENBLAS_NUM_THREADS = String(threads);
}
