/**
 * A partition on a shard's disk: one file, `<dataDir>/partitions/<bank>/<version>/<partition>.spp`:
 *   "SPIPART1" | uint32 LE header length | header JSON | serialized faiss index
 * One file so that replacing a partition is one rename(2): a crash leaves the old one or the new one,
 * never a mix. The header carries the sha256 of the index bytes, checked on every reload.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { SpiError } from '../../lib/errors';
import { sha256 } from '../../lib/bank/bank-store';
import { PartitionRef } from '../../lib/cluster/types';

export const PARTITION_FORMAT = 1;
const MAGIC = Buffer.from('SPIPART1', 'ascii');
const EXT = '.spp';

export interface PartitionFileHeader {
  format: number;
  bank: string;
  version: number;
  partition: number;
  dim: number;
  rows: number;
  rowOffset: number;
  /** faiss factory string and IVF probes. */
  index: string;
  nprobe: number;
  /** sha256 of the float32 vectors the index was built from (as sent by the loader). */
  vectorsSha256: string;
  /** sha256 of the index bytes that follow the header. */
  indexSha256: string;
  loadedAt: string;
}

export function partitionsDir(dataDir: string): string {
  return path.join(dataDir, 'partitions');
}

export function partitionFile(dataDir: string, ref: PartitionRef): string {
  return path.join(partitionsDir(dataDir), ref.bank, String(ref.version), `${ref.partition}${EXT}`);
}

/** Writes to a temporary sibling, fsyncs, renames over the old file, fsyncs the directory. */
export function writePartitionFile(file: string, header: PartitionFileHeader, index: Uint8Array): void {
  const json = Buffer.from(JSON.stringify(header));
  const len = Buffer.alloc(4);
  len.writeUInt32LE(json.length);
  writeAtomic(file, [MAGIC, len, json, index]);
}

/**
 * A partition's vectors as loaded, beside its file (`<file>.f32`, raw float32 LE): what ReadPartition
 * serves, so an incremental version is built without re-embedding. The index alone cannot give them
 * back for every factory (IVF keeps them in its lists, HNSW in its graph).
 */
export function vectorsFile(file: string): string {
  return `${file}.f32`;
}

export function writeVectorsFile(file: string, vectors: Uint8Array): void {
  writeAtomic(vectorsFile(file), [vectors]);
}

function writeAtomic(file: string, parts: Uint8Array[]): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const tmp = `${file}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  try {
    const fd = fs.openSync(tmp, 'w');
    try {
      for (const part of parts) writeAll(fd, part);
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(tmp, file);
  } catch (err) {
    fs.rmSync(tmp, { force: true });
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOSPC' || code === 'EDQUOT') {
      throw new SpiError('RESOURCE_EXHAUSTED', `disk full while writing ${file}; the previous copy was kept`);
    }
    throw err;
  }
  syncDir(path.dirname(file));
}

function writeAll(fd: number, bytes: Uint8Array): void {
  let done = 0;
  while (done < bytes.byteLength) done += fs.writeSync(fd, bytes, done, bytes.byteLength - done);
}

function syncDir(dir: string): void {
  try {
    const fd = fs.openSync(dir, 'r');
    try {
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
  } catch {
    // Some filesystems refuse fsync on directories; the rename is still atomic.
  }
}

/** Reads and verifies a partition file; DATA_LOSS when it is truncated, garbled or fails its checksum. */
export function readPartitionFile(file: string): { header: PartitionFileHeader; index: Buffer } {
  const bytes = fs.readFileSync(file);
  const corrupt = (why: string) => new SpiError('DATA_LOSS', `partition file ${file} is corrupt: ${why}`);
  if (bytes.length < MAGIC.length + 4 || !bytes.subarray(0, MAGIC.length).equals(MAGIC)) {
    throw corrupt('not a partition file');
  }
  const len = bytes.readUInt32LE(MAGIC.length);
  const start = MAGIC.length + 4;
  if (start + len > bytes.length) throw corrupt('truncated header');
  let header: PartitionFileHeader;
  try {
    header = JSON.parse(bytes.subarray(start, start + len).toString('utf8')) as PartitionFileHeader;
  } catch {
    throw corrupt('header is not JSON');
  }
  if (header.format !== PARTITION_FORMAT) {
    throw new SpiError(
      'FAILED_PRECONDITION',
      `partition file ${file} has format ${header.format}, expected ${PARTITION_FORMAT}`,
    );
  }
  const index = bytes.subarray(start + len);
  if (sha256(index) !== header.indexSha256) throw corrupt('index bytes do not match their sha256');
  return { header, index };
}

/** Every partition file under the data dir; leftovers of interrupted writes are removed. */
export function listPartitionFiles(dataDir: string): string[] {
  const out: string[] = [];
  const walk = (dir: string): void => {
    let entries: fs.Dirent[];
    try {
      entries = fs.readdirSync(dir, { withFileTypes: true });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw err;
    }
    for (const e of entries) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name.includes(`${EXT}.tmp-`) || e.name.includes(`${EXT}.f32.tmp-`))
        fs.rmSync(p, { force: true });
      else if (e.name.endsWith(EXT)) out.push(p);
    }
  };
  walk(partitionsDir(dataDir));
  return out.sort();
}

/** Removes a partition file and the directories it leaves empty (up to partitions/). */
export function removePartitionFile(dataDir: string, ref: PartitionRef): boolean {
  const file = partitionFile(dataDir, ref);
  fs.rmSync(vectorsFile(file), { force: true });
  let existed = true;
  try {
    fs.unlinkSync(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    existed = false;
  }
  const root = partitionsDir(dataDir);
  for (let dir = path.dirname(file); dir.startsWith(root) && dir !== root; dir = path.dirname(dir)) {
    try {
      fs.rmdirSync(dir);
    } catch {
      break; // not empty (or gone): stop climbing
    }
  }
  return existed;
}

/** Moves a bad file aside (kept for a post-mortem) so the next start does not trip on it again. */
export function quarantine(file: string): string {
  const dest = `${file}.corrupt-${Date.now()}`;
  fs.renameSync(file, dest);
  return dest;
}
