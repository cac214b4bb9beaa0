/**
 * The soak's fault schedule: each fault is done to the live cluster while the line controllers keep
 * sending, and ends once the cluster is whole again (a killed shard restarted and serving its
 * partitions, a renewed certificate served by every process). The schedule runs them in turn, each
 * in its own slot, and records when each one ran: requests sent then count as "during faults".
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tls from 'node:tls';
import { InspectionClient } from '../../lib/client/inspection-client';
import { Registry } from '../../lib/cluster/registry';
import { LocalCluster } from '../../services/local/cluster';
import { Ca, CertFiles, LOOPBACK_SAN } from '../../services/local/certs';
import { waitUntil } from '../../services/local/processes';
import { spawnNodeService } from '../../services/local/processes';
import { BurstSettings, Probe, Sample } from './load';

export interface FaultWindow {
  kind: FaultKind;
  start: number;
  end: number;
  notes: Record<string, unknown>;
}

export type FaultKind = 'kill-shard' | 'pause-shard' | 'etcd-restart' | 'rotation' | 'burst' | 'cert-renewal';
export const FAULT_ORDER: FaultKind[] = [
  'kill-shard',
  'pause-shard',
  'etcd-restart',
  'rotation',
  'burst',
  'cert-renewal',
];

export interface SoakContext {
  cluster: LocalCluster;
  admin: InspectionClient;
  probe: Probe;
  /** Builds the next version of the bank and learns its answers to the probe images. */
  rotate(): Promise<number>;
  /** The live certificate files every server re-reads, and the CA that issues their successors. */
  certs: { ca: Ca; live: CertFiles };
  burstSettings: BurstSettings;
  /** Where the overloader writes its samples. */
  workDir: string;
  record(s: Sample): void;
  log(message: string): void;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Shard 0 dies (kill -9), stays down a moment, restarts on its disk and serves its partitions again. */
async function killShard(ctx: SoakContext): Promise<Record<string, unknown>> {
  const registry = new Registry({ endpoints: [ctx.cluster.etcd.endpoint] });
  try {
    const held = async () =>
      (await registry.listLoaded(ctx.probe.bank)).filter((e) => e.shardId === 'shard-0').length;
    const before = await held();
    await ctx.cluster.shards[0].kill('SIGKILL');
    await sleep(3000);
    const t0 = Date.now();
    await ctx.cluster.startShard(0);
    await waitUntil(
      async () => (await held()) >= before,
      'shard-0 to serve its partitions again',
      60_000,
      200,
    );
    return { partitions: before, restartToServingMs: Date.now() - t0 };
  } finally {
    await registry.close();
  }
}

/** Shard 1 frozen (SIGSTOP) for 5 s, then thawed: the gateway must hedge past it. */
async function pauseShard(ctx: SoakContext): Promise<Record<string, unknown>> {
  ctx.cluster.shards[1].pause();
  await sleep(5000);
  ctx.cluster.shards[1].resume();
  return { frozenMs: 5000 };
}

async function restartEtcd(ctx: SoakContext): Promise<Record<string, unknown>> {
  await ctx.cluster.etcd.restart({ downMs: 2000 });
  return { downMs: 2000 };
}

async function rotation(ctx: SoakContext): Promise<Record<string, unknown>> {
  const t0 = Date.now();
  const version = await ctx.rotate();
  return { version, ms: Date.now() - t0 };
}

export function overloaderNiceness(): number {
  const raw = process.env.SOAK_OVERLOADER_NICE ?? '19';
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 0 || n > 19)
    throw new Error(`SOAK_OVERLOADER_NICE must be an integer 0-19, got ${raw}`);
  return n;
}

/** Bursts of concurrent Inspects from another process (./overload.ts) that never retries. */
async function overload(ctx: SoakContext): Promise<Record<string, unknown>> {
  const out = path.join(ctx.workDir, `burst-${Date.now()}.json`);
  const proc = spawnNodeService('bench/soak/overload.ts', {
    name: 'overload',
    // It stands for other machines' traffic: here it shares the cluster's cores, so it takes only
    // what the cluster leaves (opening a wave's 300 calls costs it ~0.3 s of a core).
    // SOAK_OVERLOADER_NICE=0 runs it at the cluster's own priority.
    niceness: overloaderNiceness(),
    args: [
      ctx.cluster.gatewayAddress,
      ctx.certs.ca.cert,
      out,
      JSON.stringify(ctx.burstSettings),
      ctx.probe.bank,
      ...ctx.probe.files,
    ],
  });
  const exit = await proc.waitForExit();
  if (exit.code !== 0) throw new Error(`overloader failed (${JSON.stringify(exit)})\n${proc.tail()}`);
  const samples = JSON.parse(fs.readFileSync(out, 'utf8')) as Sample[];
  for (const s of samples) ctx.record(s);
  return { ...ctx.burstSettings, sent: samples.length };
}

/** The serial number of the certificate a TLS server on loopback presents. */
export function servedSerial(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect(
      { host: '127.0.0.1', port, ALPNProtocols: ['h2'], rejectUnauthorized: false },
      () => {
        const serial = socket.getPeerCertificate().serialNumber;
        socket.destroy();
        resolve(serial);
      },
    );
    socket.on('error', reject);
  });
}

/** Every server's gRPC port: the gateway and the shards' current processes. */
async function serverPorts(cluster: LocalCluster): Promise<number[]> {
  const gateway = Number(cluster.gatewayAddress.split(':').pop());
  const shards = await Promise.all(
    cluster.shards.map(async (s) => Number((await s.waitForLine('shard ready')).fields.port)),
  );
  return [gateway, ...shards];
}

/** A new server certificate written over the live files (one rename each, as kubelet does). */
async function renewCertificate(ctx: SoakContext): Promise<Record<string, unknown>> {
  const ports = await serverPorts(ctx.cluster);
  const before = await Promise.all(ports.map(servedSerial));
  const next = ctx.certs.ca.issue(`server-${Date.now()}`, { cn: 'spi-server', san: LOOPBACK_SAN });
  const t0 = Date.now();
  for (const [from, to] of [
    [next.key, ctx.certs.live.key],
    [next.cert, ctx.certs.live.cert],
  ]) {
    fs.copyFileSync(from, `${to}.new`);
    fs.renameSync(`${to}.new`, to);
  }
  const after = await waitUntil(
    async () => {
      const now = await Promise.all(ports.map(servedSerial));
      return now.every((s, i) => s !== before[i]) ? now : null;
    },
    'every server to present the renewed certificate',
    30_000,
    200,
  );
  return {
    servers: ports.length,
    pickedUpMs: Date.now() - t0,
    serial: after[0],
    file: path.basename(next.cert),
  };
}

const FAULTS: Record<FaultKind, (ctx: SoakContext) => Promise<Record<string, unknown>>> = {
  'kill-shard': killShard,
  'pause-shard': pauseShard,
  'etcd-restart': restartEtcd,
  rotation,
  burst: overload,
  'cert-renewal': renewCertificate,
};

/**
 * Runs the schedule: after `startAt`, fault i of each cycle starts at its slot (or right after the
 * previous one when that overran), `cycles` times through `faults` (default FAULT_ORDER); returns the windows.
 */
export async function runSchedule(
  ctx: SoakContext,
  options: { startAt: number; slotMs: number; cycles: number; faults?: FaultKind[] },
): Promise<FaultWindow[]> {
  const windows: FaultWindow[] = [];
  let slot = 0;
  for (let cycle = 0; cycle < options.cycles; cycle++)
    for (const kind of options.faults ?? FAULT_ORDER) {
      await sleep(options.startAt + slot++ * options.slotMs - Date.now());
      const start = Date.now();
      ctx.log(`fault ${kind} (cycle ${cycle + 1})`);
      const notes = await FAULTS[kind](ctx);
      windows.push({ kind, start, end: Date.now(), notes });
      ctx.log(`fault ${kind} done in ${Date.now() - start} ms ${JSON.stringify(notes)}`);
    }
  return windows;
}
