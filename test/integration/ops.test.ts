/**
 * Operations on a real local cluster (etcd, two shard processes, a gateway process): grpc.health.v1
 * and /readyz, server reflection, Prometheus metrics after a few calls, and SIGTERM: health turns
 * NOT_SERVING, the shard's key leaves etcd and the process exits 0.
 */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { LocalCluster, startLocalCluster } from '../../services/local/cluster';
import { InspectionClient } from '../../lib/client/inspection-client';
import { Registry } from '../../lib/cluster/registry';
import { SpiError } from '../../lib/errors';
import {
  GATEWAY_HEALTH_SERVICES,
  SHARD_HEALTH_SERVICES,
  HealthClient,
  newHealthClient,
} from '../../services/common/health';
import { LIVENESS_PATH, METRICS_PATH, READINESS_PATH } from '../../services/common/http';
import { ManagedProcess, waitUntil } from '../helpers/processes';
import { printDataset, upload } from '../helpers/fixtures';

function check(client: HealthClient, service: string): Promise<string> {
  return new Promise((resolve, reject) =>
    client.check({ service }, { deadline: Date.now() + 3000 }, (err, res) =>
      err ? reject(err) : resolve(res?.status ?? ''),
    ),
  );
}

async function httpGet(port: number, urlPath: string): Promise<{ status: number; body: string }> {
  const res = await fetch(`http://127.0.0.1:${port}${urlPath}`);
  return { status: res.status, body: await res.text() };
}

/** Prometheus text format -> "name{sorted labels}" -> value (enough for counters and gauges). */
function parseMetrics(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) continue;
    const labels = [...(m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)]
      .map(([, k, v]) => `${k}="${v}"`)
      .sort();
    out.set(labels.length ? `${m[1]}{${labels.join(',')}}` : m[1], Number(m[3]));
  }
  return out;
}

async function scrape(port: number): Promise<Map<string, number>> {
  const res = await httpGet(port, METRICS_PATH);
  assert.equal(res.status, 200);
  return parseMetrics(res.body);
}

/** A series key as parseMetrics writes it. */
function series(name: string, labels: Record<string, string> = {}): string {
  const parts = Object.entries(labels)
    .map(([k, v]) => `${k}="${v}"`)
    .sort();
  return parts.length ? `${name}{${parts.join(',')}}` : name;
}

function metricsPortOf(ready: Record<string, unknown>): number {
  const port = Number(ready.metricsPort);
  assert.ok(Number.isInteger(port) && port > 0, `ready line has no metricsPort: ${JSON.stringify(ready)}`);
  return port;
}

/** The services a server lists through reflection (grpc.reflection.v1). */
async function reflectedServices(address: string): Promise<string[]> {
  const protoDir = path.join(path.dirname(require.resolve('@grpc/reflection')), '..', 'proto');
  const def = protoLoader.loadSync('grpc/reflection/v1/reflection.proto', { includeDirs: [protoDir] });
  const Ctor = grpc.loadPackageDefinition(def).grpc as grpc.GrpcObject;
  const Reflection = ((Ctor.reflection as grpc.GrpcObject).v1 as grpc.GrpcObject)
    .ServerReflection as grpc.ServiceClientConstructor;
  const client = new Reflection(address, grpc.credentials.createInsecure());
  try {
    return await new Promise<string[]>((resolve, reject) => {
      type ListReply = { listServicesResponse?: { service: { name: string }[] } };
      const call = client.ServerReflectionInfo() as grpc.ClientDuplexStream<unknown, ListReply>;
      call.on('data', (res: ListReply) => {
        resolve((res.listServicesResponse?.service ?? []).map((s) => s.name).sort());
        call.end();
      });
      call.on('error', reject);
      call.write({ listServices: '' });
    });
  } finally {
    client.close();
  }
}

describe('ops: health, readiness, metrics and graceful shutdown on a local cluster', function () {
  this.timeout(60_000);
  let cluster: LocalCluster;
  let client: InspectionClient;
  let gatewayMetricsPort: number;
  const shardMetricsPorts: number[] = [];
  const shardAddresses: string[] = [];

  before(async () => {
    cluster = await startLocalCluster({
      shards: 2,
      gatewayArgs: ['--metrics-port', '0', '--shutdown-grace-ms', '3000'],
      shardArgs: ['--metrics-port', '0', '--shutdown-grace-ms', '3000'],
    });
    client = cluster.client({ deadlineMs: 20_000 });
    gatewayMetricsPort = metricsPortOf((await cluster.gateway.waitForLine('gateway ready')).fields);
    for (const shard of cluster.shards) {
      const ready = (await shard.waitForLine('shard ready')).fields;
      shardMetricsPorts.push(metricsPortOf(ready));
      shardAddresses.push(`127.0.0.1:${Number(ready.port)}`);
    }
  });

  after(async () => {
    await cluster?.stop();
  });

  it('answers grpc.health.v1 Check with SERVING for each service name, and /healthz, /readyz 200', async () => {
    const nodes: [string, readonly string[], number][] = [
      [cluster.gatewayAddress, GATEWAY_HEALTH_SERVICES, gatewayMetricsPort],
      ...shardAddresses.map((a, i): [string, readonly string[], number] => [
        a,
        SHARD_HEALTH_SERVICES,
        shardMetricsPorts[i],
      ]),
    ];
    for (const [address, names, metricsPort] of nodes) {
      const hc = newHealthClient(address);
      try {
        for (const name of names)
          await waitUntil(async () => (await check(hc, name)) === 'SERVING', `${address} "${name}" SERVING`);
        await assert.rejects(check(hc, 'spi.v1.Nope'), (err: grpc.ServiceError) => {
          assert.equal(err.code, grpc.status.NOT_FOUND);
          return true;
        });
      } finally {
        hc.close();
      }
      assert.equal((await httpGet(metricsPort, READINESS_PATH)).status, 200);
      assert.equal((await httpGet(metricsPort, LIVENESS_PATH)).status, 200);
      assert.equal((await httpGet(metricsPort, '/nope')).status, 404);
    }
  });

  it('lists its services through gRPC server reflection', async () => {
    assert.deepEqual(await reflectedServices(cluster.gatewayAddress), [
      'grpc.health.v1.Health',
      'spi.v1.BankAdmin',
      'spi.v1.Inspector',
    ]);
    assert.deepEqual(await reflectedServices(shardAddresses[0]), [
      'grpc.health.v1.Health',
      'spi.v1.BankShard',
    ]);
  });

  it('counts RPCs by method and code, times stages and searches, reports banks and etcd', async () => {
    const data = await printDataset();
    const image = fs.readFileSync(data.testGood[0]);
    const before = await scrape(gatewayMetricsPort);
    await client.createBank(
      { bank: 'ops', coresetRatio: 0.1, partitions: 2, replicas: 1 },
      upload(data.train.slice(0, 3)),
    );
    for (let i = 0; i < 3; i++) await client.listBanks();
    await client.inspect({ bank: 'ops', image });
    await client.inspect({ bank: 'ops', image });
    for (let i = 0; i < 2; i++)
      await assert.rejects(
        client.inspect({ bank: 'nope', image }),
        (err: SpiError) => err.kind === 'NOT_FOUND',
      );

    const after = await scrape(gatewayMetricsPort);
    const delta = (key: string) => (after.get(key) ?? 0) - (before.get(key) ?? 0);
    const handled = (service: string, method: string, code: string, type = 'unary') =>
      series('grpc_server_handled_total', {
        grpc_service: service,
        grpc_method: method,
        grpc_type: type,
        grpc_code: code,
      });
    assert.equal(delta(handled('spi.v1.BankAdmin', 'ListBanks', 'OK')), 3);
    assert.equal(delta(handled('spi.v1.BankAdmin', 'CreateBank', 'OK', 'bidi_stream')), 1);
    assert.equal(delta(handled('spi.v1.Inspector', 'Inspect', 'OK')), 2);
    assert.equal(delta(handled('spi.v1.Inspector', 'Inspect', 'NOT_FOUND')), 2);
    const latencyCount = series('grpc_server_handling_seconds_count', {
      grpc_service: 'spi.v1.Inspector',
      grpc_method: 'Inspect',
      grpc_type: 'unary',
      grpc_code: 'NOT_FOUND',
    });
    assert.equal(delta(latencyCount), 2);
    for (const stage of ['decode', 'embed', 'search', 'score', 'total'])
      assert.equal(delta(series('spi_inspect_stage_seconds_count', { stage })), 2, stage);
    assert.equal(after.get('spi_etcd_connected'), 1);
    assert.equal(after.get('spi_cluster_live_shards'), 2);
    assert.equal(after.get(series('spi_bank_active_version', { bank: 'ops' })), 1);
    assert.equal(after.get(series('spi_bank_missing_partitions', { bank: 'ops' })), 0);
    assert.equal(after.get(series('spi_health_serving', { service: '' })), 1);
    assert.ok((after.get('process_resident_memory_bytes') ?? 0) > 0, 'default process metrics');

    let rows = 0;
    let searches = 0;
    for (const port of shardMetricsPorts) {
      const m = await scrape(port);
      for (const [key, value] of m) if (key.startsWith('spi_shard_partition_rows{bank="ops"')) rows += value;
      searches += m.get('spi_shard_search_seconds_count') ?? 0;
      assert.equal(m.get('spi_shard_registered'), 1);
      assert.ok(
        (m.get(handled('spi.v1.BankShard', 'LoadPartition', 'OK', 'client_stream')) ?? 0) >= 1,
        'each shard loaded a partition',
      );
    }
    const bank = await client.getBank('ops');
    assert.equal(rows, bank.versions[0].patches, 'rows over the shards = bank patches');
    assert.ok(searches >= 4, `2 inspections x 2 partitions searched, saw ${searches}`);
  });

  /** Watches a health name; resolves with the statuses seen once the server ends the stream. */
  function watchUntilEnd(address: string): { statuses: string[]; ended: Promise<grpc.StatusObject> } {
    const hc = newHealthClient(address);
    const statuses: string[] = [];
    const call = hc.watch({ service: '' });
    call.on('data', (m) => statuses.push(m.status));
    const ended = new Promise<grpc.StatusObject>((resolve) => {
      call.on('status', (s) => {
        hc.close();
        resolve(s);
      });
      call.on('error', () => undefined);
    });
    return { statuses, ended };
  }

  async function expectGracefulExit(proc: ManagedProcess, address: string): Promise<void> {
    const watch = watchUntilEnd(address);
    await waitUntil(() => watch.statuses[0] === 'SERVING', 'first Watch answer');
    const exit = proc.stop(10_000);
    const status = await watch.ended;
    assert.deepEqual(watch.statuses, ['SERVING', 'NOT_SERVING'], `status ${JSON.stringify(status)}`);
    assert.deepEqual(await exit, { code: 0, signal: null }, proc.tail());
  }

  it('on SIGTERM a shard turns NOT_SERVING, leaves etcd and exits 0', async () => {
    const registry = new Registry({ endpoints: [cluster.etcd.endpoint] });
    try {
      assert.ok((await registry.listShards()).some((s) => s.id === 'shard-1'));
      await expectGracefulExit(cluster.shards[1], shardAddresses[1]);
      assert.ok(!(await registry.listShards()).some((s) => s.id === 'shard-1'), 'lease revoked');
      assert.ok(cluster.shards[1].lines.some((l) => l.includes('"shard stopped"')));
    } finally {
      await registry.close();
    }
    await waitUntil(
      async () => (await scrape(gatewayMetricsPort)).get('spi_cluster_live_shards') === 1,
      'the gateway to see one shard',
    );
  });

  it('on SIGTERM the gateway turns NOT_SERVING and exits 0', async () => {
    await expectGracefulExit(cluster.gateway, cluster.gatewayAddress);
    assert.ok(cluster.gateway.lines.some((l) => l.includes('"gateway stopped"')));
  });
});
