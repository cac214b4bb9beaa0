/**
 * Reads the Keras models bundled in the nsfwjs package (dist/models/<name>/): model.min.js holds
 * {modelTopology, weightsManifest}; each group1-shardKofN.min.js holds one base64 shard string.
 * The files are UMD bundles; we run them with a local `module` object rather than require() them
 * (the package's "exports" map hides them, and require's cache would pin ~30 MB of strings).
 */
import * as fs from 'fs';
import * as path from 'path';
import * as vm from 'vm';
import { WeightSpec } from './weights';

export interface TfjsArtifacts {
  modelTopology: unknown;
  weightSpecs: WeightSpec[];
  weightData: Uint8Array;
  /** Files read, relative to the package root. */
  files: string[];
  packageName: string;
  packageVersion: string;
}

export function nsfwjsRoot(): string {
  let dir = path.dirname(require.resolve('nsfwjs'));
  while (!fs.existsSync(path.join(dir, 'package.json')) || path.basename(dir) !== 'nsfwjs') {
    const parent = path.dirname(dir);
    if (parent === dir) throw new Error('cannot locate the nsfwjs package directory');
    dir = parent;
  }
  return dir;
}

/** Runs a UMD bundle in this realm (a separate vm context would hand back foreign Arrays that fail
 * `instanceof Array`, which tfjs relies on) with its own `module`, so no global is touched. */
function evalUmd(file: string): unknown {
  const wrapped = `(function (module, exports) {\n${fs.readFileSync(file, 'utf8')}\n})`;
  const run = vm.runInThisContext(wrapped, { filename: file }) as (
    m: { exports: unknown },
    e: unknown,
  ) => void;
  const mod = { exports: {} as unknown };
  run(mod, mod.exports);
  return mod.exports;
}

export function loadNsfwjsModel(modelDir: string): TfjsArtifacts {
  const root = nsfwjsRoot();
  const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')) as {
    name: string;
    version: string;
  };
  const dir = path.join(root, 'dist', 'models', modelDir);
  const modelFile = path.join(dir, 'model.min.js');
  if (!fs.existsSync(modelFile)) throw new Error(`nsfwjs model ${modelDir} not found at ${modelFile}`);
  const model = evalUmd(modelFile) as {
    modelTopology?: unknown;
    weightsManifest?: { paths: string[]; weights: WeightSpec[] }[];
  };
  if (!model.modelTopology || !model.weightsManifest)
    throw new Error(`${modelFile} lacks modelTopology/weightsManifest`);
  const files = [modelFile];
  const chunks: Buffer[] = [];
  for (const group of model.weightsManifest) {
    for (const shard of group.paths) {
      const shardFile = path.join(dir, `${shard}.min.js`);
      const base64 = evalUmd(shardFile);
      if (typeof base64 !== 'string') throw new Error(`${shardFile} does not export a base64 string`);
      chunks.push(Buffer.from(base64, 'base64'));
      files.push(shardFile);
    }
  }
  return {
    modelTopology: model.modelTopology,
    weightSpecs: model.weightsManifest.flatMap((g) => g.weights),
    weightData: Buffer.concat(chunks),
    files: files.map((f) => path.relative(root, f)),
    packageName: pkg.name,
    packageVersion: pkg.version,
  };
}
