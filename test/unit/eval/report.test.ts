import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { esc, fmtDuration, niceTicks } from '../../../lib/eval/html';
import { pixelAuroc, pro } from '../../../lib/eval/metrics';
import { renderOverlay } from '../../../lib/eval/overlay';
import { renderReport, type ReportData, type ReportImage } from '../../../lib/eval/report';
import { imageMetrics } from '../../../lib/eval/summary';
import { fakeSample } from './fixtures';

const CHROMIUM = '/usr/bin/chromium';
const HOSTILE = `<script>alert("x")</script> & 'quotes'`;

/** A report over 10 fake images: 5 good, 5 defective of two types; one miss and one false alarm. */
async function fakeReport(): Promise<ReportData> {
  const images: ReportImage[] = [];
  const maps: Float32Array[] = [];
  const masks: Uint8Array[] = [];
  const scores = [0.21, 0.25, 0.3, 0.33, 0.52, 0.81, 0.9, 0.44, 0.77, 0.95];
  for (let k = 0; k < scores.length; k++) {
    const defective = k >= 5;
    const s = await fakeSample(160, 120, k, defective);
    maps.push(s.map);
    masks.push(s.mask);
    images.push({
      path: k === 7 ? `data/test/${HOSTILE}/007.png` : `data/test/${defective ? 'blot' : 'good'}/${k}.png`,
      label: defective ? 1 : 0,
      defectType: !defective ? 'good' : k % 2 ? 'blot' : 'smear',
      score: scores[k],
      overlayPng:
        k === 3
          ? undefined
          : await renderOverlay(s.rgb, s.width, s.height, s.map, {
              vmin: 0,
              vmax: 1,
              mask: s.mask,
              boxes: s.defect && k !== 7 ? [s.defect] : [],
            }),
    });
  }
  const threshold = 0.5;
  return {
    title: `Inspection report ${HOSTILE}`,
    createdAt: new Date('2025-01-02T03:04:05Z'),
    dataset: 'fake-labels/v1',
    model: { backbone: 'wide_resnet50_2', layers: 'layer2+layer3', coreset: 0.1, bank: 16384, note: HOSTILE },
    threshold,
    images,
    metrics: {
      ...imageMetrics(images, threshold),
      pixelAuroc: pixelAuroc(maps, masks),
      pro: pro(maps, masks, 0.3, { width: 160 }),
    },
    timings: { embed: 1234.5, coreset: 45678, score: 87 },
  };
}

interface BrowserRun {
  code: number | null;
  dom: string;
  log: string;
  timedOut: boolean;
}

/** Headless chromium on a file: DOM after load on stdout, console messages on stderr; killed after 30 s. */
function runChromium(file: string, screenshot: string, profile: string): Promise<BrowserRun> {
  const args = [
    '--headless',
    '--no-sandbox',
    '--disable-gpu',
    '--disable-quic',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
    `--user-data-dir=${profile}`,
    '--enable-logging=stderr',
    '--v=0',
    `--screenshot=${screenshot}`,
    '--window-size=1200,2000',
    '--dump-dom',
    `file://${file}`,
  ];
  return new Promise((resolve, reject) => {
    // Own process group, so the kill reaches chromium's helper processes too.
    const child = spawn(CHROMIUM, args, { detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    let dom = '';
    let log = '';
    let timedOut = false;
    child.stdout.on('data', (b: Buffer) => (dom += b.toString()));
    child.stderr.on('data', (b: Buffer) => (log += b.toString()));
    const timer = setTimeout(() => {
      timedOut = true;
      try {
        process.kill(-(child.pid as number), 'SIGKILL');
      } catch {
        // already gone
      }
    }, 30000);
    child.on('error', (e) => (clearTimeout(timer), reject(e)));
    child.on('close', (code) => (clearTimeout(timer), resolve({ code, dom, log, timedOut })));
  });
}

describe('eval/html helpers', () => {
  it('escapes text and formats values', () => {
    assert.equal(esc(`<a href="x">'&'</a>`), '&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;');
    assert.equal(fmtDuration(850), '850 ms');
    assert.equal(fmtDuration(45678), '45.7 s');
    assert.equal(fmtDuration(245000), '4 min 05 s');
    assert.deepEqual(niceTicks(0, 1, 5), [0, 0.2, 0.4, 0.6, 0.8, 1]);
  });
});

describe('eval/report', function () {
  this.timeout(60000);
  let data: ReportData;
  let html: string;
  let dir: string;

  before(async () => {
    data = await fakeReport();
    html = renderReport(data);
    // SPI_REPORT_TEST_OUT keeps the page and screenshot for a human look.
    dir = process.env.SPI_REPORT_TEST_OUT ?? fs.mkdtempSync(path.join(os.tmpdir(), 'spi-report-'));
    fs.mkdirSync(dir, { recursive: true });
  });

  after(() => {
    if (!process.env.SPI_REPORT_TEST_OUT) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('is self-contained and escapes all caller text', () => {
    assert.match(html, /^<!DOCTYPE html>/);
    assert.ok(!/\b(src|href)=["']?(https?:|\/\/|file:)/i.test(html), 'no external resources');
    assert.ok(!html.includes('<script>alert'), 'hostile text was not escaped');
    assert.ok(html.includes('&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;quotes&#39;'));
    assert.equal((html.match(/<img src="data:image\/png;base64,/g) ?? []).length, 9);
    assert.ok(html.includes('no overlay'));
    for (const part of [
      'Image AUROC',
      'Pixel AUROC',
      'PRO',
      'F1 at threshold',
      'Confusion matrix',
      'Per defect type',
    ]) {
      assert.ok(html.includes(part), part);
    }
    // Errors first in the gallery: the missed defect (0.44) before the false alarm (0.52).
    const items = [...html.matchAll(/<div class="item (\w+)"/g)].map((m) => m[1]);
    assert.deepEqual(items.slice(0, 2), ['fn', 'fp']);
  });

  it('reports the per-type numbers', () => {
    const byType = Object.fromEntries(data.metrics.perType.map((t) => [t.defectType, t]));
    assert.deepEqual(Object.keys(byType), ['good', 'blot', 'smear']);
    assert.equal(byType.good.detectionRate, 0.2); // one false alarm of five
    assert.equal(byType.blot.count, 3); // k = 5, 7, 9
    assert.ok(byType.blot.detectionRate > 0.66 && byType.blot.detectionRate < 0.67);
    assert.equal(data.metrics.f1AtThreshold.recall, 0.8);
  });

  /** Writes the page, runs chromium on it, and returns what it reported. */
  async function browse(name: string, page: string) {
    const file = path.join(dir, `${name}.html`);
    const shot = path.join(dir, `${name}.png`);
    fs.writeFileSync(file, page);
    const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'spi-chromium-'));
    try {
      const run = await runChromium(file, shot, profile);
      assert.ok(!run.timedOut, 'chromium did not finish within 30 s');
      assert.equal(run.code, 0, run.log.slice(-2000));
      return {
        shot,
        // Console messages (any level) and uncaught exceptions; the page itself logs nothing.
        problems: run.log.split('\n').filter((l) => /:CONSOLE|Uncaught|Refused to/.test(l)),
        // The page's own check: scripts ran, no resource failed, no CSP violation.
        status: (run.dom.match(/data-report-status="([^"]*)"/) ?? [])[1],
      };
    } finally {
      fs.rmSync(profile, { recursive: true, force: true });
    }
  }

  it('renders in headless chromium without errors', async function () {
    if (!fs.existsSync(CHROMIUM)) this.skip(); // no browser on this machine: nothing to check against
    const { shot, problems, status } = await browse('report', html);
    assert.deepEqual(problems, []);
    assert.equal(status, 'ok');
    const meta = await sharp(shot).metadata();
    assert.deepEqual([meta.width, meta.height], [1200, 2000]);
    // Not blank: real variation in every colour channel.
    const stats = await sharp(shot).stats();
    assert.ok(
      stats.channels.slice(0, 3).every((c) => c.stdev > 15),
      JSON.stringify(stats.channels),
    );
    assert.ok(stats.entropy > 1, `entropy ${stats.entropy}`);
  });

  it('the browser check catches script errors, broken images and network use', async function () {
    if (!fs.existsSync(CHROMIUM)) this.skip();
    const broken = html
      .replace(/data:image\/png;base64,[^"]+/, 'data:image/png;base64,AAAA')
      .replace(
        '</body>',
        '<img src="http://127.0.0.1:9/x.png"><script>throw new Error("boom")</script></body>',
      );
    const { problems, status } = await browse('broken', broken);
    assert.ok(
      problems.some((l) => l.includes('Uncaught Error: boom')),
      problems.join('\n'),
    );
    assert.match(status ?? '', /^errors: /);
    assert.match(status ?? '', /boom/);
    assert.match(status ?? '', /IMG failed to load/);
    assert.match(status ?? '', /CSP blocked http:\/\/127\.0\.0\.1:9/);
  });
});
