/**
 * Live shards as the gateway sees them: the latest ClusterView from etcd, and one gRPC client per
 * shard address (reused across requests, closed when the shard leaves or moves), over TLS when the
 * gateway has --shard-tls-ca, and the query encoding each shard gets (float16 where it decodes it).
 */
import * as grpc from '@grpc/grpc-js';
import { ShardClient } from '../../lib/cluster/shard-client';
import { DEFAULT_WIRE_ENCODING, VectorEncoding, encodingFor } from '../../lib/cluster/vector-encoding';
import { ClusterView } from '../../lib/cluster/view';
import { ShardDirectory } from './cluster-searcher';
import { ClientTlsSettings, channelCredentials, channelOptionsOf } from '../../lib/rpc/tls';

export class WatchedShardDirectory implements ShardDirectory {
  private readonly clients = new Map<string, ShardClient>();
  /** One credentials object for every shard (its certificate files are watched once). */
  private readonly credentials: grpc.ChannelCredentials;
  private readonly channelOptions: grpc.ChannelOptions;

  constructor(
    private readonly currentView: () => ClusterView,
    tls: ClientTlsSettings | null = null,
    /** --wire-encoding: f16 where a shard decodes it (the default), or always f32. */
    private readonly wireEncoding: VectorEncoding = DEFAULT_WIRE_ENCODING,
  ) {
    this.credentials = channelCredentials(tls);
    this.channelOptions = channelOptionsOf(tls);
  }

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
      client = new ShardClient(info.address, this.channelOptions, this.credentials);
      this.clients.set(shardId, client);
    }
    return client;
  }

  /**
   * Read from the shard's current registration on every call: a shard upgraded in place (same id
   * and address, a new release) gets float16 as soon as it re-registers advertising it.
   */
  encodingOf(shardId: string): VectorEncoding {
    return encodingFor(this.currentView().shards.get(shardId)?.vectorEncodings, this.wireEncoding);
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
