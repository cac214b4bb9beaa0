/**
 * `spi <command> --help` for every command: the usage starts with the command's synopsis and names
 * every flag its parseArgs config accepts (a flag added without documentation fails here), with the
 * config's default. Runs spi in-process: loading a command's module loads no model.
 */
import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { commands, run } from '../../services/cli/spi';

const ROOT = path.resolve(__dirname, '../..');

/** Runs `spi ...argv` in this process, capturing what it prints. */
async function spi(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  const out: unknown[] = [];
  const err: unknown[] = [];
  const { log, error } = console;
  console.log = (...a: unknown[]) => void out.push(a.join(' '));
  console.error = (...a: unknown[]) => void err.push(a.join(' '));
  try {
    const code = await run(argv);
    return { code, out: out.join('\n'), err: err.join('\n') };
  } finally {
    console.log = log;
    console.error = error;
  }
}

/** `--flag` as a whole word: `--etcd` is not found in `--etcd-prefix`. */
function flagPattern(flag: string): RegExp {
  return new RegExp(`(^|[^\\w-])--${flag.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}(?![\\w-])`);
}

/** A usage text's flag entries: a line starting with a flag, plus its indented continuation lines. */
function entries(usage: string): string[] {
  const out: string[] = [];
  for (const line of usage.split('\n').slice(1)) {
    if (/^\s+-/.test(line) || out.length === 0) out.push(line);
    else if (/^\s{6,}\S/.test(line)) out[out.length - 1] += `\n${line}`;
    else out.push(line);
  }
  return out;
}

describe('spi <command> --help', () => {
  for (const [name, command] of Object.entries(commands)) {
    describe(name, () => {
      it('prints the usage, starting with the synopsis, and exits 0 (--help, -h, spi help <command>)', async () => {
        const help = await spi(name, '--help');
        assert.equal(help.code, 0, help.err);
        assert.ok(help.out.startsWith(`usage: spi ${name}`), help.out.split('\n')[0]);
        assert.equal(help.out, command.load().usage);
        assert.deepEqual(await spi(name, '-h'), help);
        assert.deepEqual(await spi('help', name), help);
      });

      it('documents every flag it accepts, with its default', () => {
        const { usage, flags } = command.load();
        const documented = entries(usage);
        for (const [flag, config] of Object.entries(flags)) {
          if (flag === 'help') continue; // spi answers it; the command list says so
          const pattern = flagPattern(flag);
          assert.match(usage, pattern, `--${flag} is not in the usage of spi ${name}`);
          const dflt = 'default' in config ? config.default : undefined;
          if (typeof dflt !== 'string') continue; // booleans default to false
          // The entry that names the flag first on its line (others may mention it in passing).
          const at = (e: string) => e.split('\n')[0].search(pattern);
          const entry = documented.filter((e) => at(e) >= 0).sort((x, y) => at(x) - at(y))[0];
          assert.ok(
            entry?.includes(`default ${dflt}`),
            `spi ${name} --${flag}: "default ${dflt}" in\n${entry}`,
          );
        }
      });

      it('names only flags it accepts', () => {
        const { usage, flags } = command.load();
        for (const [, flag] of usage.matchAll(/(?:^|[^\w-])--([a-z0-9][\w-]*)/g))
          assert.ok(flag in flags, `spi ${name}'s usage names --${flag}, which it does not accept`);
      });
    });
  }

  it('is not taken from a flag value or an operand after --', async () => {
    // Fails on the missing --out, not with the usage: "-h" is --data's value, "--help" an operand.
    const byValue = await spi('fit', '--data=-h');
    assert.equal(byValue.code, 2);
    assert.match(byValue.err, /--data and --out are required/);
    const operand = await spi('inspect', '--', '--help');
    assert.equal(operand.code, 2);
    assert.match(operand.err, /--bank and at least one image/);
  });

  it('points at --help when a required flag is missing or a flag is unknown (exit 2)', async () => {
    for (const [argv, message] of [
      [['fit'], /--data and --out are required \(see 'spi fit --help'\)/],
      [['eval', '--data', 'x'], /--data and --out are required \(see 'spi eval --help'\)/],
      [['prune', '--model', 'm', '--out', 'o'], /--ratio are required \(see 'spi prune --help'\)/],
      [['fit', '--bogus'], /Unknown option '--bogus'[\s\S]*Run 'spi fit --help'/],
      [['inspect', '--bank'], /argument missing[\s\S]*Run 'spi inspect --help'/],
    ] as const) {
      const r = await spi(...argv);
      assert.equal(r.code, 2, argv.join(' '));
      assert.match(r.err, message);
    }
  });

  it('refuses a number flag that is not a number, naming the flag, before doing any work (exit 2)', async () => {
    for (const [argv, message] of [
      [
        ['inspect', '--bank', 'no-such-bank', '--threshold', '0.5x', 'img.png'],
        /--threshold must be a number/,
      ],
      [
        ['inspect', '--bank', 'no-such-bank', '--nprobe', 'many', 'img.png'],
        /--nprobe must be a non-negative/,
      ],
      [
        ['serve', '--embedded', '--deadline-ms', '5s'],
        /--deadline-ms must be a non-negative integer, got "5s"/,
      ],
      [
        ['serve', '--embedded', '--drain-ms', 'soon'],
        /--drain-ms must be a non-negative integer, got "soon"/,
      ],
      [['shard', '--lease-ttl', 'abc'], /--lease-ttl must be a non-negative integer/],
    ] as const) {
      const r = await spi(...argv);
      assert.equal(r.code, 2, argv.join(' '));
      assert.match(r.err, message);
    }
  });

  it('reports a generator error once, with its exit code', async () => {
    const r = await spi('synth');
    assert.equal(r.code, 2);
    assert.equal(r.err.match(/--out is required/g)?.length, 1);
    assert.doesNotMatch(r.err, /synth failed/);
  });

  it('loads no onnxruntime for spi shard --help', () => {
    // A fresh process: this one has loaded every command by now.
    const child = spawnSync(
      process.execPath,
      [
        '--import',
        'tsx',
        '-e',
        "require('./services/cli/spi.ts').run(['shard', '--help']).then(() => process.stderr.write(" +
          "String(Object.keys(require.cache).some((k) => k.includes('onnxruntime')))))",
      ],
      { cwd: ROOT, encoding: 'utf8' },
    );
    assert.equal(child.status, 0, child.stderr);
    const loaded = child.stderr;
    assert.equal(loaded, 'false');
  });
});
