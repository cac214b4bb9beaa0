/**
 * `spi inspect --bank <dir> --out <dir> [--threshold T | --category C] [--nprobe N] <images...>`:
 * verdicts as JSON, overlays as PNG. --category judges by that product's own threshold in a unified
 * bank; --nprobe overrides an IVF bank's cells per query (speed vs recall) for this run.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ParseArgsConfig, parseArgs } from 'node:util';
import { BackbonePool, openBank } from '../../../lib/patchcore/engine';
import { thresholdFor } from '../../../lib/bank/bank-meta';
import { decodeImage } from '../../../lib/image/decode';
import { inspectionOverlay } from '../../../lib/patchcore/overlay';
import { isFusedBank, openFused } from '../../../lib/patchcore/fusion';
import { SpiError, invalid } from '../../../lib/errors';
import { intFlag, numberFlag } from '../../common/numeric-flags';
import { listImagesDeep, uniqueStems } from '../../../lib/data/mvtec';
import { Progress } from '../progress';
import { headInspectorFor } from '../../../lib/head/head-bank';
import { headMode, headPrecision } from '../head-options';

export const INSPECT_FLAGS = {
  bank: { type: 'string' },
  out: { type: 'string' },
  threshold: { type: 'string' },
  nprobe: { type: 'string' },
  category: { type: 'string' },
  'head-mode': { type: 'string' },
  'head-precision': { type: 'string' },
} satisfies ParseArgsConfig['options'];

export const INSPECT_USAGE = `usage: spi inspect --bank <bank dir> [options] <image or folder>...
  (a folder: its images and its sub-folders' images; an image that cannot be read is reported with
  its reason, the others are still inspected, and the run then exits non-zero)
  --bank DIR          the bank (spi fit --out)
  --out DIR           write verdicts.json and a <name>.overlay.png per image there (default: print only;
                      images of the same name in different folders get the folders in their name)
  --threshold T       judge with this threshold (default: the bank's; score >= T is defective)
  --category C        in a unified bank, judge by that product's own threshold
  --nprobe N          an IVF bank's cells searched per query, for this run (default: the bank's)
  --head-mode M       a bank with a discriminator head: judge by combined, head or bank (default: the bank's)
  --head-precision P  a bank with a head: run its float or int8 model (default: the bank's)`;

export async function inspectCommand(argv: string[]): Promise<void> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: INSPECT_FLAGS,
  });
  if (!values.bank || positionals.length === 0) {
    throw invalid("--bank and at least one image or folder are required (see 'spi inspect --help')");
  }
  // Numbers before any work: a typo must not become a NaN threshold (every part would pass).
  const thresholdOverride =
    values.threshold !== undefined ? numberFlag('threshold', values.threshold) : undefined;
  const nprobe = values.nprobe !== undefined ? intFlag('nprobe', values.nprobe, 0) : undefined;
  // A folder brings its sub-folders' images too (an MVTec test/ folder holds one per defect type).
  const files = positionals.flatMap((p) => (fs.statSync(p).isDirectory() ? listImagesDeep(p) : [p]));
  if (files.length === 0) throw invalid(`no images (png, jpg, tif, webp, bmp) in ${positionals.join(', ')}`);
  const overlayNames = uniqueStems(files);
  const pool = new BackbonePool();
  const progress = new Progress();
  try {
    const fused = isFusedBank(values.bank);
    if (fused && nprobe !== undefined) throw invalid('--nprobe is not available for a fused bank');
    const opened = fused ? undefined : await openBank(pool, values.bank);
    const bank = opened?.inspector ?? (await openFused(pool, values.bank));
    // A head beside a single or a fused bank: its models are files in the bank folder.
    const withHead = await headInspectorFor(pool, values.bank, bank, {
      mode: values['head-mode'] !== undefined ? headMode(values['head-mode']) : undefined,
      precision: values['head-precision'] !== undefined ? headPrecision(values['head-precision']) : undefined,
    });
    const inspector = withHead ?? bank;
    const meta = inspector.meta;
    if (nprobe !== undefined) opened?.index.setNprobe(nprobe);
    const threshold = thresholdOverride ?? thresholdFor(meta, values.category).value;
    if (values.out) fs.mkdirSync(values.out, { recursive: true });
    const verdicts = [];
    const failed: string[] = [];
    for (const [i, file] of files.entries()) {
      const bytes = await fs.promises.readFile(file);
      let image;
      try {
        image = await decodeImage(bytes);
      } catch (err) {
        // One unreadable frame (corrupt, not an image) must not lose the verdicts of the others.
        if (!(err instanceof SpiError)) throw err;
        failed.push(file);
        verdicts.push({ file, verdict: 'error', error: err.message });
        progress.update('inspect', i + 1, files.length);
        continue;
      }
      const r = await inspector.inspectImage(image, threshold);
      const overlay = values.out ? path.join(values.out, `${overlayNames[i]}.overlay.png`) : undefined;
      if (overlay) await fs.promises.writeFile(overlay, await inspectionOverlay(image, r, meta.view));
      verdicts.push({
        file,
        verdict: r.isDefective ? 'defective' : 'good',
        score: r.score,
        threshold: r.threshold,
        regions: r.regions,
        overlay,
        timingsMs: r.timingsMs,
      });
      progress.update('inspect', i + 1, files.length);
    }
    progress.stop();
    const report = {
      bank: meta.name,
      version: meta.version,
      model: meta.model.id,
      ...(withHead ? { head: { mode: withHead.mode, kind: meta.head!.kind } } : {}),
      verdicts,
    };
    if (values.out) fs.writeFileSync(path.join(values.out, 'verdicts.json'), JSON.stringify(report, null, 2));
    for (const v of verdicts)
      console.log(
        v.score !== undefined
          ? `${v.verdict.padEnd(9)} ${v.score.toFixed(4)}  ${v.file}`
          : `error     ${v.file}: ${v.error}`,
      );
    const bad = verdicts.filter((v) => v.verdict === 'defective').length;
    const good = verdicts.length - bad - failed.length;
    console.log(
      `${verdicts.length} images: ${bad} defective, ${good} good` +
        (failed.length ? `, ${failed.length} not inspected` : '') +
        (values.out ? ` -> ${values.out}` : ''),
    );
    if (failed.length)
      throw invalid(
        `${failed.length} of ${files.length} images could not be inspected (listed above` +
          `${values.out ? ' and in verdicts.json' : ''}); the others' verdicts stand`,
      );
  } finally {
    progress.stop();
    await pool.close();
  }
}
