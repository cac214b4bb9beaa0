/**
 * Images uploaded to CreateBank/RotateBank go to disk as they arrive, not into the gateway's heap: a
 * plant's good folder of thousands of sheets (7 MB each at 2048 px) would otherwise have to fit in
 * the gateway's memory beside the inspections it serves, and again in the fit worker's (each upload
 * was copied to it). Each build gets its own folder under the gateway's --build-dir, removed when the
 * build ends, whatever the outcome. Files are numbered, never named after the client's file name.
 * The same --build-dir takes the fit's spilled candidate patches (lib/patchcore/patch-spill.ts).
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { SpiError } from '../../lib/errors';
import { ImageSource } from '../../lib/patchcore/fit';
import { formatBytes } from '../../lib/patchcore/memory-budget';

/** Where builds keep their uploads and spilled patches when the gateway is given no --build-dir. */
export const DEFAULT_BUILD_DIR = path.join(os.tmpdir(), 'spi-builds');

/** A build's folder: `uploads-<pid of the gateway>-<random>`. */
const PREFIX = 'uploads-';

/**
 * Removes the folders a gateway that is no longer running left behind in the build folder (killed
 * mid-build): its uploads and its fit's spilled patches (`spi-fit-<pid>-`, patch-spill.ts), so a
 * crash loop cannot fill the volume. Called at start, before this process has any: a folder of this
 * very pid is a previous life's too (a restarted container is often pid 1 again).
 */
export async function removeStaleUploads(root: string): Promise<string[]> {
  let names: string[];
  try {
    names = await fs.promises.readdir(root);
  } catch {
    return []; // no folder yet
  }
  const stale = names.filter((name) => {
    const pid = /^(?:uploads|spi-fit)-(\d+)-/.exec(name)?.[1];
    return pid !== undefined && (Number(pid) === process.pid || !running(Number(pid)));
  });
  await Promise.all(
    stale.map((name) => fs.promises.rm(path.join(root, name), { recursive: true, force: true })),
  );
  return stale;
}

function running(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'; // alive, someone else's
  }
}

export class UploadSpool {
  private folder: string | undefined;
  private count = 0;
  private bytes = 0;

  /** `ready`: what must finish before the first file is written (the start's removeStaleUploads). */
  constructor(
    private readonly root: string,
    private readonly ready: Promise<void> = Promise.resolve(),
  ) {}

  /** Writes one uploaded image to disk; the source reads it back from there. */
  async add(name: string, data: Uint8Array): Promise<ImageSource> {
    const file = path.join(await this.open(), `${String(this.count).padStart(6, '0')}.img`);
    try {
      await fs.promises.writeFile(file, data);
    } catch (err) {
      throw this.writeError(err);
    }
    this.count++;
    this.bytes += data.length;
    return { path: name, file, read: () => fs.promises.readFile(file) };
  }

  /** Images and bytes received so far. */
  get received(): { images: number; bytes: number } {
    return { images: this.count, bytes: this.bytes };
  }

  /** Removes the build's folder and everything in it (safe to call more than once). */
  async remove(): Promise<void> {
    const folder = this.folder;
    this.folder = undefined;
    if (folder) await fs.promises.rm(folder, { recursive: true, force: true });
  }

  private async open(): Promise<string> {
    if (this.folder) return this.folder;
    await this.ready;
    try {
      await fs.promises.mkdir(this.root, { recursive: true });
      this.folder = await fs.promises.mkdtemp(path.join(this.root, `${PREFIX}${process.pid}-`));
    } catch (err) {
      throw this.writeError(err);
    }
    return this.folder;
  }

  private writeError(err: unknown): SpiError {
    const code = (err as NodeJS.ErrnoException).code;
    const where = `the gateway's build folder ${this.root}`;
    const sofar = `after ${this.count} images (${formatBytes(this.bytes)})`;
    if (code === 'ENOSPC' || code === 'EDQUOT')
      return new SpiError(
        'RESOURCE_EXHAUSTED',
        `${where} is full ${sofar}: free space there or give the gateway a larger --build-dir; nothing was built`,
      );
    return new SpiError(
      'INTERNAL',
      `cannot store an uploaded image in ${where} ${sofar}: ${(err as Error).message}; nothing was built`,
    );
  }
}
