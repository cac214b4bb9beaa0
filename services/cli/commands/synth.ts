/** `spi synth`: the print-image generator's CLI (lib/synth/cli.ts). */
import { main } from '../../../lib/synth/cli';

export { SYNTH_FLAGS, SYNTH_USAGE } from '../../../lib/synth/cli';

/** The generator's exit code: it reports its own errors (with its usage), so nothing is added. */
export function synthCommand(argv: string[]): Promise<number> {
  return main(argv);
}
