/**
 * Candidate patches of a bounded-memory fit, in chunks of whole images: held in memory until a chunk
 * is full, then appended to a temporary file (raw Float32, one file, chunks back to back) and read back
 * one chunk at a time. `close()` removes the file and its folder; the fit calls it in a `finally`, an
 * exit hook does it if the process ends without getting there, and so does Ctrl-C or a kill
 * (SIGINT, SIGTERM): when nothing else in the process listens for the signal, it is raised again
 * after the clean-up, so the process still ends as it would have.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { concat } from './feature-extractor';

const SIGNALS: NodeJS.Signals[] = ['SIGINT', 'SIGTERM'];

export interface PatchChunk {
  /** Rows of the chunk's images, image after image. */
  vectors: Float32Array;
  /** Rows per image. */
  groups: number[];
  /** The images' positions in the fit (what `add` was given). */
  images: number[];
}

interface Stored {
  offset: number;
  rows: number;
  groups: number[];
  images: number[];
}

export class PatchSpill {
  private pending: Float32Array[] = [];
  private pendingGroups: number[] = [];
  private pendingImages: number[] = [];
  private pendingRows = 0;
  private readonly stored: Stored[] = [];
  private dir?: string;
  private fd?: number;
  private written = 0;
  private readonly onExit = () => this.close();
  private readonly onSignal = (signal: NodeJS.Signals) => {
    this.close();
    if (process.listenerCount(signal) === 0) process.kill(process.pid, signal);
  };

  constructor(
    readonly dim: number,
    /**
     * Most rows a chunk holds; a chunk is cut at an image boundary, so one large image may exceed it.
     * The fit lowers it when the memory beside the patches grows.
     */
    public chunkRows: number,
    private readonly parent = os.tmpdir(),
  ) {}

  /** Rows in all chunks. */
  rows = 0;

  get spilled(): boolean {
    return this.stored.length > 0;
  }

  /** Bytes written to the spill file. */
  get spilledBytes(): number {
    return this.written;
  }

  /** Bytes of the chunk still in memory. */
  get pendingBytes(): number {
    return this.pendingRows * this.dim * 4;
  }

  /** Chunks in all (the one still in memory included). */
  get chunks(): number {
    return this.stored.length + (this.pendingRows > 0 ? 1 : 0);
  }

  /** The spill file's path (undefined before the first chunk is written). */
  get file(): string | undefined {
    return this.dir ? path.join(this.dir, 'patches.f32') : undefined;
  }

  /** An image's candidate rows (kept by reference until written). */
  add(vectors: Float32Array, image: number): void {
    const rows = vectors.length / this.dim;
    if (this.pendingRows > 0 && this.pendingRows + rows > this.chunkRows) this.flush();
    this.pending.push(vectors);
    this.pendingGroups.push(rows);
    this.pendingImages.push(image);
    this.pendingRows += rows;
    this.rows += rows;
  }

  /** Everything as one chunk, when nothing was spilled (the in-memory fit). */
  whole(): PatchChunk {
    if (this.spilled) throw new Error('the patches were spilled: read them chunk by chunk');
    const chunk = { vectors: concat(this.pending), groups: this.pendingGroups, images: this.pendingImages };
    this.pending = [];
    return chunk;
  }

  /** The chunks in order, each read from disk when it is reached (writes the last one first). */
  *read(): Generator<PatchChunk> {
    if (this.pendingRows > 0) this.flush();
    for (const s of this.stored) {
      const vectors = new Float32Array(s.rows * this.dim);
      const bytes = new Uint8Array(vectors.buffer);
      let done = 0;
      while (done < bytes.length)
        done += fs.readSync(this.fd!, bytes, done, bytes.length - done, s.offset + done);
      yield { vectors, groups: s.groups, images: s.images };
    }
  }

  /** Removes the spill file and its folder (safe to call twice). */
  close(): void {
    process.removeListener('exit', this.onExit);
    for (const signal of SIGNALS) process.removeListener(signal, this.onSignal);
    if (this.fd !== undefined) fs.closeSync(this.fd);
    this.fd = undefined;
    if (this.dir) fs.rmSync(this.dir, { recursive: true, force: true });
    this.dir = undefined;
    this.pending = [];
  }

  private flush(): void {
    if (this.fd === undefined) {
      fs.mkdirSync(this.parent, { recursive: true });
      // Named by process: a gateway clears those of processes that died mid-fit (upload-spool.ts).
      this.dir = fs.mkdtempSync(path.join(this.parent, `spi-fit-${process.pid}-`));
      this.fd = fs.openSync(this.file!, 'w+');
      process.on('exit', this.onExit);
      for (const signal of SIGNALS) process.on(signal, this.onSignal);
    }
    const offset = this.written;
    for (const part of this.pending) {
      const bytes = new Uint8Array(part.buffer, part.byteOffset, part.byteLength);
      let done = 0;
      while (done < bytes.length)
        done += fs.writeSync(this.fd, bytes, done, bytes.length - done, this.written + done);
      this.written += bytes.length;
    }
    this.stored.push({
      offset,
      rows: this.pendingRows,
      groups: this.pendingGroups,
      images: this.pendingImages,
    });
    this.pending = [];
    this.pendingGroups = [];
    this.pendingImages = [];
    this.pendingRows = 0;
  }
}
