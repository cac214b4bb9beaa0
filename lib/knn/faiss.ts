/**
 * The one entry point to faiss-node. OpenMP's worker threads spin after every search by default;
 * on a small node that takes the cores from onnxruntime and from the other processes (gateway,
 * shards), so they sleep instead unless the operator set OMP_WAIT_POLICY. libgomp reads it when it
 * loads, hence before faiss-node is first required.
 */
import './omp-policy';

export { Index, IndexFlatL2 } from 'faiss-node';
