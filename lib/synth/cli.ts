/**
 * Writes a synthetic MVTec-layout print dataset.
 *   node --import tsx lib/synth/cli.ts --out <dir> [--seed 1] [--size 512|WxH] [--train 20]
 *     [--test-good 6] [--per-defect 3] [--defects ink_spot,streak,...] [--min-defect 6] [--max-defect 40]
 *     [--force] [--preview file.png] [--quiet]
 */
import { writeFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import type { SizeSpec } from './artwork';
import { type DatasetOptions, generateDataset } from './dataset';
import { DEFECT_TYPES, type DefectType } from './defects';
import { renderPreview } from './preview';

const USAGE = `usage: cli.ts --out <dir> [--seed N] [--size N|WxH] [--train N] [--test-good N] [--per-defect N]
              [--defects ${DEFECT_TYPES.join(',')}] [--min-defect PX] [--max-defect PX]
              [--force] [--preview <file.png>] [--quiet]`;

function int(name: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  if (!/^-?\d+$/.test(v)) throw new Error(`--${name} needs an integer, got "${v}"`);
  return Number(v);
}

function size(v: string | undefined): SizeSpec | undefined {
  if (v === undefined) return undefined;
  const m = /^(\d+)(?:x(\d+))?$/i.exec(v);
  if (!m) throw new Error(`--size needs N or WxH, got "${v}"`);
  return m[2] ? { width: Number(m[1]), height: Number(m[2]) } : Number(m[1]);
}

function bar(done: number, total: number, width = 24): string {
  const filled = total ? Math.round((done / total) * width) : width;
  return `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}]`;
}

export async function main(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      out: { type: 'string', short: 'o' },
      seed: { type: 'string' },
      size: { type: 'string' },
      train: { type: 'string' },
      'test-good': { type: 'string' },
      'per-defect': { type: 'string' },
      defects: { type: 'string' },
      'min-defect': { type: 'string' },
      'max-defect': { type: 'string' },
      force: { type: 'boolean' },
      preview: { type: 'string' },
      quiet: { type: 'boolean', short: 'q' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  if (!values.out) {
    console.error(USAGE);
    return 2;
  }
  const opts: Partial<DatasetOptions> = {};
  const set = <K extends keyof DatasetOptions>(k: K, v: DatasetOptions[K] | undefined) => {
    if (v !== undefined) opts[k] = v;
  };
  set('seed', int('seed', values.seed));
  set('size', size(values.size));
  set('trainGood', int('train', values.train));
  set('testGood', int('test-good', values['test-good']));
  set('perDefect', int('per-defect', values['per-defect']));
  if (values.defects !== undefined) {
    set(
      'defects',
      values.defects
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean) as DefectType[],
    );
  }
  const minSize = int('min-defect', values['min-defect']);
  const maxSize = int('max-defect', values['max-defect']);
  if (minSize !== undefined || maxSize !== undefined) {
    opts.defectOptions = {
      ...(minSize !== undefined && { minSize }),
      ...(maxSize !== undefined && { maxSize }),
    };
  }

  const tty = process.stderr.isTTY && !values.quiet;
  const result = await generateDataset(values.out, opts, {
    force: values.force,
    onProgress: tty
      ? ({ done, total, file }) =>
          process.stderr.write(`\r\x1b[K${bar(done, total)} ${done}/${total} ${file}`)
      : undefined,
  });
  if (tty && !result.skipped) process.stderr.write('\r\x1b[K');

  const o = result.manifest.options;
  const counts = Object.entries(result.manifest.counts)
    .map(([k, v]) => `${k} ${v}`)
    .join(', ');
  if (result.skipped) {
    console.log(
      `${result.dir}: up to date (seed ${o.seed}, ${o.size.width}x${o.size.height}; ${counts}), nothing written`,
    );
  } else {
    const per = result.written ? result.elapsedMs / result.written : 0;
    const masks = result.manifest.files.filter((f) => f.mask).length;
    console.log(
      `${result.dir}: wrote ${result.written} images + ${masks} masks (seed ${o.seed}, ${o.size.width}x${o.size.height}; ${counts}) ` +
        `in ${(result.elapsedMs / 1000).toFixed(1)} s (${per.toFixed(0)} ms/image)`,
    );
  }
  if (values.preview) {
    await writeFile(
      values.preview,
      await renderPreview(o.seed, { size: o.size, defects: o.defects, defectOptions: o.defectOptions }),
    );
    console.log(`preview: ${values.preview}`);
  }
  return 0;
}

if (require.main === module) {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (err: unknown) => {
      console.error(`synth: ${err instanceof Error ? err.message : String(err)}`);
      process.exitCode = 1;
    },
  );
}
