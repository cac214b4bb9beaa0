/**
 * In one process, on loopback: the gateway's readiness rules on synthetic cluster views, the ops
 * HTTP server's answers, and the metrics interceptor on a real grpc-js server.
 */
import { strict as assert } from 'node:assert';
import { keyLayout } from '../../lib/cluster/keys';
import { BankVersionRecord } from '../../lib/cluster/types';
import { ClusterView, viewFromKvs } from '../../lib/cluster/view';
import { LiveView } from '../../lib/cluster/cluster-registry';
import { GatewayReadiness, incompleteBanks } from '../../services/gateway/readiness';
import {
  GATEWAY_HEALTH_SERVICES,
  OVERALL,
  ServingHealth,
  newHealthClient,
} from '../../services/common/health';
import {
  LIVENESS_PATH,
  METRICS_PATH,
  READINESS_PATH,
  metricsPortSetting,
  startOpsServer,
} from '../../services/common/http';
import { GrpcServerMetrics, newMetricsRegistry, registerHealthMetrics } from '../../services/common/metrics';
import { startGrpcServer } from '../../lib/rpc/grpc-server';
import { Logger } from '../../lib/util/log';
import { waitUntil } from '../helpers/processes';

const keys = keyLayout();
/** Quiet: the readiness logs are expected here. */
const log: Logger = { debug() {}, info() {}, warn() {}, error() {}, child: () => log };

function record(bank: string, version: number, partitions: number): BankVersionRecord {
  return {
    bank,
    version,
    state: 'ready',
    createdAt: new Date(0).toISOString(),
    meta: {},
    partitions: Array.from({ length: partitions }, (_, p) => ({
      partition: p,
      rowOffset: p * 10,
      rows: 10,
      shards: ['s0'],
    })),
    index: 'Flat',
    nprobe: 0,
  };
}

/** A view where bank "b" v1 has `partitions` partitions and shard s0 holds those in `loaded`. */
function view(partitions: number, loaded: number[], connected = true): ClusterView {
  const kvs = [
    { key: keys.shard('s0'), value: JSON.stringify({ address: '127.0.0.1:1', startedAt: '' }) },
    { key: keys.version('b', 1), value: JSON.stringify(record('b', 1, partitions)) },
    { key: keys.active('b'), value: '1' },
    ...loaded.map((p) => ({
      key: keys.loaded({ bank: 'b', version: 1, partition: p }, 's0'),
      value: JSON.stringify({ rows: 10, dim: 4, index: 'Flat' }),
    })),
  ];
  return viewFromKvs(keys.prefix, kvs, 7, connected);
}

function liveView(v: () => ClusterView): LiveView {
  return {
    get view() {
      return v();
    },
    ready: Promise.resolve(),
    close: async () => undefined,
  };
}

describe('ops in process: readiness rules, ops HTTP server, gRPC metrics', () => {
  it('finds active banks with partitions that have no live replica', () => {
    assert.deepEqual(incompleteBanks(view(2, [0, 1])), []);
    assert.deepEqual(incompleteBanks(view(2, [1])), [{ bank: 'b', version: 1, missing: [0] }]);
  });

  it('a gateway is ready once every active bank is servable, stays ready, and BankAdmin follows etcd', async () => {
    const health = new ServingHealth(GATEWAY_HEALTH_SERVICES);
    const readiness = new GatewayReadiness(health, log, 60_000);
    let current = view(2, [1]);
    readiness.follow(liveView(() => current));
    await new Promise((r) => setImmediate(r));
    assert.equal(health.isServing(), false, 'partition 0 has no replica yet');
    current = view(2, [0, 1]);
    readiness.update(current);
    assert.deepEqual(health.snapshot(), {
      '': 'SERVING',
      'spi.v1.Inspector': 'SERVING',
      'spi.v1.BankAdmin': 'SERVING',
    });
    readiness.update(view(2, [1], false));
    assert.equal(health.isServing(OVERALL), true, 'a lost replica does not make it unready');
    assert.equal(health.isServing('spi.v1.BankAdmin'), false, 'no etcd: no admin');
    health.shutdown();
    readiness.update(view(2, [0, 1]));
    assert.equal(health.isServing(), false, 'shutdown is final');
    readiness.close();
  });

  it('a gateway becomes ready anyway after waiting for a bank that stays incomplete', async () => {
    const health = new ServingHealth(GATEWAY_HEALTH_SERVICES);
    const readiness = new GatewayReadiness(health, log, 50);
    const current = view(3, [2]);
    readiness.follow(liveView(() => current));
    await new Promise((r) => setImmediate(r));
    assert.equal(health.isServing(), false);
    await waitUntil(() => health.isServing(), 'readiness after the wait', 2000, 10);
    readiness.close();
  });

  it('reads --metrics-port: a port, 0 for any free port, "off", defaults', () => {
    assert.deepEqual(metricsPortSetting(undefined, 9464), { port: 9464, explicit: false });
    assert.deepEqual(metricsPortSetting('0', 9464), { port: 0, explicit: true });
    assert.deepEqual(metricsPortSetting('off', 9464), { port: null, explicit: true });
    assert.throws(() => metricsPortSetting('http', 9464), /--metrics-port/);
  });

  it('serves /healthz, /readyz (503 until ready, and again on shutdown) and /metrics with gRPC call counts', async () => {
    const health = new ServingHealth(['', 'grpc.health.v1.Health']);
    const metrics = new GrpcServerMetrics(newMetricsRegistry());
    registerHealthMetrics(metrics.registry, health);
    const server = await startGrpcServer({
      host: '127.0.0.1',
      channelOptions: metrics.serverOptions(),
      services: [health.binding()],
    });
    const ops = await startOpsServer({ host: '127.0.0.1', port: 0, registry: metrics.registry, health });
    const get = async (p: string) => {
      const res = await fetch(`http://127.0.0.1:${ops.port}${p}`);
      return { status: res.status, body: await res.text() };
    };
    const client = newHealthClient(`127.0.0.1:${server.port}`);
    try {
      assert.equal((await get(LIVENESS_PATH)).status, 200);
      assert.equal((await get(READINESS_PATH)).status, 503);
      health.setAll(true);
      assert.equal((await get(READINESS_PATH)).status, 200);
      await new Promise<void>((resolve) => client.check({ service: '' }, {}, () => resolve()));
      await new Promise<void>((resolve) => client.check({ service: 'x' }, {}, () => resolve()));
      const text = (await get(METRICS_PATH)).body;
      assert.match(
        text,
        /grpc_server_handled_total\{grpc_service="grpc.health.v1.Health",grpc_method="Check",grpc_type="unary",grpc_code="OK"\} 1/,
      );
      assert.match(text, /grpc_code="NOT_FOUND"\} 1/);
      assert.match(text, /spi_health_serving\{service=""\} 1/);
      health.shutdown();
      const res = await get(READINESS_PATH);
      assert.deepEqual(res, { status: 503, body: 'shutting down\n' });
    } finally {
      client.close();
      await ops.close();
      await server.shutdown(1000);
    }
  });
});
