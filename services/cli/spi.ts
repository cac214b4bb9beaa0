/**
 * `spi`: the command-line entry point. Each command lives in services/cli/commands/ and is loaded
 * on demand, so `spi shard` never loads onnxruntime and `spi fit` never loads gRPC. (require, not
 * import(): under tsx's CommonJS hook, as in mocha, a dynamic import() of a .ts file fails.)
 */
import { SpiError } from '../../lib/errors';

type Command = { summary: string; run: (argv: string[]) => Promise<void> };

const commands: Record<string, Command> = {
  fit: {
    summary: 'build a bank from good images',
    run: (a) => (require('./commands/fit') as typeof import('./commands/fit')).fitCommand(a),
  },
  inspect: {
    summary: 'inspect images against a bank (JSON verdicts, PNG overlays)',
    run: (a) => (require('./commands/inspect') as typeof import('./commands/inspect')).inspectCommand(a),
  },
  eval: {
    summary: 'evaluate on an MVTec-layout folder (scores.json, metrics.json, report.html)',
    run: (a) => (require('./commands/eval') as typeof import('./commands/eval')).evalCommand(a),
  },
  'eval-suite': {
    summary: 'the full evaluation behind the README figures (make eval)',
    run: (a) =>
      (require('./commands/eval-suite') as typeof import('./commands/eval-suite')).evalSuiteCommand(a),
  },
  synth: {
    summary: 'generate print-like images with defects and masks (MVTec layout)',
    run: (a) => (require('./commands/synth') as typeof import('./commands/synth')).synthCommand(a),
  },
  quantize: {
    summary: 'INT8 post-training quantization of a backbone (QDQ, calibrated)',
    run: (a) => (require('./commands/quantize') as typeof import('./commands/quantize')).quantizeCommand(a),
  },
  prune: {
    summary: 'structured channel pruning of a backbone',
    run: (a) => (require('./commands/quantize') as typeof import('./commands/quantize')).pruneCommand(a),
  },
  serve: {
    summary: 'run a gateway (--embedded: with in-process shards and no etcd)',
    run: (a) => (require('../gateway/main') as typeof import('../gateway/main')).main(a),
  },
  shard: {
    summary: 'run a bank shard',
    run: (a) => (require('../shard/main') as typeof import('../shard/main')).main(a),
  },
  demo: {
    summary: 'bring up a local cluster, build a bank, inspect, rotate, write a report',
    run: (a) => (require('./commands/demo') as typeof import('./commands/demo')).demoCommand(a),
  },
};

function usage(): string {
  const lines = Object.entries(commands).map(([name, c]) => `  ${name.padEnd(11)} ${c.summary}`);
  return `usage: spi <command> [options]\n\ncommands:\n${lines.join('\n')}\n\nRun 'spi <command> --help' for a command's options.`;
}

export async function run(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === 'help' || name === '--help' || name === '-h') {
    console.log(usage());
    return 0;
  }
  const command = commands[name];
  if (!command) {
    console.error(`spi: unknown command "${name}"\n\n${usage()}`);
    return 2;
  }
  try {
    await command.run(rest);
    return 0;
  } catch (err) {
    if (
      err instanceof SpiError ||
      (err instanceof Error && (err as NodeJS.ErrnoException).code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION')
    ) {
      console.error(`spi ${name}: ${err.message}`);
      return 2;
    }
    console.error(`spi ${name}: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    return 1;
  }
}

if (require.main === module) {
  run(process.argv.slice(2)).then((code) => {
    process.exitCode = code;
  });
}
