/**
 * Gateway-only metrics: time per inspection stage (read from the Timings each InspectResponse
 * carries, so the inspector itself stays free of metrics code) and the state of the cluster as the
 * gateway sees it, read from the latest view at scrape time.
 */
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import * as grpc from '@grpc/grpc-js';
import { ClusterView, activeRecord, missingPartitions } from '../../lib/cluster/view';
import { InspectResponseMsg } from '../../lib/rpc/messages';
import { GrpcServerMetrics } from '../common/metrics';
import { Admission, SHED_REASONS } from './admission';

const STAGE_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
const STAGES = [
  ['decode', 'decodeMs'],
  ['embed', 'embedMs'],
  ['search', 'searchMs'],
  ['score', 'scoreMs'],
  ['total', 'totalMs'],
  ['queue', 'queueMs'],
] as const;

/** Inspect / InspectStream answers: stage times, and each streamed frame's own status. */
export function registerInspectMetrics(grpcMetrics: GrpcServerMetrics): void {
  const registry = grpcMetrics.registry;
  const stages = new Histogram({
    name: 'spi_inspect_stage_seconds',
    help: 'Time per inspection stage on the gateway (decode, embed, search, score; total; and the wait for a slot before them: queue).',
    labelNames: ['stage'],
    buckets: STAGE_BUCKETS,
    registers: [registry],
  });
  const frames = new Counter({
    name: 'spi_inspect_stream_frames_total',
    help: 'Frames answered on InspectStream, by the frame status (the stream itself stays OK).',
    labelNames: ['grpc_code'],
    registers: [registry],
  });
  const record = (message: unknown): InspectResponseMsg['timings'] => {
    const timings = (message as Partial<InspectResponseMsg>).timings;
    if (timings) for (const [stage, key] of STAGES) stages.observe({ stage }, timings[key] / 1000);
    return timings ?? null;
  };
  grpcMetrics.observeResponses('/spi.v1.Inspector/Inspect', record);
  grpcMetrics.observeResponses('/spi.v1.Inspector/InspectStream', (message) => {
    record(message);
    const code = (message as Partial<InspectResponseMsg>).errorCode ?? 0;
    frames.inc({ grpc_code: grpc.status[code] ?? String(code) });
  });
}

/** Admission control: requests shed by reason, and the load it sees at scrape time. */
export function registerAdmissionMetrics(registry: Registry, admission: Admission): void {
  const shed = new Counter({
    name: 'spi_inspect_shed_total',
    help:
      'Inspections refused before any work, all RESOURCE_EXHAUSTED: queue_full, deadline (could not be met), ' +
      'fair_share (a queued one of the busiest connection, to let another client in), ' +
      'client_share (a connection past its share while other clients are active).',
    labelNames: ['reason'],
    registers: [registry],
  });
  for (const reason of SHED_REASONS) shed.inc({ reason }, 0);
  admission.onShed((reason) => shed.inc({ reason }));
  new Gauge({
    name: 'spi_inspect_in_flight',
    help: 'Inspections running on this gateway (at most --max-in-flight).',
    registers: [registry],
    collect() {
      this.set(admission.inFlight);
    },
  });
  new Gauge({
    name: 'spi_inspect_queued',
    help: 'Inspections waiting for a slot (at most --max-queue).',
    registers: [registry],
    collect() {
      this.set(admission.queued);
    },
  });
  new Gauge({
    name: 'spi_inspect_service_estimate_seconds',
    help: "Running estimate of one inspection's time, which deadline shedding and retry hints use.",
    registers: [registry],
    collect() {
      this.set((admission.serviceEstimateMs ?? 0) / 1000);
    },
  });
}

/** Cluster state from the gateway's view, computed when Prometheus scrapes. */
export function registerViewMetrics(registry: Registry, view: () => ClusterView): void {
  new Gauge({
    name: 'spi_etcd_connected',
    help: '1 while the gateway watches etcd; 0 while it serves its last view of the cluster.',
    registers: [registry],
    collect() {
      this.set(view().connected ? 1 : 0);
    },
  });
  new Gauge({
    name: 'spi_cluster_view_revision',
    help: 'etcd revision of the cluster view the gateway serves from.',
    registers: [registry],
    collect() {
      this.set(view().revision);
    },
  });
  new Gauge({
    name: 'spi_cluster_live_shards',
    help: 'Bank shards registered in etcd (alive, holding a lease).',
    registers: [registry],
    collect() {
      this.set(view().shards.size);
    },
  });
  new Gauge({
    name: 'spi_bank_active_version',
    help: 'Active version of each bank.',
    labelNames: ['bank'],
    registers: [registry],
    collect() {
      this.reset();
      for (const [bank, version] of view().active) this.set({ bank }, version);
    },
  });
  new Gauge({
    name: 'spi_bank_versions',
    help: 'Versions of each bank recorded in etcd, by state.',
    labelNames: ['bank', 'state'],
    registers: [registry],
    collect() {
      this.reset();
      const counts = new Map<string, { bank: string; state: string; n: number }>();
      for (const r of view().versions.values()) {
        const key = `${r.bank}\u0000${r.state}`;
        const entry = counts.get(key) ?? { bank: r.bank, state: r.state, n: 0 };
        entry.n++;
        counts.set(key, entry);
      }
      for (const { bank, state, n } of counts.values()) this.set({ bank, state }, n);
    },
  });
  new Gauge({
    name: 'spi_bank_missing_partitions',
    help: "Partitions of a bank's active version with no live loaded replica (0 = fully servable).",
    labelNames: ['bank'],
    registers: [registry],
    collect() {
      this.reset();
      const v = view();
      for (const bank of v.active.keys()) {
        const record = activeRecord(v, bank);
        if (record) this.set({ bank }, missingPartitions(v, record).length);
      }
    },
  });
}
