/**
 * `spi`: the command-line entry point. Each command lives in services/cli/commands/ and is loaded
 * on demand, so `spi shard` never loads onnxruntime and `spi fit` never loads gRPC. (require, not
 * import(): under tsx's CommonJS hook, as in mocha, a dynamic import() of a .ts file fails.)
 */
import { ParseArgsConfig, parseArgs } from 'node:util';
import { SpiError } from '../../lib/errors';
import { blockUnlistedLoaders } from '../../lib/image/formats';

/** What spi needs of a command: its entry point, its --help text and the flags it parses. */
export interface CommandModule {
  /** Resolves with an exit code when the command has reported its own failure (spi synth). */
  run: (argv: string[]) => Promise<void | number>;
  usage: string;
  flags: NonNullable<ParseArgsConfig['options']>;
}

/** `load` requires the command's module, so only the command that runs (or shows help) is loaded. */
type Command = { summary: string; load: () => CommandModule };

export const commands: Record<string, Command> = {
  fit: {
    summary: 'build a bank from good images',
    load: () => {
      const m = require('./commands/fit') as typeof import('./commands/fit');
      return { run: m.fitCommand, usage: m.FIT_USAGE, flags: m.FIT_FLAGS };
    },
  },
  inspect: {
    summary: 'inspect images against a bank (JSON verdicts, PNG overlays)',
    load: () => {
      const m = require('./commands/inspect') as typeof import('./commands/inspect');
      return { run: m.inspectCommand, usage: m.INSPECT_USAGE, flags: m.INSPECT_FLAGS };
    },
  },
  eval: {
    summary: 'evaluate on an MVTec-layout folder (scores.json, metrics.json, report.html)',
    load: () => {
      const m = require('./commands/eval') as typeof import('./commands/eval');
      return { run: m.evalCommand, usage: m.EVAL_USAGE, flags: m.EVAL_FLAGS };
    },
  },
  'eval-suite': {
    summary: 'the full evaluation behind the README figures (make eval)',
    load: () => {
      const m = require('./commands/eval-suite') as typeof import('./commands/eval-suite');
      return { run: m.evalSuiteCommand, usage: m.EVAL_SUITE_USAGE, flags: m.EVAL_SUITE_FLAGS };
    },
  },
  synth: {
    summary: 'generate print-like images with defects and masks (MVTec layout)',
    load: () => {
      const m = require('./commands/synth') as typeof import('./commands/synth');
      return { run: m.synthCommand, usage: m.SYNTH_USAGE, flags: m.SYNTH_FLAGS };
    },
  },
  quantize: {
    summary: 'INT8 post-training quantization of a backbone (QDQ, calibrated)',
    load: () => {
      const m = require('./commands/quantize') as typeof import('./commands/quantize');
      return { run: m.quantizeCommand, usage: m.QUANTIZE_USAGE, flags: m.QUANTIZE_FLAGS };
    },
  },
  prune: {
    summary: 'structured channel pruning of a backbone',
    load: () => {
      const m = require('./commands/quantize') as typeof import('./commands/quantize');
      return { run: m.pruneCommand, usage: m.PRUNE_USAGE, flags: m.PRUNE_FLAGS };
    },
  },
  serve: {
    summary: 'run a gateway (--embedded: with in-process shards and no etcd)',
    load: () => {
      const m = require('../gateway/main') as typeof import('../gateway/main');
      return { run: m.main, usage: m.GATEWAY_USAGE, flags: m.GATEWAY_FLAGS };
    },
  },
  shard: {
    summary: 'run a bank shard',
    load: () => {
      const m = require('../shard/main') as typeof import('../shard/main');
      return { run: m.main, usage: m.SHARD_USAGE, flags: m.SHARD_FLAGS };
    },
  },
  demo: {
    summary: 'bring up a local cluster, build a bank, inspect, rotate, write a report',
    load: () => {
      const m = require('./commands/demo') as typeof import('./commands/demo');
      return { run: m.demoCommand, usage: m.DEMO_USAGE, flags: m.DEMO_FLAGS };
    },
  },
};

const HELP_FLAG = { help: { type: 'boolean', short: 'h' } } as const;

/**
 * Whether argv asks for help. Parsed with the command's own flags, so a flag's value ("--name -h")
 * or an operand after "--" is not taken for it; unknown flags are the command's to reject.
 */
function wantsHelp(argv: string[], flags: CommandModule['flags']): boolean {
  const { values } = parseArgs({
    args: argv,
    options: { ...flags, ...HELP_FLAG },
    strict: false,
    allowPositionals: true,
  });
  return values.help === true;
}

function usage(): string {
  const lines = Object.entries(commands).map(([name, c]) => `  ${name.padEnd(11)} ${c.summary}`);
  return `usage: spi <command> [options]\n\ncommands:\n${lines.join('\n')}\n\nRun 'spi <command> --help' for a command's options.`;
}

export async function run(argv: string[]): Promise<number> {
  const [first, ...others] = argv;
  // `spi help <command>` is `spi <command> --help`.
  const helpFor = first === 'help' && others.length > 0 ? others[0] : undefined;
  const [name, rest] = helpFor ? [helpFor, ['--help']] : [first, others];
  if (!name || name === 'help' || name === '--help' || name === '-h') {
    console.log(usage());
    return 0;
  }
  const command = Object.hasOwn(commands, name) ? commands[name] : undefined;
  if (!command) {
    console.error(`spi: unknown command "${name}"\n\n${usage()}`);
    return 2;
  }
  try {
    const cmd = command.load();
    if (wantsHelp(rest, cmd.flags)) {
      console.log(cmd.usage);
      return 0;
    }
    const code = await cmd.run(rest);
    return typeof code === 'number' ? code : 0;
  } catch (err) {
    const code = err instanceof Error ? (err as NodeJS.ErrnoException).code : undefined;
    if (typeof code === 'string' && code.startsWith('ERR_PARSE_ARGS_')) {
      // An unknown flag or a flag without its value: point at the list of them.
      console.error(`spi ${name}: ${(err as Error).message}\nRun 'spi ${name} --help' for its options.`);
      return 2;
    }
    if (err instanceof SpiError) {
      console.error(`spi ${name}: ${err.message}`);
      return 2;
    }
    console.error(`spi ${name}: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    return 1;
  }
}

/**
 * The process entry (bin/spi): commands decode images they were handed, so libvips' loaders beyond
 * the accepted formats go off first. (Not in run(): tests call it inside processes that render SVG.)
 */
export function main(argv: string[]): Promise<number> {
  blockUnlistedLoaders();
  return run(argv);
}

if (require.main === module) {
  main(process.argv.slice(2)).then((code) => {
    process.exitCode = code;
  });
}
