/**
 * `make soak`: a fault drill on a local cluster (etcd, 3 shards, a bank of 3 partitions x 2
 * replicas, a gateway; TLS on every gRPC hop), SOAK_MINUTES long (default 10). Line controllers send
 * Inspect and InspectStream frames the whole time while the schedule (./faults.ts) kills -9 and
 * restarts a shard, freezes another, restarts etcd, rotates the bank, overloads the gateway and
 * renews the servers' certificate, once per cycle. Writes soak-results.json and soak-results.md
 * (SOAK_OUT, default the current folder) and prints the table; every process it started is stopped,
 * whatever happens. SOAK_SAMPLES=<file> also writes every request's sample and the fault windows.
 * SOAK_FAULTS=burst,rotation drills only those faults (a shorter run to look into one of them).
 * SOAK_OVERLOADER_NICE (default 19, the lowest priority) is the overloader's nice value.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ClientOptions, InspectionClient } from '../../lib/client/inspection-client';
import { LocalCluster, startLocalCluster } from '../../services/local/cluster';
import { LOOPBACK_SAN, createCa } from '../../services/local/certs';
import { TEST_TMP } from '../../services/local/processes';
import { DEFAULT_ADMISSION } from '../../services/gateway/admission';
import { printDataset, upload } from '../../test/helpers/fixtures';
import { imageCorpus } from '../../test/helpers/image-corpus';
import { SpiError } from '../../lib/errors';
import { FAULT_ORDER, FaultKind, overloaderNiceness, runSchedule } from './faults';
import { Probe, Sample, streamLine, unaryLine } from './load';
import { memorySampler } from './memory';
import { CorpusResult, markdown, summarize } from './summary';

const BANK = 'soak';
const UNARY_LINES = 3;
const STREAM_LINES = 1;
/** One frame every 200 ms per line: 20 frames/s in all, about half of what 2 cores serve. */
const FRAME_INTERVAL_MS = 200;
/** A slot per fault: room for the slowest (a rotation under load) and quiet time after it. */
const MIN_SLOT_MS = 40_000;

const log = (message: string) => console.log(`[soak ${new Date().toISOString().slice(11, 19)}] ${message}`);

async function main(): Promise<void> {
  const minutes = Number(process.env.SOAK_MINUTES ?? 10);
  if (!(minutes > 0))
    throw new Error(`SOAK_MINUTES must be a positive number, got ${process.env.SOAK_MINUTES}`);
  const outDir = path.resolve(process.env.SOAK_OUT ?? '.');
  const faults = faultsFrom(process.env.SOAK_FAULTS);
  const durationMs = minutes * 60_000;
  const warmupMs = Math.min(60_000, Math.max(20_000, durationMs / 10));
  const cycles = Math.max(1, Math.floor((durationMs - warmupMs) / (faults.length * MIN_SLOT_MS)));
  const slotMs = (durationMs - warmupMs) / (cycles * faults.length);

  const data = await printDataset('soak-prints', 12);
  fs.mkdirSync(TEST_TMP, { recursive: true });
  const dir = fs.mkdtempSync(path.join(TEST_TMP, 'soak-'));
  const ca = createCa(path.join(dir, 'pki'), 'ca');
  const issued = ca.issue('server', { cn: 'spi-server', san: LOOPBACK_SAN });
  const live = { cert: path.join(dir, 'pki', 'live.crt'), key: path.join(dir, 'pki', 'live.key') };
  fs.copyFileSync(issued.cert, live.cert);
  fs.copyFileSync(issued.key, live.key);
  const serverTls = ['--tls-cert', live.cert, '--tls-key', live.key, '--tls-reload-ms', '1000'];
  const clients: InspectionClient[] = [];
  let cluster: LocalCluster | undefined;
  try {
    log(`starting etcd, 3 shards and a gateway (TLS) for a ${minutes}-minute soak`);
    cluster = await startLocalCluster({
      shards: 3,
      dir: path.join(dir, 'cluster'),
      gatewayArgs: [...serverTls, '--shard-tls-ca', ca.cert],
      shardArgs: serverTls,
      clientDefaults: { tls: { ca: ca.cert } },
    });
    const c = cluster;
    // Each client on its own connection, as separate line controllers and a separate overloader are.
    const client = (options: ClientOptions) => {
      const made = c.client({ ...options, channelOptions: { 'grpc.use_local_subchannel_pool': 1 } });
      clients.push(made);
      return made;
    };
    const roles = () => ({
      gateway: c.gateway.pid,
      ...Object.fromEntries(c.shards.map((s, i) => [`shard-${i}`, s.pid])),
      etcd: c.etcd.process()?.pid ?? -1,
    });
    const gatewayMetrics = Number((await c.gateway.waitForLine('gateway ready')).fields.metricsPort);
    const memory = memorySampler(roles, gatewayMetrics, 5000);
    const startMemory = await memory.sample();

    const admin = client({ deadlineMs: 180_000, retries: 20 });
    const probeFiles = [...data.testGood.slice(0, 2), ...data.testDefective.slice(0, 2)];
    const probe: Probe = { bank: BANK, files: probeFiles, images: probeFiles.map((f) => fs.readFileSync(f)) };
    // Each version's answers to the probe images, asked for that version explicitly once it is active
    // (one at a time, retried past refusals: bookkeeping, not load).
    const expected = new Map<number, number[]>();
    const learn = async (version: number) => {
      const scores: number[] = [];
      for (const image of probe.images)
        scores.push((await admin.inspect({ bank: BANK, image, version })).score);
      expected.set(version, scores);
    };
    let versions = 1;
    const spec = { bank: BANK, partitions: 3, replicas: 2 };
    log('building the bank (3 partitions x 2 replicas)');
    await admin.createBank(spec, upload(data.train.slice(0, 5)));
    await learn(1);
    const rotate = async () => {
      const info = await admin.rotateBank(spec, upload(data.train.slice(0, 5 + versions)));
      versions = info.activeVersion;
      await learn(versions);
      return versions;
    };

    log('sending the hostile-input corpus through the gateway');
    const corpus: CorpusResult[] = [];
    const single = client({ deadlineMs: 20_000, retries: 0 });
    for (const file of await imageCorpus()) {
      const got = await single.inspect({ bank: BANK, image: file.bytes }).then(
        () => 'OK',
        (err: unknown) => (err instanceof SpiError ? err.kind : String(err)),
      );
      corpus.push({ name: file.name, expect: file.expect, got });
    }

    const samples: Sample[] = [];
    const record = (s: Sample) => samples.push(s);
    const startedAt = Date.now();
    log(
      `load: ${UNARY_LINES} unary + ${STREAM_LINES} stream line controllers, a frame every ${FRAME_INTERVAL_MS} ms each`,
    );
    const lines = [
      ...Array.from({ length: UNARY_LINES }, (_, i) =>
        unaryLine(client, probe, FRAME_INTERVAL_MS, record, i),
      ),
      ...Array.from({ length: STREAM_LINES }, () => streamLine(client, probe, FRAME_INTERVAL_MS, record)),
    ];
    const burstSettings = { waves: 5, concurrency: 300, gapMs: 2000, deadlineMs: 10_000 };
    const schedule = runSchedule(
      {
        cluster: c,
        admin,
        probe,
        rotate,
        certs: { ca, live },
        burstSettings,
        workDir: dir,
        record,
        log,
      },
      { startAt: startedAt + warmupMs, slotMs, cycles, faults },
    );
    await new Promise((r) => setTimeout(r, warmupMs));
    const warmMemory = await memory.sample();
    log(
      `warm-up done; ${cycles} cycle(s) of ${faults.length} faults, a slot of ${Math.round(slotMs / 1000)} s each`,
    );
    const windows = await schedule;
    await new Promise((r) => setTimeout(r, Math.max(0, startedAt + durationMs - Date.now())));
    const endMemory = await memory.sample();
    memory.stop();
    await Promise.all(lines.map((l) => l.stop()));
    if (process.env.SOAK_SAMPLES)
      fs.writeFileSync(process.env.SOAK_SAMPLES, JSON.stringify({ samples, windows }));
    const results = summarize({
      minutes,
      startedAt,
      warmEnd: startedAt + warmupMs,
      endedAt: Date.now(),
      settings: {
        shards: 3,
        partitions: 3,
        replicas: 2,
        unaryLines: UNARY_LINES,
        streamLines: STREAM_LINES,
        frameIntervalMs: FRAME_INTERVAL_MS,
        warmupMs,
        cycles,
        slotMs: Math.round(slotMs),
        faults,
        burst: { ...burstSettings, overloaderNice: overloaderNiceness() },
        admission: DEFAULT_ADMISSION,
      },
      samples,
      windows,
      expected,
      memory: { start: startMemory, warm: warmMemory, end: endMemory, timeline: memory.timeline },
      corpus,
    });
    fs.mkdirSync(outDir, { recursive: true });
    fs.writeFileSync(path.join(outDir, 'soak-results.json'), JSON.stringify(results, null, 2) + '\n');
    const table = markdown(results);
    fs.writeFileSync(path.join(outDir, 'soak-results.md'), table);
    console.log('\n' + table);
    log(`written: ${path.join(outDir, 'soak-results.json')}, soak-results.md`);
  } finally {
    for (const c of clients) c.close();
    await cluster?.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** The faults to drill, in schedule order: all of them unless SOAK_FAULTS names some. */
function faultsFrom(list: string | undefined): FaultKind[] {
  if (!list) return FAULT_ORDER;
  const named = list.split(',').map((f) => f.trim());
  const unknown = named.filter((f) => !FAULT_ORDER.includes(f as FaultKind));
  if (unknown.length > 0 || named.length === 0)
    throw new Error(`SOAK_FAULTS: unknown fault(s) ${unknown.join(', ')}; known: ${FAULT_ORDER.join(', ')}`);
  return FAULT_ORDER.filter((f) => named.includes(f));
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error('soak failed:', err);
    // processes.ts kills every child it started on exit.
    process.exit(1);
  },
);
