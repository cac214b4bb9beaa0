/**
 * `node --import tsx models/build.ts --out build/models [--only <id>]`: converts the ImageNet
 * backbones bundled (as Keras models) in nsfwjs to ONNX feature extractors, one folder per id.
 */
import * as path from 'path';
import { BACKBONES, backboneById } from './backbones';
import { buildBackbone, writeBackbone } from './backbone-build';

function parseArgs(argv: string[]): { out: string; only?: string } {
  let out: string | undefined;
  let only: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--out') out = argv[++i];
    else if (arg === '--only') only = argv[++i];
    else throw new Error(`unknown argument ${arg}; usage: models/build.ts --out <dir> [--only <id>]`);
  }
  if (!out) throw new Error('missing --out <dir>; usage: models/build.ts --out <dir> [--only <id>]');
  return { out, only };
}

async function main(): Promise<void> {
  const { out, only } = parseArgs(process.argv.slice(2));
  const defs = only ? [backboneById(only)] : BACKBONES;
  for (const def of defs) {
    const started = Date.now();
    const log = (message: string) => console.log(`[models] ${def.id}: ${message}`);
    const built = await buildBackbone(def, log);
    const dir = path.join(out, def.id);
    writeBackbone(dir, built);
    const stages = built.card.stages.map((s) => `${s.name} ${s.shape.join('x')}`).join(', ');
    log(
      `wrote ${dir} (${(built.onnx.length / 1e6).toFixed(1)} MB, ${(built.card.cost.flops / 1e9).toFixed(2)} GFLOPs, sha256 ${built.spec.sha256?.slice(0, 12)}) in ${Date.now() - started} ms`,
    );
    log(`stages: ${stages}`);
  }
}

main().catch((err: unknown) => {
  console.error(`[models] FAILED: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
