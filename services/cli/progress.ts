/** Progress bars for long CLI work (quiet when stderr is not a terminal: one line per stage end). */
import { MultiBar, Presets, SingleBar } from 'cli-progress';

export class Progress {
  private readonly multi?: MultiBar;
  private readonly bars = new Map<string, SingleBar>();
  private readonly reported = new Set<string>();

  constructor(private readonly quiet = !process.stderr.isTTY) {
    if (!this.quiet) {
      this.multi = new MultiBar(
        {
          format: ' {stage} [{bar}] {value}/{total} {eta_formatted} {note}',
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
      }
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

  stop(): void {
    this.multi?.stop();
  }
}
