/**
 * A whole cluster on this machine, as real processes on loopback: etcd, bank shards, a gateway.
 * The demo and the integration tests both bring it up this way; `stop()` stops every process.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { InspectionClient } from '../../lib/client/inspection-client';
import { StartEtcdOptions, TestEtcd, startEtcd } from './etcd';
import {
  GATEWAY_MEMORY_ENV,
  ManagedProcess,
  SHARD_MEMORY_ENV,
  TEST_TMP,
  spawnNodeService,
} from './processes';

export interface LocalClusterOptions {
  shards: number;
  /** Where shard data dirs go (default: a fresh dir under the local tmp dir). */
  dir?: string;
  gatewayArgs?: string[];
  shardArgs?: string[];
  /** etcd with TLS (the processes then need --etcd-ca etc. in their args). */
  etcd?: StartEtcdOptions;
  /** Runs once etcd is up, before any shard starts (e.g. to turn on etcd auth). */
  prepareEtcd?: (etcd: TestEtcd) => Promise<void>;
  /** Extra environment of the shard and gateway processes (e.g. SPI_LOG_LEVEL). */
  env?: NodeJS.ProcessEnv;
  /** Options of every `client()` (e.g. TLS), merged under the call's own. */
  clientDefaults?: ConstructorParameters<typeof InspectionClient>[1];
}

export interface LocalCluster {
  etcd: TestEtcd;
  shards: ManagedProcess[];
  gateway: ManagedProcess;
  gatewayAddress: string;
  dir: string;
  /** Starts one more shard (or restarts shard `index` on its old data dir and id). */
  startShard(index?: number): Promise<ManagedProcess>;
  client(options?: ConstructorParameters<typeof InspectionClient>[1]): InspectionClient;
  stop(): Promise<void>;
}

export async function startLocalCluster(options: LocalClusterOptions): Promise<LocalCluster> {
  fs.mkdirSync(TEST_TMP, { recursive: true });
  const dir = options.dir ?? fs.mkdtempSync(path.join(TEST_TMP, 'cluster-'));
  const etcd = await startEtcd(options.etcd);
  // Every process on loopback, any free port, registered in this etcd, metrics on a free port.
  const loopback = ['--host', '127.0.0.1', '--port', '0', '--etcd', etcd.endpoint, '--metrics-port', '0'];
  const shards: ManagedProcess[] = [];
  const clients: InspectionClient[] = [];
  // The shards share this machine's cores: each searches with its share (faiss' OpenMP and
  // OpenBLAS would each take every core otherwise, N shards oversubscribing them N times), unless
  // the caller chose.
  const shardEnv = {
    ...SHARD_MEMORY_ENV,
    SPI_SEARCH_THREADS:
      process.env.SPI_SEARCH_THREADS ??
      String(Math.max(1, Math.floor(os.availableParallelism() / Math.max(1, options.shards)))),
    ...options.env,
  };
  const startShard = async (index = shards.length): Promise<ManagedProcess> => {
    const proc = spawnNodeService('services/shard/main.ts', {
      name: `shard-${index}`,
      env: shardEnv,
      args: [
        ...loopback,
        '--id',
        `shard-${index}`,
        '--data-dir',
        path.join(dir, `shard-${index}`),
        ...(options.shardArgs ?? []),
      ],
    });
    await proc.waitForLine('shard ready', 30_000);
    shards[index] = proc;
    return proc;
  };
  try {
    await options.prepareEtcd?.(etcd);
    await Promise.all(Array.from({ length: options.shards }, (_, i) => startShard(i)));
    const gateway = spawnNodeService('services/gateway/main.ts', {
      name: 'gateway',
      env: { ...GATEWAY_MEMORY_ENV, ...options.env },
      args: [...loopback, ...(options.gatewayArgs ?? [])],
    });
    const ready = await gateway.waitForLine('gateway ready', 60_000);
    const gatewayAddress = `127.0.0.1:${Number(ready.fields.port)}`;
    return {
      etcd,
      shards,
      gateway,
      gatewayAddress,
      dir,
      startShard,
      client: (clientOptions) => {
        const c = new InspectionClient(gatewayAddress, { ...options.clientDefaults, ...clientOptions });
        clients.push(c);
        return c;
      },
      async stop() {
        for (const c of clients) c.close();
        await gateway.stop(10_000);
        await Promise.all(shards.map((s) => s.stop(10_000)));
        await etcd.stop();
        // A directory made here (not one the caller gave) goes with the cluster.
        if (!options.dir) fs.rmSync(dir, { recursive: true, force: true });
      },
    };
  } catch (err) {
    await Promise.all(shards.map((s) => s.kill()));
    await etcd.stop();
    throw err;
  }
}
