/**
 * The embedded registry's feedback queue on disk, so a restarted `spi serve --embedded` still has
 * the false alarms operators sent (etcd keeps them in a real cluster). One file per entry, named by
 * its place in the bank's queue, written to a temporary name and renamed: a crash leaves whole
 * entries or none, and adding one does not rewrite the others (up to 64 images of 1 MiB each).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { FeedbackEntry } from './feedback';

export interface StoredFeedback {
  entry: FeedbackEntry;
  /** Its place in the bank's queue (the file name's number). */
  seq: number;
}

const FILE = /^(\d{12})\.json$/;

export class FeedbackFiles {
  constructor(private readonly dir: string) {}

  /** Every bank's queue, oldest first; unreadable files (a torn write cannot be one) are skipped. */
  load(): Map<string, StoredFeedback[]> {
    const queues = new Map<string, StoredFeedback[]>();
    if (!fs.existsSync(this.dir)) return queues;
    for (const bank of fs.readdirSync(this.dir)) {
      const stored: StoredFeedback[] = [];
      for (const name of fs.readdirSync(path.join(this.dir, bank)).sort()) {
        const seq = FILE.exec(name)?.[1];
        if (!seq) continue;
        try {
          const entry = JSON.parse(fs.readFileSync(path.join(this.dir, bank, name), 'utf8')) as FeedbackEntry;
          stored.push({ entry, seq: Number(seq) });
        } catch {
          // not ours, or damaged by hand: it cannot be queued again anyway
        }
      }
      if (stored.length > 0) queues.set(bank, stored);
    }
    return queues;
  }

  add(entry: FeedbackEntry, seq: number): void {
    const file = this.file(entry.bank, seq);
    fs.mkdirSync(path.dirname(file), { recursive: true });
    const tmp = `${file}.tmp`;
    try {
      fs.writeFileSync(tmp, JSON.stringify(entry));
      fs.renameSync(tmp, file);
    } catch (err) {
      fs.rmSync(tmp, { force: true });
      throw err;
    }
  }

  remove(bank: string, seq: number): void {
    fs.rmSync(this.file(bank, seq), { force: true });
  }

  removeBank(bank: string): void {
    fs.rmSync(path.join(this.dir, bank), { recursive: true, force: true });
  }

  private file(bank: string, seq: number): string {
    return path.join(this.dir, bank, `${String(seq).padStart(12, '0')}.json`);
  }
}
