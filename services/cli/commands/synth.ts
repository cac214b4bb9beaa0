/** `spi synth`: the print-image generator's CLI (lib/synth/cli.ts). */
import { main } from '../../../lib/synth/cli';
import { SpiError } from '../../../lib/errors';

export { SYNTH_FLAGS, SYNTH_USAGE } from '../../../lib/synth/cli';

export async function synthCommand(argv: string[]): Promise<void> {
  const code = await main(argv);
  if (code !== 0) throw new SpiError('INVALID_ARGUMENT', `synth failed (exit ${code})`);
}
