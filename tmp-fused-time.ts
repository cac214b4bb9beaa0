import * as fs from 'node:fs';
import * as path from 'node:path';
import { BackbonePool } from './lib/patchcore/engine';
import { openFused } from './lib/patchcore/fusion';
import { decodeImage } from './lib/image/decode';
async function main() {
  const pool = new BackbonePool();
  const fused = await openFused(pool, process.argv[2]);
  const dir = '/work/shared/data/mvtec_ad/bottle/test/good';
  const files = fs.readdirSync(dir).slice(0, 12);
  for (const [i, m] of fused.members.entries()) console.log('member', i, m.meta.model.stages.join('+'), 'bank rows', m.meta.vectors.rows ?? m.meta.coreset.keptPatches, 'knn', JSON.stringify(m.meta.knn), 'view', JSON.stringify(m.meta.view));
  const rows: Record<string, number[]> = {};
  const add = (k: string, v: number) => (rows[k] ??= []).push(v);
  for (const [n, f] of files.entries()) {
    const image = await decodeImage(fs.readFileSync(path.join(dir, f)), undefined, (w, h) => ({ width: 448, height: 448 }));
    const t0 = performance.now();
    const r = await fused.inspectImage(image);
    const total = performance.now() - t0;
    if (n < 2) continue;
    add('total', total);
    for (const [i, m] of fused.members.entries()) {
      const s = performance.now();
      const x = await m.inspectImage(image, Infinity);
      add(`m${i} all`, performance.now() - s);
      add(`m${i} embed`, x.timingsMs.embed);
      add(`m${i} search`, x.timingsMs.search);
      add(`m${i} score`, x.timingsMs.score);
    }
  }
  for (const [k, v] of Object.entries(rows)) { v.sort((a, b) => a - b); console.log(k.padEnd(12), v[v.length >> 1].toFixed(1)); }
  await pool.close();
}
main();
