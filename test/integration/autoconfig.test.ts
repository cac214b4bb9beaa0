/**
 * The automatic fit on the real backbone: `spi fit` and `spi eval` with no configuration flags
 * choose on synthetic defects, record the choice and its table, never read a test image, and the
 * cluster's CreateBank chooses what the CLI chooses for the same images.
 */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { InspectionClient } from '../../lib/client/inspection-client';
import { readCategory } from '../../lib/data/mvtec';
import { BackbonePool } from '../../lib/patchcore/engine';
import type { BankMeta } from '../../lib/bank/bank-meta';
import { parseArgs } from 'node:util';
import { EVAL_FLAGS, evalCommand, planForCategory } from '../../services/cli/commands/eval';
import { explainBank, fitCommand } from '../../services/cli/commands/fit';
import { run } from '../../services/cli/spi';
import { quantizeCommand } from '../../services/cli/commands/quantize';
import { DEFAULT_MODELS_DIR, listModels } from '../../models/registry';
import { autoFrom, givenFlags } from '../../services/cli/options';
import { ManagedProcess, TEST_TMP, spawnNodeService } from '../helpers/processes';
import { PrintDataset, printDataset, upload } from '../helpers/fixtures';
import { SpiError } from '../../lib/errors';
import { KnnIndex } from '../../lib/knn/index';
import { extractorForBank } from '../../lib/patchcore/engine';
import { LocalSearcher, completeMeta } from '../../lib/patchcore/fit';
import { fitJob } from '../../lib/patchcore/fit-worker';
import { FusedInspector } from '../../lib/patchcore/fusion';
import { Inspector } from '../../lib/patchcore/inspector';
import { DEFAULT_ADMIN, toBuildRequest } from '../../services/gateway/admin-service';
import { buildSpec } from '../../lib/rpc/messages';

const MODEL = 'mobilenet_v2-imagenet';
/** MobileNetV2's stride-4 pair: the fine member of a fused bank (the default is block_5_add,block_9_add). */
const FINE_STAGES = 'block_2_add,block_5_add';

function readMeta(dir: string): BankMeta {
  return JSON.parse(fs.readFileSync(path.join(dir, 'bank.json'), 'utf8')) as BankMeta;
}

/** Runs `fn` with console.log silenced (the CLI prints its table), returning what it printed. */
async function quietly(fn: () => Promise<void>): Promise<string> {
  const lines: string[] = [];
  const log = console.log;
  console.log = (...args: unknown[]) => lines.push(args.join(' '));
  try {
    await fn();
  } finally {
    console.log = log;
  }
  return lines.join('\n');
}

describe('automatic fit (real backbone)', function () {
  this.timeout(300_000);
  let tmp: string;
  let root: string;
  let train: string[];
  let data: PrintDataset;

  before(async () => {
    data = await printDataset('prints-auto', 12);
    root = data.root;
    train = data.train;
    fs.mkdirSync(TEST_TMP, { recursive: true });
    tmp = fs.mkdtempSync(path.join(TEST_TMP, 'auto-'));
  });

  it('spi fit with no flags chooses, records the table and the synthetic recall; --explain prints it', async () => {
    const out = path.join(tmp, 'bank');
    const printed = await quietly(() => fitCommand(['--data', root, '--out', out, '--model', MODEL]));
    // A fused bank's bank.json carries it as a single bank's does.
    const auto = readMeta(out).autoConfig;
    assert.ok(auto, 'the bank records how it was configured');
    assert.ok(auto.table.length >= 2, 'more than one candidate was scored');
    assert.equal(auto.table.filter((r) => r.status === 'chosen').length, 1);
    assert.equal(auto.table.find((r) => r.status === 'chosen')!.id, auto.chosen);
    assert.ok(auto.table.every((r) => r.imageAuroc >= 0 && r.imageAuroc <= 1 && r.msPerImage > 0));
    // The finalists' smaller banks were scored too, on the embeddings already made, and cost less.
    const half = auto.table.filter((r) => r.variant === 'bank50%');
    assert.ok(half.length >= 1, 'smaller banks were tried');
    for (const h of half) {
      const full = auto.table.find((r) => r.id === h.id.replace(/~bank50%$/, ''))!;
      assert.ok(h.msPerImage <= full.msPerImage, `${h.id} costs no more than ${full.id}`);
    }
    // Held back more than the 10 % default (12 images would give 1) so the validation has a good half.
    assert.equal(auto.images.heldOut, 3);
    assert.equal(auto.images.train, 9);
    assert.ok(auto.images.syntheticDefects >= 24);
    assert.ok(auto.syntheticRecall! >= 0 && auto.syntheticRecall! <= 1);
    assert.match(printed, /How this bank was configured/);
    // The fit reports its time: the selection and the chosen bank's own fit after it.
    assert.ok(auto.selectionMs > 0 && auto.fitMs! > 0);
    assert.match(printed, /time: selection [\d.]+ s \+ fit of the chosen bank [\d.]+ s = [\d.]+ s/);
    const explained = explainBank(out);
    assert.match(explained, new RegExp(`chosen: ${auto.chosen.replace(/[+/]/g, '.')}`));
    assert.match(explained, /recall on the synthetic defects/);
  });

  it('spi fit --add grows the bank the automatic fit chose, a reference or fused one included (#18)', async () => {
    // The first test's bank; fitted here when that test did not run.
    const out = path.join(tmp, 'bank');
    if (!fs.existsSync(path.join(out, 'bank.json')))
      await quietly(() => fitCommand(['--data', root, '--out', out, '--model', MODEL]));
    const grown = path.join(tmp, 'bank-grown');
    const good = path.join(root, 'test', 'good');
    await quietly(() => fitCommand(['--add', good, '--bank', out, '--out', grown, '--reason', 'more']));
    const meta = readMeta(grown) as BankMeta & { additions: { images: string[]; reason: string }[] };
    assert.equal(meta.version, 2, `chosen: ${readMeta(out).autoConfig!.chosen}`);
    assert.deepEqual(meta.additions.at(-1)!.images.length, data.testGood.length);
    assert.equal(meta.additions.at(-1)!.reason, 'more');
    const verdicts = path.join(tmp, 'grown-verdicts');
    assert.equal(await run(['inspect', '--bank', grown, '--out', verdicts, data.testDefective[0]]), 0);
  });

  it('scores an installed INT8 build of the backbone as a variant of the finalists, and prices it', async () => {
    // A models folder with the float builds and an INT8 build of MobileNetV2 (what make quantize adds).
    const models = path.join(tmp, 'models');
    fs.mkdirSync(models);
    for (const id of listModels()) fs.symlinkSync(path.join(DEFAULT_MODELS_DIR, id), path.join(models, id));
    const int8 = `${MODEL}-int8-randn`;
    await quietly(() =>
      quantizeCommand([
        '--model',
        MODEL,
        '--out',
        path.join(models, int8),
        '--calibration',
        'randn',
        '--id',
        int8,
      ]),
    );
    const saved = process.env.SPI_MODELS_DIR;
    process.env.SPI_MODELS_DIR = models;
    try {
      const out = path.join(tmp, 'bank-int8');
      await quietly(() =>
        fitCommand(['--data', root, '--out', out, '--model', MODEL, '--auto-fusion', 'off']),
      );
      const auto = readMeta(out).autoConfig!;
      const rows = auto.table.filter((r) => r.variant === 'int8');
      assert.ok(rows.length >= 1, `INT8 variants scored: ${auto.table.map((r) => r.id).join(', ')}`);
      for (const row of rows) {
        assert.ok(row.id.includes(int8), row.id);
        assert.ok(row.imageAuroc >= 0 && row.imageAuroc <= 1 && row.msPerImage > 0);
        assert.ok(
          auto.table.some((r) => r.id === row.variantOf),
          `${row.id} names its finalist`,
        );
      }
      // Whatever was chosen, the bank loads and its model is one of the two builds.
      assert.ok([MODEL, int8].includes(readMeta(out).model.id), readMeta(out).model.id);
    } finally {
      if (saved === undefined) delete process.env.SPI_MODELS_DIR;
      else process.env.SPI_MODELS_DIR = saved;
    }
  });

  it('explicit view flags and --auto off win: no automatic choice, none recorded', async () => {
    for (const flags of [
      ['--resize', '224'],
      ['--auto', 'off'],
    ]) {
      const out = path.join(tmp, `manual-${flags[0].slice(2)}`);
      const printed = await quietly(() =>
        fitCommand(['--data', root, '--out', out, '--model', MODEL, ...flags]),
      );
      assert.equal(readMeta(out).autoConfig, undefined, flags.join(' '));
      assert.match(printed, /fit took [\d.]+ s/, 'a plain fit reports its time too');
      assert.match(explainBank(out), /configured by hand/);
    }
    await assert.rejects(
      fitCommand(['--data', root, '--out', path.join(tmp, 'x'), '--auto', 'maybe']),
      /--auto must be on or off/,
    );
  });

  it('never reads a test image: only train/good reaches the selector', async () => {
    const category = readCategory(root);
    assert.ok(category.test.length > 0, 'the category has test images to avoid');
    // Every image the engine reads goes through fs.promises.readFile (ImageSource.read).
    const read: string[] = [];
    const { readFile } = fs.promises;
    fs.promises.readFile = ((file: fs.PathLike, ...rest: unknown[]) => {
      read.push(String(file));
      return (readFile as (...a: unknown[]) => Promise<Buffer>)(file, ...rest);
    }) as typeof readFile;
    const pool = new BackbonePool();
    try {
      // The values and choice `spi eval --data <category> --model <m>` makes.
      const argv = ['--model', MODEL];
      const { values } = parseArgs({ args: argv, options: EVAL_FLAGS });
      const auto = autoFrom(values, givenFlags(argv, EVAL_FLAGS), category.train.length)!;
      await planForCategory(pool, category, values, auto);
    } finally {
      fs.promises.readFile = readFile;
      await pool.close();
    }
    const images = read.filter((f) => /\.(png|jpe?g)$/i.test(f));
    assert.ok(images.length > 0, 'the spy saw the training images being read');
    const forbidden = images.filter(
      (f) => f.includes(`${path.sep}test${path.sep}`) || f.includes('ground_truth'),
    );
    assert.deepEqual(forbidden, [], 'test images or masks reached the selector');
    assert.ok(images.every((f) => f.includes(path.join('train', 'good'))));
  });

  it('spi eval with no flags reports how the bank was configured and shows every misclassified image', async () => {
    const out = path.join(tmp, 'eval');
    // A threshold no image reaches: every defective test image is a miss, and each must get its
    // overlay although the gallery asks for one image only.
    await quietly(() =>
      evalCommand(['--data', root, '--out', out, '--model', MODEL, '--gallery', '1', '--threshold', '1e9']),
    );
    const metrics = JSON.parse(fs.readFileSync(path.join(out, 'metrics.json'), 'utf8'));
    assert.ok(metrics.autoConfig?.chosen, 'metrics.json records the choice');
    assert.ok(metrics.timings.autoSelectMs > 0);
    assert.equal(metrics.autoConfig.fitMs, Math.round(metrics.timings.fitMs));
    const html = fs.readFileSync(path.join(out, 'report.html'), 'utf8');
    assert.match(html, /How this bank was configured/);
    assert.ok(html.includes(metrics.autoConfig.chosen));
    const missed = html.split('<div class="item fn"').slice(1);
    assert.ok(missed.length > 0, 'the threshold made misses');
    for (const item of missed) assert.ok(item.slice(0, item.indexOf('</div></div>')).includes('<img'));
  });

  describe('in the cluster', () => {
    let proc: ManagedProcess;
    let client: InspectionClient;

    before(async () => {
      const dataDir = fs.mkdtempSync(path.join(TEST_TMP, 'auto-embedded-'));
      proc = spawnNodeService('services/gateway/main.ts', {
        name: 'embedded-auto',
        args: ['--embedded', '--port', '0', '--data-dir', dataDir, '--shards', '1', '--metrics-port', '0'],
      });
      const ready = await proc.waitForLine('gateway ready', 60_000);
      client = new InspectionClient(`127.0.0.1:${Number(ready.fields.port)}`, { deadlineMs: 240_000 });
    });

    after(async () => {
      client?.close();
      await proc?.stop();
    });

    it('CreateBank with no view fields chooses what spi fit chooses for the same images', async () => {
      // spi fit's default (fused banks among the candidates): the cluster builds and serves them too.
      // The first test's bank is that choice (same flags); fitted here when that test did not run.
      const out = path.join(tmp, 'bank');
      if (!fs.existsSync(path.join(out, 'bank.json')))
        await quietly(() => fitCommand(['--data', root, '--out', out, '--model', MODEL]));
      const cli = readMeta(out).autoConfig!;
      const info = await client.createBank(
        { bank: 'auto-job', model: MODEL, partitions: 1, replicas: 1 },
        upload(train),
      );
      const configuredBy = info.versions[0].configuredBy;
      assert.match(configuredBy, /^auto: /);
      assert.equal(configuredBy.slice('auto: '.length).split(' ')[0], cli.chosen);
      // A fused choice is served as one: a member per stage set, each in its own partitions.
      const fused = cli.chosen.includes('/fused/');
      assert.equal(info.versions[0].members.length, fused ? 2 : 0, info.versions[0].members.join('; '));
      assert.equal(info.versions[0].partitions, fused ? 2 : 1);
      // The bank answers inspections with the chosen configuration.
      const answer = await client.inspect({ bank: 'auto-job', image: fs.readFileSync(train[0]) });
      assert.equal(answer.version, 1);
      // auto "off" (or any view field) gives the manual defaults.
      const manual = await client.createBank(
        { bank: 'manual-job', model: MODEL, partitions: 1, replicas: 1, auto: 'off' },
        upload(train),
      );
      assert.equal(manual.versions[0].configuredBy, 'manual');
      await assert.rejects(
        client.createBank({ bank: 'bad-auto', auto: 'sometimes' }, upload(train)),
        /auto must be "on" or "off"/,
      );
    });

    it('serves a fused bank (BuildSpec.fuse) with the scores of the in-process FusedInspector', async () => {
      // A fused bank standardises each member on its held-out maps: hold back 3 of the 12.
      const spec = {
        bank: 'fused-job',
        model: MODEL,
        partitions: 2,
        replicas: 1,
        fuse: FINE_STAGES,
        holdoutFraction: 0.25,
      };
      const info = await client.createBank(spec, upload(train));
      const v = info.versions[0];
      assert.equal(v.configuredBy, 'manual');
      assert.equal(v.members.length, 2, 'two members');
      assert.match(v.members[1], /^block_2_add\+block_5_add: \d+ patches x \d+$/);
      assert.equal(v.partitions, 4, "each member's own 2 partitions");

      // The same banks fitted here, as the gateway's fit worker fitted them, served in-process.
      const req = toBuildRequest('create', buildSpec(spec), [], DEFAULT_ADMIN);
      const pool = new BackbonePool();
      try {
        const fitted = await fitJob(
          pool,
          {
            model: req.model,
            settings: { ...req.settings, name: req.bank, version: 1 },
            images: upload(train).map((u) => ({ path: u.name, data: u.data })),
            fuse: req.fuse,
          },
          () => undefined,
        );
        assert.equal(fitted.kind, 'fused');
        if (fitted.kind !== 'fused') return;
        const local = new FusedInspector(
          fitted.meta,
          await Promise.all(
            fitted.members.map(async (f) => {
              const meta = completeMeta(f.meta, f.dim, f.vectors.length / f.dim);
              const index = KnnIndex.build(f.vectors, f.dim, meta.knn);
              return new Inspector(meta, await extractorForBank(pool, meta), new LocalSearcher(index));
            }),
          ),
        );
        assert.ok(Math.abs(v.threshold - fitted.meta.threshold.value) <= 1e-5 * Math.abs(v.threshold));
        for (const file of [data.testGood[0], data.testDefective[0], data.testDefective[1]]) {
          const image = fs.readFileSync(file);
          const remote = await client.inspect({ bank: 'fused-job', image });
          const here = await local.inspectBytes(image);
          assert.ok(
            Math.abs(remote.score - here.score) <= 1e-4 * Math.max(1, Math.abs(here.score)),
            `${path.basename(file)}: gateway ${remote.score}, in-process ${here.score}`,
          );
          assert.equal(remote.isDefective, here.isDefective);
        }
      } finally {
        await pool.close();
      }

      // A stage the model does not have: refused by name, and no version left behind.
      await assert.rejects(
        client.createBank({ ...spec, bank: 'fused-bad', fuse: 'block_2_add,nope' }, upload(train)),
        (err: SpiError) => err.kind === 'INVALID_ARGUMENT' && /has no stage "nope"/.test(err.message),
      );
      await assert.rejects(client.getBank('fused-bad'), /does not exist/);
    });
  });
});
