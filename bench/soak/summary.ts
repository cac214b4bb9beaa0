/**
 * The soak's figures from its raw record: requests by outcome, answers that mix bank versions,
 * latency outside and during faults and during the overload burst, memory by process, the
 * hostile-input corpus; each target of issue #19 marked met or not.
 */
import { percentile } from '../stats';
import { FaultKind, FaultWindow } from './faults';
import { MemoryPoint } from './memory';
import { Sample } from './load';

/** How long after a fault ends its effects still count as "during" it. */
export const SETTLE_MS = 2000;

export interface CorpusResult {
  name: string;
  expect: string;
  got: string;
}

export interface SoakRecord {
  minutes: number;
  startedAt: number;
  warmEnd: number;
  endedAt: number;
  settings: Record<string, unknown>;
  samples: Sample[];
  windows: FaultWindow[];
  /** version -> score of each probe image, from pinned requests. */
  expected: Map<number, number[]>;
  memory: { start: MemoryPoint; warm: MemoryPoint; end: MemoryPoint; timeline: MemoryPoint[] };
  corpus: CorpusResult[];
}

interface Latency {
  n: number;
  p50: number;
  p99: number;
}

/**
 * Of the answered ones: from sending to the answer, retries included (or the accepted attempt
 * alone), or the gateway's own time, from the request's arrival there to the answer.
 */
const latency = (xs: Sample[], of: 'ms' | 'attemptMs' | 'gatewayMs' | 'serverMs' = 'ms'): Latency => {
  const ms = xs.filter((s) => s.code === 'OK' && s[of] !== undefined).map((s) => s[of]!);
  return { n: ms.length, p50: percentile(ms, 50), p99: percentile(ms, 99) };
};

const countBy = (xs: Sample[]) => {
  const out: Record<string, number> = {};
  for (const s of xs) out[s.code] = (out[s.code] ?? 0) + 1;
  return out;
};

/** Whether a score is the one its version gives that image (within float noise). */
function sameVersionScore(s: Sample, expected: Map<number, number[]>): boolean {
  const want = expected.get(s.version!)?.[s.image];
  return want !== undefined && Math.abs(s.score! - want) <= 1e-4 * Math.max(1, Math.abs(want));
}

export function summarize(r: SoakRecord) {
  const inWindow = (s: Sample, w: FaultWindow) => s.at >= w.start && s.at <= w.end + SETTLE_MS;
  const windowOf = (s: Sample) => r.windows.find((w) => inWindow(s, w));
  const measured = r.samples.filter((s) => s.at >= r.warmEnd);
  const outside = measured.filter((s) => !windowOf(s));
  const during = measured.filter((s) => windowOf(s) && windowOf(s)!.kind !== 'burst');
  const inBurst = r.samples.filter((s) => windowOf(s)?.kind === 'burst');
  const failed = r.samples.filter((s) => s.code !== 'OK');
  const failedOutsideBurst = failed.filter((s) => windowOf(s)?.kind !== 'burst');
  const answered = r.samples.filter((s) => s.code === 'OK');
  const mixed = answered.filter((s) => !sameVersionScore(s, r.expected));
  const unloaded = latency(outside);
  // What the gateway gave the requests it accepted: a shed line controller's retry waits are the
  // client's (reported apart as retried).
  const burstAccepted = latency(inBurst, 'attemptMs');
  const burstWithRetries = latency(inBurst);
  // The line controllers' calls in the burst, and the overloader's own: a client that opens 300
  // calls at once waits for its own process and connection, which the gateway's time leaves out.
  const burstLines = latency(
    inBurst.filter((s) => s.source !== 'burst'),
    'attemptMs',
  );
  const burstOverloader = latency(
    inBurst.filter((s) => s.source === 'burst'),
    'attemptMs',
  );
  const unloadedOnGateway = latency(outside, 'gatewayMs');
  const burstOnGateway = latency(inBurst, 'gatewayMs');
  // From the image being in: a client slow to upload its own calls (the overloader, busy opening
  // 300 at the lowest priority) is not the gateway's time.
  const unloadedServer = latency(outside, 'serverMs');
  const burstServer = latency(inBurst, 'serverMs');
  const byFault: Partial<Record<FaultKind, Latency & { failed: Record<string, number> }>> = {};
  for (const kind of new Set(r.windows.map((w) => w.kind))) {
    const xs = r.samples.filter((s) => windowOf(s)?.kind === kind);
    byFault[kind] = { ...latency(xs), failed: countBy(xs.filter((s) => s.code !== 'OK')) };
  }
  const memory = Object.keys(r.memory.end.rss).map((role) => {
    const at = (p: MemoryPoint) => p.rss[role]?.mib ?? null;
    const warm = at(r.memory.warm);
    const end = at(r.memory.end);
    const peak = Math.max(...r.memory.timeline.map((p) => at(p) ?? 0));
    // A process killed and started again (shard-0, etcd) is a new process at the end.
    const restarted = r.memory.warm.rss[role]?.pid !== r.memory.end.rss[role]?.pid;
    return {
      process: role,
      startMiB: at(r.memory.start),
      warmMiB: warm,
      endMiB: end,
      peakMiB: peak,
      growthPct: warm && end ? Math.round(((end - warm) / warm) * 1000) / 10 : null,
      restarted,
    };
  });
  const heap = (p: MemoryPoint) => p.gatewayHeap ?? { heapUsed: null, heapTotal: null, external: null };
  const gatewayHeap = { start: heap(r.memory.start), warm: heap(r.memory.warm), end: heap(r.memory.end) };
  const corpusRefusals = r.corpus.filter((c) => c.expect !== 'OK');
  const corpusImages = r.corpus.filter((c) => c.expect === 'OK');
  const burstRefusals = inBurst.filter((s) => s.code !== 'OK');
  const targets = {
    noFailureOutsideBurst: failedOutsideBurst.length === 0,
    noMixedVersions: mixed.length === 0,
    burstRefusalsAllResourceExhausted: burstRefusals.every((s) => s.code === 'RESOURCE_EXHAUSTED'),
    burstP99UnderTwiceUnloaded: burstAccepted.p99 < 2 * unloaded.p99,
    burstLineControllersP99UnderTwiceUnloaded: burstLines.p99 < 2 * unloaded.p99,
    burstP99OnGatewayUnderTwiceUnloaded: burstOnGateway.p99 < 2 * unloadedOnGateway.p99,
    burstP99FromImageInUnderTwiceUnloaded: burstServer.p99 < 2 * unloadedServer.p99,
    memoryGrowthUnder10Pct: memory.every((m) => m.restarted || (m.growthPct ?? Infinity) < 10),
    corpusNonImagesRefused: corpusRefusals.every((c) => c.got === c.expect),
    corpusCameraFormatsScored: corpusImages.every((c) => c.got === 'OK'),
  };
  return {
    date: new Date(r.startedAt).toISOString(),
    minutes: r.minutes,
    settings: r.settings,
    requests: {
      sent: r.samples.length,
      answered: answered.length,
      failed: failed.length,
      failedByCode: countBy(failed),
      failedOutsideBurst: failedOutsideBurst.length,
      failedOutsideBurstByCode: countBy(failedOutsideBurst),
      bySource: Object.fromEntries(
        ['unary', 'stream', 'burst'].map((src) => [src, countBy(r.samples.filter((s) => s.source === src))]),
      ),
    },
    versions: {
      answeredBy: countBy(answered.map((s) => ({ ...s, code: `v${s.version}` }))),
      mixed: mixed.length,
      mixedExamples: mixed.slice(0, 5),
    },
    latencyMs: {
      outsideFaults: unloaded,
      outsideFaultsOnGateway: unloadedOnGateway,
      outsideFaultsFromImageIn: unloadedServer,
      duringFaults: latency(during),
      duringBurst: {
        ...burstAccepted,
        lineControllers: burstLines,
        overloader: burstOverloader,
        onGateway: burstOnGateway,
        fromImageIn: burstServer,
        withRetries: burstWithRetries,
        retried: inBurst.filter((s) => s.attempts > 1).length,
        refused: burstRefusals.length,
        refusedByCode: countBy(burstRefusals),
      },
      byFault,
    },
    faults: r.windows.map((w) => ({ ...w, ms: w.end - w.start })),
    memory,
    gatewayHeapMiB: gatewayHeap,
    corpus: {
      files: r.corpus.length,
      cameraFormatsScored: corpusImages.filter((c) => c.got === 'OK').length,
      cameraFormats: corpusImages.length,
      nonImagesRefused: corpusRefusals.filter((c) => c.got === c.expect).length,
      nonImages: corpusRefusals.length,
      mismatches: r.corpus.filter((c) => c.got !== c.expect),
    },
    targets,
    memoryTimeline: r.memory.timeline,
  };
}

export type SoakResults = ReturnType<typeof summarize>;

const fmt = (x: number | null | undefined) =>
  x === null || x === undefined || Number.isNaN(x) ? '–' : String(Math.round(x * 10) / 10);
const heapLine = (h: { heapUsed: number | null; heapTotal?: number | null; external: number | null }) =>
  `${fmt(h.heapUsed)} / ${fmt(h.heapTotal)} / ${fmt(h.external)}`;
const codes = (c: Record<string, number>) =>
  Object.entries(c)
    .map(([k, v]) => `${k} ${v}`)
    .join(', ') || '0';

/** The short table: stdout and soak-results.md. */
export function markdown(s: SoakResults): string {
  const l = s.latencyMs;
  const lines = [
    `# Soak ${s.date}: ${s.minutes} min, ${s.faults.length} faults (${[...new Set(s.faults.map((f) => f.kind))].join(', ')})`,
    '',
    '| requests | count |',
    '|---|---|',
    `| sent | ${s.requests.sent} |`,
    `| answered | ${s.requests.answered} |`,
    `| failed, by code | ${s.requests.failed} (${codes(s.requests.failedByCode)}) |`,
    `| failed outside the overload burst | ${s.requests.failedOutsideBurst} (${codes(s.requests.failedOutsideBurstByCode)}) |`,
    `| answers mixing bank versions | ${s.versions.mixed} (answers by version: ${codes(s.versions.answeredBy)}) |`,
    '',
    '| latency (answered) | n | p50 ms | p99 ms |',
    '|---|---|---|---|',
    `| outside faults | ${l.outsideFaults.n} | ${fmt(l.outsideFaults.p50)} | ${fmt(l.outsideFaults.p99)} |`,
    `| during faults (not the burst) | ${l.duringFaults.n} | ${fmt(l.duringFaults.p50)} | ${fmt(l.duringFaults.p99)} |`,
    ...Object.entries(l.byFault).map(([k, v]) => `| &nbsp; ${k} | ${v.n} | ${fmt(v.p50)} | ${fmt(v.p99)} |`),
    `| during the burst, accepted attempt (refused: ${l.duringBurst.refused}, ${codes(l.duringBurst.refusedByCode)}) | ${l.duringBurst.n} | ${fmt(l.duringBurst.p50)} | ${fmt(l.duringBurst.p99)} |`,
    `| &nbsp; the same with the client's retry waits (${l.duringBurst.retried} retried) | ${l.duringBurst.withRetries.n} | ${fmt(l.duringBurst.withRetries.p50)} | ${fmt(l.duringBurst.withRetries.p99)} |`,
    `| &nbsp; the line controllers' | ${l.duringBurst.lineControllers.n} | ${fmt(l.duringBurst.lineControllers.p50)} | ${fmt(l.duringBurst.lineControllers.p99)} |`,
    `| &nbsp; the overloader's own (300 calls opened at once by one process) | ${l.duringBurst.overloader.n} | ${fmt(l.duringBurst.overloader.p50)} | ${fmt(l.duringBurst.overloader.p99)} |`,
    `| on the gateway (arrival to answer), outside faults | ${l.outsideFaultsOnGateway.n} | ${fmt(l.outsideFaultsOnGateway.p50)} | ${fmt(l.outsideFaultsOnGateway.p99)} |`,
    `| on the gateway, during the burst, accepted | ${l.duringBurst.onGateway.n} | ${fmt(l.duringBurst.onGateway.p50)} | ${fmt(l.duringBurst.onGateway.p99)} |`,
    `| on the gateway from the image in (without the client's upload), outside faults | ${l.outsideFaultsFromImageIn.n} | ${fmt(l.outsideFaultsFromImageIn.p50)} | ${fmt(l.outsideFaultsFromImageIn.p99)} |`,
    `| &nbsp; the same, during the burst, accepted | ${l.duringBurst.fromImageIn.n} | ${fmt(l.duringBurst.fromImageIn.p50)} | ${fmt(l.duringBurst.fromImageIn.p99)} |`,
    '',
    '| process | RSS MiB at start | after warm-up | at end | peak | growth after warm-up |',
    '|---|---|---|---|---|---|',
    ...s.memory.map(
      (m) =>
        `| ${m.process}${m.restarted ? ' (restarted: the new process)' : ''} | ${fmt(m.startMiB)} | ${fmt(m.warmMiB)} | ${fmt(m.endMiB)} | ${fmt(m.peakMiB)} | ${m.growthPct === null ? '–' : `${m.growthPct} %`} |`,
    ),
    `Gateway JavaScript heap used / reserved / external (Buffers) MiB: ${heapLine(s.gatewayHeapMiB.warm)} after warm-up, ${heapLine(s.gatewayHeapMiB.end)} at end.`,
    '',
    `Hostile-input corpus through the gateway: ${s.corpus.cameraFormatsScored} of ${s.corpus.cameraFormats} camera-format files scored, ${s.corpus.nonImagesRefused} of ${s.corpus.nonImages} other files refused with the expected status.`,
    '',
    '| target | met |',
    '|---|---|',
    ...Object.entries(s.targets).map(([k, v]) => `| ${k} | ${v ? 'yes' : '**no**'} |`),
  ];
  return lines.join('\n') + '\n';
}
