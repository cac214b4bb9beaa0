/**
 * `spi demo` (make demo): the whole product on one machine. Generates print images with defects,
 * starts etcd, two bank shards and a gateway on loopback, builds a bank through the admin API,
 * inspects good and defective prints through the Inspect RPC, rotates the bank to a second version,
 * inspects again, writes an HTML report and verdicts, and stops every process it started.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ParseArgsConfig, parseArgs } from 'node:util';
import { generateDataset } from '../../../lib/synth/dataset';
import { readCategory } from '../../../lib/data/mvtec';
import { decodeImage } from '../../../lib/image/decode';
import { inspectionOverlay } from '../../../lib/patchcore/overlay';
import { imageMetrics } from '../../../lib/eval/summary';
import { renderReport } from '../../../lib/eval/report';
import type { ReportImage } from '../../../lib/eval/types';
import type { InspectionClient, InspectResponse } from '../../../lib/client/inspection-client';
import { num } from '../options';

export const DEMO_FLAGS = {
  out: { type: 'string', default: 'demo-out' },
  seed: { type: 'string', default: '1' },
  size: { type: 'string', default: '512' },
  train: { type: 'string', default: '32' },
  shards: { type: 'string', default: '2' },
  tile: { type: 'string', default: '224' },
} satisfies ParseArgsConfig['options'];

const D = DEMO_FLAGS;

export const DEMO_USAGE = `usage: spi demo [options]
  --out DIR           generated prints, cluster logs, report.html and verdicts (default ${D.out.default})
  --seed N            seed of the generated prints (default ${D.seed.default})
  --size N            side of a generated print in pixels (default ${D.size.default})
  --train N           good prints generated for the banks (default ${D.train.default})
  --shards N          bank shards started on loopback (default ${D.shards.default})
  --tile N            tile side of the demo bank, built at full resolution (default ${D.tile.default})`;

export async function demoCommand(argv: string[]): Promise<void> {
  const { values } = parseArgs({ args: argv, options: DEMO_FLAGS });
  const out = path.resolve(values.out!);
  fs.mkdirSync(out, { recursive: true });
  // Logs and shard data of the demo cluster go under <out>/cluster (read by services/local/*).
  process.env.SPI_LOCAL_DIR = path.join(out, 'cluster');
  const { startLocalCluster } = require('../../local/cluster') as typeof import('../../local/cluster');

  const dataDir = path.join(out, 'data');
  step(`generating print images with defects in ${dataDir}`);
  await generateDataset(dataDir, {
    seed: num(values, 'seed'),
    size: num(values, 'size'),
    trainGood: num(values, 'train'),
    testGood: 6,
    perDefect: 3,
    // A registered inspection camera: good sheets sit within half a pixel of each other.
    variation: { maxShift: 0.5 },
  });
  const category = readCategory(dataDir);
  const uploads = category.train.map((f) => ({ name: path.basename(f), data: fs.readFileSync(f) }));
  const half = Math.max(2, Math.floor(uploads.length / 2));

  step(`starting etcd, ${values.shards} bank shards and a gateway on loopback`);
  const cluster = await startLocalCluster({
    shards: num(values, 'shards'),
    gatewayArgs: ['--drain-ms', '500'],
  });
  try {
    const client = cluster.client({ deadlineMs: 30_000 });
    console.log(`  gateway at ${cluster.gatewayAddress}, etcd at ${cluster.etcd.endpoint}`);
    const spec = {
      bank: 'demo-job',
      tile: num(values, 'tile'),
      tileOverlap: 32,
      resize: 0,
      replicas: 2,
      coresetRatio: 0.1,
      holdoutFraction: 0.25,
    };

    step(`CreateBank demo-job v1 from ${half} good prints`);
    let info = await client.createBank(spec, uploads.slice(0, half), progressPrinter());
    console.log(
      `  v${info.activeVersion}: ${info.versions[0].patches} patches in ${info.versions[0].partitions} partitions x ${info.versions[0].replicas} replicas, threshold ${info.versions[0].threshold.toFixed(3)}`,
    );
    const first = await inspectAll(
      client,
      category.test.map((t) => t.absPath),
    );
    console.log(`  inspected ${first.length} prints with v1: ${summary(first, category)}`);

    step(`RotateBank demo-job -> v2 from all ${uploads.length} good prints (no downtime)`);
    info = await client.rotateBank(spec, uploads, progressPrinter());
    const active = info.versions.find((v) => v.version === info.activeVersion)!;
    console.log(
      `  v${info.activeVersion} active: ${active.patches} patches, threshold ${active.threshold.toFixed(3)}; old versions retired`,
    );
    const second = await inspectAll(
      client,
      category.test.map((t) => t.absPath),
      true,
    );
    console.log(`  inspected ${second.length} prints with v2: ${summary(second, category)}`);

    step('writing the report');
    const images: ReportImage[] = [];
    for (const [i, item] of category.test.entries()) {
      const res = second[i];
      const rgb = await decodeImage(fs.readFileSync(item.absPath));
      const map = new Float32Array(
        res.anomalyMap.buffer.slice(
          res.anomalyMap.byteOffset,
          res.anomalyMap.byteOffset + res.anomalyMap.byteLength,
        ),
      );
      const regions = res.regions.map((r) => ({ ...r, peakScore: r.peakScore }));
      const overlayPng = await inspectionOverlay(
        rgb,
        {
          map,
          canvasWidth: res.mapWidth,
          canvasHeight: res.mapHeight,
          threshold: res.threshold,
          regions,
        },
        { crop: 0, resize: 0 },
        undefined,
        384,
      );
      images.push({
        path: item.path,
        label: item.label,
        defectType: item.defectType,
        score: res.score,
        overlayPng,
      });
    }
    const threshold = second[0].threshold;
    const html = renderReport({
      title: 'SparsePrintInspector demo: job demo-job',
      createdAt: new Date(),
      dataset: dataDir,
      model: {
        backbone: active.model,
        bank: `demo-job v${info.activeVersion}`,
        patches: active.patches,
        index: active.index,
        tiling: `${spec.tile}px tiles`,
      },
      threshold,
      images,
      metrics: imageMetrics(images, threshold),
      timings: { inspectMeanMs: second.reduce((s, r) => s + (r.timings?.totalMs ?? 0), 0) / second.length },
    });
    fs.writeFileSync(path.join(out, 'report.html'), html);
    const verdicts = second.map((r, i) => ({
      file: category.test[i].path,
      truth: category.test[i].defectType,
      verdict: r.isDefective ? 'defective' : 'good',
      score: r.score,
      threshold: r.threshold,
      version: r.version,
      regions: r.regions,
    }));
    fs.writeFileSync(path.join(out, 'verdicts.json'), JSON.stringify(verdicts, null, 2));
    step(`done: report ${path.join(out, 'report.html')}, verdicts ${path.join(out, 'verdicts.json')}`);
  } finally {
    step('stopping the cluster');
    await cluster.stop();
  }
}

async function inspectAll(
  client: InspectionClient,
  files: string[],
  returnMap = false,
): Promise<InspectResponse[]> {
  const out: InspectResponse[] = [];
  for (const f of files)
    out.push(
      await client.inspect({
        bank: 'demo-job',
        image: fs.readFileSync(f),
        returnMap,
        requestId: path.basename(f),
      }),
    );
  return out;
}

function summary(results: InspectResponse[], category: ReturnType<typeof readCategory>): string {
  let tp = 0,
    fp = 0,
    fn = 0,
    tn = 0;
  results.forEach((r, i) => {
    const bad = category.test[i].label === 1;
    if (r.isDefective && bad) tp++;
    else if (r.isDefective) fp++;
    else if (bad) fn++;
    else tn++;
  });
  const ms = results.map((r) => r.timings?.totalMs ?? 0).sort((a, b) => a - b);
  return `${tp} defects caught, ${fn} missed, ${fp} false alarms, ${tn} good passed; median ${ms[ms.length >> 1].toFixed(0)} ms per print`;
}

function progressPrinter() {
  let last = '';
  return (p: { stage: string; done: number; total: number }) => {
    if (p.stage !== last || p.done === p.total) {
      if (p.done === p.total) console.log(`    ${p.stage}: ${p.done}/${p.total}`);
      last = p.stage;
    }
  };
}

function step(message: string): void {
  console.log(`\n== ${message}`);
}
