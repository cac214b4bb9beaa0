/**
 * Progress bars for long CLI work, with the estimated time left (cli-progress's, from the recent
 * rate). Quiet when stderr is not a terminal: a line per stage end, and every 30 s a line with the
 * count and the time left, so a fit of thousands of images logged to a file still says how far it is.
 */
import { MultiBar, Presets, SingleBar } from 'cli-progress';

const QUIET_EVERY_MS = 30_000;

export class Progress {
  private readonly multi?: MultiBar;
  private readonly bars = new Map<string, SingleBar>();
  private readonly reported = new Set<string>();
  private readonly started = new Map<string, { at: number; done: number; logged: number }>();

  constructor(private readonly quiet = !process.stderr.isTTY) {
    if (!this.quiet) {
      this.multi = new MultiBar(
        {
          format: ' {stage} [{bar}] {value}/{total} eta {eta_formatted} {note}',
          hideCursor: true,
          clearOnComplete: false,
        },
        Presets.shades_classic,
      );
    }
  }

  /** `note`: a few words after the bar (a training epoch's loss). */
  update(stage: string, done: number, total: number, note = ''): void {
    if (this.quiet) {
      if (done >= total && !this.reported.has(stage)) {
        this.reported.add(stage);
        process.stderr.write(`${stage}: ${done}/${total} done${note ? ` (${note})` : ''}\n`);
      } else if (done < total) this.quietLine(stage, done, total, Date.now());
      return;
    }
    let bar = this.bars.get(stage);
    if (!bar) {
      bar = this.multi!.create(total, 0, { stage: stage.padEnd(10), note });
      this.bars.set(stage, bar);
    }
    bar.setTotal(total);
    bar.update(done, { stage: stage.padEnd(10), note });
  }

  private quietLine(stage: string, done: number, total: number, now: number): void {
    const start = this.started.get(stage);
    if (!start) {
      this.started.set(stage, { at: now, done, logged: now });
      return;
    }
    if (now - start.logged < QUIET_EVERY_MS) return;
    start.logged = now;
    const left = secondsLeft(now - start.at, done - start.done, total - done);
    process.stderr.write(`${stage}: ${done}/${total}, about ${formatDuration(left)} left\n`);
  }

  stop(): void {
    this.multi?.stop();
  }
}

/** Time left at the rate so far: `elapsedMs` for `done` items, `remaining` to go (NaN before any). */
export function secondsLeft(elapsedMs: number, done: number, remaining: number): number {
  return done > 0 ? (elapsedMs / 1000 / done) * remaining : NaN;
}

/** "2h 05m", "4m 10s", "12s"; "?" when unknown. */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds)) return '?';
  const s = Math.round(seconds);
  const pad = (n: number) => String(n).padStart(2, '0');
  if (s >= 3600) return `${Math.floor(s / 3600)}h ${pad(Math.floor((s % 3600) / 60))}m`;
  if (s >= 60) return `${Math.floor(s / 60)}m ${pad(s % 60)}s`;
  return `${s}s`;
}
