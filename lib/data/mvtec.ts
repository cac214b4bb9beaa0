/**
 * Reading a category folder in MVTec AD layout:
 *   train/good/*            good images for the bank
 *   test/good/*, test/<defect_type>/*
 *   ground_truth/<defect_type>/<stem>_mask.png
 * (masks named <stem>.png, or with another image extension, as other public sets store them, are
 * found too). Also used for a plain folder of good images (no train/ inside): every image in it is
 * "train".
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ImageSource } from '../patchcore/fit';
import { invalid } from '../errors';

export interface TestItem {
  /** Path relative to the category folder, e.g. "test/broken_large/000.png". */
  path: string;
  absPath: string;
  label: 0 | 1;
  defectType: string;
  maskPath?: string;
}

export interface Category {
  root: string;
  name: string;
  train: string[];
  test: TestItem[];
}

const IMAGE_EXT = /\.(png|jpe?g|tiff?|webp|bmp)$/i;

export function listImages(dir: string): string[] {
  if (!fs.existsSync(dir)) return [];
  return fs
    .readdirSync(dir)
    .filter((f) => IMAGE_EXT.test(f))
    .sort()
    .map((f) => path.join(dir, f));
}

/** The images of `dir` and of its sub-folders, each folder's in name order, sub-folders after. */
export function listImagesDeep(dir: string): string[] {
  const subs = fs
    .readdirSync(dir, { withFileTypes: true })
    .filter((e) => e.isDirectory())
    .map((e) => e.name)
    .sort();
  return [...listImages(dir), ...subs.flatMap((s) => listImagesDeep(path.join(dir, s)))];
}

/**
 * A name per file that no other file of the list shares: the file's own name where that is unique,
 * else its path below the folder all the files share, with "_" for the separators
 * ("good_000", "ink_spot_000" for test/good/000.png and test/ink_spot/000.png).
 */
export function uniqueStems(files: string[]): string[] {
  const stems = files.map((f) => path.parse(f).name);
  if (new Set(stems).size === stems.length) return stems;
  const dirs = files.map((f) => path.dirname(path.resolve(f)).split(path.sep));
  let common = dirs[0].length;
  for (const d of dirs) {
    let i = 0;
    while (i < common && i < d.length && d[i] === dirs[0][i]) i++;
    common = i;
  }
  return files.map((f, i) => [...dirs[i].slice(common), stems[i]].join('_'));
}

export function readCategory(root: string): Category {
  if (!fs.existsSync(root)) throw invalid(`data folder ${root} does not exist`);
  const trainDir = path.join(root, 'train', 'good');
  const train = fs.existsSync(trainDir) ? listImages(trainDir) : listImages(root);
  if (train.length === 0) throw invalid(`no good images in ${fs.existsSync(trainDir) ? trainDir : root}`);
  const test: TestItem[] = [];
  const testDir = path.join(root, 'test');
  if (fs.existsSync(testDir)) {
    for (const type of fs.readdirSync(testDir).sort()) {
      const masks = type === 'good' ? undefined : maskFinder(path.join(root, 'ground_truth', type));
      for (const abs of listImages(path.join(testDir, type))) {
        test.push({
          path: path.relative(root, abs),
          absPath: abs,
          label: type === 'good' ? 0 : 1,
          defectType: type,
          maskPath: masks?.(path.basename(abs).replace(/\.[^.]+$/, '')),
        });
      }
    }
  }
  return { root, name: path.basename(path.resolve(root)), train, test };
}

/**
 * The mask of a test image by its stem, in a ground_truth/<type> folder: `<stem>_mask.png` (MVTec),
 * else `<stem>_mask` or `<stem>` with any image extension (other sets: `<stem>.png` beside a
 * `<stem>.bmp` image, for one).
 */
function maskFinder(dir: string): (stem: string) => string | undefined {
  // Name without extension -> file; a PNG wins where several files share a name.
  const byName = new Map<string, string>();
  for (const file of listImages(dir)) {
    const name = path.basename(file).replace(/\.[^.]+$/, '');
    const seen = byName.get(name);
    if (!seen || (/\.png$/i.test(file) && !/\.png$/i.test(seen))) byName.set(name, file);
  }
  return (stem) => byName.get(`${stem}_mask`) ?? byName.get(stem);
}

export function fileSources(files: string[], relativeTo: string): ImageSource[] {
  return files.map((file) => ({
    path: path.relative(relativeTo, file),
    file,
    read: () => fs.promises.readFile(file),
  }));
}
