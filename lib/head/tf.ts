/**
 * TensorFlow.js for training the discriminator head: tfjs-core with its WebAssembly backend
 * (XNNPACK kernels; the binary ships in the npm package, nothing is fetched). Measured 2-4x faster
 * than tfjs' plain CPU backend and than hand-written TypeScript kernels on the head's shapes
 * (bench/head-train-backends.ts, docs/glass-head.md). Loaded on first use only: inspection never
 * needs it (the trained head runs in onnxruntime).
 */
import type * as TfCore from '@tensorflow/tfjs-core';

export type Tf = typeof TfCore;

let loading: Promise<Tf> | undefined;

export function loadTf(): Promise<Tf> {
  loading ??= (async () => {
    const tf = require('@tensorflow/tfjs-core') as Tf;
    // tfjs-core alone registers no gradient functions.
    require('@tensorflow/tfjs-core/dist/register_all_gradients');
    require('@tensorflow/tfjs-backend-wasm');
    if (!(await tf.setBackend('wasm'))) throw new Error('the TensorFlow.js wasm backend did not start');
    await tf.ready();
    return tf;
  })();
  return loading;
}
