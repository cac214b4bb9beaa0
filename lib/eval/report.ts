/**
 * Self-contained HTML evaluation report: one file, no network (a Content-Security-Policy forbids
 * anything but inline styles, inline scripts and data: images), charts as inline SVG, overlays as
 * data: URIs. Every piece of caller text goes through esc().
 */
import { histogramSvg, rocSvg } from './charts';
import { esc, fmtDuration, fmtMetric, fmtPercent, fmtScore } from './html';
import { confusion, rocCurve } from './metrics';
import type { ReportData, ReportImage } from './types';
import type { AutoConfigRecord } from '../autoconfig/select';
import type { OutlierRecord } from '../bank/bank-meta';

export type { PerTypeMetrics, ReportData, ReportImage, ReportMetrics } from './types';

type Outcome = 'fn' | 'fp' | 'tp' | 'tn';

const OUTCOME_TEXT: Record<Outcome, string> = {
  fn: 'missed defect',
  fp: 'false alarm',
  tp: 'defect caught',
  tn: 'good, passed',
};

function outcomeOf(im: ReportImage, threshold: number): Outcome {
  const flagged = im.score >= threshold;
  return im.label === 1 ? (flagged ? 'tp' : 'fn') : flagged ? 'fp' : 'tn';
}

const CSS = `
*{box-sizing:border-box}
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;color:#1d1d1f;background:#f4f5f7;margin:0;padding:24px 32px}
h1{font-size:24px;margin:0 0 4px}h2{font-size:16px;margin:0 0 12px}
.meta{color:#555;margin:0 0 20px}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(170px,1fr));gap:12px;margin-bottom:20px}
.card{background:#fff;border-radius:8px;padding:12px 14px;box-shadow:0 1px 2px rgba(0,0,0,.08)}
.card .k{color:#666;font-size:12px;text-transform:uppercase;letter-spacing:.04em}
.card .v{font-size:24px;font-weight:650;margin-top:2px}
.card .s{color:#666;font-size:12px}
.grid2{display:grid;grid-template-columns:minmax(0,1.8fr) minmax(0,1fr);gap:16px;margin-bottom:16px}
.panel{background:#fff;border-radius:8px;padding:16px;box-shadow:0 1px 2px rgba(0,0,0,.08);margin-bottom:16px}
.grid2 .panel{margin-bottom:0}
.chart{width:100%;height:auto;font-size:11px;fill:#333}
.chart .axis-title{font-size:12px;fill:#555}
table{border-collapse:collapse;width:100%}
th,td{padding:6px 10px;border-bottom:1px solid #e6e6e6;text-align:left}
th{font-weight:600;color:#444;background:#fafafa}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
table.cm{width:auto}table.cm td{text-align:center;min-width:110px;font-size:18px;font-weight:600}
table.cm td small{display:block;font-size:11px;font-weight:400;color:#555}
.ok{background:#e3f4e6}.bad{background:#fbe3df}
.kv td:first-child{color:#555;width:45%}
tr.chosen td{background:#e3f4e6;font-weight:600}
.filters{margin:0 0 12px}.filters button{font:inherit;border:1px solid #bbb;background:#fff;border-radius:14px;padding:3px 12px;margin-right:6px;cursor:pointer}
.filters button.on{background:#1d1d1f;color:#fff;border-color:#1d1d1f}
.gallery{display:grid;grid-template-columns:repeat(auto-fill,minmax(230px,1fr));gap:12px}
.item{background:#fff;border-radius:8px;overflow:hidden;box-shadow:0 1px 2px rgba(0,0,0,.08);border-top:4px solid #999}
.item.tp,.item.tn{border-top-color:#3a9a4f}.item.fn,.item.fp{border-top-color:#d7301f}
.item img{display:block;width:100%;height:auto;background:#ddd;image-rendering:auto}
.item .noimg{aspect-ratio:1;display:flex;align-items:center;justify-content:center;color:#888;background:#eee}
.item .cap{padding:8px 10px;font-size:12px}
.item .path{font-family:ui-monospace,"DejaVu Sans Mono",monospace;word-break:break-all;color:#333}
.badge{display:inline-block;padding:1px 8px;border-radius:10px;font-weight:600;font-size:11px;color:#fff}
.badge.NG{background:#d7301f}.badge.OK{background:#3a9a4f}
.wrong{color:#d7301f;font-weight:600}
.legend{color:#555;font-size:12px}.sw{display:inline-block;width:12px;height:12px;vertical-align:-2px;margin:0 4px 0 10px}
.hidden{display:none}
@media (max-width:900px){.grid2{grid-template-columns:1fr}}
@media print{body{background:#fff;padding:0}.filters{display:none}.item,.panel,.card{box-shadow:none;border:1px solid #ddd}}
`;

// Runs first: records script errors, failed resources and CSP violations so a headless check (or
// a curious engineer, via data-report-status on <body>) can tell the page rendered cleanly.
const HEAD_SCRIPT = `window.__reportErrors=[];
addEventListener('error',function(e){var t=e.target;window.__reportErrors.push(e.message||((t&&t.tagName)||'resource')+' failed to load');},true);
addEventListener('securitypolicyviolation',function(e){window.__reportErrors.push('CSP blocked '+e.blockedURI);});`;

// Gallery filters; the page is complete without them.
const BODY_SCRIPT = `(function(){
var items=document.querySelectorAll('.item'),buttons=document.querySelectorAll('.filters button');
function show(f){for(var i=0;i<items.length;i++){var c=items[i].classList;
var on=f==='all'||(f==='wrong'&&(c.contains('fn')||c.contains('fp')))||(f==='defective'&&items[i].dataset.label==='1')||(f==='good'&&items[i].dataset.label==='0');
c.toggle('hidden',!on);}
for(var j=0;j<buttons.length;j++)buttons[j].classList.toggle('on',buttons[j].dataset.filter===f);}
for(var j=0;j<buttons.length;j++)buttons[j].addEventListener('click',function(e){show(e.currentTarget.dataset.filter);});
function done(){document.body.dataset.reportStatus=window.__reportErrors.length?'errors: '+window.__reportErrors.join('; '):'ok';}
done();addEventListener('load',done);
})();`;

function card(key: string, value: string, sub = ''): string {
  return `<div class="card"><div class="k">${esc(key)}</div><div class="v">${esc(value)}</div><div class="s">${esc(sub)}</div></div>`;
}

function confusionTable(c: { tp: number; fp: number; tn: number; fn: number }): string {
  const good = c.tn + c.fp;
  const bad = c.tp + c.fn;
  const cell = (n: number, of: number, cls: string, what: string): string =>
    `<td class="${cls}" title="${esc(what)}">${n}<small>${esc(fmtPercent(of ? n / of : NaN))} of row</small></td>`;
  return `<table class="cm"><tr><th></th><th>predicted OK</th><th>predicted NG</th></tr>
<tr><th>actual good (${good})</th>${cell(c.tn, good, 'ok', 'true negatives')}${cell(c.fp, good, 'bad', 'false alarms')}</tr>
<tr><th>actual defective (${bad})</th>${cell(c.fn, bad, 'bad', 'missed defects')}${cell(c.tp, bad, 'ok', 'defects caught')}</tr></table>`;
}

function keyValueTable(rows: [string, string][]): string {
  if (rows.length === 0) return '<p class="legend">none recorded</p>';
  return `<table class="kv">${rows.map(([k, v]) => `<tr><td>${esc(k)}</td><td>${esc(v)}</td></tr>`).join('')}</table>`;
}

function perTypeTable(data: ReportData): string {
  const rows = data.metrics.perType
    .map((t) => {
      const isGood = t.defectType === 'good';
      return `<tr><td>${esc(t.defectType)}</td><td class="n">${t.count}</td><td class="n">${esc(isGood ? '-' : fmtMetric(t.auroc))}</td><td class="n">${esc(fmtPercent(t.detectionRate))}${isGood ? ' <span class="legend">(false alarms)</span>' : ''}</td><td class="n">${esc(fmtScore(t.meanScore))}</td></tr>`;
    })
    .join('');
  return `<table><tr><th>defect type</th><th class="n">images</th><th class="n">AUROC vs good</th><th class="n">flagged at threshold</th><th class="n">mean score</th></tr>${rows}</table>`;
}

function galleryItem(im: ReportImage, threshold: number): string {
  const o = outcomeOf(im, threshold);
  const verdict = im.score >= threshold ? 'NG' : 'OK';
  const img = im.overlayPng
    ? `<img src="data:image/png;base64,${im.overlayPng.toString('base64')}" alt="${esc(`overlay of ${im.path}`)}">`
    : '<div class="noimg">no overlay</div>';
  const wrong = o === 'fn' || o === 'fp';
  return `<div class="item ${o}" data-label="${im.label}">${img}<div class="cap">
<div><span class="badge ${verdict}">${verdict}</span> score <b>${esc(fmtScore(im.score))}</b> <span class="${wrong ? 'wrong' : 'legend'}">${esc(OUTCOME_TEXT[o])}</span></div>
<div>truth: ${esc(im.label === 1 ? 'defective' : 'good')} (${esc(im.defectType)})</div>
<div class="path">${esc(im.path)}</div></div></div>`;
}

/** "How this bank was configured": the automatic fit's choice, why, and every candidate it scored. */
function autoConfigPanel(r: AutoConfigRecord | undefined): string {
  if (!r) return '';
  const facts: [string, string][] = [
    ['chosen', `${r.chosen}: ${r.description}`],
    ['why', r.reason],
    [
      'synthetic validation',
      `${r.images.heldOut} held-out good images + ${r.images.syntheticDefects} synthetic defects (${Object.entries(
        r.images.byKind,
      )
        .map(([k, n]) => `${k} ${n}`)
        .join(', ')}), seed ${r.seed}; no test image is used`,
    ],
    ['recall on synthetic defects', r.syntheticRecall === undefined ? 'n/a' : fmtPercent(r.syntheticRecall)],
    [
      'registration',
      `${r.registration.registered ? 'registered' : 'not registered'} (correlation ${r.registration.correlation.toFixed(2)}): nominal reference ${r.registration.registered ? 'offered' : 'not offered'}`,
    ],
    [
      'budget and time',
      `${r.budgetMs} ms per image; selection took ${fmtDuration(r.selectionMs)}` +
        (r.fitMs === undefined ? '' : `, the chosen bank's fit ${fmtDuration(r.fitMs)}`),
    ],
  ];
  const rows = r.table
    .map(
      (t) =>
        `<tr${t.status === 'chosen' ? ' class="chosen"' : ''}><td>${esc(t.id)}</td><td class="n">${t.rung} (${t.trainImages})</td><td class="n">${fmtMetric(t.imageAuroc)}</td><td class="n">${fmtMetric(t.pixelAuroc)}</td><td class="n">${fmtMetric(t.score)}</td><td class="n">${t.msPerImage.toFixed(1)}</td><td>${esc(t.status)}</td></tr>`,
    )
    .join('');
  return `<div class="panel"><h2>How this bank was configured</h2>${keyValueTable(facts)}
<table style="margin-top:12px"><tr><th>configuration</th><th class="n">rung (images)</th><th class="n">synthetic image AUROC</th><th class="n">synthetic pixel AUROC</th><th class="n">score</th><th class="n">ms/image</th><th>status</th></tr>${rows}</table></div>`;
}

/** The outlier filter's record: how much it dropped, and the training images worth a look. */
function outlierPanel(o: OutlierRecord | undefined): string {
  if (!o) return '';
  const facts: [string, string][] = [
    [
      'dropped before the coreset',
      `${o.dropped} of ${o.considered} candidate patches (${fmtPercent(o.droppedFraction)}): at least ${o.minRatio}x as isolated as their ${o.k} nearest patches of other images, at most ${fmtPercent(o.fraction)}`,
    ],
  ];
  const rows = o.suspects
    .map(
      (s) =>
        `<tr><td class="path">${esc(s.path)}</td><td class="n">${s.dropped} / ${s.candidates}</td><td class="n">${esc(fmtPercent(s.share))}</td></tr>`,
    )
    .join('');
  const table = o.suspects.length
    ? `<table style="margin-top:12px"><tr><th>suspect good image</th><th class="n">patches dropped</th><th class="n">share</th></tr>${rows}</table>`
    : '<p class="legend">no suspect good images</p>';
  return `<div class="panel"><h2>Training set: outlier patches and suspect good images</h2>${keyValueTable(facts)}
<p class="legend">Suspect good images lost at least 4x the average share of their patches: likely defective sheets in the good folder. Check them.</p>${table}</div>`;
}

const OUTCOME_ORDER: Record<Outcome, number> = { fn: 0, fp: 1, tp: 2, tn: 3 };

/** The whole report as one HTML string. */
export function renderReport(data: ReportData): string {
  const { images, metrics: m, threshold } = data;
  const scores = images.map((im) => im.score);
  const labels = images.map((im) => im.label);
  const c = confusion(scores, labels, threshold);
  const nGood = c.tn + c.fp;
  const nBad = c.tp + c.fn;
  const created = data.createdAt instanceof Date ? data.createdAt.toISOString() : data.createdAt;
  const timings = Object.entries(data.timings);
  const total = timings.reduce((a, [, v]) => a + (Number.isFinite(v) ? v : 0), 0);
  const cards = [
    card('Image AUROC', fmtMetric(m.imageAuroc), 'good vs defective images'),
    card('Pixel AUROC', fmtMetric(m.pixelAuroc), 'all pixels, all images'),
    card('PRO (FPR ≤ 30 %)', fmtMetric(m.pro), 'per-region overlap'),
    card(
      'F1 at threshold',
      fmtMetric(m.f1AtThreshold.f1),
      `precision ${fmtPercent(m.f1AtThreshold.precision)}, recall ${fmtPercent(m.f1AtThreshold.recall)}`,
    ),
    card('Best possible F1', fmtMetric(m.f1Max.f1), `at threshold ${fmtScore(m.f1Max.threshold)}`),
    card('Threshold', fmtScore(threshold), 'score ≥ threshold ⇒ NG'),
    card('Images', String(images.length), `${nGood} good, ${nBad} defective`),
    card('Misclassified', String(c.fp + c.fn), `${c.fn} missed, ${c.fp} false alarms`),
  ].join('');
  const roc = rocCurve(scores, labels);
  const operating = { fpr: nGood ? c.fp / nGood : 0, tpr: nBad ? c.tp / nBad : 0 };
  const sorted = images
    .map((im) => ({ im, o: outcomeOf(im, threshold) }))
    .sort((a, b) => OUTCOME_ORDER[a.o] - OUTCOME_ORDER[b.o] || b.im.score - a.im.score);
  const modelRows: [string, string][] = Object.entries(data.model).map(([k, v]) => [k, String(v)]);
  const timingRows: [string, string][] = timings.map(([k, v]) => [k, fmtDuration(v)]);
  if (timings.length > 1) timingRows.push(['total', fmtDuration(total)]);

  return `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'">
<meta name="generator" content="SparsePrintInspector">
<title>${esc(data.title)}</title>
<script>${HEAD_SCRIPT}</script>
<style>${CSS}</style></head>
<body data-report-status="loading">
<h1>${esc(data.title)}</h1>
<p class="meta">Data set <b>${esc(data.dataset)}</b> · created ${esc(created)} · ${images.length} test images</p>
<div class="cards">${cards}</div>
<div class="grid2">
<div class="panel"><h2>Image scores: good vs defective</h2>${histogramSvg(
    images.filter((im) => im.label === 0).map((im) => im.score),
    images.filter((im) => im.label === 1).map((im) => im.score),
    threshold,
  )}</div>
<div class="panel"><h2>ROC curve (image level)</h2>${rocSvg(roc, m.imageAuroc, nGood && nBad ? operating : undefined)}</div>
</div>
<div class="grid2">
<div class="panel"><h2>Confusion matrix at threshold ${esc(fmtScore(threshold))}</h2>${confusionTable(c)}
<h2 style="margin-top:20px">Per defect type</h2>${perTypeTable(data)}</div>
<div class="panel"><h2>Model</h2>${keyValueTable(modelRows)}<h2 style="margin-top:20px">Timings</h2>${keyValueTable(timingRows)}</div>
</div>
${autoConfigPanel(data.autoConfig)}
${outlierPanel(data.outliers)}
<div class="panel"><h2>Gallery</h2>
<p class="legend">Heat map from blue (normal) to red (anomalous)<span class="sw" style="background:#f0f"></span>ground-truth defect outline<span class="sw" style="background:#fff;border:2px solid #000"></span>predicted region. Errors first.</p>
<div class="filters"><button data-filter="all" class="on">all (${images.length})</button><button data-filter="wrong">misclassified (${c.fp + c.fn})</button><button data-filter="defective">defective (${nBad})</button><button data-filter="good">good (${nGood})</button></div>
<div class="gallery">${sorted.map(({ im }) => galleryItem(im, threshold)).join('\n')}</div>
</div>
<script>${BODY_SCRIPT}</script>
</body></html>
`;
}
