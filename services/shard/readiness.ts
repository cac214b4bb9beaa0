/**
 * When a shard is ready: its partitions are reloaded from disk (PartitionStore.open does that before
 * the server starts) and it is registered in etcd with every loaded partition announced. The
 * registration has no event for that, so this polls it; it follows later lease losses too, which
 * holds back a StatefulSet rolling update until the restarted shard is back in the cluster.
 */
import { ShardRegistration } from '../../lib/cluster/shard-registration';
import { ServingHealth } from '../common/health';
import { Logger } from '../../lib/util/log';

export interface ReadinessTracker {
  stop(): void;
}

export function trackShardReadiness(
  health: ServingHealth,
  registration: ShardRegistration | null,
  log: Logger,
  intervalMs = 250,
): ReadinessTracker {
  // Without etcd (embedded use) nothing else has to happen.
  if (!registration) {
    health.setAll(true);
    return { stop: () => undefined };
  }
  let last: boolean | null = null;
  const check = () => {
    const registered = registration.registered;
    // Log changes, but not the NOT_SERVING it starts in.
    if (registered !== last && (registered || last !== null) && !health.shuttingDown)
      log.info(registered ? 'shard serving' : 'shard not serving: not registered in etcd');
    last = registered;
    health.setAll(registered);
  };
  check();
  const timer = setInterval(check, intervalMs);
  timer.unref();
  return { stop: () => clearInterval(timer) };
}
