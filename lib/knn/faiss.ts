/**
 * The one entry point to faiss-node. OpenMP's and OpenBLAS' worker threads spin after every search
 * by default; on a small node that takes the cores from onnxruntime and from the other processes
 * (gateway, shards), so omp-policy makes them sleep unless the operator set otherwise. Both libraries
 * read their settings when they load, hence before faiss-node is first required.
 */
import './omp-policy';

export {
  Index,
  IndexFlatL2,
  blasCore,
  matmul,
  ompThreads,
  pairwiseL2,
  setBlockedFlatSearch,
  toHalves,
} from 'faiss-node';
