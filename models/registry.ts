/**
 * Finds a backbone: by id under the models directory (build/models/<id>/spec.json), by a directory
 * holding spec.json, or by the path of a spec.json. Checks the ONNX file's sha256 when the spec has one.
 */
import * as fs from 'fs';
import * as path from 'path';
import { sha256File } from './hash';
import { ModelSpec } from './spec';
import { readSpec } from './spec-file';

/** The repository root: the nearest folder above this file with a package.json (works from dist/ too). */
function repoRoot(): string {
  let dir = __dirname;
  while (!fs.existsSync(path.join(dir, 'package.json'))) {
    const parent = path.dirname(dir);
    if (parent === dir) return path.resolve(__dirname, '..');
    dir = parent;
  }
  return dir;
}

export const DEFAULT_MODELS_DIR = path.join(repoRoot(), 'build', 'models');

/** Ids of the models under `modelsDir` (folders with a spec.json). */
export function listModels(modelsDir: string = process.env.SPI_MODELS_DIR ?? DEFAULT_MODELS_DIR): string[] {
  if (!fs.existsSync(modelsDir)) return [];
  return fs
    .readdirSync(modelsDir)
    .filter((name) => fs.existsSync(path.join(modelsDir, name, 'spec.json')))
    .sort();
}

function isFile(p: string): boolean {
  return fs.existsSync(p) && fs.statSync(p).isFile();
}

function isDir(p: string): boolean {
  return fs.existsSync(p) && fs.statSync(p).isDirectory();
}

/** sha256 checks re-read whole files; remember results per (path, size, mtime) within a process. */
const verified = new Map<string, string>();

function checkSha256(onnxPath: string, expected: string, specPath: string): void {
  const stat = fs.statSync(onnxPath);
  const key = `${onnxPath}:${stat.size}:${stat.mtimeMs}`;
  let actual = verified.get(key);
  if (!actual) {
    actual = sha256File(onnxPath);
    verified.set(key, actual);
  }
  if (actual !== expected) {
    throw new Error(
      `sha256 mismatch for ${onnxPath}: file has ${actual}, ${specPath} expects ${expected} ` +
        '(rebuild with `make models`, or remove sha256 from a hand-written spec)',
    );
  }
}

/** No model by that id or path (callers that serve requests map it to NOT_FOUND). */
export class ModelNotFoundError extends Error {
  override name = 'ModelNotFoundError';
}

function specPathFor(idOrPath: string, modelsDir: string): string {
  if (idOrPath.endsWith('.json') && isFile(idOrPath)) return idOrPath;
  if (isDir(idOrPath) && isFile(path.join(idOrPath, 'spec.json'))) return path.join(idOrPath, 'spec.json');
  if (/^[A-Za-z0-9._-]+$/.test(idOrPath) && isFile(path.join(modelsDir, idOrPath, 'spec.json'))) {
    return path.join(modelsDir, idOrPath, 'spec.json');
  }
  const ids = listModels(modelsDir);
  const available =
    ids.length > 0
      ? `available ids in ${modelsDir}: ${ids.join(', ')}`
      : `no models in ${modelsDir} (run \`make models\`)`;
  throw new ModelNotFoundError(
    `model "${idOrPath}" not found: not a spec.json, a directory with spec.json, or a model id; ${available}`,
  );
}

export function resolveModel(
  idOrPath: string,
  modelsDir: string = process.env.SPI_MODELS_DIR ?? DEFAULT_MODELS_DIR,
): { spec: ModelSpec; onnxPath: string } {
  const specPath = path.resolve(specPathFor(idOrPath, modelsDir));
  const spec = readSpec(specPath);
  const onnxPath = path.resolve(path.dirname(specPath), spec.file);
  if (!isFile(onnxPath))
    throw new Error(`model ${spec.id}: ONNX file ${onnxPath} (from ${specPath}) does not exist`);
  if (spec.sha256) checkSha256(onnxPath, spec.sha256, specPath);
  return { spec, onnxPath };
}
