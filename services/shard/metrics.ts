/**
 * Shard-only metrics: how long searches take inside the shard, what it holds (rows per loaded
 * partition, read from the store at scrape time) and whether it is registered in etcd.
 */
import { Gauge, Histogram, Registry } from 'prom-client';
import { ShardRegistration } from '../../lib/cluster/shard-registration';
import { PartitionSummary } from './partition-store';

const SEARCH_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];

/** The histogram the Search handler feeds (see timedUnary). */
export function shardSearchHistogram(registry: Registry): Histogram {
  return new Histogram({
    name: 'spi_shard_search_seconds',
    help: 'Time the shard spends on one Search (faiss search and result packing).',
    buckets: SEARCH_BUCKETS,
    registers: [registry],
  });
}

/** What the shard holds and whether it is in etcd, read when Prometheus scrapes. */
export function registerShardMetrics(
  registry: Registry,
  partitions: () => PartitionSummary[],
  registration: ShardRegistration | null,
): void {
  new Gauge({
    name: 'spi_shard_partition_rows',
    help: 'Bank rows held per loaded partition.',
    labelNames: ['bank', 'version', 'partition'],
    registers: [registry],
    collect() {
      this.reset();
      for (const p of partitions())
        this.set(
          { bank: p.ref.bank, version: String(p.ref.version), partition: String(p.ref.partition) },
          p.rows,
        );
    },
  });
  new Gauge({
    name: 'spi_shard_partitions',
    help: 'Partitions loaded and searchable on this shard.',
    registers: [registry],
    collect() {
      this.set(partitions().length);
    },
  });
  new Gauge({
    name: 'spi_shard_registered',
    help: '1 while the shard and all its partitions are registered in etcd under a live lease.',
    registers: [registry],
    collect() {
      this.set(registration === null || registration.registered ? 1 : 0);
    },
  });
}
