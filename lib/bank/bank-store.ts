/**
 * Banks on disk: `<dir>/bank.json` (BankMeta) and `<dir>/vectors.f32` (raw little-endian float32,
 * rows x dim). Written to a temporary sibling and renamed into place, so a crash or a full disk
 * never leaves a half-written bank where a good one is expected.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createHash } from 'node:crypto';
import { BankMeta, READABLE_BANK_FORMATS, bankFormatOf } from './bank-meta';
import { SpiError, notFound } from '../errors';

export interface StoredBank {
  meta: BankMeta;
  vectors: Float32Array;
}

export function sha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

export function vectorBytes(vectors: Float32Array): Buffer {
  return Buffer.from(vectors.buffer, vectors.byteOffset, vectors.byteLength);
}

export function saveBank(
  dir: string,
  meta: Omit<BankMeta, 'vectors' | 'format'>,
  vectors: Float32Array,
  dim: number,
  /** Further files of the bank (a head's ONNX models), written with it. */
  extraFiles: Record<string, Uint8Array> = {},
): BankMeta {
  const bytes = vectorBytes(vectors);
  const full: BankMeta = {
    format: bankFormatOf(meta),
    ...meta,
    vectors: { rows: vectors.length / dim, dim, sha256: sha256(bytes), file: 'vectors.f32' },
  };
  const parent = path.dirname(path.resolve(dir));
  fs.mkdirSync(parent, { recursive: true });
  const tmp = fs.mkdtempSync(path.join(parent, `.${path.basename(dir)}.tmp-`));
  try {
    writeSynced(path.join(tmp, 'vectors.f32'), bytes);
    for (const [name, data] of Object.entries(extraFiles)) writeSynced(path.join(tmp, name), data);
    writeSynced(path.join(tmp, 'bank.json'), Buffer.from(JSON.stringify(full, null, 2)));
    fs.rmSync(dir, { recursive: true, force: true });
    fs.renameSync(tmp, dir);
  } catch (err) {
    fs.rmSync(tmp, { recursive: true, force: true });
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOSPC' || code === 'EDQUOT') {
      throw new SpiError(
        'RESOURCE_EXHAUSTED',
        `disk full while writing bank ${meta.name} to ${dir}; nothing was replaced`,
      );
    }
    throw err;
  }
  return full;
}

export function loadBank(dir: string): StoredBank {
  const metaPath = path.join(dir, 'bank.json');
  if (!fs.existsSync(metaPath)) throw notFound(`no bank at ${dir} (bank.json missing)`);
  const meta = JSON.parse(fs.readFileSync(metaPath, 'utf8')) as BankMeta;
  if (!READABLE_BANK_FORMATS.includes(meta.format)) {
    throw new SpiError(
      'FAILED_PRECONDITION',
      `bank ${dir} has format ${meta.format}; this build reads formats ${READABLE_BANK_FORMATS.join(', ')}`,
    );
  }
  if (meta.format !== bankFormatOf(meta))
    throw new SpiError(
      'DATA_LOSS',
      `bank ${dir}: format ${meta.format} does not match its settings in bank.json`,
    );
  const bytes = fs.readFileSync(path.join(dir, meta.vectors.file));
  if (sha256(bytes) !== meta.vectors.sha256) {
    throw new SpiError('DATA_LOSS', `bank ${dir}: vectors.f32 does not match its checksum (corrupt file)`);
  }
  const vectors = new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4).slice();
  return { meta, vectors };
}

function writeSynced(file: string, bytes: Uint8Array): void {
  const fd = fs.openSync(file, 'w');
  try {
    fs.writeSync(fd, bytes);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}
