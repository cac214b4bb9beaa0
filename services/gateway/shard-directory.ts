/**
 * Live shards as the gateway sees them: the latest ClusterView from etcd, and one gRPC client per
 * shard address (reused across requests, closed when the shard leaves or moves).
 */
import { ShardClient } from '../../lib/cluster/shard-client';
import { ClusterView } from '../../lib/cluster/view';
import { ShardDirectory } from './cluster-searcher';

export class WatchedShardDirectory implements ShardDirectory {
  private readonly clients = new Map<string, ShardClient>();

  constructor(private readonly currentView: () => ClusterView) {}

  view(): ClusterView {
    return this.currentView();
  }

  client(shardId: string): ShardClient | undefined {
    const info = this.currentView().shards.get(shardId);
    if (!info) return undefined;
    let client = this.clients.get(shardId);
    if (client && client.address !== info.address) {
      client.close();
      client = undefined;
    }
    if (!client) {
      client = new ShardClient(info.address);
      this.clients.set(shardId, client);
    }
    return client;
  }

  /** Closes clients of shards that are gone from the view. */
  prune(view: ClusterView): void {
    for (const [id, client] of this.clients) {
      if (!view.shards.has(id)) {
        client.close();
        this.clients.delete(id);
      }
    }
  }

  close(): void {
    for (const client of this.clients.values()) client.close();
    this.clients.clear();
  }
}
