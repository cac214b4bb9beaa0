/**
 * Writes a synthetic MVTec-layout print dataset: `spi synth --out <dir> [options]`, or
 * `node --import tsx lib/synth/cli.ts` with the same flags (SYNTH_USAGE lists them).
 */
import { writeFile } from 'node:fs/promises';
import { ParseArgsConfig, parseArgs } from 'node:util';
import type { SizeSpec } from './artwork';
import { DEFAULT_DATASET_OPTIONS, type DatasetOptions, generateDataset } from './dataset';
import { DEFAULT_DEFECT_OPTIONS, DEFECT_TYPES, type DefectType } from './defects';
import { renderPreview } from './preview';

export const SYNTH_FLAGS = {
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
} satisfies ParseArgsConfig['options'];

const D = DEFAULT_DATASET_OPTIONS;

/** `spi synth --help` (this file run directly takes the same flags). */
export const SYNTH_USAGE = `usage: spi synth --out <dir> [options]
  -o, --out DIR       dataset folder: train/good, test/good, test/<defect>, ground_truth/<defect>
  --seed N            generator seed (default ${D.seed})
  --size N|WxH        print size in pixels (default ${String(D.size)})
  --train N           good training prints (default ${D.trainGood})
  --test-good N       good test prints (default ${D.testGood})
  --per-defect N      defective test prints per defect type (default ${D.perDefect})
  --defects A,B       defect types (default all: ${DEFECT_TYPES.join(',')})
  --min-defect PX     smallest defect size in pixels (default ${DEFAULT_DEFECT_OPTIONS.minSize})
  --max-defect PX     largest defect size in pixels (default ${DEFAULT_DEFECT_OPTIONS.maxSize})
  --force             write again even when the folder is up to date with these options
  --preview FILE      also write a contact sheet PNG: good prints and one per defect type, masks outlined
  -q, --quiet         no progress bar`;

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
    options: SYNTH_FLAGS,
  });
  if (values.help) {
    console.log(SYNTH_USAGE);
    return 0;
  }
  if (!values.out) {
    console.error(`--out is required\n${SYNTH_USAGE}`);
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
