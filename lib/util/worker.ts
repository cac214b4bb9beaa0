/**
 * Starts a worker thread on a sibling module of the caller. Under tsx (tests, `make` targets) the
 * sources are .ts and the worker needs the loader; compiled, the module is plain .js.
 */
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';

/** `callerFile` is the caller's __filename; `name` the worker module's name without extension. */
export function startWorker(callerFile: string, name: string, workerData: unknown): Worker {
  const file = path.join(path.dirname(callerFile), `${name}${path.extname(callerFile)}`);
  return file.endsWith('.ts')
    ? new Worker(`require('tsx/cjs'); require(${JSON.stringify(file)});`, { eval: true, workerData })
    : new Worker(file, { workerData });
}
